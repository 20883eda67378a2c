//! The `dfpipe` binary: parse arguments, set up logging, run, turn the outcome into an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    dfpipe::memory::allocator::return_freed_memory();
    dfpipe::memory::code_pages::release_periodically();
    let cli = dfpipe::cli::Cli::parse();
    dfpipe::cli::logging::init(cli.global.log_format, cli.global.verbose, cli.global.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(dfpipe::error::EXIT_RUN_FAILED);
        }
    };
    // Ctrl-C is handled inside: a run records itself as interrupted before it stops.
    match runtime.block_on(dfpipe::execute(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            match err {
                // As text, each failed target's `error:` line was the last word.
                dfpipe::error::Error::TargetsFailed { .. } if !dfpipe::cli::logging::is_json() => {}
                dfpipe::error::Error::Interrupted if !dfpipe::cli::logging::is_json() => eprintln!("{err}"),
                _ => dfpipe::cli::logging::final_error(&err.to_string(), err.exit_code()),
            }
            ExitCode::from(err.exit_code())
        }
    }
}
