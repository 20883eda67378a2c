//! A Ballista scheduler and executor that know dfpipe: every session they build registers
//! dfpipe's functions (the `udfs/` crate's and the cleaning ones) and reaches any object store a
//! job names, with credentials from the environment. UDFs travel in plans by name, so the
//! scheduler (which plans) and every executor (which runs) must have them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::extension::SessionConfigExt;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::BallistaCodec;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::{ConfigProducer, RuntimeProducer};
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use ballista_scheduler::scheduler_server::SessionBuilder;
use datafusion::execution::SessionState;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::config::StorageConfig;
use crate::engine::object_stores::{Credentials, OnDemandStores};
use crate::error::{Error, Result};

/// How tasks reach executors: they ask the scheduler for work (pull) rather than being sent it
/// (push). Ballista 54.1's push scheduling does not offer again the tasks of an executor it
/// declared lost, so a job whose other executors were idle waited forever (found by the
/// executor-kill test; fixed upstream after 54.1, apache/datafusion-ballista#2202). Pulling
/// executors ask every 50 ms while they have a free slot, and each request is their heartbeat.
const SCHEDULING: TaskSchedulingPolicy = TaskSchedulingPolicy::PullStaged;

/// The shortest `--executor-timeout`: an executor whose slots are all busy does not ask for
/// work, so its silence must outlast a task (seconds).
pub const MIN_EXECUTOR_TIMEOUT_SECONDS: u64 = 10;

/// What a dfpipe server needs besides its address: how it reaches object stores.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Retries of object-store requests.
    pub storage: StorageConfig,
    /// Where object-store credentials come from.
    pub credentials: Credentials,
}

/// An executor's settings.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler, `HOST:PORT`.
    pub scheduler: (String, u16),
    /// Where the executor serves shuffle data (Arrow Flight).
    pub bind: SocketAddr,
    /// The host name other executors and clients reach it by (default: the bind address).
    pub external_host: Option<String>,
    /// Tasks run at once.
    pub slots: usize,
    /// Where shuffle files and spills go (default: a temporary directory).
    pub work_dir: Option<PathBuf>,
    /// Memory for all running tasks together, split evenly between the slots.
    pub memory_bytes: Option<u64>,
    /// Object stores.
    pub server: ServerOptions,
}

/// The settings a session of a dfpipe server starts from (a job's own settings override them).
fn config_producer() -> ConfigProducer {
    Arc::new(SessionConfig::new_with_ballista)
}

/// A runtime reaching object stores on demand, spilling to `spill_dir` (or the temporary one).
fn runtime(options: &ServerOptions, spill_dir: Option<PathBuf>) -> Result<Arc<RuntimeEnv>> {
    let stores = OnDemandStores::new(options.storage.clone(), options.credentials.clone());
    let mode = match spill_dir {
        Some(dir) => DiskManagerMode::Directories(vec![dir]),
        None => DiskManagerMode::OsTmpDirectory,
    };
    RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(stores))
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(mode))
        .build_arc()
        .map_err(|e| Error::Run(format!("cannot set up the query runtime: {e}")))
}

/// A session state with `config`, `runtime` and dfpipe's functions besides DataFusion's (which
/// are Ballista's too: its extra ones come only with its `spark-compat` feature).
fn state(config: SessionConfig, runtime: Arc<RuntimeEnv>) -> SessionState {
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    crate::engine::functions::register_builtins(&ctx);
    ctx.state()
}

/// An executor's runtime (one for all its tasks; Ballista adds each task's memory pool) and the
/// functions its tasks resolve by name.
fn executor_parts(
    options: &ServerOptions,
    spill_dir: Option<PathBuf>,
) -> Result<(RuntimeProducer, BallistaFunctionRegistry)> {
    let base = runtime(options, spill_dir)?;
    let functions = (&state(SessionConfig::new_with_ballista(), base.clone())).into();
    Ok((Arc::new(move |_| Ok(base.clone())), functions))
}

/// The scheduler's sessions: one runtime (and so one set of object-store clients) for all jobs.
fn session_builder(options: &ServerOptions) -> Result<SessionBuilder> {
    let runtime = runtime(options, None)?;
    Ok(Arc::new(move |config: SessionConfig| Ok(state(config, runtime.clone()))))
}

