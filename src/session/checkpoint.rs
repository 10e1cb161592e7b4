//! Checkpoint directories: `checkpoints/<label>/` with a `manifest.json` listing every file's
//! size and SHA-256, the `seq` of the last log record the checkpoint covers, and whose it is: the
//! id of the session that wrote it and the SHA-256 of that session's `config.toml` ([`Owner`]).
//!
//! The engine writes the content into a hidden staging directory; the store adds the manifest,
//! fsyncs everything and renames the directory into place, so a checkpoint is either whole or
//! absent. Reading verifies sizes and checksums; a damaged checkpoint is skipped with a warning.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::atomic::{read_json, sync_dir, write_json, NewerSchema};
use crate::bundle::stio::hex;

/// Schema version of `manifest.json`.
pub const MANIFEST_SCHEMA_VERSION: u32 = 1;
/// Name of the manifest inside a checkpoint directory (reserved).
pub const MANIFEST_FILE: &str = "manifest.json";
/// Folder of the checkpoints inside a session directory.
pub const CHECKPOINTS_DIR: &str = "checkpoints";

/// The label of the checkpoint taken at the start of online day `day`: `day-0017`.
pub fn day_label(day: u32) -> String {
    format!("day-{day:04}")
}

/// `manifest.json` of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointManifest {
    pub schema_version: u32,
    pub label: String,
    /// Seq of the last log record the checkpoint covers.
    pub seq: u64,
    pub created: DateTime<Utc>,
    pub files: Vec<ManifestFile>,
    /// Whose the checkpoint is (absent from manifests written before it was recorded).
    #[serde(flatten)]
    pub owner: Owner,
}

/// The session a checkpoint was written by, and its resolved config then. A `seq` only means
/// something in the log of the session that wrote it: another session's checkpoint copied in
/// (or a `config.toml` edited since) would resume into numbers neither run computes.
///
/// Both are `None` in a manifest written before crossadapt recorded them: such a checkpoint is
/// taken for its session's own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    /// The id (`session.json`) of the session that wrote the checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Lower-case hex SHA-256 of that session's `config.toml` (the resolved config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_sha256: Option<String>,
}

impl Owner {
    /// The owner record of session `id` whose `config.toml` reads `config_toml`.
    pub fn of(id: &str, config_toml: &str) -> Owner {
        Owner {
            session: Some(id.to_string()),
            config_sha256: Some(sha256_hex(config_toml.as_bytes())),
        }
    }

    /// Why a checkpoint of this owner is not `own`'s (one clause naming both sessions), or
    /// `None` when it is (or records no owner).
    pub fn foreign_to(&self, own: &Owner, label: &str) -> Option<String> {
        let this = own.session.as_deref().unwrap_or("?");
        if let (Some(theirs), Some(ours)) = (&self.session, &own.session) {
            if theirs != ours {
                return Some(format!(
                    "checkpoint {label} was written by session {theirs}, not by this session {ours}"
                ));
            }
        }
        if let (Some(theirs), Some(ours)) = (&self.config_sha256, &own.config_sha256) {
            if theirs != ours {
                return Some(format!(
                    "checkpoint {label} was written under another config.toml than session {this}'s (the file changed since)"
                ));
            }
        }
        None
    }
}

/// One file of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path relative to the checkpoint directory, `/`-separated.
    pub path: String,
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
}

/// A verified checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointRef {
    pub dir: PathBuf,
    pub label: String,
    /// Seq of the last log record it covers.
    pub seq: u64,
    /// Damaged newer checkpoints that were skipped to reach this one, one sentence each.
    pub warnings: Vec<String>,
    /// Whose it is (from its manifest).
    pub owner: Owner,
}

