//! Atomic file replacement: a temporary file in the target's own directory, fsync, rename over
//! the target, fsync of the directory. A crash or a full disk at any moment leaves either the old
//! file or the new one, never a mix. Every whole-file write of crossadapt (vocabularies, model
//! checkpoints, session files, reports, exports) goes through here.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};

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
    replace_with(path, &mut |file| {
        write(file, bytes).with_context(|| format!("cannot write {}", path.display()))
    })
}

/// [`write_atomic`] for output made a piece at a time (too large to hold whole): `produce`
/// writes through a buffer into the temporary file, which replaces `path` only when
/// `produce` succeeded.
pub fn write_atomic_streamed(
    path: &Path,
    produce: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    replace_with(path, &mut |file| {
        let mut out = io::BufWriter::new(file);
        produce(&mut out)?;
        out.flush()
            .with_context(|| format!("cannot write {}", path.display()))
    })
}

/// The temporary file, filled by `fill`, synced and renamed over `path`; on any error it is
/// removed and `path` is left untouched.
fn replace_with(path: &Path, fill: &mut dyn FnMut(&mut File) -> Result<()>) -> Result<()> {
    let dir = parent_dir(path);
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    fill(temp.as_file_mut())?;
    temp.as_file()
        .sync_all()
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
    fn streamed_output_replaces_the_file_only_when_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("predictions.csv");
        write_atomic_streamed(&path, &mut |out| {
            for r in 0..3 {
                writeln!(out, "{r}")?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"0\n1\n2\n");
        // A producer failing half way through leaves the previous file and no temporary.
        let err = write_atomic_streamed(&path, &mut |out| {
            writeln!(out, "partial")?;
            anyhow::bail!("day 3 could not be read")
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("day 3"), "{err:#}");
        assert_eq!(std::fs::read(&path).unwrap(), b"0\n1\n2\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
