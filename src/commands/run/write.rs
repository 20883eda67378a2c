//! Writing one frame of an output to its sink: the model (or one increment of it) as
//! `INSERT INTO <sink> SELECT …`, with the rows its row-level tests reject split off first and
//! quarantined once the target's load has committed.

use std::sync::Arc;

use datafusion::common::TableReference;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::file_format::options::ArrowReadOptions;
use datafusion::datasource::source_as_provider;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::prelude::{DataFrame, SessionContext};

use crate::checks::quarantine::RowFilter;
use crate::checks::split;
use crate::config::{Mode, OnInvalid, OutputConfig, Target};
use crate::engine::cluster::{ClusterWork, RemoteJob};
use crate::engine::pipeline::Pipeline;
use crate::error::df_message;
use crate::memory::strategy::Decision;
use crate::schema::Evolution;
use crate::sinks;
use crate::sinks::marker::LoadExtras;
use crate::util::fmt::group_digits;
use crate::util::progress::RowCounter;

/// Rows an output wrote, the rows its row filter (`on_invalid`) kept out, and what it cost on a
/// cluster.
#[derive(Debug, Clone, Default)]
pub(super) struct Written {
    pub(super) rows: u64,
    pub(super) quarantined: u64,
    pub(super) dropped: u64,
    pub(super) cluster: Option<ClusterWork>,
}

impl Written {
    /// Adds another load's figures (a window of an incremental output).
    pub(super) fn add(&mut self, other: Written) {
        self.rows += other.rows;
        self.quarantined += other.quarantined;
        self.dropped += other.dropped;
        add_work(&mut self.cluster, other.cluster);
    }
}

/// Adds a job's figures to an output's.
pub(super) fn add_work(total: &mut Option<ClusterWork>, work: Option<ClusterWork>) {
    if let Some(work) = work {
        total.get_or_insert_with(ClusterWork::default).add(&work);
    }
}

/// The stream of `df`: on a cluster (`--cluster`), computed there and fetched from its
/// executors, with the job to ask for its cost once consumed; else computed here.
pub(super) async fn stream_of(
    pipeline: &Pipeline,
    ctx: &SessionContext,
    df: DataFrame,
) -> std::result::Result<(SendableRecordBatchStream, Option<RemoteJob>), String> {
    match &pipeline.cluster {
        None => Ok((df.execute_stream().await.map_err(|e| df_message(&e))?, None)),
        Some(cluster) => {
            let remote = cluster.session(ctx).map_err(|e| e.to_string())?;
            let (stream, job) = cluster.execute(&remote, df).await?;
            Ok((stream, Some(job)))
        }
    }
}

/// `df` as a sink reads it: on a cluster, a frame over the job's result stream.
async fn computed(
    pipeline: &Pipeline,
    ctx: &SessionContext,
    df: DataFrame,
) -> std::result::Result<(DataFrame, Option<RemoteJob>), String> {
    if pipeline.cluster.is_none() {
        return Ok((df, None));
    }
    let (stream, job) = stream_of(pipeline, ctx, df).await?;
    let table = split::one_shot_table(stream).map_err(|e| df_message(&e))?;
    Ok((ctx.read_table(Arc::new(table)).map_err(|e| df_message(&e))?, job))
}

/// What the job cost, once its stream has been consumed.
async fn work_of(job: Option<RemoteJob>) -> Option<ClusterWork> {
    job?.work().await
}

