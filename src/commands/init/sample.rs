//! The demo project's data, generated deterministically (same rows on every machine): a shop
//! with customers (CSV), countries (NDJSON) and orders (Parquet, several files).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

/// Countries: (code, name, region).
pub const COUNTRIES: [(&str, &str, &str); 8] = [
    ("DE", "Germany", "Europe"),
    ("FR", "France", "Europe"),
    ("NL", "Netherlands", "Europe"),
    ("US", "United States", "Americas"),
    ("BR", "Brazil", "Americas"),
    ("JP", "Japan", "Asia"),
    ("IN", "India", "Asia"),
    ("KE", "Kenya", "Africa"),
];

/// Order statuses and their weights out of 100.
const STATUSES: [(&str, u64); 4] = [("new", 10), ("paid", 35), ("shipped", 45), ("cancelled", 10)];

/// How many Parquet files the orders are split into.
pub const ORDER_FILES: usize = 4;

/// splitmix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Writes `data/customers.csv`, `data/countries.ndjson` and `data/orders/orders-N.parquet`
/// under `dir`, with `customers` customers and `orders` orders.
pub fn generate(dir: &Path, customers: usize, orders: usize) -> std::io::Result<()> {
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("orders"))?;
    let mut rng = Rng(42);

    let mut csv = String::from("customer_id,name,email,country_code,signup_date\n");
    for id in 1..=customers {
        let (code, _, _) = COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize];
        // Some names carry stray whitespace, as real exports do; the demo cleans it with clean_text().
        let name = if id % 7 == 0 { format!("  Customer   {id:05} ") } else { format!("Customer {id:05}") };
        let day = 19_000 + rng.below(700) as i32;
        let date = chrono::NaiveDate::from_num_days_from_ce_opt(day + 719_163).expect("valid date");
        csv.push_str(&format!("{id},\"{name}\",customer{id}@example.com,{code},{date}\n"));
    }
    std::fs::write(data.join("customers.csv"), csv)?;

    let mut ndjson = String::new();
    for (code, name, region) in COUNTRIES {
        ndjson.push_str(&format!("{{\"code\":\"{code}\",\"name\":\"{name}\",\"region\":\"{region}\"}}\n"));
    }
    std::fs::write(data.join("countries.ndjson"), ndjson)?;

    let schema = Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("customer_id", DataType::Int32, false),
        Field::new("ordered_at", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        Field::new("status", DataType::Utf8, false),
        Field::new("quantity", DataType::Int32, false),
        Field::new("amount", DataType::Decimal128(12, 2), false),
        Field::new("shipped_on", DataType::Date32, true),
    ]));
    let per_file = orders.div_ceil(ORDER_FILES);
    // 2024-01-01T00:00:00 in microseconds since the epoch.
    const START_2024_US: i64 = 1_704_067_200_000_000;
    const YEAR_US: u64 = 366 * 86_400 * 1_000_000;
    let mut next_id: i64 = 1;
    for file in 0..ORDER_FILES {
        let n = per_file.min(orders.saturating_sub(file * per_file));
        let mut ids = Vec::with_capacity(n);
        let mut customer_ids = Vec::with_capacity(n);
        let mut ordered = Vec::with_capacity(n);
        let mut statuses = Vec::with_capacity(n);
        let mut quantities = Vec::with_capacity(n);
        let mut amounts = Vec::with_capacity(n);
        let mut shipped = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(next_id);
            next_id += 1;
            customer_ids.push(1 + rng.below(customers as u64) as i32);
            let ts = START_2024_US + rng.below(YEAR_US) as i64;
            ordered.push(ts);
            let roll = rng.below(100);
            let mut acc = 0;
            let status = STATUSES.iter().find(|(_, w)| {
                acc += w;
                roll < acc
            });
            let status = status.map_or("paid", |(s, _)| s);
            statuses.push(status);
            quantities.push(1 + rng.below(5) as i32);
            amounts.push(100 + rng.below(50_000) as i128);
            let day = (ts / 86_400_000_000) as i32;
            shipped.push((status == "shipped").then(|| day + 1 + rng.below(5) as i32));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Int32Array::from(customer_ids)),
            Arc::new(TimestampMicrosecondArray::from(ordered)),
            Arc::new(StringArray::from(statuses)),
            Arc::new(Int32Array::from(quantities)),
            Arc::new(Decimal128Array::from(amounts).with_precision_and_scale(12, 2).expect("valid decimal")),
            Arc::new(Date32Array::from(shipped)),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(std::io::Error::other)?;
        let file = File::create(data.join("orders").join(format!("orders-{file}.parquet")))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid level")))
            .build();
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(std::io::Error::other)?;
        writer.write(&batch).map_err(std::io::Error::other)?;
        writer.close().map_err(std::io::Error::other)?;
    }
    Ok(())
}
