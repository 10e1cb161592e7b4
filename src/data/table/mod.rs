//! Real files through polars: Criteo, Avazu and generic CSV / Parquet tables.

pub mod cache;
mod columns;
mod schema;
mod source;

pub use schema::{PositiveRule, TableFormat, TableSchema, TimeUnit};
pub use source::TableSource;

use std::path::Path;

/// Checks a data path before anything reads it: a folder (returns true) or a regular file
/// (false). A FIFO, a device or a socket is refused with one sentence: reading one waits for a
/// writer that may never come, or never ends (`/dev/zero`).
pub fn check_input(path: &Path) -> anyhow::Result<bool> {
    let meta = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    if meta.is_dir() {
        return Ok(true);
    }
    if !meta.is_file() {
        anyhow::bail!(
            "{} is {}, not a regular file: data is read from a file or a folder of files",
            path.display(),
            crate::atomic::kind_of(&meta.file_type())
        );
    }
    Ok(false)
}
