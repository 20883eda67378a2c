//! Which files a source reads and how they become one table: subdirectories and globs read
//! every file they name, CSV files with different headers are refused by name, a column empty
//! in the inference sample keeps its later values, a JSON key first seen late is kept.

use crate::util::*;

fn project(source: &str, files: &[(&str, &str)]) -> Project {
    let p = Project::new();
    for (name, text) in files {
        p.write(name, text);
    }
    p.write("dfpipe.yml", &format!("name: s\nsources:\n  raw: {{ {source} }}\n"));
    p.write("sql/m.sql", "SELECT * FROM raw\n");
    p
}

const NESTED: [(&str, &str); 4] = [
    ("data/2024/01/a.csv", "id,v\n1,10\n"),
    ("data/2024/02/b.csv", "id,v\n2,20\n"),
    ("data/top.csv", "id,v\n3,30\n"),
    ("data/_tmp/x.csv", "id,v\n99,990\n"),
];

fn ids(p: &Project) -> String {
    one(p.duckdb("SELECT string_agg(id::VARCHAR, ',' ORDER BY id) FROM m"))
}

#[test]
fn a_directory_is_read_with_its_subdirectories_but_not_hidden_ones() {
    let p = project("path: data", &NESTED);
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(ids(&p), "1,2,3");
}

#[test]
fn a_glob_star_stays_in_its_folder_and_a_double_star_crosses_them() {
    for (glob, expected) in [
        ("data/*.csv", "3"),
        ("data/**/*.csv", "1,2,3,99"),
        ("data/*/*/*.csv", "1,2"),
        ("data/2024/0[12]/*.csv", "1,2"),
    ] {
        let p = project(&format!("path: \"{glob}\""), &NESTED);
        assert_success(&p.dfpipe(&["run", "-q"]));
        assert_eq!(ids(&p), expected, "{glob}");
    }
}

#[test]
fn csv_files_whose_headers_differ_are_refused_by_name() {
    let p = project(
        "path: data",
        &[("data/a.csv", "id,first,last\n1,Ann,Lee\n"), ("data/b.csv", "id,last,first\n2,Smith,Bob\n")],
    );
    let out = p.dfpipe(&["run", "-q"]);
    let root = p.path().canonicalize().unwrap();
    let root = root.display();
    assert_error(
        &out,
        1,
        &format!(
            "source `raw` (data): its files do not share one header: {root}/data/a.csv has `id, first, last`, \
             {root}/data/b.csv has `id, last, first`. A CSV source's columns are read by position, so each of its \
             files must have the same columns in the same order: fix the header, or give the files sources of \
             their own and combine them by name in a model"
        ),
    );
    assert!(
        !p.file("dfpipe.duckdb").exists()
            || p.duckdb("SELECT count(*) FROM information_schema.tables WHERE table_name = 'm'")[0][0] == "0"
    );
}

