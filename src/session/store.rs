//! The session store: one directory per session under a root directory.
//!
//! ```text
//! <root>/<id>/session.json        identity (schema_version, id, name, created, parent, app version)
//!             config.toml         the resolved config, written once
//!             events.jsonl        append-only log, one Record per line
//!             status.json         small summary for `list`, rewritten atomically
//!             checkpoints/<label>/ (+ manifest.json)
//!             lock                held by the one process writing the session
//! ```
//! Directories whose name starts with `.` are work in progress (creation, removal) and ignored
//! by `list`; the ones a crash left behind (`.creating-<id>`, `.removing-<id>`, no process
//! holding their lock) are deleted the next time the store opens.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::atomic::{read_json, sync_dir, write_atomic, write_json};
use super::checkpoint::{self, CheckpointRef, Owner};
use super::lock::SessionLock;
use super::log::{self, EventLog, LogContents};
use super::meta::{
    ArmHeadline, Parent, RunState, SessionMeta, Status, META_SCHEMA_VERSION, STATUS_SCHEMA_VERSION,
};

/// File names inside a session directory.
pub const META_FILE: &str = "session.json";
pub const CONFIG_FILE: &str = "config.toml";
pub const EVENTS_FILE: &str = "events.jsonl";
pub const STATUS_FILE: &str = "status.json";

/// A `.creating-` / `.removing-` folder with no lock file is only taken for a leftover when it
/// is at least this old: a creator makes the folder a moment before it locks it.
const UNLOCKED_LEFTOVER_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// The directory holding all sessions.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    /// Leftovers of interrupted creates and removes deleted when the store opened.
    cleaned: Vec<PathBuf>,
}

impl Store {
    /// `explicit` (from `--sessions-dir` / `CROSSADAPT_SESSIONS_DIR`), else the platform data dir
    /// of crossadapt + `/sessions`. Created if missing.
    pub fn open(explicit: Option<PathBuf>) -> Result<Store> {
        let root = match explicit {
            Some(p) => p,
            None => directories::ProjectDirs::from("", "", "crossadapt")
                .map(|d| d.data_dir().join("sessions"))
                .context(
                    "cannot find a data directory for sessions (no home directory); \
                     pass --sessions-dir or set CROSSADAPT_SESSIONS_DIR",
                )?,
        };
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create the sessions directory {}", root.display()))?;
        if !root.is_dir() {
            bail!(
                "the sessions directory {} is not a directory",
                root.display()
            );
        }
        let cleaned = clean_store_leftovers(&root);
        Ok(Store { root, cleaned })
    }

