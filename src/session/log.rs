//! `events.jsonl`: the append-only record of a session, one [`Record`] per line.
//!
//! Writing: one `write_all` of a whole line per record, flushed per record (a killed process
//! loses nothing it emitted), `sync_data` on checkpoints, pauses and the end of a run. After a
//! failed write the log refuses further records, so a torn line can never end up in the middle.
//! Reading: a torn last line (a crash mid-write) is ignored with a warning; a damaged line
//! anywhere else is an error naming the file and the line, except for a resume, which reads up
//! to the first damaged line ([`read_log_until_damage`]) and cuts the log at its checkpoint, so
//! damage after the resume point is cut instead of blocking the session.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::engine::events::{EngineEvent, EventSink, Record, EVENT_SCHEMA_VERSION};

use super::atomic::write_atomic;

/// A destination of log lines: a file, or a fault-injecting wrapper in tests.
pub trait LogWriter: Write + Send {
    /// Makes written data durable (fsync of the data).
    fn sync_data(&mut self) -> io::Result<()>;
}

impl LogWriter for File {
    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }
}

/// The appending side of `events.jsonl`; an [`EventSink`].
pub struct EventLog {
    path: PathBuf,
    out: Box<dyn LogWriter>,
    next_seq: u64,
    broken: Option<String>,
}

impl EventLog {
    /// Opens `path` for appending (creating it), after checking every line. A torn last line
    /// is cut off (returned as a warning) so the next record starts on a line of its own.
    pub fn open_append(path: &Path) -> Result<(EventLog, Vec<String>)> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => bail!("cannot read {}: {e}", path.display()),
        };
        let parsed = parse_log(path, &bytes)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {} for appending", path.display()))?;
        if parsed.valid_len < bytes.len() {
            file.set_len(parsed.valid_len as u64)
                .and_then(|()| file.sync_data())
                .with_context(|| format!("cannot cut the torn last line of {}", path.display()))?;
        }
        if parsed.needs_newline {
            file.write_all(b"\n")
                .and_then(|()| file.sync_data())
                .with_context(|| format!("cannot end the last line of {}", path.display()))?;
        }
        let next_seq = parsed.records.last().map_or(0, |r| r.seq + 1);
        let log = EventLog::from_writer(path.to_path_buf(), Box::new(file), next_seq);
        Ok((log, parsed.warnings))
    }

    /// Opens a log whose complete lines are damaged from some point on (`why`) for a resume:
    /// it refuses every record until the session cuts it at its checkpoint
    /// (`Session::truncate_log_after`), which reopens it whole.
    pub fn open_damaged(path: &Path, why: String) -> Result<EventLog> {
        let contents = read_log_until_damage(path)?;
        let next_seq = contents.records.last().map_or(0, |r| r.seq + 1);
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {} for appending", path.display()))?;
        let mut log = EventLog::from_writer(path.to_path_buf(), Box::new(file), next_seq);
        log.broken = Some(format!(
            "it is damaged and is cut at the resume point first: {why}"
        ));
        Ok(log)
    }

    /// A log writing to `out` (tests inject write faults here); `path` is used in messages.
    pub fn from_writer(path: PathBuf, out: Box<dyn LogWriter>, next_seq: u64) -> EventLog {
        EventLog {
            path,
            out,
            next_seq,
            broken: None,
        }
    }

    /// The `seq` the next record must carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Path of the log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes everything written so far durable.
    pub fn sync(&mut self) -> Result<()> {
        self.out
            .flush()
            .and_then(|()| self.out.sync_data())
            .with_context(|| format!("cannot sync {}", self.path.display()))
    }

    fn append(&mut self, record: &Record) -> Result<()> {
        let mut line = serde_json::to_string(record).context("cannot serialise a record")?;
        line.push('\n');
        self.out.write_all(line.as_bytes())?;
        self.out.flush()?;
        // An operator's command and the parameter change it made are durable from the moment
        // they apply: a resume replays them from the log (see `cli::sessions::resume`).
        let durable = matches!(
            record.event,
            EngineEvent::Checkpointed { .. }
                | EngineEvent::Paused { .. }
                | EngineEvent::Finished { .. }
                | EngineEvent::Error { .. }
                | EngineEvent::Operator { .. }
                | EngineEvent::ParamsChanged { .. }
        );
        if durable {
            self.out.sync_data()?;
        }
        Ok(())
    }
}

