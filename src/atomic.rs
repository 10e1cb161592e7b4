//! Whole-file writes and reads every layer shares.
//!
//! Writes: a temporary file in the target's own directory, fsync, rename over the target, fsync
//! of the directory. A crash or a full disk at any moment leaves either the old file or the new
//! one, never a mix. Every whole-file write of crossadapt (vocabularies, model checkpoints,
//! session files, reports, exports) goes through here. A target that exists and is not a
//! regular file (`/dev/null`, a FIFO, `/dev/stdout`) is written to in place instead: renaming
//! over it would replace a device with a file (as root, the system's `/dev/null`). A file the
//! user names as output may be `-`, standard output ([`write_output`]).
//!
//! Reads: [`read_limited`] reads a whole file up to a limit that fits its kind, so a config
//! given as `/dev/zero` is refused at once instead of filling the memory.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::{Context, Result};

/// The output path meaning standard output.
pub const STDOUT: &str = "-";

/// Whether a user-given output path is `-`, standard output.
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == STDOUT
}

/// Writes a file the user named (a report, an export, predictions): `-` is standard output,
/// anything else goes through [`write_atomic`].
pub fn write_output(path: &Path, bytes: &[u8]) -> Result<()> {
    write_output_streamed(path, &mut |out| {
        out.write_all(bytes)
            .with_context(|| format!("cannot write {}", shown(path)))
    })
}

/// [`write_output`] for output made a piece at a time ([`write_atomic_streamed`]).
pub fn write_output_streamed(
    path: &Path,
    produce: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    if !is_stdout(path) {
        return write_atomic_streamed(path, produce);
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    produce(&mut out)?;
    out.flush().context("cannot write to standard output")
}

/// How an output path is named in messages.
fn shown(path: &Path) -> String {
    if is_stdout(path) {
        "standard output".to_string()
    } else {
        path.display().to_string()
    }
}

/// What a file is, for a sentence: "a FIFO", "a character device", "a folder", ...
pub fn kind_of(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a folder"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// Limit of [`read_limited`] for a text file a person writes: a config, a schema, a keymap, a
/// theme. Real ones are a few KiB.
pub const TEXT_LIMIT: u64 = 4 << 20;
/// Limit of [`read_limited`] for a small JSON file crossadapt writes itself (a session's
/// `session.json` and `status.json`, a bundle manifest, a lease).
pub const JSON_LIMIT: u64 = 16 << 20;
/// Limit of [`read_limited`] for a checkpoint's `state.json` (the arms' states and histories).
pub const STATE_LIMIT: u64 = 256 << 20;

/// Reads the whole of `path`, refusing it (an [`io::ErrorKind::FileTooLarge`] error naming the
/// limit) once it holds more than `limit` bytes; whatever the file is (`/dev/zero`, a FIFO
/// fed forever), no more than `limit` bytes are read. Callers wrap the error with the file's
/// name and what it is for.
pub fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!(
                "it holds more than {}, the limit for this kind of file",
                size_text(limit)
            ),
        ));
    }
    Ok(bytes)
}

/// [`read_limited`] as UTF-8 text.
pub fn read_text_limited(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_limited(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "it is not UTF-8 text"))
}

/// `4 MiB`, `512 KiB`, `100 bytes`.
fn size_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

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
/// removed and `path` is left untouched. A `path` that exists and is neither a regular file nor
/// a folder is filled in place instead ([`write_in_place`]).
fn replace_with(path: &Path, fill: &mut dyn FnMut(&mut File) -> Result<()>) -> Result<()> {
    // `metadata` follows a symbolic link: `/dev/stdout` is a link to a descriptor.
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() && !meta.is_dir() {
            return write_in_place(path, kind_of(&meta.file_type()), fill);
        }
    }
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

/// Writes into an existing device, FIFO or socket: opened for writing without creating or
/// truncating it (a device's contents are not a file's), no temporary, no rename, no fsync (a
/// device or a pipe has nothing to sync, and some refuse the call).
fn write_in_place(
    path: &Path,
    kind: &str,
    fill: &mut dyn FnMut(&mut File) -> Result<()>,
) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {} ({kind}) for writing", path.display()))?;
    fill(&mut file)?;
    file.flush()
        .with_context(|| format!("cannot write {}", path.display()))
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
    fn reads_stop_at_the_limit_whatever_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, b"seed = 7\n").unwrap();
        assert_eq!(read_text_limited(&path, 64).unwrap(), "seed = 7\n");
        let err = read_limited(&path, 4).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        assert!(err.to_string().contains("4 bytes"), "{err}");
        // An endless file is refused after `limit` bytes, not read until memory runs out.
        let err = read_limited(Path::new("/dev/zero"), TEXT_LIMIT).unwrap_err();
        assert!(err.to_string().contains("4 MiB"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_written_in_place_not_replaced() {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pipe");
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(
            unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
            0,
            "mkfifo failed"
        );
        let reader = {
            let path = path.clone();
            std::thread::spawn(move || std::fs::read(path).unwrap())
        };
        write_atomic(&path, b"through the pipe").unwrap();
        assert_eq!(reader.join().unwrap(), b"through the pipe");
        let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
        assert!(kind.is_fifo(), "the FIFO was replaced");
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
