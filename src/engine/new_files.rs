//! A source narrowed to some of its files: [`FilesOnly`] wraps the source's listing table and
//! drops every other file from its scans, so partition columns, pushdown and everything else
//! of the listing table stay as they are (`by: files` outputs read only their new files).

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Statistics;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::TableType;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

/// A table reading only the files in `keep` (full locations: store URL and path) of `inner`.
#[derive(Debug)]
pub struct FilesOnly {
    inner: Arc<dyn TableProvider>,
    keep: Arc<BTreeSet<String>>,
}

impl FilesOnly {
    /// Narrows `inner` to `keep`.
    pub fn new(inner: Arc<dyn TableProvider>, keep: BTreeSet<String>) -> Self {
        FilesOnly { inner, keep: Arc::new(keep) }
    }
}

#[async_trait]
impl TableProvider for FilesOnly {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.scan(state, projection, filters, limit).await?;
        let keep = self.keep.clone();
        plan.transform_up(|node| {
            let any: &dyn Any = node.as_ref();
            let Some(exec) = any.downcast_ref::<DataSourceExec>() else { return Ok(Transformed::no(node)) };
            let Some(config) = (exec.data_source().as_ref() as &dyn Any).downcast_ref::<FileScanConfig>() else {
                return Ok(Transformed::no(node));
            };
            let root = config.object_store_url.as_str().to_string();
            let groups: Vec<FileGroup> = config
                .file_groups
                .iter()
                .map(|g| {
                    let files =
                        g.files().iter().filter(|f| keep.contains(&format!("{root}{}", f.object_meta.location)));
                    FileGroup::new(files.cloned().collect())
                })
                .filter(|g| !g.is_empty())
                .collect();
            let schema = config.file_source().table_schema().table_schema().clone();
            // The listing's statistics counted every file: unknown now.
            let narrowed = FileScanConfigBuilder::from(config.clone())
                .with_file_groups(groups)
                .with_statistics(Statistics::new_unknown(&schema))
                .build();
            let narrowed: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(narrowed);
            Ok(Transformed::yes(narrowed))
        })
        .map(|t| t.data)
    }
}