/// Writes a checkpoint (see the module doc) and returns its final directory.
pub(crate) fn write(
    session_dir: &Path,
    label: &str,
    seq: u64,
    owner: &Owner,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    check_label(label)?;
    let root = session_dir.join(CHECKPOINTS_DIR);
    if !root.is_dir() {
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        // The new `checkpoints/` entry must itself survive a power cut, or every checkpoint in
        // it could vanish with it.
        sync_dir(session_dir)?;
    }
    let staging = tempfile::Builder::new()
        .prefix(&format!(".staging-{label}-"))
        .tempdir_in(&root)
        .with_context(|| format!("cannot create a staging directory in {}", root.display()))?;
    fill(staging.path()).with_context(|| format!("cannot write checkpoint {label}"))?;
    let mut files = Vec::new();
    collect_files(staging.path(), staging.path(), &mut files)?;
    if files.iter().any(|f| f.path == MANIFEST_FILE) {
        bail!(
            "checkpoint {label}: the engine wrote a file named {MANIFEST_FILE}, which is reserved"
        );
    }
    let manifest = CheckpointManifest {
        schema_version: MANIFEST_SCHEMA_VERSION,
        label: label.to_string(),
        seq,
        created: Utc::now(),
        files,
        owner: owner.clone(),
    };
    write_json(&staging.path().join(MANIFEST_FILE), &manifest)?;
    let target = root.join(label);
    let staging = staging.keep();
    // A checkpoint with the same label (a day redone after a resume) is replaced in one atomic
    // exchange of the two folders, so the label never points at nothing; the old content then
    // sits under the staging name (a `.staging-` leftover if we crash before deleting it).
    if target.exists() {
        match exchange(&staging, &target) {
            Ok(()) => {
                sync_dir(&root)?;
                let _ = std::fs::remove_dir_all(&staging);
                return Ok(target);
            }
            // A filesystem without the exchange: two renames, the old one moved aside first.
            Err(e) if exchange_unsupported(&e) => {}
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e)
                    .with_context(|| format!("cannot replace checkpoint {}", target.display()));
            }
        }
    }
    let mut old = None;
    if target.exists() {
        let trash = root.join(format!(".replaced-{label}-{}", std::process::id()));
        std::fs::rename(&target, &trash)
            .with_context(|| format!("cannot move the old {} aside", target.display()))?;
        old = Some(trash);
    }
    if let Err(e) = std::fs::rename(&staging, &target) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e).with_context(|| format!("cannot move checkpoint into {}", target.display()));
    }
    sync_dir(&root)?;
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(target)
}

/// Swaps two directory entries atomically (`renameat2` with `RENAME_EXCHANGE`).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both are valid NUL-terminated paths that live across the call; AT_FDCWD makes
    // them relative to the working directory like any path of std::fs.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// The exchange is not available here (old kernel, a filesystem such as some network ones).
fn exchange_unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
        || matches!(
            e.raw_os_error(),
            Some(libc::EINVAL | libc::ENOSYS | libc::ENOTSUP)
        )
}

/// Newest checkpoint that verifies (by `seq`); damaged ones are skipped with a warning. `None`
/// if the session has no checkpoint; an error if it has some but none verifies.
pub(crate) fn latest(session_dir: &Path) -> Result<Option<CheckpointRef>> {
    let mut warnings = Vec::new();
    let mut found = Vec::new();
    for dir in labelled_dirs(session_dir)? {
        match read_json::<CheckpointManifest>(&dir.join(MANIFEST_FILE), MANIFEST_SCHEMA_VERSION) {
            Ok(m) => found.push((dir, m)),
            Err(e) if e.is::<NewerSchema>() => return Err(e),
            Err(e) => warnings.push(format!("skipped checkpoint: {e}")),
        }
    }
    if found.is_empty() && warnings.is_empty() {
        return Ok(None);
    }
    found.sort_by_key(|(_, m)| std::cmp::Reverse((m.seq, m.created)));
    for (dir, manifest) in found {
        match verify(&dir, &manifest) {
            Ok(()) => {
                return Ok(Some(CheckpointRef {
                    dir,
                    label: manifest.label,
                    seq: manifest.seq,
                    warnings,
                    owner: manifest.owner,
                }))
            }
            Err(e) => warnings.push(format!("skipped checkpoint: {e}")),
        }
    }
    bail!(
        "no usable checkpoint in {}: {}",
        session_dir.join(CHECKPOINTS_DIR).display(),
        warnings.join("; ")
    )
}

