//! The `dfpipe` binary: parse arguments, set up logging, run, turn the outcome into an exit code.

use std::process::ExitCode;

use clap::Parser;
// jemalloc is the whole process's malloc, DuckDB's C++ included (dfpipe::memory::allocator).
use tikv_jemalloc_sys as _;

/// Rust's allocations go to jemalloc directly, with the sizes it is given back.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read by jemalloc itself before `main` (`MALLOC_CONF` overrides them).
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static malloc_conf: Option<&'static std::ffi::c_char> =
    // SAFETY: the pointer is to a static NUL-terminated string.
    Some(unsafe { &*dfpipe::memory::allocator::CONFIG.as_ptr() });

fn main() -> ExitCode {
    // Huge pages only while an external sort runs (dfpipe::memory::allocator).
    dfpipe::memory::allocator::small_pages();
    dfpipe::memory::code_pages::release_periodically();
    let cli = dfpipe::cli::Cli::parse();
    dfpipe::cli::logging::init(cli.global.log_format, cli.global.verbose, cli.global.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            dfpipe::errln!("error: cannot start the async runtime: {e}");
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
                dfpipe::error::Error::Interrupted if !dfpipe::cli::logging::is_json() => dfpipe::errln!("{err}"),
                _ => dfpipe::cli::logging::final_error(&err.to_string(), err.exit_code()),
            }
            ExitCode::from(err.exit_code())
        }
    }
}
