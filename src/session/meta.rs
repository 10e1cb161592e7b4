//! The small JSON files of a session: `session.json` (who it is) and `status.json` (where it is).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::num;
use crate::protocol::{gate, Ledger, Lifecycle, Record, Stage};

/// Schema version of `session.json`.
pub const META_SCHEMA_VERSION: u32 = 1;
/// Schema version of `status.json`.
pub const STATUS_SCHEMA_VERSION: u32 = 1;

/// The session a fork started from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Parent {
    /// Id of the parent session.
    pub id: String,
    /// The day whose start-of-day checkpoint the fork began from.
    pub day: u32,
}

/// `session.json`: identity of a session, written once at creation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionMeta {
    pub schema_version: u32,
    pub id: String,
    /// Human name given by the operator.
    pub name: String,
    pub created: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Parent>,
    /// Version of crossadapt that created the session.
    pub app_version: String,
}

/// A session name as every printer shows it (`list`, `compare`, the console header, the
/// headless lines): control characters and the like escaped ([`crate::text::printable`]). A
/// session root may be shared and older sessions may hold any name, so a name read from disk
/// is never printed raw.
pub fn shown_name(name: &str) -> std::borrow::Cow<'_, str> {
    crate::text::printable(name)
}

/// Refuses a new session name holding a character [`shown_name`] would escape (an escape
/// sequence, a newline): one sentence naming it as it would be shown.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    if name.chars().any(crate::text::needs_escape) {
        anyhow::bail!(
            "the session name \"{}\" holds control characters (shown escaped here); a name may hold printable characters only",
            shown_name(name)
        );
    }
    Ok(())
}

/// The lifecycle as `status.json` records it (the one [`Lifecycle`] enum, under the name the
/// session store has always used).
pub type RunState = Lifecycle;

/// The latest evaluated figures of one arm, for `list`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmHeadline {
    pub arm: String,
    /// Last online day evaluated (None: only the offline evaluation so far).
    pub day: Option<u32>,
    #[serde(default, with = "num::opt")]
    pub auc: Option<f64>,
    #[serde(default, with = "num::opt")]
    pub logloss: Option<f64>,
    #[serde(default, with = "num::opt")]
    pub bias: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// The migration gate in a few words ([`gate::GateStatus::list_label`]), e.g. `NOT YET 1/3`
    /// or `SWITCH pooled, first on day 21 (10d)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
}

/// `status.json`: a small summary rewritten atomically as the run goes, so `list` stays fast.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub schema_version: u32,
    pub state: RunState,
    #[serde(default)]
    pub stage: Option<Stage>,
    /// Last online day whose metrics are in.
    #[serde(default)]
    pub last_day: Option<u32>,
    #[serde(default)]
    pub arms: Vec<String>,
    #[serde(default)]
    pub headline: Vec<ArmHeadline>,
    pub updated_at: DateTime<Utc>,
    /// Process that wrote this status.
    pub pid: u32,
    /// The records observed so far, folded; the fields above are read from it.
    #[serde(skip)]
    ledger: Ledger,
}

impl Status {
    /// A status in `state` with nothing observed yet.
    pub fn new(state: RunState) -> Status {
        Status {
            schema_version: STATUS_SCHEMA_VERSION,
            state,
            stage: None,
            last_day: None,
            arms: Vec::new(),
            headline: Vec::new(),
            updated_at: Utc::now(),
            pid: std::process::id(),
            ledger: Ledger::default(),
        }
    }

    /// Folds one record in (the session's writer calls it on every record the engine emits; a
    /// resumed session first replays its log) and refreshes what `list` shows from the ledger.
    pub fn observe(&mut self, record: &Record) {
        self.ledger.apply(record);
        let l = &self.ledger;
        if l.lifecycle != Lifecycle::Created {
            self.state = l.lifecycle;
        }
        if l.stage != Stage::Setup {
            self.stage = Some(l.stage);
        }
        self.last_day = l.last_day();
        self.arms = l.arms.iter().map(|a| a.name.clone()).collect();
        self.headline = l
            .arms
            .iter()
            .filter(|a| a.offline.is_some() || !a.days.is_empty() || a.failed.is_some())
            .map(|a| {
                let (day, m) = match a.days.iter().next_back() {
                    Some((day, d)) => (Some(*day), Some(&d.metrics)),
                    None => (None, a.offline.as_ref().map(|o| &o.metrics)),
                };
                ArmHeadline {
                    arm: a.name.clone(),
                    day,
                    auc: m.and_then(|m| m.auc),
                    logloss: m.map(|m| m.logloss),
                    bias: m.map(|m| m.bias),
                    failed: a.failed.clone(),
                    gate: gate::status(&a.gate, &l.plan.online)
                        .map(|g| g.list_label(&l.plan.online)),
                }
            })
            .collect();
    }

    /// The ledger of the records observed so far.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
}
