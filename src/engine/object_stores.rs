//! Object stores for `s3://`, `gs://`, `az://` (and `abfs(s)://`), `http(s)://` locations.
//!
//! Credentials and endpoints come from the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`), the
//! way each cloud's own tools read them. Every store retries failed requests with exponential
//! backoff (`storage.max_retries`, `storage.retry_timeout_secs`).

use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::prelude::SessionContext;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::{BackoffConfig, RetryConfig};
use url::Url;

use crate::config::StorageConfig;
use crate::error::{Error, Result};

/// The retry policy every store gets.
pub fn retry_config(storage: &StorageConfig) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: storage.max_retries,
        retry_timeout: Duration::from_secs(storage.retry_timeout_secs),
    }
}

/// Where a store's credentials and endpoint come from: the process environment (what a user's
/// shell exports), or given variables (an in-process cluster's servers in tests).
#[derive(Debug, Clone, Default)]
pub enum Credentials {
    /// `AWS_*`, `GOOGLE_*`, `AZURE_*` of this process.
    #[default]
    Environment,
    /// These variables, named as in the environment.
    Given(Vec<(String, String)>),
}

/// Registers the store that serves `location` in `ctx`, unless it is a local path.
/// `what` names the source or output, for messages.
pub fn register(ctx: &SessionContext, location: &str, storage: &StorageConfig, what: &str) -> Result<()> {
    if let Some((base, store)) = build(location, storage, &Credentials::Environment, what)? {
        ctx.register_object_store(&base, store);
    }
    Ok(())
}

/// A store builder from the environment (`None`), or from given variables as lowercase config
/// keys (`aws_endpoint_url`); a variable the builder does not know is ignored, as `from_env` does.
macro_rules! configured {
    ($builder:ident, $vars:expr) => {
        match $vars {
            None => $builder::from_env(),
            Some(vars) => vars.into_iter().fold($builder::new(), |b, (k, v)| match k.parse() {
                Ok(key) => b.with_config(key, v),
                Err(_) => b,
            }),
        }
    };
}

/// Whether `location` is a path on this machine's file system (no store needed).
pub fn is_local(location: &str) -> bool {
    !location.contains("://") || location.starts_with("file://")
}

/// The store serving `location` and the URL prefix it serves (`s3://bucket`), or `None` for a
/// local path.
pub fn build(
    location: &str,
    storage: &StorageConfig,
    credentials: &Credentials,
    what: &str,
) -> Result<Option<(Url, Arc<dyn ObjectStore>)>> {
    if is_local(location) {
        return Ok(None);
    }
    let url =
        Url::parse(location).map_err(|e| Error::Config(format!("{what}: `{location}` is not a valid URL: {e}")))?;
    let fail =
        |e: object_store::Error| Error::Source(format!("{what}: cannot set up the object store for {location}: {e}"));
    let retry = retry_config(storage);
    let given = |prefix: &str| match credentials {
        Credentials::Environment => None,
        Credentials::Given(vars) => Some(
            vars.iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect::<Vec<_>>(),
        ),
    };
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => {
            let builder = configured!(AmazonS3Builder, given("AWS_"));
            Arc::new(builder.with_url(location).with_retry(retry).build().map_err(fail)?)
        }
        "gs" | "gcs" => {
            let builder = configured!(GoogleCloudStorageBuilder, given("GOOGLE_"));
            Arc::new(builder.with_url(location).with_retry(retry).build().map_err(fail)?)
        }
        "az" | "azure" | "abfs" | "abfss" => {
            let builder = configured!(MicrosoftAzureBuilder, given("AZURE_"));
            Arc::new(builder.with_url(location).with_retry(retry).build().map_err(fail)?)
        }
        "http" | "https" => {
            let base = &url[..url::Position::BeforePath];
            Arc::new(HttpBuilder::new().with_url(base).with_retry(retry).build().map_err(fail)?)
        }
        other => {
            return Err(Error::Config(format!(
                "{what}: `{other}://` is not a supported location; use a local path, s3://, gs://, az://, abfs(s):// or http(s)://"
            )));
        }
    };
    let base = Url::parse(&url[..url::Position::BeforePath]).expect("a URL's prefix is a URL");
    Ok(Some((base, store)))
}

/// An object store registry that builds the store for a bucket the first time a plan reads it,
/// from [`Credentials`]: a cluster's scheduler and executors serve whatever locations the jobs
/// sent to them name, without knowing the projects in advance.
#[derive(Debug)]
pub struct OnDemandStores {
    known: DefaultObjectStoreRegistry,
    storage: StorageConfig,
    credentials: Credentials,
}

impl OnDemandStores {
    /// A registry building stores with `storage`'s retries and `credentials`.
    pub fn new(storage: StorageConfig, credentials: Credentials) -> OnDemandStores {
        OnDemandStores { known: DefaultObjectStoreRegistry::new(), storage, credentials }
    }
}

impl ObjectStoreRegistry for OnDemandStores {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.known.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        let what = format!("location {url}");
        match build(url.as_str(), &self.storage, &self.credentials, &what) {
            Ok(Some((base, store))) => {
                self.known.register_store(&base, store.clone());
                Ok(store)
            }
            Ok(None) => self.known.get_store(url),
            Err(e) => Err(datafusion::error::DataFusionError::External(Box::new(e))),
        }
    }
}
