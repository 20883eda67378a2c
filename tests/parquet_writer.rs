//! The Parquet writer's settings: dfpipe's defaults where they differ from DataFusion's, and the
//! project's `datafusion:` section winning over them.

use datafusion::parquet::basic::Encoding;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

use crate::util::*;

/// For each column of `path`'s only row group: (name, whether any data page is plain, whether
/// any is dictionary-encoded), from the page encodings the writer recorded.
fn page_encodings(path: &std::path::Path) -> Vec<(String, bool, bool)> {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let metadata = reader.metadata();
    assert_eq!(metadata.num_row_groups(), 1, "{}", path.display());
    metadata
        .row_group(0)
        .columns()
        .iter()
        .map(|c| {
            let pages = c.page_encoding_stats_mask().expect("page encodings recorded");
            (c.column_path().string(), pages.is_set(Encoding::PLAIN), pages.is_set(Encoding::RLE_DICTIONARY))
        })
        .collect()
}

#[test]
fn a_column_of_mostly_distinct_values_is_written_plain_past_a_64_kib_dictionary_unless_the_project_sets_it() {
    let p = Project::new();
    // 50,000 distinct ids (400 KB of dictionary: under DataFusion's 1 MiB limit, over dfpipe's
    // 64 KiB) and a flag of four values.
    let mut csv = String::from("id,flag\n");
    for id in 1..=50_000 {
        csv.push_str(&format!("{id},{}\n", ["a", "b", "c", "d"][id % 4]));
    }
    p.write("raw.csv", &csv);
    p.write("sql/m.sql", "SELECT id, flag FROM raw ORDER BY id\n");
    let config = |datafusion: &str| {
        format!(
            "name: t\nsources:\n  raw: {{ path: raw.csv }}\n{datafusion}outputs:\n  - model: m\n    to: out.parquet\n"
        )
    };

    p.write("dfpipe.yml", &config(""));
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(id_sum(&p), (1_250_025_000, 50_000));
    assert_eq!(
        page_encodings(&p.file("out.parquet")),
        vec![("id".to_string(), true, true), ("flag".to_string(), false, true)],
        "ids: dictionary pages until the dictionary holds 64 KiB, plain after; flags: all dictionary"
    );

    p.write("dfpipe.yml", &config("datafusion: { execution.parquet.dictionary_page_size_limit: 1048576 }\n"));
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(id_sum(&p), (1_250_025_000, 50_000));
    assert_eq!(
        page_encodings(&p.file("out.parquet")),
        vec![("id".to_string(), false, true), ("flag".to_string(), false, true)],
        "with the project's 1 MiB, every id page is dictionary-encoded"
    );
}

/// Sum of `id` and rows of the project's out.parquet.
fn id_sum(p: &Project) -> (i64, usize) {
    use datafusion::arrow::array::{Array, Int64Array};
    let batches = read_parquet(&p.file("out.parquet"));
    let sum = batches
        .iter()
        .map(|b| {
            b.column_by_name("id").unwrap().as_any().downcast_ref::<Int64Array>().unwrap().iter().flatten().sum::<i64>()
        })
        .sum();
    (sum, batches.iter().map(|b| b.num_rows()).sum())
}
