//! Errors while reading data name the file (and for JSON the line); a directory's format is
//! never guessed from a file that is not data.

use crate::util::*;

fn project_with(files: &[(&str, &[u8])]) -> Project {
    let p = Project::new();
    for (name, bytes) in files {
        let path = p.file(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    p.write("dfpipe.yml", "name: r\nsources:\n  raw: { path: data/ }\n");
    p.write("sql/m.sql", "SELECT * FROM raw\n");
    p
}

/// A Parquet file (snappy) of `rows` rows: `id` and a text column.
fn write_parquet(path: &std::path::Path, rows: i64) {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::parquet::basic::Compression;
    use datafusion::parquet::file::properties::WriterProperties;
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("t", DataType::Utf8, false),
    ]));
    let batch = datafusion::arrow::array::RecordBatch::try_new(
        schema,
        vec![
            std::sync::Arc::new(Int64Array::from_iter_values(0..rows)),
            std::sync::Arc::new(StringArray::from_iter_values((0..rows).map(|i| format!("text {i}")))),
        ],
    )
    .unwrap();
    write_parquet_batch(path, &batch, Some(WriterProperties::builder().set_compression(Compression::SNAPPY).build()));
}

#[test]
fn a_corrupt_parquet_file_is_named() {
    let p = project_with(&[]);
    write_parquet(&p.file("data/a-good.parquet"), 10);
    write_parquet(&p.file("data/b-bad.parquet"), 200_000);
    // Bytes in the middle of the second file's data pages.
    let bad = p.file("data/b-bad.parquet");
    let mut bytes = std::fs::read(&bad).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 2000].fill(0xff);
    std::fs::write(&bad, bytes).unwrap();
    let out = p.dfpipe(&["run", "-q"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("\n  in file data/b-bad.parquet (source `raw`); fix or remove that file and run again\n"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_json_key_that_changes_type_is_named_with_its_line() {
    let mut json = String::new();
    for i in 1..=1500 {
        json.push_str(&format!("{{\"id\": {i}, \"tag\": \"t{i}\"}}\n"));
    }
    json.push_str("{\"id\": 1501, \"tag\": 7}\n");
    let p = project_with(&[("data/events.json", json.as_bytes())]);
    let out = p.dfpipe(&["run", "-q"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "line 1501: key `tag` holds a number, but a string on line 1; dfpipe reads a JSON key as one type: write its values as one type: all numbers if it is a number (\"5\" reads as one), or all strings if it is text (quote the numbers: a text column takes \"5\", not 5)"
        ),
        "{}",
        stderr(&out)
    );
    // The advice holds: quoted, the file reads, and the column is text.
    p.write("data/events.json", &json.replace("\"tag\": 7}", "\"tag\": \"7\"}"));
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(one(p.duckdb("SELECT tag FROM m WHERE id = 1501")), "7");

    // An object where another line has a number fails the schema's inference: the key and line
    // are named there too (it said \"Expected object json type\" and that the file may be one array).
    p.write("data/events.json", "{\"id\": 1, \"a\": 5}\n{\"id\": 2, \"a\": {\"x\": 1}}\n");
    let out = p.dfpipe(&["run", "-q"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "cannot read it as json: {}: line 2: key `a` holds an object, but a number on line 1; dfpipe reads a JSON key as one type: write it as one type on every line\n",
            p.file("data/events.json").canonicalize().unwrap().display()
        )),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("one array"), "{}", stderr(&out));
}

#[test]
fn a_readme_never_decides_a_directory_format_and_other_formats_are_reported() {
    let p = project_with(&[("data/README.txt", b"what these files are\n"), ("data/notes.csv", b"a\n1\n")]);
    for name in ["x.parquet", "y.parquet"] {
        write_parquet(&p.file(&format!("data/{name}")), 1);
    }
    let out = p.dfpipe(&["run"]);
    assert_success(&out);
    assert_eq!(one(p.duckdb("SELECT CAST(count(*) AS VARCHAR) FROM m")), "2");
    assert!(
        stderr(&out).contains(&format!(
            "data/: 1 file(s) of another format are not read (e.g. {}/data/notes.csv): this source reads parquet \
             files; give them a source of their own",
            p.path().canonicalize().unwrap().display()
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bad_value_in_a_model_several_targets_read_names_its_file_in_each_target() {
    let p = Project::new();
    p.write("data/a.csv", "n\n1\n2\n");
    p.write("data/b.csv", "n\n3\nthree\n");
    p.write(
        "dfpipe.yml",
        "name: r\nsources:\n  raw: { path: data/, schema: { n: BIGINT } }\n\
         outputs:\n  - model: m\n  - model: m\n    to: out/m.parquet\n",
    );
    p.write("sql/m.sql", "SELECT n FROM raw\n");
    let out = p.dfpipe(&["run", "-q"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    for target in ["warehouse.m", "out/m.parquet"] {
        let line = format!(
            "error: {target} (model `m`): Parser error: Error while parsing value 'three' as type 'Int64'. Row data: "
        );
        let at = err.find(&line).unwrap_or_else(|| panic!("no `{line}` in {err}"));
        assert!(
            err[at..]
                .contains("\n  in file data/b.csv (source `raw`); column `n` (Int64) holds it on line 3 of the file; "),
            "{err}"
        );
    }
    assert!(!p.file("out/m.parquet").exists());
}

#[test]
fn a_bad_csv_value_is_placed_on_its_line_of_the_file_even_when_the_file_is_read_in_pieces() {
    let mut csv = String::from("id,v\n");
    for i in 1..=3000 {
        csv.push_str(&format!("{i},{}\n", if i == 2500 { "x".to_string() } else { (i * 7).to_string() }));
    }
    let p = Project::new();
    p.write("data.csv", &csv);
    // Files above 1 KB are read in pieces by two partitions: Arrow counts records from a piece's start.
    p.write(
        "dfpipe.yml",
        "name: r\nsources:\n  raw: { path: data.csv, schema: { v: INT } }\n\
         datafusion: { optimizer.repartition_file_min_size: 1000, execution.target_partitions: 2 }\n",
    );
    p.write("sql/m.sql", "SELECT * FROM raw\n");
    let out = p.dfpipe(&["run", "-q"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.ends_with(
            "error: warehouse.m (model `m`): Parser error: Error while parsing value 'x' as type 'Int32'. Row data: \
             '[2500,x]'\n  in file data.csv (source `raw`); column `v` (Int32) holds it on line 2501 of the file; \
             correct the value, or read the column as text with `schema: { v: varchar }` on the source and convert \
             it in a model; fix or remove that file and run again\n"
        ),
        "{err}"
    );
}
