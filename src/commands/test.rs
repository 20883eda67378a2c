//! `dfpipe test`: the data tests of the selected models and their sources, PASS / WARN / FAIL.

use super::prepare;
use crate::checks::data_tests::{self, Outcome};
use crate::cli::SelectArgs;
use crate::config::Config;
use crate::error::{EXIT_CHECK_FAILED, EXIT_OK, Result};

/// Runs the tests and prints the report; exit 3 when an error-level test failed.
pub async fn command(config: Config, select: &SelectArgs) -> Result<u8> {
    let pipeline = prepare(config, select).await?;
    let results = data_tests::run(&pipeline, &pipeline.needed_relations(), false).await?;
    crate::out!("{}", data_tests::report(&results));
    Ok(if results.iter().any(|r| r.outcome == Outcome::Fail) { EXIT_CHECK_FAILED } else { EXIT_OK })
}