#[test]
fn files_whose_schemas_do_not_merge_are_named() {
    let p = project(
        "path: data, format: json",
        &[("data/a.json", "{\"v\": 1}\n{\"v\": 2}\n"), ("data/b.json", "{\"v\": \"x\"}\n")],
    );
    let out = p.dfpipe(&["run", "-q"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let root = p.path().canonicalize().unwrap();
    assert!(
        err.contains(&format!("{}/data/b.json does not match {}/data/a.json: ", root.display(), root.display()))
            && err.contains("give the column one type in the source's `schema:`, or split the files"),
        "{err}"
    );
}

#[test]
fn a_column_empty_in_the_inference_sample_keeps_its_later_values() {
    let mut csv = String::from("id,note\n");
    for i in 0..1500 {
        csv.push_str(&format!("{i},\n"));
    }
    csv.push_str("1500,hello\n");
    let p = project("path: data/t.csv", &[("data/t.csv", &csv)]);
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        p.duckdb("SELECT count(*)::VARCHAR, count(note)::VARCHAR, max(note), typeof(max(note)) FROM m"),
        [["1501", "1", "hello", "VARCHAR"]]
    );
}

#[test]
fn a_json_key_first_seen_after_a_thousand_lines_is_kept() {
    let mut json = String::new();
    for i in 0..1500 {
        json.push_str(&format!("{{\"id\": {i}}}\n"));
    }
    json.push_str("{\"id\": 1500, \"extra\": \"x\"}\n");
    let p = project("path: data/e.json", &[("data/e.json", &json)]);
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(p.duckdb("SELECT count(*)::VARCHAR, count(extra)::VARCHAR, max(extra) FROM m"), [["1501", "1", "x"]]);
}

#[test]
fn an_empty_file_is_refused_before_anything_runs() {
    let p = project("path: data/t.csv", &[("data/t.csv", "")]);
    assert_error(
        &p.dfpipe(&["run", "-q"]),
        1,
        "source `raw` (data/t.csv): its file is empty (0 bytes): a source needs a file with its columns (a header, or data)",
    );
}

#[test]
fn csv_null_regex_nulls_matching_values_and_decimals_round_as_databases_do() {
    let p = Project::new();
    p.write("data/a.csv", "id,price,qty,name,day\n1,1.005,3,a,2024-01-02\n2,NA,NA,NA,NA\n3,2.675,,,\n");
    p.write("data/b.csv", "id,price,qty,name,day\n4,-1.005,7,NASA,2024-02-03\n5,0.999,N/A,n/a,2024-02-04\n");
    p.write(
        "dfpipe.yml",
        "name: n\nsources:\n  raw: { path: data/, schema: { price: 'DECIMAL(10,2)' }, options: { null_regex: '^(NA|N/A)$' } }\n",
    );
    p.write("sql/m.sql", "SELECT * FROM raw\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    let rows = p.duckdb(
        "SELECT id::VARCHAR, price::VARCHAR, qty::VARCHAR, name, day::VARCHAR, typeof(price) || ' ' || typeof(qty) || ' ' || typeof(day) \
         FROM m ORDER BY id",
    );
    let types = "DECIMAL(10,2) BIGINT DATE";
    assert_eq!(
        rows,
        [
            ["1", "1.01", "3", "a", "2024-01-02", types],
            ["2", "NULL", "NULL", "NULL", "NULL", types],
            ["3", "2.68", "NULL", "NULL", "NULL", types],
            ["4", "-1.01", "7", "NASA", "2024-02-03", types],
            ["5", "1.00", "NULL", "n/a", "2024-02-04", types],
        ]
    );

    // A value that is not of its column's type names the file and the column.
    p.write("data/c.csv", "id,price,qty,name,day\n6,1.5x,1,c,2024-03-01\n");
    let out = p.dfpipe(&["run", "-q"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("the value '1.5x' is not a number a Decimal128(10, 2) can hold"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "\n  in file data/c.csv (source `raw`); column `price` (Decimal128(10, 2)) holds it; correct the value, \
             or read the column as text with `schema: { price: varchar }` on the source and convert it in a model; \
             fix or remove that file and run again\n"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(one(p.duckdb("SELECT count(*)::VARCHAR FROM m")), "5");
}

#[test]
fn json_columns_keep_the_order_their_keys_first_appear_in() {
    let p = Project::new();
    p.write(
        "data/d.ndjson",
        "{\"zeta\": 1, \"alpha\": \"x\", \"mid\": 2.5}\n{\"extra\": true, \"zeta\": 2, \"alpha\": \"y\"}\n",
    );
    p.write("dfpipe.yml", "name: j\nsources:\n  d: { path: data/d.ndjson }\n");
    p.write("sql/m.sql", "SELECT * FROM d\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    let columns = p.duckdb(
        "SELECT string_agg(column_name, ', ' ORDER BY column_index) FROM duckdb_columns() WHERE table_name = 'm'",
    );
    assert_eq!(one(columns), "zeta, alpha, mid, extra");
}

#[test]
fn csv_null_regex_matches_whole_values_and_nulls_before_casting() {
    let p = Project::new();
    p.write("x.csv", "id,flag,name,amount\n1,true,NANCY,1.5\n2,NA,NA,NA\n3,false,DANA,99999.995\n");
    p.write(
        "dfpipe.yml",
        "name: n\nsources:\n  x: { path: x.csv, schema: { amount: 'DECIMAL(7,2)' }, options: { null_regex: NA } }\n",
    );
    p.write("sql/m.sql", "SELECT * FROM x\n");
    // 99999.995 rounds to 100000.00, which DECIMAL(7,2) cannot hold: the file and column are named.
    let out = p.dfpipe(&["run", "-q"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("\n  in file x.csv (source `x`); column `amount` (Decimal128(7, 2)) holds it; "),
        "{}",
        stderr(&out)
    );
    p.write("x.csv", "id,flag,name,amount\n1,true,NANCY,1.5\n2,NA,NA,NA\n3,false,DANA,99999.99\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    let rows = p.duckdb("SELECT id::VARCHAR, flag::VARCHAR, name, amount::VARCHAR FROM m ORDER BY id");
    assert_eq!(
        rows,
        [["1", "true", "NANCY", "1.50"], ["2", "NULL", "NULL", "NULL"], ["3", "false", "DANA", "99999.99"]]
    );
}

/// Writes `ids` as a Parquet file of one Int64 column `id`.
fn write_parquet(path: &std::path::Path, ids: &[i64]) {
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let schema = std::sync::Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(schema, vec![std::sync::Arc::new(Int64Array::from(ids.to_vec()))]).unwrap();
    write_parquet_batch(path, &batch, None);
}

#[test]
fn a_sorted_model_of_not_null_columns_keeps_its_order_in_a_parquet_file() {
    // Parquet outputs wrap NOT NULL columns to write them nullable; the optimizer then saw the
    // sorted columns unordered and joined the sorted partitions as they came (batches in order,
    // the file not).
    let p = Project::new();
    let shuffled = |offset: i64| (0..30_000).map(|i| (i * 7_919 + offset) % 60_000).collect::<Vec<i64>>();
    write_parquet(&p.file("data/a.parquet"), &shuffled(0));
    write_parquet(&p.file("data/b.parquet"), &shuffled(30_011));
    p.write(
        "dfpipe.yml",
        "name: s\nsources:\n  raw: { path: data }\noutputs:\n  - model: m\n    to: out/sorted.parquet\n\
         datafusion: { execution.target_partitions: 4, execution.batch_size: 1024 }\n",
    );
    p.write("sql/m.sql", "SELECT id % 7 AS k, id FROM raw ORDER BY k, id DESC\n");
    for strategy in ["in_memory", "spill"] {
        assert_success(&p.dfpipe(&["run", "-q", "--strategy", strategy]));
        let keys: Vec<(i64, i64)> = read_parquet(&p.file("out/sorted.parquet"))
            .iter()
            .flat_map(|b| {
                let column = |i: usize| {
                    b.column(i).as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().unwrap().clone()
                };
                let (k, id) = (column(0), column(1));
                (0..b.num_rows()).map(move |r| (k.value(r), id.value(r)))
            })
            .collect();
        assert_eq!(keys.len(), 60_000, "{strategy}");
        let out_of_order = keys.windows(2).filter(|w| (w[0].0, -w[0].1) > (w[1].0, -w[1].1)).count();
        assert_eq!(out_of_order, 0, "{strategy}: {:?}", &keys[..5]);
    }
}

#[test]
fn a_directory_reads_its_format_by_name_in_any_case_compressed_or_not() {
    // Upper-case names are read; notes beside the data are not.
    let p = project(
        "path: data",
        &[("data/A.CSV", "id,v\n1,10\n"), ("data/b.csv", "id,v\n2,20\n"), ("data/README.md", "# notes\n")],
    );
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(ids(&p), "1,2");

    // A directory of gzipped TSV files is read as gzip, tab-separated.
    let p = project("path: data", &[("data/a.tsv", "id\tv\n1\t10\n"), ("data/b.tsv", "id\tv\n2\t20\n")]);
    let gzip = std::process::Command::new("gzip").arg("data/a.tsv").arg("data/b.tsv").current_dir(p.path()).status();
    assert!(gzip.unwrap().success(), "gzip must be installed");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(p.duckdb("SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM m"), [["1:10,2:20"]]);

    // A Parquet directory with notes in it.
    let p = project("path: data", &[("data/README.md", "# notes\n")]);
    write_parquet(&p.file("data/part-0.parquet"), &[1, 2]);
    write_parquet(&p.file("data/part-1.PARQUET"), &[3]);
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(ids(&p), "1,2,3");
}

#[test]
fn a_directory_mixing_compressed_and_plain_files_is_refused_naming_both() {
    let p = project("path: data", &[("data/a.csv", "id,v\n1,10\n"), ("data/b.csv.gz", "not read\n")]);
    let out = p.dfpipe(&["run", "-q"]);
    let root = p.path().canonicalize().unwrap();
    let root = root.display();
    assert_error(
        &out,
        1,
        &format!(
            "source `raw` (data): {root}/data/a.csv (uncompressed) and {root}/data/b.csv.gz (gzip) are csv files of \
             different kinds: a source reads one kind; give each kind a source of its own (e.g. a glob such as \
             `*.csv.gz`), or set `options.extension` to the one to read"
        ),
    );
    // With the compression declared, the plain file is the odd one.
    let p = project(
        "path: data, options: { compression: gzip }",
        &[("data/a.csv", "id,v\n1,10\n"), ("data/b.csv.gz", "not read\n")],
    );
    let err = stderr(&p.dfpipe(&["run", "-q"]));
    assert!(
        err.contains("data/a.csv (uncompressed) and ") && err.contains("data/b.csv.gz (gzip) are csv files"),
        "{err}"
    );
}

#[test]
fn a_csv_header_that_leaves_a_column_unnamed_or_names_one_twice_is_refused() {
    let p = project("path: data/t.csv", &[("data/t.csv", "id,,v\n1,2,3\n")]);
    let root = p.path().canonicalize().unwrap();
    let fix = "fix the header, or set `header: false` on the source and name the columns in a model (they are read \
               as column_1, column_2, …)";
    assert_error(
        &p.dfpipe(&["run", "-q"]),
        1,
        &format!(
            "source `raw` (data/t.csv): column 2 of the header of {}/data/t.csv has no name: {fix}",
            root.display()
        ),
    );
    p.write("data/t.csv", "id,v,id\n1,2,3\n");
    assert_error(
        &p.dfpipe(&["run", "-q"]),
        1,
        &format!(
            "source `raw` (data/t.csv): the header of {}/data/t.csv names columns 1 and 3 both `id`: {fix}",
            root.display()
        ),
    );
    // Read without the header, the columns are numbered.
    p.write("dfpipe.yml", "name: s\nsources:\n  raw: { path: data/t.csv, options: { header: false } }\n");
    p.write("sql/m.sql", "SELECT column_1 AS a, column_3 AS c FROM raw WHERE column_1 <> 'id'\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(p.duckdb("SELECT a || ':' || c FROM m"), [["1:3"]]);
}

#[test]
fn csv_values_clean_makes_decimal_are_read_from_their_text() {
    // Through a float, 1.005 was 1.00499999… and rounded to 1.00; 2.675 to 2.67;
    // 9007199254740993 was …992. An exponent is applied to the digits as text.
    let csv = "id,price,rate\n1,1.005,2.675\n2,1.5e3,0.125\n3,1.005e0,9007199254740993e0\n";
    let p =
        project("path: data/t.csv, clean: { casts: { price: 'DECIMAL(10,2)' }, decimals: 2 }", &[("data/t.csv", csv)]);
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        p.duckdb("SELECT id::VARCHAR, price::VARCHAR, rate::VARCHAR, typeof(price), typeof(rate) FROM m ORDER BY id"),
        [
            ["1", "1.01", "2.68", "DECIMAL(10,2)", "DECIMAL(38,2)"],
            ["2", "1500.00", "0.13", "DECIMAL(10,2)", "DECIMAL(38,2)"],
            ["3", "1.01", "9007199254740993.00", "DECIMAL(10,2)", "DECIMAL(38,2)"]
        ]
    );
    // A value too large for the cast's precision names its file and column.
    p.write("data/t.csv", "id,price,rate\n1,123456789.5,1.5\n");
    let err = stderr(&p.dfpipe(&["run", "-q"]));
    assert!(
        err.contains("\n  in file data/t.csv (source `raw`); column `price` (Decimal128(10, 2)) holds it"),
        "{err}"
    );
}

#[test]
fn hive_folder_values_are_unescaped_and_the_default_partition_is_null() {
    // Spark and Hive escape what a path may not hold and write NULL as __HIVE_DEFAULT_PARTITION__;
    // the values were read as they stand (`New%20York`, the text of the default partition).
    let files = [
        ("data/city=New%20York/ts=2024-01-01 00%3A00%3A00/a.csv", "id\n1\n"),
        ("data/city=__HIVE_DEFAULT_PARTITION__/ts=2024-01-02 00%3A00%3A00/b.csv", "id\n2\n"),
        ("data/city=Paris/ts=x/c.csv", "id\n3\n"),
    ];
    for source in ["path: data", "path: data, options: { null_regex: NA }"] {
        let p = project(source, &files);
        p.write("sql/ny.sql", "SELECT id FROM raw WHERE city = 'New York'\n");
        assert_success(&p.dfpipe(&["run", "-q"]));
        assert_eq!(
            one(p.duckdb("SELECT string_agg(id || ':' || coalesce(city, 'NULL') || ':' || ts, ',' ORDER BY id) FROM m")),
            "1:New York:2024-01-01 00:00:00,2:NULL:2024-01-02 00:00:00,3:Paris:x",
            "{source}"
        );
        assert_eq!(one(p.duckdb("SELECT string_agg(CAST(id AS VARCHAR), ',') FROM ny")), "1", "{source}");
    }
}

#[test]
fn json_numbers_made_decimal_are_read_from_their_text_and_round() {
    // Arrow's JSON reader cut declared decimals at their scale (1.005 -> 1.00) and read
    // numbers `clean:` makes decimal as floats (2.675 -> 2.67, 9007199254740993 -> ...992).
    let json = "{\"id\": 1, \"price\": 1.005, \"rate\": 2.675, \"fee\": -1.005}\n\
                {\"id\": 2, \"price\": 1.5e3, \"rate\": 0.125, \"fee\": \"0.995\"}\n\
                {\"id\": 3, \"price\": null, \"rate\": 9007199254740993, \"fee\": 12}\n";
    let p = project(
        "path: data/t.json, schema: { fee: 'DECIMAL(6,2)' }, clean: { casts: { price: 'DECIMAL(10,2)' }, decimals: 2 }",
        &[("data/t.json", json)],
    );
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        p.duckdb(
            "SELECT id::VARCHAR, price::VARCHAR, rate::VARCHAR, fee::VARCHAR, typeof(price), typeof(rate), typeof(fee) \
             FROM m ORDER BY id"
        ),
        [
            ["1", "1.01", "2.68", "-1.01", "DECIMAL(10,2)", "DECIMAL(38,2)", "DECIMAL(6,2)"],
            ["2", "1500.00", "0.13", "1.00", "DECIMAL(10,2)", "DECIMAL(38,2)", "DECIMAL(6,2)"],
            ["3", "NULL", "9007199254740993.00", "12.00", "DECIMAL(10,2)", "DECIMAL(38,2)", "DECIMAL(6,2)"]
        ]
    );
    // A value too large for its decimal names its file and column, and the table keeps its rows.
    p.write("data/t.json", "{\"id\": 4, \"price\": 1.5, \"rate\": 1.5, \"fee\": 123456.7}\n");
    let out = p.dfpipe(&["run", "-q"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("\n  in file data/t.json (source `raw`); column `fee` (Decimal128(6, 2)) holds it"),
        "{}",
        stderr(&out)
    );
    assert_eq!(one(p.duckdb("SELECT count(*)::VARCHAR FROM m")), "3");
}

#[test]
fn json_fractions_in_integer_columns_round_instead_of_being_cut() {
    // Arrow's JSON reader cut a fraction read into an integer column (2.7 became 2), whether the
    // type was declared or inferred from a sample; DuckDB and PostgreSQL's numeric round it.
    let json = "{\"id\": 1, \"q\": 2, \"n\": 9007199254740993}\n\
                {\"id\": 2, \"q\": 2.7, \"n\": -2.5}\n\
                {\"id\": 3, \"q\": -2.7, \"n\": 2.5}\n\
                {\"id\": 4, \"q\": \"7\", \"n\": 1.5e3}\n\
                {\"id\": 5, \"q\": null, \"n\": 2.4999}\n";
    let p = project(
        "path: data/t.json, schema: { q: INTEGER }, options: { schema_infer_max_records: 1 }",
        &[("data/t.json", json)],
    );
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(
        p.duckdb(
            "SELECT id::VARCHAR, coalesce(q::VARCHAR, 'NULL'), n::VARCHAR, typeof(q), typeof(n) FROM m ORDER BY id"
        ),
        [
            ["1", "2", "9007199254740993", "INTEGER", "BIGINT"],
            ["2", "3", "-3", "INTEGER", "BIGINT"],
            ["3", "-3", "3", "INTEGER", "BIGINT"],
            ["4", "7", "1500", "INTEGER", "BIGINT"],
            ["5", "NULL", "2", "INTEGER", "BIGINT"]
        ]
    );
    // Inside structs and lists too (they were still cut: {x: 2.7} read {x: 2}, [0.5] read [0]).
    let nested = project(
        "path: data/n.json, options: { schema_infer_max_records: 1 }",
        &[(
            "data/n.json",
            "{\"id\": 1, \"st\": {\"x\": 1, \"d\": {\"y\": 4}}, \"arr\": [1, 2]}\n\
             {\"id\": 2, \"st\": {\"x\": 2.7, \"d\": {\"y\": 4.5}}, \"arr\": [2.7, -2.7]}\n\
             {\"id\": 3, \"st\": {\"x\": -2.5, \"d\": null}, \"arr\": [0.5, null]}\n",
        )],
    );
    assert_success(&nested.dfpipe(&["run", "-q"]));
    assert_eq!(
        nested.duckdb("SELECT id::VARCHAR, st::VARCHAR, arr::VARCHAR, typeof(st), typeof(arr) FROM m ORDER BY id"),
        [
            // (A struct's fields come in Arrow's inferred order, by name, not the file's.)
            ["1", "{'d': {'y': 4}, 'x': 1}", "[1, 2]", "STRUCT(d STRUCT(y BIGINT), x BIGINT)", "BIGINT[]"],
            ["2", "{'d': {'y': 5}, 'x': 3}", "[3, -3]", "STRUCT(d STRUCT(y BIGINT), x BIGINT)", "BIGINT[]"],
            ["3", "{'d': NULL, 'x': -3}", "[1, NULL]", "STRUCT(d STRUCT(y BIGINT), x BIGINT)", "BIGINT[]"]
        ]
    );

    // A value the integer cannot hold fails, naming its file and column; the table keeps its rows.
    p.write("data/t.json", "{\"id\": 6, \"q\": 3000000000.2, \"n\": 1}\n");
    let out = p.dfpipe(&["run", "-q"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("\n  in file data/t.json (source `raw`); column `q` (Int32) holds it"),
        "{}",
        stderr(&out)
    );
    assert_eq!(one(p.duckdb("SELECT count(*)::VARCHAR FROM m")), "5");
}

#[test]
fn an_extension_or_a_glob_reads_files_as_their_names_say() {
    // `extension: .tsv` reads tabs, `.csv.gz` gzip (a comma split `2\t20` into one text column).
    let p = project(
        "path: data, options: { extension: .tsv }",
        &[("data/a.csv", "id,v\n1,10\n"), ("data/b.tsv", "id\tv\n2\t20\n")],
    );
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(p.duckdb("SELECT string_agg(id || ':' || v, ',') FROM m"), [["2:20"]]);
    let p = project(
        "path: data, options: { extension: .csv.gz }",
        &[("data/a.csv", "id,v\n1,10\n"), ("data/b.csv", "id,v\n2,20\n")],
    );
    let gzip = std::process::Command::new("gzip").arg("data/b.csv").current_dir(p.path()).status();
    assert!(gzip.unwrap().success(), "gzip must be installed");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(ids(&p), "2");

    // Files whose names do not say their compression: `compression:` does; the name still says tabs.
    let p = project("path: data, options: { compression: gzip }", &[("data/b.tsv", "id\tv\n2\t20\n")]);
    let gzip = std::process::Command::new("sh")
        .args(["-c", "gzip -c data/b.tsv > data/gz && mv data/gz data/b.tsv"])
        .current_dir(p.path())
        .status();
    assert!(gzip.unwrap().success(), "gzip must be installed");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(p.duckdb("SELECT string_agg(id || ':' || v, ',') FROM m"), [["2:20"]]);

    // A file a glob names is of the source's format whatever its name says.
    let p = project(
        "path: \"data/part-*\", format: csv",
        &[("data/part-00000", "id,v\n1,10\n"), ("data/part-00001", "id,v\n2,20\n"), ("data/README.md", "#\n")],
    );
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(ids(&p), "1,2");

    // A glob mixing kinds is refused as a directory is.
    let p =
        project("path: \"data/*\", format: csv", &[("data/a.csv", "id,v\n1,10\n"), ("data/b.tsv", "id\tv\n2\t20\n")]);
    let err = stderr(&p.dfpipe(&["run", "-q"]));
    assert!(
        err.contains("data/a.csv (uncompressed) and ")
            && err.contains("data/b.tsv (uncompressed, tab-separated) are csv files of different kinds"),
        "{err}"
    );

    // Hive folders whose files are spelt in two cases, beside notes: the partitions are read
    // from the data files (the notes made the layout "mixed").
    let p = project(
        "path: data",
        &[
            ("data/year=2024/a.CSV", "id,v\n1,10\n"),
            ("data/year=2025/b.csv", "id,v\n2,20\n"),
            ("data/README.md", "#\n"),
        ],
    );
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(p.duckdb("SELECT string_agg(id || ':' || year, ',' ORDER BY id) FROM m"), [["1:2024,2:2025"]]);
    // Hidden files there are not looked at either (DataFusion's own inference counted them).
    p.write("data/_tmp.csv", "id,v\n9,90\n");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(p.duckdb("SELECT string_agg(id || ':' || year, ',' ORDER BY id) FROM m"), [["1:2024,2:2025"]]);
    // Partition-like folders below a plain one are plain folders (DataFusion's scan dropped
    // those files when they were taken as partitions: 0 rows).
    let p2 = project("path: data", &[("data/2024/year=2024/a.csv", "id,v\n1,10\n")]);
    assert_success(&p2.dfpipe(&["run", "-q"]));
    assert_eq!(ids(&p2), "1");
    // A data file outside the partition folders would not be read: refused, naming it.
    p.write("data/loose.csv", "id,v\n3,30\n");
    let root = p.path().canonicalize().unwrap();
    assert_error(
        &p.dfpipe(&["run", "-q"]),
        1,
        &format!(
            "source `raw` (data): cannot read the partition layout: {root}/data/loose.csv has no partition folders \
             and {root}/data/year=2024/a.CSV has partition folders `year`: every file of a source must sit in the \
             same `key=value` folders (their values become columns); move them, or give them sources of their own",
            root = root.display()
        ),
    );
}

#[test]
fn parquet_files_whose_types_differ_get_advice_a_parquet_source_takes() {
    // The advice was a `schema:` on the source, which Parquet sources refuse (their files carry
    // their own types).
    use datafusion::arrow::array::{RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let p = Project::new();
    write_parquet(&p.file("data/a.parquet"), &[1, 2]);
    let schema = std::sync::Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(schema, vec![std::sync::Arc::new(StringArray::from(vec!["x"]))]).unwrap();
    write_parquet_batch(&p.file("data/b.parquet"), &batch, None);
    p.write("dfpipe.yml", "name: t\nsources:\n  raw: { path: data }\noutputs:\n  - model: m\n");
    p.write("sql/m.sql", "SELECT id FROM raw\n");
    let out = p.dfpipe(&["run", "-q"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let root = p.path().canonicalize().unwrap();
    assert!(
        err.contains(&format!("{}/data/b.parquet does not match {}/data/a.parquet: ", root.display(), root.display()))
            && err.ends_with(
                "; split the files into sources of their own and CAST the column to one type in a model that \
                 unions them, or rewrite the files with one type\n"
            ),
        "{err}"
    );
}
