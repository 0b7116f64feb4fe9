use std::process::ExitCode;

use clap::Parser;
use tidings::cli::{self, Cli};
use tidings::config::Settings;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tidings: {e}");
            return ExitCode::from(2);
        }
    };
    tidings::telemetry::init(&settings.log, settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.sender_threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tidings: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("tidings: {e:#}");
            ExitCode::FAILURE
        }
    }
}
