//! Schema-versioned JSON files of the store, written through [`crate::atomic`].

use std::io;
use std::path::Path;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use crate::atomic::{parent_dir, sync_dir, write_atomic, write_atomic_with};

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
    let text = crate::atomic::read_text_limited(path, crate::atomic::JSON_LIMIT).map_err(|e| {
        match e.kind() {
            io::ErrorKind::NotFound => anyhow::anyhow!("{} is missing", path.display()),
            _ => anyhow::anyhow!("cannot read {}: {e}", path.display()),
        }
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