/// A checkpoint whose manifest reads; [`Candidate::verify`] checks its files.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub dir: PathBuf,
    pub label: String,
    /// Seq of the last log record it covers.
    pub seq: u64,
    manifest: CheckpointManifest,
}

impl Candidate {
    /// Checks every file's size and checksum against the manifest.
    pub fn verify(&self) -> Result<CheckpointRef> {
        verify(&self.dir, &self.manifest)?;
        Ok(CheckpointRef {
            dir: self.dir.clone(),
            label: self.label.clone(),
            seq: self.seq,
            warnings: Vec::new(),
            owner: self.manifest.owner.clone(),
        })
    }

    /// Whose it is (from its manifest).
    pub fn owner(&self) -> &Owner {
        &self.manifest.owner
    }
}

/// Every checkpoint whose manifest reads, newest first (by `seq`), not yet verified, and one
/// warning per checkpoint whose manifest does not read. A manifest from a newer crossadapt is
/// an error.
pub(crate) fn candidates(session_dir: &Path) -> Result<(Vec<Candidate>, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut found = Vec::new();
    for dir in labelled_dirs(session_dir)? {
        match read_json::<CheckpointManifest>(&dir.join(MANIFEST_FILE), MANIFEST_SCHEMA_VERSION) {
            Ok(m) => found.push(Candidate {
                dir,
                label: m.label.clone(),
                seq: m.seq,
                manifest: m,
            }),
            Err(e) if e.is::<NewerSchema>() => return Err(e),
            Err(e) => warnings.push(format!("skipped checkpoint: {e}")),
        }
    }
    found.sort_by_key(|c| std::cmp::Reverse((c.seq, c.manifest.created)));
    Ok((found, warnings))
}

/// The verified checkpoint taken at the start of `day`.
pub(crate) fn for_day(session_dir: &Path, day: u32) -> Result<CheckpointRef> {
    let label = day_label(day);
    let dir = session_dir.join(CHECKPOINTS_DIR).join(&label);
    if !dir.is_dir() {
        let mut days: Vec<String> = labelled_dirs(session_dir)?
            .iter()
            .filter_map(|d| {
                d.file_name()?
                    .to_str()?
                    .strip_prefix("day-")
                    .map(|n| n.trim_start_matches('0').to_string())
            })
            .map(|n| if n.is_empty() { "0".into() } else { n })
            .collect();
        days.sort_by_key(|d| d.parse::<u32>().unwrap_or(u32::MAX));
        let available = if days.is_empty() {
            "none".to_string()
        } else {
            days.join(", ")
        };
        bail!(
            "{} has no checkpoint at the start of day {day} (days with one: {available})",
            session_dir.display()
        );
    }
    let manifest: CheckpointManifest =
        read_json(&dir.join(MANIFEST_FILE), MANIFEST_SCHEMA_VERSION)?;
    verify(&dir, &manifest)?;
    Ok(CheckpointRef {
        dir,
        label: manifest.label,
        seq: manifest.seq,
        warnings: Vec::new(),
        owner: manifest.owner,
    })
}

