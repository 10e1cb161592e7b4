//! Plays logged records back into any [`EventSink`], paced by their engine time.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::engine::events::{EventSink, Record};

/// The longest real-time wait between two records in a replay: a session that sat paused for
/// an hour replays its pause in this long (divided by the speed).
pub const MAX_REPLAY_GAP: Duration = Duration::from_secs(2);

/// Emits `records` into `sink`, waiting (through `sleep`) the engine time between two records
/// divided by `speed`, each wait capped at [`MAX_REPLAY_GAP`] / `speed`.
pub fn replay_into(
    records: &[Record],
    sink: &mut dyn EventSink,
    speed: f64,
    sleep: &mut dyn FnMut(Duration),
) -> Result<()> {
    if !(speed.is_finite() && speed > 0.0) {
        bail!("--speed must be a positive number, got {speed}");
    }
    let cap = MAX_REPLAY_GAP.as_secs_f64() / speed;
    let mut last_t: Option<f64> = None;
    for record in records {
        if let Some(prev) = last_t {
            let wait = ((record.t - prev) / speed).clamp(0.0, cap);
            if wait > 0.0 {
                // A wait too long for a Duration (an absurd speed) is the longest gap.
                sleep(Duration::try_from_secs_f64(wait).unwrap_or(MAX_REPLAY_GAP));
            }
        }
        last_t = Some(record.t);
        sink.emit(record)?;
    }
    Ok(())
}
