//! Atomic file replacement and schema-versioned JSON files.
//!
//! Every whole-file write of the store goes through [`write_atomic`]: a temporary file in the
//! target's own directory, fsync, rename over the target, fsync of the directory. A crash or a
//! full disk at any moment leaves either the old file or the new one, never a mix.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Replaces `path` with `bytes` atomically (temp file in the same dir, fsync, rename, fsync dir).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, bytes, &mut |file, bytes| file.write_all(bytes))
}

/// [`write_atomic`] with the byte writing done by `write`: the seam where tests inject a full
/// disk. On any error the temporary file is removed and the previous `path` is left untouched.
pub fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    write: &mut dyn FnMut(&mut File, &[u8]) -> io::Result<()>,
) -> Result<()> {
    let dir = parent_dir(path);
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    write(temp.as_file_mut(), bytes)
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    temp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    sync_dir(dir)
}

/// Flushes a directory's entries (a rename or a new file in it) to disk.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync directory {}", dir.display()))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The directory a path lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `value` as pretty JSON, atomically. `value` must carry its own `schema_version` field.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)
        .with_context(|| format!("cannot serialise {}", path.display()))?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// A file written by a newer crossadapt than this one: never skipped, never rewritten.
#[derive(Debug, thiserror::Error)]
#[error("{} was written by a newer crossadapt (schema version {version}; this build reads up to {newest}): upgrade crossadapt to open it", path.display())]
pub struct NewerSchema {
    pub path: std::path::PathBuf,
    pub version: u64,
    pub newest: u32,
}

/// Reads a JSON file with a top-level `schema_version`; a missing or newer version, unreadable
/// or truncated JSON, or a wrong shape each give one error sentence naming the file.
pub fn read_json<T: DeserializeOwned>(path: &Path, newest_version: u32) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => anyhow::anyhow!("{} is missing", path.display()),
        _ => anyhow::anyhow!("cannot read {}: {e}", path.display()),
    })?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is damaged (not valid JSON: {e})", path.display()))?;
    let version = value
        .get("schema_version")
        .and_then(|v| v.as_u64())
        .with_context(|| format!("{} is damaged (no schema_version)", path.display()))?;
    if version > u64::from(newest_version) {
        return Err(NewerSchema {
            path: path.to_path_buf(),
            version,
            newest: newest_version,
        }
        .into());
    }
    serde_json::from_value(value)
        .map_err(|e| anyhow::anyhow!("{} is damaged ({e})", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failing_write_keeps_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        write_atomic(&path, b"old").unwrap();
        let err = write_atomic_with(&path, b"new content", &mut |f, b| {
            f.write_all(&b[..3])?;
            Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "No space left on device",
            ))
        })
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("status.json") && msg.contains("No space"),
            "{msg}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn newer_and_missing_schema_versions_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        std::fs::write(&path, r#"{"schema_version": 9}"#).unwrap();
        let err = read_json::<serde_json::Value>(&path, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.json") && err.contains("newer"), "{err}");
        std::fs::write(&path, r#"{"a": 1}"#).unwrap();
        let err = read_json::<serde_json::Value>(&path, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no schema_version"), "{err}");
    }
}
