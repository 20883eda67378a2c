//! The DataFusion session every command works in: settings, memory runtime, dfpipe's
//! functions (and the factory for the project's SQL-defined ones), and the object stores the
//! project's locations need.

use datafusion::execution::context::SessionConfig;
use datafusion::prelude::SessionContext;

use crate::config::{Config, Target};
use crate::engine::object_stores;
use crate::error::{Error, Result};
use crate::memory::strategy::ExecSettings;

/// Builds the session for `config` with the settings of a strategy; the project's
/// `datafusion:` settings win over the strategy's. Each target later runs in a session derived
/// from this one with its own strategy ([`ExecSettings::session`]).
pub fn build(config: &Config, settings: &ExecSettings) -> Result<SessionContext> {
    let mut session = SessionConfig::new().with_information_schema(true);
    // Planning errors then carry the line and column of the SQL they are about.
    session.options_mut().sql_parser.collect_spans = true;
    // A source directory is read with its subdirectories ([`super::source_files`]).
    session.options_mut().execution.listing_table_ignore_subdirectory = false;
    parquet_writer_defaults(&mut session);
    settings.apply(&mut session, &config.datafusion)?;
    if config.cluster.is_some() {
        // Sources take their scan partitions from this session: on a cluster, as many as its
        // jobs have, not this machine's cores (the project's own setting below still wins).
        session = session.with_target_partitions(crate::engine::cluster::remote::CLUSTER_PARTITIONS);
    }
    // `ballista.*` settings exist only in a cluster's session ([`super::cluster`]).
    for (key, value) in config.datafusion.iter().filter(|(k, _)| !k.starts_with("ballista.")) {
        session.options_mut().set(key, value).map_err(|e| {
            Error::Config(format!(
                "{}: datafusion setting `{key}: {value}`: {}",
                config.file.file_name().unwrap_or_default().to_string_lossy(),
                crate::error::df_message(&e)
            ))
        })?;
    }
    let runtime = settings.runtime(session.options().execution.target_partitions, None, Default::default())?;
    let ctx = SessionContext::new_with_config_rt(session, runtime)
        .with_function_factory(std::sync::Arc::new(crate::engine::functions::SqlFunctionFactory));
    crate::engine::functions::register_builtins(&ctx);
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

/// A column's dictionary page stops growing at this size and its later pages are written
/// plain: 8,192 64-bit values (DataFusion's default, 1 MiB, is 131,072).
const PARQUET_DICTIONARY_PAGE_BYTES: usize = 64 * 1024;

/// Values the Parquet writer encodes at a time (DataFusion's default: 1,024).
const PARQUET_WRITE_BATCH_ROWS: usize = 8192;

/// dfpipe's Parquet writer settings where they differ from DataFusion's; the project's
/// `datafusion:` section (`execution.parquet.dictionary_page_size_limit`, `…write_batch_size`)
/// wins. The writer interns every value of a column until its dictionary reaches the limit: with
/// 1 MiB, a column of mostly distinct values (keys, prices, comments) costs a hash lookup that
/// misses the cache for 131,072 values per row group before it falls back to plain, the largest
/// cost in writing lineitem. DuckDB's writer does not dictionary-encode such columns at all;
/// 64 KiB keeps dictionaries for columns of up to 8,192 distinct values per row group (flags,
/// dates, quantities) as it does. Measured on lineitem SF1 sorted into one file (benches/README):
/// 0.91x the wall time, 0.88x the CPU, a file 3.8% larger; encoding 8,192 values at a time
/// instead of 1,024 another 0.95x.
fn parquet_writer_defaults(session: &mut SessionConfig) {
    let parquet = &mut session.options_mut().execution.parquet;
    parquet.dictionary_page_size_limit = PARQUET_DICTIONARY_PAGE_BYTES;
    parquet.write_batch_size = PARQUET_WRITE_BATCH_ROWS;
}
