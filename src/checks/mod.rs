//! Checks on the data itself, beside the flow: data tests ([`data_tests`]: run before a run
//! writes, and by `dfpipe test`), the row filters and quarantine of `on_invalid`
//! ([`quarantine`], applied in one scan by [`split`]), and column contracts ([`contracts`]).
//!
//! May import: [`crate::config`], [`crate::schema`], [`crate::engine`] (the pipeline they query)
//! and [`crate::util`].

pub mod contracts;
pub mod data_tests;
pub mod quarantine;
pub mod split;
