//! Process CPU time, the compute figure that means something on a busy machine.
//!
//! Wall seconds of a short stage are mostly the machine's load: the same run on a 2-core
//! machine shared with builds gave an arm 0.25x and 0.62x of scratch's time. The engine's
//! stages run one after another, and a stage's work is spread over candle's compute pool, so
//! the CPU the whole process spent between a stage's start and its end is the stage's compute
//! (every thread of the pool counted), whatever else the machine runs. Other threads of the
//! process (the console, the session writer) add a little; they do no training.

/// CPU seconds the process has used so far (`None` where the clock is unavailable).
pub fn process_seconds() -> Option<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec` through the pointer, which points at a
    // live, writable one; the clock id is a constant POSIX defines.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    (rc == 0).then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
}

/// The process CPU time from a start point.
#[derive(Clone, Copy, Debug)]
pub struct CpuSpan(Option<f64>);

impl CpuSpan {
    pub fn start() -> CpuSpan {
        CpuSpan(process_seconds())
    }

    /// CPU seconds since [`CpuSpan::start`].
    pub fn seconds(&self) -> Option<f64> {
        Some((process_seconds()? - self.0?).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed amount of work shows as CPU time (the clock moves with work, not with the wall:
    /// on a loaded machine a 30 ms busy loop measured 10 ms of CPU, so the work here is counted
    /// in iterations, and only its sign is checked).
    #[test]
    fn work_takes_cpu_time() {
        let span = CpuSpan::start();
        let mut x = 1u64;
        for _ in 0..20_000_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let busy = span.seconds().expect("a CPU clock");
        assert!(busy > 0.0 && x != 0, "busy {busy} s");
    }
}
