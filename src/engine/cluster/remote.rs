//! The client side of a cluster run: a Ballista session derived from the run's, checks made
//! before anything runs, a query's result stream, and what the job cost (stages, tasks).

use std::sync::Arc;
use std::time::Duration;

use ballista_core::execution_plans::DistributedQueryExec;
use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use ballista_core::serde::BallistaLogicalExtensionCodec;
use ballista_core::serde::protobuf::GetJobMetricsParams;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion_proto::logical_plan::AsLogicalPlan;
use datafusion_proto::protobuf::LogicalPlanNode;
use serde::Serialize;

use crate::config::{ClusterUrl, Config, SourceConfig};
use crate::error::{Error, Result, df_message};

/// How long dfpipe waits for the scheduler to accept a connection before it gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Partitions of a cluster job's scans and shuffles unless `datafusion.execution.target_partitions`
/// is set: Ballista's own default, enough to spread a stage over several executors.
pub const CLUSTER_PARTITIONS: usize = 16;

/// A Ballista scheduler outputs run on, with the project's `ballista.*` settings.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The scheduler.
    pub url: ClusterUrl,
    /// `ballista.*` keys of the project's `datafusion:` section.
    settings: Vec<(String, String)>,
    /// Whether the project sets the shuffle partitions itself.
    partitions_set: bool,
}

/// What an output cost on the cluster, for the run summary and `run_results.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterWork {
    /// The scheduler, `df://HOST:PORT`.
    pub scheduler: String,
    /// Ballista jobs (one per query: the output, or each window of an incremental one).
    pub jobs: u32,
    /// Stages over all jobs.
    pub stages: u32,
    /// Tasks over all jobs (a stage runs one task per partition).
    pub tasks: u32,
}

impl ClusterWork {
    /// `3 stages, 34 tasks on df://host:50050`.
    pub fn describe(&self) -> String {
        let jobs = if self.jobs > 1 { format!(" in {} jobs", self.jobs) } else { String::new() };
        format!("{} stages, {} tasks{jobs} on {}", self.stages, self.tasks, self.scheduler)
    }

    /// Adds another job's figures.
    pub fn add(&mut self, other: &ClusterWork) {
        self.scheduler.clone_from(&other.scheduler);
        self.jobs += other.jobs;
        self.stages += other.stages;
        self.tasks += other.tasks;
    }
}

/// A query submitted to the cluster: once its stream is consumed, [`RemoteJob::work`] asks the
/// scheduler what it took.
pub struct RemoteJob {
    plan: Arc<dyn ExecutionPlan>,
    url: ClusterUrl,
}

impl Cluster {
    /// The cluster of `config`, if it has one.
    pub fn of(config: &Config) -> Option<Cluster> {
        let url = config.cluster.clone()?;
        let settings: Vec<_> = config.datafusion.iter().filter(|(k, _)| k.starts_with("ballista.")).cloned().collect();
        let partitions_set = config.datafusion.iter().any(|(k, _)| k == "datafusion.execution.target_partitions");
        Some(Cluster { url, settings, partitions_set })
    }

