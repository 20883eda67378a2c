//! The DataFusion session every command works in: settings, memory runtime, dfpipe's
//! functions, and the object stores the project's locations need.

use datafusion::execution::context::SessionConfig;
use datafusion::prelude::SessionContext;

use crate::config::{Config, Target};
use crate::error::{Error, Result};
use crate::memory::MemoryBudget;
use crate::object_stores;

/// Rows per batch: DataFusion's default, a good balance of vectorization and memory.
pub const BATCH_SIZE: usize = 8192;

/// Builds the session for `config` under `budget`.
pub fn build(config: &Config, budget: &MemoryBudget) -> Result<SessionContext> {
    let mut session = SessionConfig::new()
        .with_information_schema(true)
        .with_batch_size(BATCH_SIZE)
        .with_target_partitions(std::thread::available_parallelism().map_or(1, |n| n.get()));
    for (key, value) in &config.datafusion {
        session.options_mut().set(key, value).map_err(|e| {
            Error::Config(format!(
                "{}: datafusion setting `{key}: {value}`: {}",
                config.file.file_name().unwrap_or_default().to_string_lossy(),
                crate::error::df_message(&e)
            ))
        })?;
    }
    let ctx = SessionContext::new_with_config_rt(session, budget.runtime()?);
    dfpipe_udfs::register_all(&ctx);
    for source in config.sources.values() {
        object_stores::register(&ctx, &source.location, &config.storage, &format!("source `{}`", source.name))?;
    }
    for output in config.outputs.iter().flatten() {
        if let Target::Parquet { location, .. } = &output.target {
            object_stores::register(&ctx, location, &config.storage, &format!("output of model `{}`", output.model))?;
        }
    }
    Ok(ctx)
}