/// Writes one output in `ctx` (a session with the target's strategy): with `on_invalid: drop`
/// or `quarantine`, the model is scanned once and split ([`split`]): the rows passing its
/// row-level tests go to the target, the others are counted — and quarantined once the target's
/// load has committed, so a failed load leaves the quarantine as it was.
pub(super) async fn write_output(
    pipeline: &Pipeline,
    ctx: &SessionContext,
    decision: &Decision,
    output: &OutputConfig,
    load: Frame,
    evolution: Evolution,
    counter: &RowCounter,
) -> std::result::Result<Written, String> {
    let model = output.model.as_str();
    let Frame { relation, mode, extras, computed: already } = load;
    let filter = match output.on_invalid {
        OnInvalid::Fail => RowFilter::default(),
        OnInvalid::Drop | OnInvalid::Quarantine => RowFilter::for_model(&pipeline.project.config.tests, model),
    };
    let spec = WriteSpec { mode, unique_key: output.unique_key.clone(), evolution, extras };
    if filter.is_empty() {
        let df = ctx.table(TableReference::bare(relation.as_str())).await.map_err(|e| df_message(&e))?;
        let (df, job) = if already { (df, None) } else { computed(pipeline, ctx, df).await? };
        let rows = write_frame(pipeline, ctx, decision, df, &output.target, spec, counter).await?;
        return Ok(Written { rows, cluster: work_of(job).await, ..Written::default() });
    }
    let quarantine = output.on_invalid == OnInvalid::Quarantine;
    let state_dir = &pipeline.project.config.state_dir;
    let spill = quarantine.then(|| state_dir.join(format!("quarantine-{model}-{}.arrow", std::process::id())));
    if spill.is_some() {
        std::fs::create_dir_all(state_dir).map_err(|e| format!("cannot create {}: {e}", state_dir.display()))?;
    }
    let annotated = ctx.sql(&filter.annotated_sql(&relation)).await.map_err(|e| df_message(&e))?;
    let (stream, job) = if already {
        (annotated.execute_stream().await.map_err(|e| df_message(&e))?, None)
    } else {
        stream_of(pipeline, ctx, annotated).await?
    };
    let (valid, mut rejected) = split::split(stream, spill.as_deref())?;
    let valid = ctx.read_table(Arc::new(split::one_shot_table(valid).map_err(|e| df_message(&e))?));
    let valid = valid.map_err(|e| df_message(&e))?;
    let rows = write_frame(pipeline, ctx, decision, valid, &output.target, spec, counter).await?;
    let cluster = work_of(job).await;
    if !quarantine {
        return Ok(Written { rows, dropped: rejected.rows(), cluster, ..Written::default() });
    }
    // The target committed; the quarantine follows from the spilled rows.
    let target = output.target.quarantine();
    let label = target.label(&pipeline.project.config.project_dir);
    let written = async {
        let path = rejected.finish()?.expect("quarantine spills");
        let rejects = ctx
            .read_arrow(path.to_string_lossy().as_ref(), ArrowReadOptions::default())
            .await
            .map_err(|e| df_message(&e))?;
        // An incremental output's quarantine gains each load's rejects.
        let mode = if output.incremental.is_some() { Mode::Append } else { Mode::Replace };
        let plain =
            WriteSpec { mode, unique_key: vec![], evolution: Evolution::default(), extras: LoadExtras::default() };
        write_frame(pipeline, ctx, decision, rejects, &target, plain, &RowCounter::hidden()).await
    }
    .await;
    match written {
        Ok(_) => Ok(Written { rows, quarantined: rejected.rows(), cluster, ..Written::default() }),
        Err(e) => {
            rejected.keep();
            Err(format!(
                "{} rows were written to the target, but its quarantine {label} could not be: {e}; the {} \
                 rejected rows are kept in {}",
                group_digits(rows),
                group_digits(rejected.rows()),
                spill.as_deref().map(|p| p.display().to_string()).unwrap_or_default()
            ))
        }
    }
}

/// How a frame is written: mode, merge key, the schema evolution to apply, and what an
/// incremental load does besides.
struct WriteSpec {
    mode: Mode,
    unique_key: Vec<String>,
    evolution: Evolution,
    extras: LoadExtras,
}

/// What one load of an output reads (a table of the session) and how it writes.
pub(super) struct Frame {
    pub(super) relation: String,
    pub(super) mode: Mode,
    pub(super) extras: LoadExtras,
    /// The relation is already a result stream (computed on the cluster, when there is one).
    pub(super) computed: bool,
}

