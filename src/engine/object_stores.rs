//! Object stores for `s3://`, `gs://`, `az://` (and `abfs(s)://`), `http(s)://` locations.
//!
//! Credentials and endpoints come from the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`), the
//! way each cloud's own tools read them. Every store retries failed requests with exponential
//! backoff (`storage.max_retries`, `storage.retry_timeout_secs`).

use std::sync::Arc;
use std::time::Duration;

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

/// Registers the store that serves `location` in `ctx`, unless it is a local path.
/// `what` names the source or output, for messages.
pub fn register(ctx: &SessionContext, location: &str, storage: &StorageConfig, what: &str) -> Result<()> {
    if !location.contains("://") || location.starts_with("file://") {
        return Ok(());
    }
    let url =
        Url::parse(location).map_err(|e| Error::Config(format!("{what}: `{location}` is not a valid URL: {e}")))?;
    let fail =
        |e: object_store::Error| Error::Source(format!("{what}: cannot set up the object store for {location}: {e}"));
    let retry = retry_config(storage);
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => {
            Arc::new(AmazonS3Builder::from_env().with_url(location).with_retry(retry).build().map_err(fail)?)
        }
        "gs" | "gcs" => {
            Arc::new(GoogleCloudStorageBuilder::from_env().with_url(location).with_retry(retry).build().map_err(fail)?)
        }
        "az" | "azure" | "abfs" | "abfss" => {
            Arc::new(MicrosoftAzureBuilder::from_env().with_url(location).with_retry(retry).build().map_err(fail)?)
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
    ctx.register_object_store(&base, store);
    Ok(())
}
