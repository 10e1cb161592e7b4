use clap::Parser;

// The allocator alone doubles candle's CPU training speed (fresh multi-megabyte buffers every op
// otherwise cost page faults): see the README's performance section.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = crossadapt::cli::Cli::parse();
    match crossadapt::cli::dispatch(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
