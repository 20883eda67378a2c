//! Sink throughput: one million generated rows (int64, decimal, text, timestamp) written
//! through the DuckDB sink and the Parquet writer. Reports rows/s.
//!
//! `cargo bench --bench sinks`

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{ArrayRef, Decimal128Array, Int64Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::prelude::SessionContext;
use dfpipe::config::{DuckDbTarget, Mode, TableName};
use dfpipe::sinks;
use dfpipe::util::progress::RowCounter;

const ROWS: usize = 1_000_000;
const BATCH: usize = 8192;

fn table() -> Arc<MemTable> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("amount", DataType::Decimal128(12, 2), false),
        Field::new("name", DataType::Utf8, false),
        Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, None), false),
    ]));
    let batches = (0..ROWS)
        .step_by(BATCH)
        .map(|start| {
            let ids: Vec<i64> = (start as i64..(start + BATCH).min(ROWS) as i64).collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(
                    Decimal128Array::from(ids.iter().map(|i| (*i as i128) * 7 % 100_000).collect::<Vec<_>>())
                        .with_precision_and_scale(12, 2)
                        .unwrap(),
                ),
                Arc::new(StringArray::from(ids.iter().map(|i| format!("customer {i}")).collect::<Vec<_>>())),
                Arc::new(TimestampMicrosecondArray::from(
                    ids.iter().map(|i| 1_700_000_000_000_000 + i * 1_000_000).collect::<Vec<_>>(),
                )),
            ];
            RecordBatch::try_new(schema.clone(), columns).unwrap()
        })
        .collect();
    Arc::new(MemTable::try_new(schema, vec![batches]).unwrap())
}

fn sinks(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ctx = SessionContext::new();
    ctx.register_table("src", table()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("sinks");
    group.sample_size(10).throughput(Throughput::Elements(ROWS as u64));

    group.bench_function("duckdb_replace_1m_rows", |b| {
        b.iter(|| {
            rt.block_on(async {
                let df = ctx.table("src").await.unwrap();
                let target = DuckDbTarget {
                    connection: "bench".into(),
                    path: dir.path().join("bench.duckdb"),
                    table: TableName { schema: None, name: "t".into() },
                };
                let schema = Arc::new(df.schema().as_arrow().clone());
                let sink = sinks::duckdb::DuckDbSink::new(target, schema, Mode::Replace, vec![], RowCounter::hidden());
                ctx.register_table("sink", Arc::new(sinks::SinkTable::new(Arc::new(sink), Mode::Replace, "bench")))
                    .unwrap();
                df.write_table("sink", DataFrameWriteOptions::new().with_insert_operation(InsertOp::Overwrite))
                    .await
                    .unwrap();
                ctx.deregister_table("sink").unwrap();
            })
        })
    });

    group.bench_function("parquet_replace_1m_rows", |b| {
        let path = dir.path().join("bench.parquet").display().to_string();
        b.iter(|| {
            rt.block_on(async {
                let df = ctx.table("src").await.unwrap();
                sinks::parquet::write(df, &path, true, "zstd(3)", Mode::Replace, None).await.unwrap()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, sinks);
criterion_main!(benches);