/// Runs a scheduler on `bind` until the process ends. `executor_timeout` is how long an executor
/// may stay silent before its tasks are run elsewhere.
pub async fn run_scheduler(bind: SocketAddr, executor_timeout: Option<u64>, options: &ServerOptions) -> Result<()> {
    let mut config = SchedulerConfig::default()
        .with_hostname(bind.ip().to_string())
        .with_port(bind.port())
        .with_override_config_producer(config_producer())
        .with_override_session_builder(session_builder(options)?)
        .with_scheduler_policy(SCHEDULING);
    config.bind_host = bind.ip().to_string();
    if let Some(seconds) = executor_timeout {
        if seconds < MIN_EXECUTOR_TIMEOUT_SECONDS {
            return Err(Error::Usage(format!(
                "--executor-timeout {seconds}: an executor with every slot busy is silent until a task ends; \
                 give them at least {MIN_EXECUTOR_TIMEOUT_SECONDS}s (more than the longest task)"
            )));
        }
        config.executor_timeout_seconds = seconds;
        config.expire_dead_executor_interval_seconds = seconds.clamp(1, 15);
    }
    let fail = |e: ballista_core::error::BallistaError| Error::Run(format!("scheduler on {bind}: {e}"));
    let cluster = BallistaCluster::new_from_config(&config).await.map_err(fail)?;
    start_server(cluster, bind, Arc::new(config)).await.map_err(fail)
}

/// Runs an executor until the process ends (or the scheduler stops it).
pub async fn run_executor(options: &ExecutorOptions) -> Result<()> {
    let work_dir = options.work_dir.clone();
    if let Some(dir) = &work_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::Run(format!("cannot create {}: {e}", dir.display())))?;
    }
    let (producer, functions) = executor_parts(&options.server, work_dir.clone())?;
    let config = ExecutorProcessConfig {
        bind_host: options.bind.ip().to_string(),
        external_host: options.external_host.clone(),
        port: options.bind.port(),
        // Only push scheduling serves tasks on this port; Ballista still wants one.
        grpc_port: options.bind.port().saturating_add(1),
        scheduler_host: options.scheduler.0.clone(),
        scheduler_port: options.scheduler.1,
        scheduler_connect_timeout_seconds: 10,
        concurrent_tasks: options.slots,
        work_dir: work_dir.map(|d| d.to_string_lossy().into_owned()),
        memory_pool_size: options.memory_bytes,
        task_scheduling_policy: SCHEDULING,
        override_config_producer: Some(config_producer()),
        override_runtime_producer: Some(producer),
        override_function_registry: Some(Arc::new(functions)),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config)).await.map_err(|e| {
        Error::Run(format!("executor of the scheduler at {}:{}: {e}", options.scheduler.0, options.scheduler.1))
    })
}

/// Starts a scheduler inside this process on a free localhost port; returns its address. The
/// tests' cluster: Ballista's own standalone scheduler (pull scheduling, as `run_scheduler`), with
/// dfpipe's sessions.
pub async fn start_in_process_scheduler(options: &ServerOptions) -> Result<SocketAddr> {
    ballista_scheduler::standalone::new_standalone_scheduler_with_builder(
        session_builder(options)?,
        config_producer(),
        BallistaCodec::default(),
    )
    .await
    .map_err(|e| Error::Run(format!("in-process scheduler: {e}")))
}

/// Starts an executor with `slots` task slots inside this process, registered with the
/// scheduler at `scheduler` (on localhost), serving shuffle data on a free port.
pub async fn start_in_process_executor(scheduler: SocketAddr, slots: usize, options: &ServerOptions) -> Result<()> {
    let url = format!("http://localhost:{}", scheduler.port());
    let client = SchedulerGrpcClient::connect(url.clone())
        .await
        .map_err(|e| Error::Run(format!("in-process executor: cannot reach the scheduler at {url}: {e}")))?;
    let (producer, functions) = executor_parts(options, None)?;
    ballista_executor::new_standalone_executor_from_builder(
        client,
        slots,
        config_producer(),
        producer,
        BallistaCodec::default(),
        functions,
    )
    .await
    .map_err(|e| Error::Run(format!("in-process executor: {e}")))
}
