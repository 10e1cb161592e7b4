//! Numbers every event and hands it to every reader.

use std::time::Instant;

use crate::protocol::{EngineEvent, EventSink, Record, EVENT_SCHEMA_VERSION};

pub struct Emitter {
    sinks: Vec<Box<dyn EventSink>>,
    next_seq: u64,
    /// Engine seconds before this process started (resumed sessions continue the clock).
    clock_offset: f64,
    started: Instant,
}

impl Emitter {
    pub fn new(sinks: Vec<Box<dyn EventSink>>, next_seq: u64, clock_offset: f64) -> Self {
        Emitter {
            sinks,
            next_seq,
            clock_offset,
            started: Instant::now(),
        }
    }

    /// Hands the readers over (used when a resumed engine restarts its numbering).
    pub fn into_sinks(self) -> Vec<Box<dyn EventSink>> {
        self.sinks
    }

    /// Seconds of engine time since the session started.
    pub fn clock(&self) -> f64 {
        self.clock_offset + self.started.elapsed().as_secs_f64()
    }

    /// The seq the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Sends the event to every sink. A sink that fails (e.g. the session log on a full disk)
    /// stops the run: losing the record silently would break resume and replay.
    pub fn emit(&mut self, mut event: EngineEvent) -> anyhow::Result<()> {
        // Stages do not nest: each starts a new heap high-water mark and reports its own.
        match &mut event {
            EngineEvent::StageStarted { .. } => {
                crate::heap::reset_peak();
            }
            EngineEvent::StageFinished { heap_peak, .. } => {
                *heap_peak = crate::heap::peak().map(|b| b as u64);
                crate::heap::reset_peak();
            }
            _ => {}
        }
        let record = Record {
            v: EVENT_SCHEMA_VERSION,
            seq: self.next_seq,
            t: (self.clock() * 1000.0).round() / 1000.0,
            event,
        };
        self.next_seq += 1;
        for sink in &mut self.sinks {
            sink.emit(&record)?;
        }
        Ok(())
    }
}