    /// Leftovers of interrupted creates and removes (`.creating-<id>`, `.removing-<id>`) that
    /// opening the store deleted.
    pub fn cleaned_leftovers(&self) -> &[PathBuf] {
        &self.cleaned
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates a new session (new sortable id such as `20261128-121500-ab12`) holding its lock.
    pub fn create(&self, name: &str, config_toml: &str, parent: Option<Parent>) -> Result<Session> {
        super::meta::check_name(name)?;
        toml::from_str::<toml::Table>(config_toml)
            .map_err(|e| anyhow::anyhow!("the config of the new session is not valid TOML: {e}"))?;
        let created = Utc::now();
        let (id, staging) = self.reserve_id(created)?;
        let build = || -> Result<(SessionLock, SessionMeta)> {
            let lock = SessionLock::acquire(&staging, &id)?;
            let meta = SessionMeta {
                schema_version: META_SCHEMA_VERSION,
                id: id.clone(),
                name: name.to_string(),
                created,
                parent,
                app_version: env!("CARGO_PKG_VERSION").to_string(),
            };
            write_json(&staging.join(META_FILE), &meta)?;
            write_atomic(&staging.join(CONFIG_FILE), config_toml.as_bytes())?;
            write_atomic(&staging.join(EVENTS_FILE), b"")?;
            write_json(&staging.join(STATUS_FILE), &Status::new(RunState::Created))?;
            Ok((lock, meta))
        };
        let (lock, meta) = match build() {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e.context(format!(
                    "cannot create session {id} in {}",
                    self.root.display()
                )));
            }
        };
        let dir = self.root.join(&id);
        std::fs::rename(&staging, &dir)
            .with_context(|| format!("cannot move the new session into {}", dir.display()))?;
        sync_dir(&self.root)?;
        let (log, warnings) = EventLog::open_append(&dir.join(EVENTS_FILE))?;
        Ok(Session {
            owner: Owner::of(&meta.id, config_toml),
            dir,
            meta,
            log,
            warnings,
            pending_cut: None,
            _lock: lock,
        })
    }

    /// Opens a session for writing (resume): by id, or by a path to a session directory. Takes
    /// the lock, checks `session.json` and `config.toml`, cuts a torn last log line. A log with
    /// a damaged line opens too (named in `warnings`), refusing records until it is cut at the
    /// resume point ([`Session::cut_log_before_next_append`]).
    pub fn open_session(&self, id_or_path: &str) -> Result<Session> {
        let dir = self.resolve(id_or_path)?;
        self.check_writable(&dir)?;
        let meta = read_meta(&dir)?;
        let lock = SessionLock::acquire(&dir, &meta.id)?;
        let owner = Owner::of(&meta.id, &read_config(&dir)?);
        checkpoint::clean_leftovers(&dir)?;
        let path = dir.join(EVENTS_FILE);
        let (log, warnings) = match EventLog::open_append(&path) {
            Ok(opened) => opened,
            Err(strict) => {
                let contents = log::read_log_until_damage(&path)?;
                match contents.damaged {
                    Some(why) => (EventLog::open_damaged(&path, why)?, contents.warnings),
                    None => return Err(strict),
                }
            }
        };
        Ok(Session {
            dir,
            meta,
            owner,
            log,
            warnings,
            pending_cut: None,
            _lock: lock,
        })
    }

    /// Refuses a session folder through which a write would leave the sessions directory: the
    /// folder is reached through a symbolic link to a place outside the root, or an entry that
    /// crossadapt writes in it (the log, the checkpoints, the command file, ...) is a link
    /// leading outside the root. Every command that writes into an existing session (`resume`,
    /// `ctl`, `attach`'s controller lease and commands) checks this first. A folder named by
    /// its own path outside the root, with no link on the way, is the user's choice and stays
    /// writable.
    pub fn check_writable(&self, dir: &Path) -> Result<()> {
        let root = self.root.canonicalize().with_context(|| {
            format!("cannot read the sessions directory {}", self.root.display())
        })?;
        let real = dir
            .canonicalize()
            .with_context(|| format!("cannot read {}", dir.display()))?;
        if !real.starts_with(&root) && through_link(dir) {
            bail!(
                "{} leads through a symbolic link to {}, outside the sessions directory {}: crossadapt does not write through it (name the session by its real path instead)",
                dir.display(),
                real.display(),
                root.display()
            );
        }
        for name in WRITTEN {
            let entry = dir.join(name);
            let is_link =
                std::fs::symlink_metadata(&entry).is_ok_and(|m| m.file_type().is_symlink());
            if !is_link {
                continue;
            }
            match entry.canonicalize() {
                Ok(target) if target.starts_with(&root) || target.starts_with(&real) => {}
                Ok(target) => bail!(
                    "{} is a symbolic link to {}, outside the sessions directory {}: crossadapt does not write through it",
                    entry.display(),
                    target.display(),
                    root.display()
                ),
                Err(_) => bail!(
                    "{} is a symbolic link that leads nowhere readable: crossadapt does not write through it",
                    entry.display()
                ),
            }
        }
        Ok(())
    }

    /// Opens a session for reading only (no lock): list, replay and export of a running one.
    pub fn open_read_only(&self, id_or_path: &str) -> Result<SessionView> {
        let dir = self.resolve(id_or_path)?;
        let meta = read_meta(&dir)?;
        Ok(SessionView { dir, meta })
    }

    /// Every session directory, sorted by id; a damaged one is an `Err` with its directory
    /// while the healthy ones are still listed.
    pub fn list(&self) -> Vec<Result<SessionSummary, (PathBuf, anyhow::Error)>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) => {
                let err = anyhow::anyhow!("cannot read {}: {e}", self.root.display());
                return vec![Err((self.root.clone(), err))];
            }
        };
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        dirs.into_iter()
            .map(|dir| summarize(&dir).map_err(|e| (dir, e)))
            .collect()
    }

    /// Starts a fork of `parent` (id or path) at the start of `day`: a new session linked to
    /// its parent, whose log holds the parent's records up to that day's checkpoint and whose
    /// own `day-NNNN` checkpoint is a verified copy of the parent's. The caller starts the
    /// engine from the returned checkpoint with `config_toml` (the parent's, with changed keys)
    /// and appends from `session.log().next_seq()`.
    pub fn fork(
        &self,
        parent: &str,
        day: u32,
        name: &str,
        config_toml: &str,
    ) -> Result<(Session, CheckpointRef)> {
        let view = self.open_read_only(parent)?;
        let from = view.checkpoint_for_day(day)?;
        let parent_owner = Owner::of(view.id(), &view.config_toml()?);
        if let Some(why) = from.owner.foreign_to(&parent_owner, &from.label) {
            bail!("cannot fork {} at day {day}: {why}", view.id());
        }
        let records = view.records()?.records;
        let reached = records.last().map(|r| r.seq);
        if reached.is_none_or(|last| last < from.seq) {
            bail!(
                "{} ends before its checkpoint {} (seq {}): the parent's log is incomplete",
                view.dir().join(EVENTS_FILE).display(),
                from.label,
                from.seq
            );
        }
        let link = Parent {
            id: view.id().to_string(),
            day,
        };
        let mut child = self.create(name, config_toml, Some(link))?;
        let result = (|| -> Result<CheckpointRef> {
            for r in records.iter().take_while(|r| r.seq <= from.seq) {
                crate::engine::events::EventSink::emit(child.log(), r)?;
            }
            child.write_checkpoint(&from.label, from.seq, |staging| {
                copy_tree(&from.dir, staging, true)
            })?;
            child.checkpoint_for_day(day)
        })();
        match result {
            Ok(ckpt) => Ok((child, ckpt)),
            Err(e) => {
                let id = child.id().to_string();
                drop(child);
                let _ = self.remove(&id);
                Err(e.context(format!("cannot fork {} at day {day}", view.id())))
            }
        }
    }

    /// Deletes a session by id; refuses while another process holds it. Only a folder that is a
    /// session (it has `session.json` or `events.jsonl`) is deleted unless `force`; a symbolic
    /// link is never followed nor deleted (the folder is renamed aside first, and the deletion
    /// removes links themselves, not what they point to).
    pub fn remove(&self, id: &str) -> Result<()> {
        self.remove_with(id, false)
    }

    /// [`Store::remove`], with `force` deleting a folder that does not look like a session.
    pub fn remove_with(&self, id: &str, force: bool) -> Result<()> {
        check_id(id)?;
        let dir = self.root.join(id);
        let meta = match std::fs::symlink_metadata(&dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("no session {id} in {}", self.root.display())
            }
            Err(e) => bail!("cannot read {}: {e}", dir.display()),
        };
        if meta.file_type().is_symlink() {
            bail!(
                "{} is a symbolic link, not a session folder: not removed (delete the link itself with `rm`)",
                dir.display()
            );
        }
        if !meta.is_dir() {
            bail!(
                "no session {id} in {} ({} is not a folder)",
                self.root.display(),
                dir.display()
            );
        }
        if !force && !looks_like_session(&dir) {
            bail!(
                "{} is not a crossadapt session (it has neither {META_FILE} nor {EVENTS_FILE}): not removed; pass --force to delete it anyway",
                dir.display()
            );
        }
        let _lock = SessionLock::acquire(&dir, id)?;
        let trash = self.root.join(format!(".removing-{id}"));
        std::fs::rename(&dir, &trash)
            .with_context(|| format!("cannot remove {}", dir.display()))?;
        sync_dir(&self.root)?;
        std::fs::remove_dir_all(&trash)
            .with_context(|| format!("cannot delete {}", trash.display()))?;
        sync_dir(&self.root)
    }

    /// The directory of `id_or_path`: an id in the store, else an existing session directory.
    pub fn resolve(&self, id_or_path: &str) -> Result<PathBuf> {
        if check_id(id_or_path).is_ok() {
            let dir = self.root.join(id_or_path);
            if dir.is_dir() {
                return Ok(dir);
            }
        }
        let path = PathBuf::from(id_or_path);
        if path.is_dir() {
            if !path.join(META_FILE).exists() {
                bail!(
                    "{} is not a crossadapt session ({} is missing)",
                    path.display(),
                    path.join(META_FILE).display()
                );
            }
            return Ok(path);
        }
        bail!(
            "no session {id_or_path} in {} (and no such session directory)",
            self.root.display()
        )
    }

    fn reserve_id(&self, created: DateTime<Utc>) -> Result<(String, PathBuf)> {
        let stamp = created.format("%Y%m%d-%H%M%S");
        let mut salt =
            u64::from(created.timestamp_subsec_nanos()) ^ (u64::from(std::process::id()) << 20);
        for _ in 0..64 {
            // FNV-1a over the salt: a short, well-spread suffix; collisions just try the next one.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in salt.to_le_bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            let id = format!("{stamp}-{:04x}", h & 0xffff);
            let staging = self.root.join(format!(".creating-{id}"));
            if !self.root.join(&id).exists() && std::fs::create_dir(&staging).is_ok() {
                return Ok((id, staging));
            }
            salt = salt.wrapping_add(1);
        }
        bail!(
            "cannot create a new session directory in {}",
            self.root.display()
        )
    }
}

