//! The runtime's cache of Parquet footers, kept without their page indexes.
//!
//! DataFusion 54 caches each file's metadata for the run, and when it reads a footer for planning
//! (schema, statistics) it loads the page index with it, because a cache is there. A scan without
//! a filter never reads the page index, yet the cache held it through the whole load: 5.3 MiB for
//! lineitem SF10 (524 row groups), a tenth of the heap, growing with the file. This cache keeps
//! the footer and drops the page index; a scan that prunes pages with a filter loads the index
//! itself for as long as it reads that file (DataFusion's opener asks for it only then).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
use datafusion::execution::cache::cache_manager::{CachedFileMetadataEntry, FileMetadataCache, FileMetadataCacheEntry};
use datafusion::execution::cache::{CacheAccessor, DefaultFilesMetadataCache};
use datafusion::parquet::file::metadata::ParquetMetaDataBuilder;
use object_store::path::Path;

/// DataFusion's metadata cache, storing Parquet footers without their page indexes.
pub struct FooterCache(DefaultFilesMetadataCache);

impl std::fmt::Debug for FooterCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FooterCache of {} file(s), {} bytes", self.0.len(), self.0.memory_used())
    }
}

impl FooterCache {
    /// A cache of at most `limit` bytes (DataFusion's `metadata_cache_limit`).
    pub fn new(limit: usize) -> Self {
        FooterCache(DefaultFilesMetadataCache::new(limit))
    }
}

/// `entry` without the page index, when it is a Parquet footer that has one.
fn without_page_index(entry: CachedFileMetadataEntry) -> CachedFileMetadataEntry {
    let Some(parquet) = entry.file_metadata.as_any().downcast_ref::<CachedParquetMetaData>() else {
        return entry;
    };
    let metadata = parquet.parquet_metadata();
    if metadata.column_index().is_none() && metadata.offset_index().is_none() {
        return entry;
    }
    let footer = ParquetMetaDataBuilder::new_from_metadata(metadata.as_ref().clone())
        .set_column_index(None)
        .set_offset_index(None)
        .build();
    CachedFileMetadataEntry::new(entry.meta, Arc::new(CachedParquetMetaData::new(Arc::new(footer))))
}

impl CacheAccessor<Path, CachedFileMetadataEntry> for FooterCache {
    fn get(&self, key: &Path) -> Option<CachedFileMetadataEntry> {
        self.0.get(key)
    }

    fn put(&self, key: &Path, value: CachedFileMetadataEntry) -> Option<CachedFileMetadataEntry> {
        self.0.put(key, without_page_index(value))
    }

    fn remove(&self, key: &Path) -> Option<CachedFileMetadataEntry> {
        self.0.remove(key)
    }

    fn contains_key(&self, key: &Path) -> bool {
        self.0.contains_key(key)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn clear(&self) {
        self.0.clear()
    }

    fn name(&self) -> String {
        "FooterCache".to_string()
    }
}

impl FileMetadataCache for FooterCache {
    fn cache_limit(&self) -> usize {
        self.0.cache_limit()
    }

    fn update_cache_limit(&self, limit: usize) {
        self.0.update_cache_limit(limit)
    }

    fn list_entries(&self) -> HashMap<Path, FileMetadataCacheEntry> {
        self.0.list_entries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::execution::cache::cache_manager::CacheManagerConfig;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

    /// 10,000 ids in pages of 500 rows, with a page index.
    fn write_ids(path: &std::path::Path) {
        let batch =
            RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from_iter_values(0..10_000)) as _)]).unwrap();
        let props = WriterProperties::builder().set_data_page_row_count_limit(500).set_write_batch_size(500).build();
        let mut writer =
            ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    /// Runs `sql` over the file as `t` with `cache` as the metadata cache, then `EXPLAIN ANALYZE`
    /// of it: the count it returns, whether the cached footer holds a page index, and the pages
    /// the page index pruned, as DataFusion's metrics say.
    async fn count_and_cached_index(
        path: &std::path::Path,
        cache: Option<Arc<dyn FileMetadataCache>>,
        sql: &str,
    ) -> (i64, bool, String) {
        let runtime = RuntimeEnvBuilder::new()
            .with_cache_manager(CacheManagerConfig::default().with_file_metadata_cache(cache))
            .build_arc()
            .unwrap();
        let ctx = SessionContext::new_with_config_rt(SessionConfig::new().with_target_partitions(2), runtime);
        ctx.register_parquet("t", path.to_str().unwrap(), ParquetReadOptions::default()).await.unwrap();
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let count = batches[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
        let explained = ctx.sql(&format!("EXPLAIN ANALYZE {sql}")).await.unwrap().collect().await.unwrap();
        let plan = datafusion::arrow::util::pretty::pretty_format_batches(&explained).unwrap().to_string();
        let pruned = plan.split("page_index_pages_pruned=").nth(1).map_or("", |m| m.split(',').next().unwrap());
        let cached = ctx.runtime_env().cache_manager.get_file_metadata_cache();
        let key = Path::from_filesystem_path(path).unwrap();
        let entry = cached.get(&key).expect("the footer is cached");
        let parquet = entry.file_metadata.as_any().downcast_ref::<CachedParquetMetaData>().unwrap();
        (count, parquet.parquet_metadata().column_index().is_some(), pruned.to_string())
    }

    #[tokio::test]
    async fn footers_are_cached_without_the_page_index_datafusion_would_keep() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.parquet");
        write_ids(&path);
        let all = "SELECT count(*) FROM t";
        // DataFusion's own cache keeps the page index a plain scan never reads.
        let (count, indexed, _) = count_and_cached_index(&path, None, all).await;
        assert_eq!((count, indexed), (10_000, true));
        let footers = || Some(Arc::new(FooterCache::new(1 << 20)) as Arc<dyn FileMetadataCache>);
        let (count, indexed, _) = count_and_cached_index(&path, footers(), all).await;
        assert_eq!((count, indexed), (10_000, false));
        // A filtered scan still prunes pages with the index it loads itself, and answers right;
        // the cache stays lean.
        let some = "SELECT count(*) FROM t WHERE id BETWEEN 4200 AND 4299";
        assert_eq!(
            count_and_cached_index(&path, footers(), some).await,
            (100, false, "20 total → 1 matched".to_string())
        );
    }
}
