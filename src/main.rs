//! The `dfpipe` binary: parse arguments, set up logging, run, turn the outcome into an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = dfpipe::cli::Cli::parse();
    dfpipe::cli::logging::init(cli.global.log_format, cli.global.verbose, cli.global.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(dfpipe::error::EXIT_RUN_FAILED);
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = dfpipe::execute(cli) => Some(outcome),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match outcome {
        Some(Ok(code)) => ExitCode::from(code),
        Some(Err(err)) => {
            if !matches!(err, dfpipe::error::Error::TargetsFailed { .. }) {
                eprintln!("error: {err}");
            }
            ExitCode::from(err.exit_code())
        }
        None => {
            eprintln!("interrupted: targets in progress were not committed and keep their previous contents");
            ExitCode::from(130)
        }
    }
}