/// Copies the files under `from` into `to` (the top-level manifest left out if `skip_manifest`).
fn copy_tree(from: &Path, to: &Path, skip_manifest: bool) -> Result<()> {
    let entries =
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", from.display()))?;
        let (src, name) = (entry.path(), entry.file_name());
        if skip_manifest && name == checkpoint::MANIFEST_FILE {
            continue;
        }
        let dst = to.join(&name);
        if src.is_dir() {
            std::fs::create_dir(&dst)
                .with_context(|| format!("cannot create {}", dst.display()))?;
            copy_tree(&src, &dst, false)?;
        } else {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

/// A session opened for writing; holds its lock for its lifetime.
pub struct Session {
    dir: PathBuf,
    meta: SessionMeta,
    /// This session as its checkpoints record their owner.
    owner: Owner,
    log: EventLog,
    warnings: Vec<String>,
    /// Cut the log after this seq (`Some(None)`: empty it) before the next record is appended:
    /// a resume that has not loaded its checkpoint yet.
    pending_cut: Option<Option<u64>>,
    _lock: SessionLock,
}

impl Session {
    pub fn id(&self) -> &str {
        &self.meta.id
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn meta(&self) -> &SessionMeta {
        &self.meta
    }
    /// This session as its checkpoints record their owner (its id and the SHA-256 of its
    /// `config.toml`): a checkpoint recording another is not this session's.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }
    /// Warnings met while opening (e.g. a torn last log line that was cut).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
    /// The resolved config the session was created with.
    pub fn config_toml(&self) -> Result<String> {
        read_config(&self.dir)
    }
    /// The appending log; an `EventSink`.
    pub fn log(&mut self) -> &mut EventLog {
        &mut self.log
    }
    /// Every record logged so far, up to a damaged line if any (named in `damaged`), and up to
    /// a pending cut.
    pub fn records(&self) -> Result<LogContents> {
        let mut contents = log::read_log_until_damage(&self.dir.join(EVENTS_FILE))?;
        if let Some(cut) = self.pending_cut {
            contents
                .records
                .retain(|r| cut.is_some_and(|seq| r.seq <= seq));
        }
        Ok(contents)
    }
    /// Resume: the log is cut after `seq` (its checkpoint; `None`: emptied, a start over) only
    /// when the first new record is appended, so a resume that fails before (its checkpoint
    /// does not load, the data is gone) leaves the log as it was.
    pub fn cut_log_before_next_append(&mut self, seq: Option<u64>) {
        self.pending_cut = Some(seq);
    }
    /// Appends one record to the log (after a pending cut).
    pub fn append(&mut self, record: &crate::engine::events::Record) -> Result<()> {
        match self.pending_cut.take() {
            Some(Some(seq)) => self.truncate_log_after(seq)?,
            Some(None) => self.clear_log()?,
            None => {}
        }
        crate::engine::events::EventSink::emit(&mut self.log, record)
    }
    /// Every checkpoint whose manifest reads, newest first (by `seq`), to verify one by one;
    /// plus one warning per checkpoint whose manifest does not read.
    pub fn checkpoint_candidates(&self) -> Result<(Vec<checkpoint::Candidate>, Vec<String>)> {
        checkpoint::candidates(&self.dir)
    }
    /// Rewrites `status.json` atomically (schema version, time and pid filled in here).
    pub fn set_status(&mut self, status: &Status) -> Result<()> {
        let mut status = status.clone();
        status.schema_version = STATUS_SCHEMA_VERSION;
        status.updated_at = Utc::now();
        status.pid = std::process::id();
        write_json(&self.dir.join(STATUS_FILE), &status)
    }
    /// Writes an atomic checkpoint `checkpoints/<label>`: `write` fills a staging directory,
    /// the store adds the manifest (sizes, SHA-256, `seq` = last record covered), fsyncs and
    /// renames it into place. The log is synced first, so it always reaches `seq`.
    pub fn write_checkpoint(
        &mut self,
        label: &str,
        seq: u64,
        write: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<PathBuf> {
        self.checkpoint_writer()?.write(label, seq, write)
    }
    /// Syncs the log and hands out a writer of this session's checkpoints that holds no borrow
    /// of it, so a checkpoint can be written on another thread while records keep being
    /// appended. The log reaches every record appended so far; use it for checkpoints whose
    /// `seq` is among those.
    pub fn checkpoint_writer(&mut self) -> Result<CheckpointWriter> {
        self.log.sync()?;
        Ok(CheckpointWriter {
            dir: self.dir.clone(),
            owner: self.owner.clone(),
        })
    }
    /// Newest checkpoint whose manifest verifies; damaged newer ones are skipped, named in
    /// `warnings`. `None` if there is no checkpoint at all.
    pub fn latest_checkpoint(&self) -> Result<Option<CheckpointRef>> {
        checkpoint::latest(&self.dir)
    }
    /// The checkpoint taken at the start of `day` (label `day-NNNN`), verified.
    pub fn checkpoint_for_day(&self, day: u32) -> Result<CheckpointRef> {
        checkpoint::for_day(&self.dir, day)
    }
    /// Empties the log (a resume with no checkpoint starts the run over).
    pub fn clear_log(&mut self) -> Result<()> {
        let path = self.dir.join(EVENTS_FILE);
        write_atomic(&path, b"")?;
        let (log, _) = EventLog::open_append(&path)?;
        self.log = log;
        Ok(())
    }
    /// Drops the log records after `seq` (atomic rewrite) and reopens the log for appending.
    pub fn truncate_log_after(&mut self, seq: u64) -> Result<()> {
        let path = self.dir.join(EVENTS_FILE);
        log::truncate_after(&path, seq)?;
        let (log, warnings) = EventLog::open_append(&path)?;
        self.log = log;
        self.warnings.extend(warnings);
        Ok(())
    }
}

/// Writes checkpoints into a session's folder ([`Session::checkpoint_writer`]).
#[derive(Clone, Debug)]
pub struct CheckpointWriter {
    dir: PathBuf,
    owner: Owner,
}

impl CheckpointWriter {
    /// The session's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// See [`Session::write_checkpoint`].
    pub fn write(
        &self,
        label: &str,
        seq: u64,
        write: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<PathBuf> {
        checkpoint::write(&self.dir, label, seq, &self.owner, write)
    }
    /// Keeps the `keep` newest day checkpoints and deletes the older ones; returns their labels.
    pub fn prune_day_checkpoints(&self, keep: usize) -> Result<Vec<String>> {
        checkpoint::prune_days(&self.dir, keep)
    }
}

/// A session opened for reading, without the lock.
#[derive(Clone, Debug)]
pub struct SessionView {
    dir: PathBuf,
    meta: SessionMeta,
}

impl SessionView {
    pub fn id(&self) -> &str {
        &self.meta.id
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn meta(&self) -> &SessionMeta {
        &self.meta
    }
    pub fn config_toml(&self) -> Result<String> {
        read_config(&self.dir)
    }
    pub fn status(&self) -> Result<Status> {
        read_json(&self.dir.join(STATUS_FILE), STATUS_SCHEMA_VERSION)
    }
    pub fn records(&self) -> Result<LogContents> {
        log::read_log_with_warnings(&self.dir.join(EVENTS_FILE))
    }
    /// Whether a process is writing the session now.
    pub fn is_live(&self) -> bool {
        SessionLock::is_held(&self.dir)
    }
    pub fn latest_checkpoint(&self) -> Result<Option<CheckpointRef>> {
        checkpoint::latest(&self.dir)
    }
    pub fn checkpoint_for_day(&self, day: u32) -> Result<CheckpointRef> {
        checkpoint::for_day(&self.dir, day)
    }
}

/// One line of `list`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SessionSummary {
    pub id: String,
    pub name: String,
    pub created: DateTime<Utc>,
    /// From `status.json`; `interrupted` when it says running or paused but its engine is gone
    /// (on this host: no process holds its lock; on another: no heartbeat for a while).
    pub state: RunState,
    /// Stage of the plan the run is in (or stopped in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<crate::protocol::Stage>,
    pub last_day: Option<u32>,
    /// The engine process of a running session: pid, host, samples/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<super::live::Holder>,
    /// Who holds the controller lease of a running session (`user@host (pid N)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    pub arms: Vec<String>,
    pub headline: Vec<ArmHeadline>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<Parent>,
    pub dir: PathBuf,
}

fn summarize(dir: &Path) -> Result<SessionSummary> {
    let view = SessionView {
        dir: dir.to_path_buf(),
        meta: read_meta(dir)?,
    };
    read_config(dir)?;
    let status = view.status()?;
    let mut state = status.state;
    let mut engine = None;
    let mut controller = None;
    if state.is_active() || state == RunState::Created {
        match super::live::probe(dir, view.is_live()) {
            super::live::Liveness::Alive(e) => {
                engine = e;
                controller = super::live::controller(dir).map(|c| c.who());
            }
            // A created session that never started is no interrupted run.
            super::live::Liveness::Dead(_) if state.is_active() => {
                state = RunState::Interrupted;
            }
            super::live::Liveness::Dead(_) => {}
        }
    }
    Ok(SessionSummary {
        id: view.meta.id.clone(),
        name: view.meta.name.clone(),
        created: view.meta.created,
        state,
        stage: status.stage,
        last_day: status.last_day,
        engine,
        controller,
        arms: status.arms,
        headline: status.headline,
        parent: view.meta.parent.clone(),
        dir: view.dir,
    })
}

/// The entries of a session folder that crossadapt writes, appends to or creates files in.
const WRITTEN: &[&str] = &[
    META_FILE,
    CONFIG_FILE,
    EVENTS_FILE,
    STATUS_FILE,
    checkpoint::CHECKPOINTS_DIR,
    super::lock::LOCK_FILE,
    super::control::COMMANDS_FILE,
    super::live::ENGINE_FILE,
    super::live::CONTROLLER_FILE,
    crate::signals::OUTPUT_FILE,
];

/// Whether `path` or one of the folders on its way is a symbolic link.
fn through_link(path: &Path) -> bool {
    let Ok(abs) = std::path::absolute(path) else {
        return false;
    };
    let mut prefix = PathBuf::new();
    for part in abs.components() {
        prefix.push(part);
        if std::fs::symlink_metadata(&prefix).is_ok_and(|m| m.file_type().is_symlink()) {
            return true;
        }
    }
    false
}

/// A folder that holds a session, even a damaged one: it has `session.json` or `events.jsonl`
/// (as a file, not a link).
pub fn looks_like_session(dir: &Path) -> bool {
    [META_FILE, EVENTS_FILE]
        .iter()
        .any(|f| std::fs::symlink_metadata(dir.join(f)).is_ok_and(|m| m.file_type().is_file()))
}

/// Deletes `.creating-<id>` and `.removing-<id>` folders under `root` that no live process
/// holds (a crash during `run` or `rm`); returns what it deleted. Best effort: a leftover that
/// cannot be deleted now is tried again next time.
fn clean_store_leftovers(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut cleaned = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(".creating-") || name.starts_with(".removing-")) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() || !meta.is_dir() {
            // Never ours to follow: the link (or stray file) itself goes.
            if std::fs::remove_file(&path).is_ok() {
                cleaned.push(path);
            }
            continue;
        }
        let has_lock = path.join(super::lock::LOCK_FILE).is_file();
        let abandoned = if has_lock {
            !SessionLock::is_held(&path)
        } else {
            meta.modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age >= UNLOCKED_LEFTOVER_AGE)
        };
        if abandoned && std::fs::remove_dir_all(&path).is_ok() {
            cleaned.push(path);
        }
    }
    if !cleaned.is_empty() {
        let _ = sync_dir(root);
    }
    cleaned
}

fn read_meta(dir: &Path) -> Result<SessionMeta> {
    read_json(&dir.join(META_FILE), META_SCHEMA_VERSION)
}

fn read_config(dir: &Path) -> Result<String> {
    let path = dir.join(CONFIG_FILE);
    let text =
        crate::atomic::read_text_limited(&path, crate::atomic::TEXT_LIMIT).map_err(|e| match e
            .kind()
        {
            std::io::ErrorKind::NotFound => anyhow::anyhow!("{} is missing", path.display()),
            _ => anyhow::anyhow!("cannot read {}: {e}", path.display()),
        })?;
    toml::from_str::<toml::Table>(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is damaged (not valid TOML: {})",
            path.display(),
            e.message()
        )
    })?;
    Ok(text)
}

fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !ok {
        bail!("{id:?} is not a session id");
    }
    Ok(())
}
