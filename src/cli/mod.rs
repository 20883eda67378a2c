//! The command line: clap arguments ([`args`]) with the help text that teaches, and logging
//! ([`logging`]: `tracing` to stderr as text or JSON). Terminal rendering helpers (numbers,
//! sizes, tables, the row counter behind progress bars) live in [`crate::util`], since the
//! checks and sinks use them too.
//!
//! May import: [`crate::config`] (value types such as `Strategy`, sizes) and [`crate::error`].

pub mod args;
pub mod logging;

pub use args::{
    Cli, Command, DEMO_ORDERS, GlobalArgs, LineageFormat, LogFormat, QueryFormat, RunsFormat, SchemaCommand,
    SelectArgs, StateCommand, parse_pairs, parse_vars,
};