impl EventSink for EventLog {
    fn emit(&mut self, record: &Record) -> Result<()> {
        if let Some(why) = &self.broken {
            bail!(
                "{} takes no more records ({why}); resume the session to continue",
                self.path.display()
            );
        }
        if record.seq != self.next_seq {
            bail!(
                "record seq {} does not follow the end of {} (expected seq {})",
                record.seq,
                self.path.display(),
                self.next_seq
            );
        }
        if let Err(e) = self.append(record) {
            self.broken = Some(format!("an earlier write failed: {e:#}"));
            return Err(e.context(format!("cannot append to {}", self.path.display())));
        }
        self.next_seq += 1;
        Ok(())
    }
}

/// Records of a log plus the warnings met while reading it.
#[derive(Debug, Default)]
pub struct LogContents {
    pub records: Vec<Record>,
    /// E.g. a torn last line that was ignored.
    pub warnings: Vec<String>,
    /// The first damaged complete line, when read up to it ([`read_log_until_damage`]).
    pub damaged: Option<String>,
}

/// Reads a whole log, see [`read_log_with_warnings`]; warnings go to `tracing`.
pub fn read_log(path: &Path) -> Result<Vec<Record>> {
    let contents = read_log_with_warnings(path)?;
    for w in &contents.warnings {
        tracing::warn!("{w}");
    }
    Ok(contents.records)
}

/// Reads a whole log: a torn last line is ignored with a warning; a damaged line elsewhere, a
/// gap in `seq` or a line from a newer event schema is one error naming the file and the line.
pub fn read_log_with_warnings(path: &Path) -> Result<LogContents> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => anyhow::anyhow!("{} is missing", path.display()),
        _ => anyhow::anyhow!("cannot read {}: {e}", path.display()),
    })?;
    let parsed = parse_log(path, &bytes)?;
    Ok(LogContents {
        records: parsed.records,
        warnings: parsed.warnings,
        damaged: None,
    })
}

/// Reads a log up to its first damaged complete line: the records before it, and the damage as
/// a warning (`damaged` set). A line from a newer event schema is still an error (it is not
/// damage, and cutting it would lose another version's work).
pub fn read_log_until_damage(path: &Path) -> Result<LogContents> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => anyhow::anyhow!("{} is missing", path.display()),
        _ => anyhow::anyhow!("cannot read {}: {e}", path.display()),
    })?;
    let (parsed, damage) = parse_log_lenient(path, &bytes)?;
    let mut warnings = parsed.warnings;
    let damaged = damage.map(|d| d.message);
    warnings.extend(damaged.clone());
    Ok(LogContents {
        records: parsed.records,
        warnings,
        damaged,
    })
}

/// Rewrites `path` atomically keeping the records whose `seq` is at most `seq`: a torn tail and
/// damaged lines after them are dropped; damage before them is an error.
pub(crate) fn truncate_after(path: &Path, seq: u64) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (parsed, damage) = parse_log_lenient(path, &bytes)?;
    if let Some(d) = damage {
        let last = parsed.records.last().map(|r| r.seq);
        if last.is_none_or(|last| last < seq) {
            bail!(
                "cannot cut {} after seq {seq}: {} (before that point)",
                path.display(),
                d.message
            );
        }
    }
    let keep = parsed.line_ends[..parsed.records.iter().take_while(|r| r.seq <= seq).count()]
        .last()
        .copied()
        .unwrap_or(0);
    write_atomic(path, &bytes[..keep])
}

