//! The PostgreSQL binary COPY encoder alone, per type family: bytes/s and rows/s of encoding
//! 100,000-row batches (a tenth of them NULL) into the wire format.
//!
//! `cargo bench --bench encoder`

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use dfpipe::sinks::postgres::encode::Encoder;

const ROWS: usize = 100_000;

fn nullable<T>(i: usize, v: T) -> Option<T> {
    (!i.is_multiple_of(10)).then_some(v)
}

fn batch(family: &str) -> RecordBatch {
    let columns: Vec<(&str, ArrayRef)> = match family {
        "integers" => vec![
            ("i32", Arc::new((0..ROWS).map(|i| nullable(i, i as i32)).collect::<Int32Array>())),
            ("i64", Arc::new((0..ROWS).map(|i| nullable(i, (i * 7919) as i64)).collect::<Int64Array>())),
        ],
        "floats" => vec![("f64", Arc::new((0..ROWS).map(|i| nullable(i, i as f64 * 0.37)).collect::<Float64Array>()))],
        "decimals" => vec![(
            "dec",
            Arc::new(
                (0..ROWS)
                    .map(|i| nullable(i, (i as i128) * 104_729 - 5_000_000))
                    .collect::<Decimal128Array>()
                    .with_precision_and_scale(15, 2)
                    .unwrap(),
            ),
        )],
        "text" => vec![(
            "s",
            Arc::new((0..ROWS).map(|i| nullable(i, format!("customer number {i}"))).collect::<StringArray>()),
        )],
        "temporal" => vec![
            ("d", Arc::new((0..ROWS).map(|i| nullable(i, 19_000 + (i % 3000) as i32)).collect::<Date32Array>())),
            (
                "ts",
                Arc::new(
                    (0..ROWS)
                        .map(|i| nullable(i, 1_700_000_000_000_000 + i as i64))
                        .collect::<TimestampMicrosecondArray>(),
                ),
            ),
        ],
        other => unreachable!("{other}"),
    };
    let schema =
        Schema::new(columns.iter().map(|(n, c)| Field::new(*n, c.data_type().clone(), true)).collect::<Vec<_>>());
    RecordBatch::try_new(Arc::new(schema), columns.into_iter().map(|(_, c)| c).collect()).unwrap()
}

fn encoder(c: &mut Criterion) {
    let mut group = c.benchmark_group("pg_copy_encoder");
    for family in ["integers", "floats", "decimals", "text", "temporal"] {
        let batch = batch(family);
        let mut encoder = Encoder::default();
        let bytes = encoder.encode(&batch).unwrap().len();
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_with_input(BenchmarkId::new("bytes", family), &batch, |b, batch| {
            b.iter(|| encoder.encode(batch).unwrap().len())
        });
        group.throughput(Throughput::Elements(ROWS as u64));
        group.bench_with_input(BenchmarkId::new("rows", family), &batch, |b, batch| {
            b.iter(|| encoder.encode(batch).unwrap().len())
        });
    }
    group.finish();
}

criterion_group!(benches, encoder);
criterion_main!(benches);
