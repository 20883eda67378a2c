//! The crate's error type and the exit codes it maps to.
//!
//! Every message is written for the person running `dfpipe`: it names the file, source, model or
//! target involved and, where there is one, what to do about it.

use datafusion::error::DataFusionError;

/// A failure anywhere in dfpipe, classified by what the user has to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line was wrong (unknown selector, bad `--vars`, ...).
    #[error("{0}")]
    Usage(String),
    /// The config file is missing, malformed or inconsistent.
    #[error("{0}")]
    Config(String),
    /// The SQL models do not form a valid project: parse errors, unknown references, cycles,
    /// duplicate names.
    #[error("{0}")]
    Project(String),
    /// A source could not be found or read.
    #[error("{0}")]
    Source(String),
    /// Running a target failed (query execution or writing the sink).
    #[error("{0}")]
    Run(String),
    /// A schema drifted in a way its policy refuses; nothing was written.
    #[error("{0}")]
    Drift(String),
    /// Error-level data tests failed; nothing was written.
    #[error("{0}")]
    Test(String),
    /// A declared column contract was violated; nothing was written.
    #[error("{0}")]
    Contract(String),
    /// An incremental output's state forbids the run: a target lost loads the catalog records,
    /// a loaded file changed, rows have a NULL cursor; nothing was written.
    #[error("{0}")]
    State(String),
    /// Another dfpipe command holds the project's lock.
    #[error("{0}")]
    Locked(String),
    /// The user interrupted the command (Ctrl-C); what was being written was not committed.
    #[error(
        "interrupted: what targets were writing was not committed and they keep their previous contents (an incremental output keeps the loads it committed)"
    )]
    Interrupted,
    /// One or more targets of a run failed; details were reported per target.
    #[error("{failed} of {total} targets failed")]
    TargetsFailed {
        /// How many targets failed.
        failed: usize,
        /// How many targets the run had.
        total: usize,
    },
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit code: everything succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit code: a run failed (a source, the query or a sink).
pub const EXIT_RUN_FAILED: u8 = 1;
/// Exit code: the command line or the project's config/SQL is invalid.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: a check failed before anything was written (schema drift refused by policy, a
/// violated contract).
pub const EXIT_CHECK_FAILED: u8 = 3;
/// Exit code: another dfpipe command is running on the project.
pub const EXIT_LOCKED: u8 = 4;
/// Exit code: interrupted (Ctrl-C), as shells report SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

impl Error {
    /// The process exit code for this error (documented in `--help` and the README).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Config(_) | Error::Project(_) => EXIT_USAGE,
            Error::Source(_) | Error::Run(_) | Error::TargetsFailed { .. } => EXIT_RUN_FAILED,
            Error::Drift(_) | Error::Contract(_) | Error::Test(_) | Error::State(_) => EXIT_CHECK_FAILED,
            Error::Locked(_) => EXIT_LOCKED,
            Error::Interrupted => EXIT_INTERRUPTED,
        }
    }
}

/// Renders a DataFusion error without backtraces and without the repeated
/// "External error: " / "Execution error: " prefixes that add nothing for a user.
pub fn df_message(err: &DataFusionError) -> String {
    let text = err.to_string();
    let mut text = text.as_str();
    loop {
        let before = text;
        for prefix in
            ["External error: ", "Execution error: ", "Arrow error: ", "Error during planning: ", "Context(\""]
        {
            if let Some(rest) = text.strip_prefix(prefix) {
                text = rest;
            }
        }
        if before == text {
            break;
        }
    }
    text.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_by_kind() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::Config("x".into()).exit_code(), 2);
        assert_eq!(Error::Project("x".into()).exit_code(), 2);
        assert_eq!(Error::Source("x".into()).exit_code(), 1);
        assert_eq!(Error::Run("x".into()).exit_code(), 1);
        assert_eq!(Error::TargetsFailed { failed: 1, total: 2 }.exit_code(), 1);
        assert_eq!(Error::Drift("x".into()).exit_code(), 3);
        assert_eq!(Error::Locked("x".into()).exit_code(), 4);
    }

    #[test]
    fn df_message_strips_wrapper_prefixes() {
        let err = DataFusionError::Execution("boom".into());
        assert_eq!(df_message(&err), "boom");
    }
}
