//! `tracing` to stderr, as text or JSON lines. DataFusion's `log` records are bridged in. A URL's
//! password and query values are masked in every line ([`crate::util::redact`]).

use std::io::Write;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Whether log lines are JSON (set once by [`init`]).
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether `-q` was given (set once by [`init`]).
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Installs the global subscriber. `RUST_LOG` wins over `-v`/`-q`.
pub fn init(format: LogFormat, verbose: u8, quiet: bool) {
    JSON.store(format == LogFormat::Json, std::sync::atomic::Ordering::Relaxed);
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn,dfpipe=info",
        (false, 1) => "info,dfpipe=debug",
        _ => "debug,dfpipe=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| MaskedStderr).with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Reports a command's final error on stderr: `error: MESSAGE` as text; under `--log-format
/// json` a JSON line like every other (level ERROR, with the `exit_code`), so a log collector
/// parses the whole stream. Credentials are masked either way.
pub fn final_error(message: &str, exit_code: u8) {
    if JSON.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::error!(target: "dfpipe", exit_code, "{message}");
    } else {
        crate::errln!("error: {}", crate::util::redact::credentials(message));
    }
}

/// Whether log lines are JSON: a target's error, logged when it failed, is then not repeated.
pub fn is_json() -> bool {
    JSON.load(std::sync::atomic::Ordering::Relaxed)
}

/// stderr, with the credentials of any URL in a log line masked. The formatter hands over each
/// event whole, so a URL is never split between two writes. A reader that has gone (`2>&1 |
/// head`) takes nothing more: tracing reports a failed write with `eprintln!`, which panics on a
/// closed pipe.
struct MaskedStderr;

impl Write for MaskedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        reader_gone_is_ok(std::io::stderr().write_all(crate::util::redact::credentials(&text).as_bytes()))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        reader_gone_is_ok(std::io::stderr().flush())
    }
}

fn reader_gone_is_ok(written: std::io::Result<()>) -> std::io::Result<()> {
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Whether a failed target's error is logged as it fails: always under JSON logs; as text
/// unless `-q`, where the `error:` lines that end the run say it once.
pub fn logs_target_errors() -> bool {
    is_json() || !QUIET.load(std::sync::atomic::Ordering::Relaxed)
}
