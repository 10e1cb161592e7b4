use clap::Parser;

// The allocator alone doubles candle's CPU training speed (fresh multi-megabyte buffers every op
// otherwise cost page faults): see the README's performance section.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
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
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
