//! Running outputs on an Apache DataFusion Ballista cluster: the cluster computes, dfpipe
//! commits.
//!
//! [`remote`] is the client side: each output's SELECT is planned in a Ballista-upgraded copy of
//! the run's session and executed on the cluster; its result stream comes back to this process,
//! which feeds the usual sinks (so transactions, atomic replace, merge, checks and quarantine
//! are the same as on one machine, and a task Ballista retries can never write twice).
//! [`servers`] starts a scheduler or an executor with dfpipe's functions and object stores, for
//! `dfpipe scheduler`, `dfpipe executor` and the tests' in-process cluster.

pub mod remote;
pub mod servers;

pub use remote::{Cluster, ClusterWork, RemoteJob};
