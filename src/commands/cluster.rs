//! `dfpipe scheduler` and `dfpipe executor`: Ballista's servers, from the same binary, knowing
//! dfpipe's functions and object stores (see [`crate::engine::cluster::servers`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::{MemoryConfig, StorageConfig};
use crate::engine::cluster::servers::{self, ExecutorOptions, ServerOptions};
use crate::engine::object_stores::Credentials;
use crate::error::{Error, Result};
use crate::memory::MemoryBudget;
use crate::util::fmt::human_bytes;

/// `dfpipe executor`'s arguments.
#[derive(Debug, Clone)]
pub struct ExecutorArgs {
    /// `--scheduler HOST:PORT`.
    pub scheduler: String,
    /// `--slots N`.
    pub slots: Option<usize>,
    /// `--bind HOST:PORT`.
    pub bind: SocketAddr,
    /// `--external-host HOST`.
    pub external_host: Option<String>,
    /// `--work-dir DIR`.
    pub work_dir: Option<PathBuf>,
}

fn server_options() -> ServerOptions {
    ServerOptions { storage: StorageConfig::default(), credentials: Credentials::Environment }
}

/// Runs a scheduler until the process is stopped.
pub async fn scheduler(bind: SocketAddr, executor_timeout: u64) -> Result<u8> {
    crate::errln!("dfpipe scheduler listening on {bind}; run with --cluster df://{bind}");
    servers::run_scheduler(bind, Some(executor_timeout), &server_options()).await?;
    Ok(0)
}

/// Runs an executor until the process is stopped; `memory_limit` (`--memory-limit`) bounds its
/// tasks together, else the RAM really available does.
pub async fn executor(args: ExecutorArgs, memory_limit: Option<u64>) -> Result<u8> {
    let scheduler = parse_host_port(&args.scheduler)?;
    let slots = args.slots.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let budget = MemoryBudget::measure(&MemoryConfig { limit: memory_limit, ..MemoryConfig::default() });
    crate::errln!(
        "dfpipe executor: {slots} slot(s), {} for tasks, serving on {}, scheduler {}:{}",
        human_bytes(budget.budget),
        args.bind,
        scheduler.0,
        scheduler.1
    );
    let options = ExecutorOptions {
        scheduler,
        bind: args.bind,
        external_host: args.external_host,
        slots,
        work_dir: args.work_dir,
        memory_bytes: Some(budget.budget),
        server: server_options(),
    };
    servers::run_executor(&options).await?;
    Ok(0)
}

/// `HOST:PORT` → its parts.
fn parse_host_port(text: &str) -> Result<(String, u16)> {
    let bad = || Error::Usage(format!("--scheduler `{text}`: write HOST:PORT, e.g. localhost:50050"));
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse().map_err(|_| bad())?;
    let host = host.trim_matches(['[', ']']);
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}