/// Deletes all but the `keep` newest day checkpoints (`day-NNNN` and the pause checkpoints
/// `day-NNNN-arm-K`, ordered by the log position they cover); `teacher` and `done` stay, and so
/// does anything whose manifest does not read. The oldest `day-NNNN` also stays: it holds the
/// offline stage's result (or a fork's starting point), the day a `fork` most often starts
/// from, and it costs what one day costs. Returns the labels removed.
pub(crate) fn prune_days(session_dir: &Path, keep: usize) -> Result<Vec<String>> {
    let mut days = Vec::new();
    for dir in labelled_dirs(session_dir)? {
        let label = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !label.starts_with("day-") {
            continue;
        }
        if let Ok(m) =
            read_json::<CheckpointManifest>(&dir.join(MANIFEST_FILE), MANIFEST_SCHEMA_VERSION)
        {
            days.push((m.seq, label, dir));
        }
    }
    days.sort_by_key(|d| std::cmp::Reverse(d.0));
    let first = days
        .iter()
        .rev()
        .find(|(_, label, _)| !label.contains("-arm-"))
        .map(|(_, label, _)| label.clone());
    let root = session_dir.join(CHECKPOINTS_DIR);
    let mut removed = Vec::new();
    for (_, label, dir) in days.into_iter().skip(keep) {
        if Some(&label) == first.as_ref() {
            continue;
        }
        // Renamed first, so a crash mid-delete leaves a leftover, never half a checkpoint.
        let trash = root.join(format!(".pruned-{label}-{}", std::process::id()));
        std::fs::rename(&dir, &trash)
            .with_context(|| format!("cannot remove the old checkpoint {}", dir.display()))?;
        std::fs::remove_dir_all(&trash)
            .with_context(|| format!("cannot remove {}", trash.display()))?;
        removed.push(label);
    }
    if !removed.is_empty() {
        sync_dir(&root)?;
    }
    Ok(removed)
}

/// Removes what a crash left behind (the caller holds the lock): temporary files of atomic
/// writes in the session directory, staging and replaced checkpoint directories.
pub(crate) fn clean_leftovers(session_dir: &Path) -> Result<()> {
    if let Ok(entries) = std::fs::read_dir(session_dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                std::fs::remove_file(entry.path()).with_context(|| {
                    format!("cannot remove the leftover {}", entry.path().display())
                })?;
            }
        }
    }
    let root = session_dir.join(CHECKPOINTS_DIR);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if [".staging-", ".replaced-", ".pruned-"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            std::fs::remove_dir_all(entry.path()).with_context(|| {
                format!("cannot remove the leftover {}", entry.path().display())
            })?;
        }
    }
    Ok(())
}

fn check_label(label: &str) -> Result<()> {
    let ok = !label.is_empty()
        && !label.starts_with('.')
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !ok {
        bail!("invalid checkpoint label {label:?}: use letters, digits, '-', '_' or '.', not leading '.'");
    }
    Ok(())
}

fn labelled_dirs(session_dir: &Path) -> Result<Vec<PathBuf>> {
    let root = session_dir.join(CHECKPOINTS_DIR);
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => bail!("cannot read {}: {e}", root.display()),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", root.display()))?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.path().is_dir() {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn verify(dir: &Path, manifest: &CheckpointManifest) -> Result<()> {
    for f in &manifest.files {
        let path = dir.join(&f.path);
        let (bytes, sha) = hash_file(&path)?;
        if bytes != f.bytes {
            bail!(
                "{} is damaged ({} bytes, the manifest says {})",
                path.display(),
                bytes,
                f.bytes
            );
        }
        if sha != f.sha256 {
            bail!(
                "{} is damaged (checksum differs from the manifest)",
                path.display()
            );
        }
    }
    Ok(())
}

fn collect_files(base: &Path, dir: &Path, out: &mut Vec<ManifestFile>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .collect::<io::Result<_>>()
        .with_context(|| format!("cannot read {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            collect_files(base, &path, out)?;
            sync_dir(&path)?;
            continue;
        }
        File::open(&path)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {}", path.display()))?;
        let (bytes, sha256) = hash_file(&path)?;
        let rel = path.strip_prefix(base).unwrap_or(&path);
        let rel: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        out.push(ManifestFile {
            path: rel.join("/"),
            bytes,
            sha256,
        });
    }
    Ok(())
}

fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => anyhow::anyhow!("{} is missing", path.display()),
        _ => anyhow::anyhow!("cannot read {}: {e}", path.display()),
    })?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((total, hex(&hasher.finalize())))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}