struct ParsedLog {
    records: Vec<Record>,
    /// Byte offset just past each record's newline.
    line_ends: Vec<usize>,
    /// Length of the well-formed prefix (without a torn tail).
    valid_len: usize,
    /// The last kept record has no line end yet.
    needs_newline: bool,
    warnings: Vec<String>,
}

/// The first damaged complete line of a log.
struct Damage {
    message: String,
}

/// [`parse_log`] that stops at the first damaged complete line instead of failing.
fn parse_log_lenient(path: &Path, bytes: &[u8]) -> Result<(ParsedLog, Option<Damage>)> {
    parse_log_with(path, bytes, true)
}

fn parse_log(path: &Path, bytes: &[u8]) -> Result<ParsedLog> {
    parse_log_with(path, bytes, false).map(|(parsed, _)| parsed)
}

fn parse_log_with(path: &Path, bytes: &[u8], lenient: bool) -> Result<(ParsedLog, Option<Damage>)> {
    let mut out = ParsedLog {
        records: Vec::new(),
        line_ends: Vec::new(),
        valid_len: 0,
        needs_newline: false,
        warnings: Vec::new(),
    };
    let mut start = 0;
    let mut line_no = 0;
    while start < bytes.len() {
        line_no += 1;
        let (end, complete) = match bytes[start..].iter().position(|&b| b == b'\n') {
            Some(i) => (start + i, true),
            None => (bytes.len(), false),
        };
        let line = &bytes[start..end];
        // A crash can leave zero-filled blocks after the last write: a torn tail too.
        let zero_tail = bytes[start..].iter().all(|&b| b == 0 || b == b'\n');
        if !complete || zero_tail {
            let parsed = (!zero_tail)
                .then(|| serde_json::from_slice::<Record>(line).ok())
                .flatten();
            match parsed {
                // Whole record, only the newline missing: keep it.
                Some(rec) if complete_record_ok(&out.records, &rec) => {
                    out.records.push(rec);
                    out.line_ends.push(end);
                    out.valid_len = end;
                    out.needs_newline = true;
                    out.warnings.push(format!(
                        "{} line {line_no} has no line end; kept",
                        path.display()
                    ));
                }
                _ => out.warnings.push(format!(
                    "{} ends with a torn line (line {line_no}, {} bytes; an interrupted write), ignored",
                    path.display(),
                    bytes.len() - start
                )),
            }
            break;
        }
        let rec = if line.iter().all(u8::is_ascii_whitespace) {
            Err(format!(
                "{} line {line_no} is empty (the log is damaged)",
                path.display()
            ))
        } else {
            serde_json::from_slice::<Record>(line)
                .map_err(|e| format!("{} line {line_no} is damaged ({e})", path.display()))
        };
        if let Ok(rec) = &rec {
            if rec.v > EVENT_SCHEMA_VERSION {
                bail!(
                    "{} line {line_no} was written by a newer crossadapt (event schema {}; this \
                     build reads up to {EVENT_SCHEMA_VERSION}): upgrade crossadapt to open it",
                    path.display(),
                    rec.v
                );
            }
        }
        let expected = out.records.last().map_or(0, |r| r.seq + 1);
        let rec = rec.and_then(|rec| {
            if rec.seq == expected {
                Ok(rec)
            } else {
                Err(format!(
                    "{} line {line_no} has seq {} where {expected} was expected (the log is damaged)",
                    path.display(),
                    rec.seq
                ))
            }
        });
        let rec = match rec {
            Ok(rec) => rec,
            Err(message) if lenient => return Ok((out, Some(Damage { message }))),
            Err(message) => bail!("{message}"),
        };
        out.records.push(rec);
        out.line_ends.push(end + 1);
        out.valid_len = end + 1;
        start = end + 1;
    }
    Ok((out, None))
}

fn complete_record_ok(previous: &[Record], rec: &Record) -> bool {
    rec.v <= EVENT_SCHEMA_VERSION && rec.seq == previous.last().map_or(0, |r| r.seq + 1)
}
