use clap::Parser;

// The allocator alone doubles candle's CPU training speed (fresh multi-megabyte buffers every op
// otherwise cost page faults): see the README's performance section.
// Wrapped to count live heap bytes per stage (crossadapt::heap): one relaxed atomic add per
// allocation, which candle's few large buffers per op do not notice.
#[global_allocator]
static GLOBAL: crossadapt::heap::Counting<mimalloc::MiMalloc> =
    crossadapt::heap::Counting(mimalloc::MiMalloc);

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_t` (the Rust binding has no constant).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    crossadapt::heap::mark_installed();
    // Before any thread exists, so every thread of the process inherits it: denormal floats
    // are flushed to zero (they slow Intel's FMA units down by microcode assists; src/fpenv.rs).
    crossadapt::fpenv::flush_denormals();
    // Before any thread exists too: candle's elementwise ops stay on the thread that calls them
    // (the crate's training pools are the parallelism) instead of fanning out to candle's own
    // barrier-pool threads, whose busy-waiting competed with the training threads for the
    // cores (docs/performance.md, the default session). An explicit setting is kept.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    // Keep freed memory instead of returning it to the OS 10 ms later: every training step frees
    // and reallocates the same multi-megabyte activations, and re-faulting them (zeroing huge
    // pages in the kernel) was 13% of a DeepFM step under `perf` (README, speed).
    // An explicit `MIMALLOC_PURGE_DELAY` (milliseconds; mimalloc reads it itself) is kept: at
    // millions of rows a day, freed day buffers that are never returned raise the peak
    // (docs/scale.md).
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option of the allocator; valid at any time.
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        }
    }
    // Like every Unix filter: a closed pipe (`crossadapt list | head`) ends the process quietly
    // instead of panicking in `println!`. Rust sets SIGPIPE to ignored before `main`.
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists; restoring the
    // default disposition of SIGPIPE has no other effect on this process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = crossadapt::cli::Cli::parse();
    match crossadapt::cli::dispatch(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // Never a panic on a dead terminal (see crossadapt::signals).
            crossadapt::say_err!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