/// Whether `plan`'s rows come out sorted: its last step (under projections, filters, limits,
/// aliases and views) is an `ORDER BY`.
fn ends_sorted(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Sort(_) => true,
        LogicalPlan::Projection(_) | LogicalPlan::Filter(_) | LogicalPlan::Limit(_) | LogicalPlan::SubqueryAlias(_) => {
            plan.inputs().first().is_some_and(|input| ends_sorted(input))
        }
        LogicalPlan::TableScan(scan) => source_as_provider(&scan.source)
            .ok()
            .and_then(|provider| provider.get_logical_plan().map(|view| ends_sorted(&view)))
            .unwrap_or(false),
        _ => false,
    }
}

/// Writes `df` to `target`; returns the rows written or a message saying why not.
async fn write_frame(
    pipeline: &Pipeline,
    ctx: &SessionContext,
    decision: &Decision,
    df: DataFrame,
    target: &Target,
    spec: WriteSpec,
    counter: &RowCounter,
) -> std::result::Result<u64, String> {
    let schema = Arc::new(df.schema().as_arrow().clone());
    let before = counter.rows();
    let WriteSpec { mode, unique_key: key, evolution, extras } = spec;
    let label = target.label(&pipeline.project.config.project_dir);
    let table = match target {
        Target::DuckDb(target) => {
            // DuckDB's buffers live outside DataFusion's pool: its share of a fixed limit, else a
            // quarter of a bounded pool, less what DuckDB holds outside its `memory_limit`.
            let share = match &decision.accounting {
                Some(accounting) => Some(accounting.writer),
                None => decision.settings.pool_bytes.map(|b| b / 4),
            };
            let limit = share.map(crate::memory::accounting::duckdb_memory_limit);
            let sink = Arc::new(
                sinks::duckdb::DuckDbSink::new(target.clone(), schema, mode, key, counter.clone())
                    .with_memory_limit(limit)
                    .with_evolution(evolution)
                    .with_extras(extras),
            );
            // Rows in order (the model ends with `ORDER BY`) come as one stream, inserted by one
            // thread, in order; else DuckDB's threads insert the partitions side by side.
            if ends_sorted(df.logical_plan()) {
                sinks::SinkTable::new(sink, mode, label)
            } else {
                sinks::SinkTable::partitioned(sink, mode, label)
            }
        }
        Target::Postgres { table, dsn, copy_streams, swap_timeout, .. } => sinks::SinkTable::new(
            Arc::new(
                sinks::postgres::PostgresSink::new(
                    sinks::postgres::PostgresTarget {
                        dsn: dsn.clone(),
                        table: table.clone(),
                        copy_streams: *copy_streams,
                        swap_timeout: *swap_timeout,
                    },
                    schema,
                    mode,
                    key,
                    counter.clone(),
                )
                .with_evolution(evolution)
                .with_extras(extras),
            ),
            mode,
            label,
        ),
        Target::Parquet { location, compression, .. } if extras.marker.is_some() => {
            return sinks::parquet_increment::write_increment(df, location, compression, &extras, counter).await;
        }
        Target::Parquet { location, single_file, compression } => {
            let row_groups = decision.accounting.as_ref().and_then(|a| a.row_group_rows);
            let rows = sinks::parquet::write(df, location, *single_file, compression, mode, row_groups).await?;
            counter.add(rows);
            return Ok(rows);
        }
    };
    // The target is `INSERT INTO <sink> SELECT * FROM <model>`, planned and run by DataFusion.
    let sink_name = TableReference::bare("__dfpipe_sink");
    ctx.register_table(sink_name.clone(), Arc::new(table)).map_err(|e| df_message(&e))?;
    let op = if mode == Mode::Replace { InsertOp::Overwrite } else { InsertOp::Append };
    let written = df.write_table("__dfpipe_sink", DataFrameWriteOptions::new().with_insert_operation(op)).await;
    ctx.deregister_table(sink_name).map_err(|e| df_message(&e))?;
    written.map_err(|e| df_message(&e))?;
    Ok(counter.rows() - before)
}