    /// Fails within [`CONNECT_TIMEOUT`] when the scheduler does not accept connections.
    pub async fn check_reachable(&self) -> Result<()> {
        let address = (self.url.host.as_str(), self.url.port);
        let unreachable = |why: String| {
            Error::Run(format!(
                "cannot reach the cluster's scheduler at {}: {why}; start one with `dfpipe scheduler` (and \
                 executors with `dfpipe executor --scheduler HOST:PORT`), or run without --cluster",
                self.url
            ))
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(unreachable(e.to_string())),
            Err(_) => Err(unreachable(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))),
        }
    }

    /// Refuses, naming the source, what the executors cannot read: a local path, unless the
    /// scheduler runs on this machine (then its executors share this file system).
    pub fn check_sources<'a>(&self, sources: impl IntoIterator<Item = &'a SourceConfig>) -> Result<()> {
        if self.url.is_local() {
            return Ok(());
        }
        for source in sources {
            if crate::engine::object_stores::is_local(&source.location) {
                return Err(Error::Config(format!(
                    "source `{}` reads the local path {}, which the executors of the cluster at {} cannot see; put \
                     it on object storage (s3://, gs://, az://, https://) or run the cluster on this machine",
                    source.name, source.path, self.url
                )));
            }
        }
        Ok(())
    }

    /// A session like `local` (its tables, views, functions and settings) whose queries run on
    /// the cluster.
    pub fn session(&self, local: &SessionContext) -> Result<SessionContext> {
        let fail =
            |e: datafusion::error::DataFusionError| Error::Run(format!("cluster {}: {}", self.url, df_message(&e)));
        // The local session's catalog (its tables and views) is shared, not replaced by a new one.
        let mut config = local.copied_config().with_create_default_catalog_and_schema(false).upgrade_for_ballista();
        if !self.partitions_set {
            config = config.with_target_partitions(CLUSTER_PARTITIONS);
        }
        for (key, value) in &self.settings {
            config
                .options_mut()
                .set(key, value)
                .map_err(|e| Error::Config(format!("datafusion setting `{key}: {value}`: {}", df_message(&e))))?;
        }
        let state = datafusion::execution::SessionStateBuilder::new_from_existing(local.state())
            .with_config(config)
            .build()
            .upgrade_for_ballista(self.url.endpoint())
            .map_err(fail)?;
        // Ballista's upgrade resets the functions to DataFusion's; the local session's (dfpipe's,
        // the cleaning ones, SQL-defined ones) come back.
        let ctx = SessionContext::new_with_state(state);
        for udf in local.state().scalar_functions().values() {
            if ctx.state().scalar_functions().get(udf.name()).is_none() {
                ctx.register_udf(udf.as_ref().clone());
            }
        }
        Ok(ctx)
    }

    /// Whether `df`'s plan can travel to the cluster: optimized as the cluster session would,
    /// and encoded as Ballista encodes it. The message says what cannot.
    pub fn check_plan(&self, remote: &SessionContext, df: &DataFrame) -> std::result::Result<(), String> {
        let plan = remote.state().optimize(df.logical_plan()).map_err(|e| df_message(&e))?;
        encode(&plan).map(|_| ())
    }

    /// Runs `df` (planned in any session sharing `remote`'s tables) on the cluster; the stream
    /// yields the result once the job has finished.
    pub async fn execute(
        &self,
        remote: &SessionContext,
        df: DataFrame,
    ) -> std::result::Result<(SendableRecordBatchStream, RemoteJob), String> {
        let df = DataFrame::new(remote.state(), df.logical_plan().clone());
        let plan = df.create_physical_plan().await.map_err(|e| df_message(&e))?;
        let stream = execute_stream(plan.clone(), remote.task_ctx()).map_err(|e| df_message(&e))?;
        Ok((stream, RemoteJob { plan, url: self.url.clone() }))
    }

    /// The distributed plan of `df`: the scheduler's stages, as it would cut them.
    pub async fn explain(&self, remote: &SessionContext, df: DataFrame) -> std::result::Result<String, String> {
        let df = DataFrame::new(remote.state(), df.logical_plan().clone());
        let batches =
            df.explain(false, false).map_err(|e| df_message(&e))?.collect().await.map_err(|e| df_message(&e))?;
        for batch in &batches {
            let kinds = batch.column(0).as_string_opt::<i32>();
            let plans = batch.column(1).as_string_opt::<i32>();
            let (Some(kinds), Some(plans)) = (kinds, plans) else { continue };
            for i in 0..batch.num_rows() {
                if !kinds.is_null(i) && kinds.value(i) == "distributed_plan" {
                    return Ok(plans.value(i).to_string());
                }
            }
        }
        Err("the scheduler returned no distributed plan".to_string())
    }
}

/// Encodes `plan` as Ballista sends it to the scheduler.
fn encode(plan: &LogicalPlan) -> std::result::Result<LogicalPlanNode, String> {
    LogicalPlanNode::try_from_logical_plan(plan, &BallistaLogicalExtensionCodec::default()).map_err(|e| {
        let text = e.to_string();
        let what = text.strip_prefix("This feature is not implemented: ").unwrap_or(&text);
        format!("this query cannot run on a cluster ({what}); run it without --cluster")
    })
}

impl RemoteJob {
    /// The stages and tasks the finished job took, as the scheduler reports them; `None` when
    /// the job never started or the scheduler no longer knows it.
    pub async fn work(&self) -> Option<ClusterWork> {
        let exec = self.plan.downcast_ref::<DistributedQueryExec<LogicalPlanNode>>()?;
        let job_id = exec.job_id()?;
        let connect = SchedulerGrpcClient::connect(self.url.endpoint());
        let mut client = tokio::time::timeout(CONNECT_TIMEOUT, connect).await.ok()?.ok()?;
        let params = GetJobMetricsParams { job_id: job_id.as_str().to_string() };
        let stages = client.get_job_metrics(params).await.ok()?.into_inner().stages;
        Some(ClusterWork {
            scheduler: self.url.to_string(),
            jobs: 1,
            stages: stages.len() as u32,
            tasks: stages.iter().map(|s| s.partitions).sum(),
        })
    }
}
