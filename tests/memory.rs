//! Memory strategies: a sort of data several times larger than the memory limit completes by
//! spilling, the whole process within the limit; with spilling off it fails cleanly.

use datafusion::arrow::array::{Array, Int64Array, StringArray};

use crate::util::*;

/// Rows generated: ~8 M rows of (id, k, s) decode to ~0.6 GiB, over twice the 256 MiB limit.
const ROWS: u64 = 8_000_000;

const LIMIT: u64 = 256 << 20;

#[test]
fn a_sort_larger_than_the_limit_spills_within_it_in_one_or_two_partitions_and_fails_cleanly_without_spilling() {
    let data = Project::new();
    data.write("dfpipe.yml", "name: gen\noutputs:\n  - model: gen\n    to: big.parquet\n");
    data.write(
        "sql/gen.sql",
        &format!(
            "SELECT value AS id, (value * 7919) % 1000003 AS k, concat('row-', value, '-', repeat('x', 40)) AS s \
             FROM generate_series(1, {ROWS})\n"
        ),
    );
    assert_success(&data.dfpipe(&["run", "-q"]));

    let p = Project::new();
    p.write(
        "dfpipe.yml",
        &format!(
            "name: sort\nsources:\n  big: {{ path: {} }}\noutputs:\n  - model: sorted\n",
            data.file("big.parquet").display()
        ),
    );
    p.write("sql/sorted.sql", "SELECT * FROM big ORDER BY k, id\n");

    // The plan explains the decision from the Parquet footer.
    let plan = p.dfpipe(&["plan", "--memory-limit", "256MiB"]);
    assert_success(&plan);
    let text = stdout(&plan);
    assert!(text.contains("(1 file(s), ") && text.contains(", 8,000,000 rows): "), "{text}");
    assert!(text.contains("→ strategy stream (> 2 memory.stream_above)"), "{text}");
    // The limit bounds the process: the pool gets what the process and DuckDB's share leave.
    assert!(text.contains("  memory: limit 256.0 MiB = process "), "{text}");
    assert!(text.contains(" + DuckDB target 64.0 MiB + slack 25.6 MiB + DataFusion pool "), "{text}");
    assert!(text.contains("datafusion: fair spill pool of "), "{text}");
    assert!(text.contains("; spill to the system temp directory; batch size 2048"), "{text}");

    let out = p.dfpipe(&["run", "--memory-limit", "256MiB"]);
    assert_success(&out);
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.file(".dfpipe/run_results.json")).unwrap()).unwrap();
    let target = &results["targets"][0];
    assert_eq!(target["strategy"], "stream");
    assert_eq!(target["rows"], ROWS);
    let estimate = target["estimate_bytes"].as_u64().unwrap();
    assert!(estimate > 2 * LIMIT, "estimate {estimate}");
    let peak = results["peak_rss_bytes"].as_u64().unwrap();
    assert!(peak <= LIMIT, "peak RSS {} MiB over the {} MiB limit", peak >> 20, LIMIT >> 20);

    let sorted = "SELECT count(*), sum(id), count(*) FILTER (WHERE k < pk OR (k = pk AND id <= pid)) FROM \
                  (SELECT id, k, lag(k) OVER w AS pk, lag(id) OVER w AS pid FROM sorted WINDOW w AS (ORDER BY rowid))";
    let expected =
        vec![vec![format!("BigInt({ROWS})"), format!("HugeInt({})", ROWS * (ROWS + 1) / 2), "BigInt(0)".into()]];
    assert_eq!(p.duckdb(sorted), expected);

    // Spilling switched off: the same sort does not fit, says so, and the table is untouched.
    let out = p.dfpipe(&["run", "--memory-limit", "256MiB", "--strategy", "in_memory"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "error: warehouse.sorted (model `sorted`): not enough memory under the in_memory strategy (greedy pool of "
        ) && err.contains(" MiB (no spilling: exceeding it fails); spilling off; batch size 16384; ")
            && err.contains(
                "try --strategy spill (sorts, aggregates and joins then spill to disk) or a larger --memory-limit: "
            ),
        "{err}"
    );
    assert_eq!(p.duckdb(sorted), expected);

    // Two sorting partitions of small batches into Parquet: each partition's spill merges keep
    // to its share of the pool, so neither takes what the other (or the merge of the two) needs.
    // Before the shares, three such runs in three failed ("Failed to allocate ... for
    // SortPreservingMergeExec[0]").
    let two = Project::new();
    two.write(
        "dfpipe.yml",
        &format!(
            "name: sort2\nsources:\n  big: {{ path: {} }}\ndatafusion:\n  execution.target_partitions: 2\n  \
             execution.batch_size: 2048\noutputs:\n  - model: sorted\n    to: sorted.parquet\n",
            data.file("big.parquet").display()
        ),
    );
    two.write("sql/sorted.sql", "SELECT * FROM big ORDER BY k, id\n");
    let out = two.dfpipe(&["run", "--memory-limit", "256MiB"]);
    assert_success(&out);
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(two.file(".dfpipe/run_results.json")).unwrap()).unwrap();
    assert_eq!(results["targets"][0]["rows"], ROWS);
    let peak = results["peak_rss_bytes"].as_u64().unwrap();
    assert!(peak <= LIMIT, "two partitions: peak RSS {} MiB over the {} MiB limit", peak >> 20, LIMIT >> 20);
    assert_eq!(sorted_parquet_summary(&two.file("sorted.parquet")), (ROWS, ROWS * (ROWS + 1) / 2));
}

/// Long string sort keys, and a sort-merge join of a table with an aggregate of itself, under a
/// limit well below what they read. Before the merge's room, a sort could fill its share with
/// batches and leave too little for the merge that spills them (and the join's aggregate could
/// fill the pool beside its sorts); before each repartition spill had a file of its own, three
/// runs of this project in five hung for good under 200 MiB (apache/datafusion#24883); before
/// the sorts' output was compacted, the SortPreservingMergeExec over the two sorted partitions
/// was charged each run's buffers and could not grow beside the sorts' merges (2 CI runs of 8).
/// Three runs here, each given two minutes; then the join alone with one partition under 150 MiB.
#[test]
fn string_keys_and_a_sort_merge_join_spill_within_a_tight_limit_and_never_hang() {
    const ROWS: u64 = 3_000_000;
    let data = Project::new();
    data.write("dfpipe.yml", "name: gen\noutputs:\n  - model: gen\n    to: big.parquet\n");
    data.write(
        "sql/gen.sql",
        &format!(
            "SELECT value AS id, concat(repeat('k', 60), (value * 7919) % 100003) AS s, value % 7 AS c \
             FROM generate_series(1, {ROWS})\n"
        ),
    );
    assert_success(&data.dfpipe(&["run", "-q"]));
    let big = data.file("big.parquet");

    let p = Project::new();
    let config = format!(
        "name: strkeys\nsources:\n  big: {{ path: {} }}\noutputs:\n  - model: by_string\n    to: by_string.parquet\n  \
         - model: joined\n    to: joined.parquet\n",
        big.display()
    );
    // The file (~9 MiB) is read in two partitions whatever its size, so that the ORDER BY sorts
    // two partitions and a SortPreservingMergeExec merges them beside the sorts' own merges.
    p.write("dfpipe.yml", &format!("{config}datafusion: {{ optimizer.repartition_file_min_size: 0 }}\n"));
    p.write("sql/by_string.sql", "SELECT * FROM big ORDER BY s DESC, id\n");
    p.write(
        "sql/joined.sql",
        "SELECT a.id, a.s, b.n FROM big a JOIN (SELECT s, count(*) AS n FROM big GROUP BY s) b ON a.s = b.s\n",
    );
    // Each of the 100,003 keys occurs 29 or 30 times; every row joins its key's count.
    let mut counts = vec![0u64; 100_003];
    (1..=ROWS).for_each(|id| counts[((id * 7919) % 100_003) as usize] += 1);
    let squares: u64 = counts.iter().map(|n| n * n).sum();
    // The join's rows and sum(n), and the run's peak RSS within `limit_mib`.
    let check_joined = |run: &str, limit_mib: u64| {
        let (rows, sum_n) = read_parquet(&p.file("joined.parquet")).iter().fold((0, 0), |(rows, sum), batch| {
            let n = batch.column_by_name("n").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
            (rows + batch.num_rows() as u64, sum + n.iter().map(|v| v.unwrap() as u64).sum::<u64>())
        });
        assert_eq!((rows, sum_n), (ROWS, squares), "{run}");
        let results: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p.file(".dfpipe/run_results.json")).unwrap()).unwrap();
        let peak = results["peak_rss_bytes"].as_u64().unwrap();
        assert!(peak <= limit_mib << 20, "{run}: peak RSS {} MiB over the {limit_mib} MiB limit", peak >> 20);
    };
    for run in 0..3 {
        let args = ["run", "-q", "--strategy", "spill", "--memory-limit", "200MiB"];
        let out = p.dfpipe_within(&args, std::time::Duration::from_secs(120));
        assert_success(&out);
        assert_eq!(string_order_summary(&p.file("by_string.parquet")), ROWS, "run {run}");
        check_joined(&format!("run {run}"), 200);
    }
    // With one partition DataFusion 54 plans every equi-join as a hash join, which cannot
    // spill: under 150 MiB this join failed at its hash table ("HashJoinInput") until it
    // became a sort-merge join there too.
    p.write("dfpipe.yml", &format!("{config}datafusion: {{ execution.target_partitions: 1 }}\n"));
    std::fs::remove_file(p.file("joined.parquet")).unwrap();
    let args = ["run", "-q", "--strategy", "spill", "--memory-limit", "150MiB", "--select", "joined"];
    let plan = stdout(&p.dfpipe(&["plan", "--strategy", "spill", "--memory-limit", "150MiB", "--select", "joined"]));
    assert!(plan.contains("; target partitions 1; joins: sort-merge (spills)"), "the project's setting: {plan}");
    assert_success(&p.dfpipe_within(&args, std::time::Duration::from_secs(120)));
    check_joined("one partition", 150);
}

/// Rows of a Parquet file of (id, s, ...); panics unless they are in (s descending, id) order.
fn string_order_summary(path: &std::path::Path) -> u64 {
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::DataType;

    let mut last: Option<(String, i64)> = None;
    let mut rows = 0;
    for batch in read_parquet(path) {
        let id = batch.column_by_name("id").unwrap().as_any().downcast_ref::<Int64Array>().unwrap().clone();
        let s = cast(batch.column_by_name("s").unwrap(), &DataType::Utf8).unwrap();
        let s = s.as_any().downcast_ref::<StringArray>().unwrap();
        for row in 0..batch.num_rows() {
            let key = (s.value(row).to_string(), id.value(row));
            if let Some((ls, lid)) = &last {
                assert!(*ls > key.0 || (*ls == key.0 && *lid <= key.1), "row {rows}: {key:?} after {last:?}");
            }
            last = Some(key);
            rows += 1;
        }
    }
    rows
}

/// Rows and sum of `id` of a Parquet file of (id, k, ...), read batch by batch; panics unless
/// the rows are in (k, id) order.
fn sorted_parquet_summary(path: &std::path::Path) -> (u64, u64) {
    use datafusion::arrow::array::{Array, Int64Array};
    use datafusion::parquet::arrow::ProjectionMask;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
    let mask = ProjectionMask::roots(builder.parquet_schema(), [0, 1]);
    let (mut rows, mut sum, mut last) = (0u64, 0u64, None);
    for batch in builder.with_projection(mask).build().unwrap() {
        let batch = batch.unwrap();
        let column = |i: usize| batch.column(i).as_any().downcast_ref::<Int64Array>().unwrap().clone();
        let (id, k) = (column(0), column(1));
        for row in 0..batch.num_rows() {
            let key = (k.value(row), id.value(row));
            assert!(last.is_none_or(|l| l <= key), "row {rows}: {key:?} after {last:?}");
            last = Some(key);
            rows += 1;
            sum += id.value(row) as u64;
        }
    }
    (rows, sum)
}

#[test]
fn plan_explains_each_targets_estimate_and_strategy() {
    let p = Project::demo(2000);
    let out = p.dfpipe(&["plan"]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.contains("(1 file(s), 58.1 KiB on disk, 1,000 rows): "), "{text}");
    assert!(text.contains("decoded the whole file (1,000 rows)"), "{text}");
    assert!(text.contains("(4 file(s), ") && text.contains(", 2,000 rows): "), "{text}");
    assert!(text.contains("from 4 Parquet footer(s)"), "{text}");
    assert!(text.contains("→ strategy in_memory (≤ 0.65 memory.in_memory_below)"), "{text}");
    assert!(text.contains("datafusion: unbounded pool; spilling off; batch size 16384; "), "{text}");

    let forced = stdout(&p.dfpipe(&["plan", "--strategy", "spill", "--memory-limit", "1GiB"]));
    assert!(
        forced.contains("; estimate / budget = 0.00 → strategy spill (forced by --strategy or memory.strategy)"),
        "{forced}"
    );
    // The pool is what the 1 GiB leaves: the process, DuckDB's quarter and a tenth of slack aside.
    let accounting = forced.lines().find(|l| l.starts_with("  memory: limit 1.0 GiB = process ")).expect(&forced);
    assert!(accounting.contains(" + DuckDB target 256.0 MiB + slack 102.4 MiB + DataFusion pool "));
    let pool = accounting.rsplit("DataFusion pool ").next().unwrap();
    assert!(
        forced.contains(&format!(
            "datafusion: fair spill pool of {pool}; spill to the system temp directory; batch size 2048; "
        )),
        "{forced}"
    );
    assert!(forced.contains("joins: sort-merge (spills)"), "{forced}");

    // A run computes the model every target reads once, and reports strategy and estimate.
    let run = p.dfpipe(&["run"]);
    assert_success(&run);
    assert!(stderr(&run).contains("computed once for the targets that read it"), "{}", stderr(&run));
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.file(".dfpipe/run_results.json")).unwrap()).unwrap();
    for target in results["targets"].as_array().unwrap() {
        assert_eq!(target["strategy"], "in_memory");
        assert!(target["estimate_bytes"].as_u64().unwrap() > 0, "{target}");
    }
    assert!(stdout(&run).contains("strategy"), "{}", stdout(&run));
}

#[test]
fn strategy_settings_are_checked() {
    let p = Project::demo(10);
    let config = std::fs::read_to_string(p.file("dfpipe.yml")).unwrap();
    let with = |memory: &str| config.replace("memory: { os_margin: 0.3 }", memory);
    p.write("dfpipe.yml", &with("memory: { strategy: fast }"));
    assert_error(
        &p.dfpipe(&["plan"]),
        2,
        "dfpipe.yml:26:21: unknown variant `fast`, expected one of auto, in_memory, spill, stream\n\
         26 | memory: { strategy: fast }\n   |                     ^",
    );
    p.write("dfpipe.yml", &with("memory: { in_memory_below: 3, stream_above: 2 }"));
    assert_error(
        &p.dfpipe(&["plan"]),
        2,
        "dfpipe.yml: memory.in_memory_below (3) must be above 0 and at most memory.stream_above (2)",
    );
}

#[test]
fn a_limit_too_small_for_the_process_is_refused_before_anything_runs() {
    let p = Project::demo(10);
    for command in ["plan", "run"] {
        let out = p.dfpipe(&[command, "--memory-limit", "100MiB"]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(
                "error: warehouse.customer_revenue (model `customer_revenue`): a memory limit of 100.0 MiB is too \
                 small for this target: the process holds "
            ),
            "{err}"
        );
        assert!(
            err.contains(
                " already, the DuckDB target needs 64.0 MiB, and DataFusion needs at least \
                          32.0 MiB to sort, join or aggregate; the smallest workable limit is "
            ),
            "{err}"
        );
        if command == "plan" {
            // The limit it names works.
            let smallest = err.split("(--memory-limit ").nth(1).and_then(|rest| rest.split(')').next()).unwrap();
            assert_success(&p.dfpipe(&["plan", "--memory-limit", smallest]));
        }
    }
    assert!(!p.file("dfpipe.duckdb").exists(), "nothing was written");
}

#[test]
fn estimates_skip_empty_and_header_only_parts() {
    // Spark writes empty and header-only parts; the estimate samples the first part with rows.
    let p = Project::new();
    p.write("dfpipe.yml", "name: t\nsources:\n  parts: { path: parts/, format: csv }\n");
    p.write("sql/m.sql", "SELECT * FROM parts\n");
    p.write("parts/part-00000.csv", "");
    p.write("parts/part-00001.csv", "id,v\n");
    let mut rows = String::from("id,v\n");
    for i in 0..1000 {
        rows.push_str(&format!("{i},value-{i}\n"));
    }
    p.write("parts/part-00002.csv", &rows);
    let out = p.dfpipe(&["plan"]);
    assert_success(&out);
    let text = stdout(&out);
    // DataFusion's listing leaves the 0-byte part out; the header-only part is sampled first.
    assert!(text.contains("(2 file(s), "), "{text}");
    assert!(text.contains("sampled 1,000 rows: "), "{text}");
    assert!(!text.contains("estimate: 0 B"), "{text}");
    assert_success(&p.dfpipe(&["run", "-q"]));
    assert_eq!(one(p.duckdb("SELECT count(*) FROM m")), "BigInt(1000)");
}

#[test]
fn a_model_several_targets_read_is_held_once_only_while_it_fits_the_limit() {
    const LIMIT: u64 = 192 << 20;
    let p = Project::new();
    // A join of a small file with itself: 3 M rows of ~60 bytes, larger than half the pool,
    // from an estimate of a few KiB (in_memory).
    let ids: String = (0..1733).map(|i| format!("{i}\n")).collect();
    p.write("ids.csv", &format!("id\n{ids}"));
    p.write(
        "dfpipe.yml",
        "name: shared\nsources:\n  ids: { path: ids.csv }\noutputs:\n  - model: wide\n  - model: wide\n    table: wide_copy\n",
    );
    p.write(
        "sql/wide.sql",
        "SELECT a.id * 1733 + b.id AS id, concat('row-', a.id * 1733 + b.id, '-', repeat('x', 40)) AS s \
         FROM ids a CROSS JOIN ids b WHERE a.id * 1733 + b.id < 3000000\n",
    );
    let out = p.dfpipe(&["run", "--memory-limit", "192MiB"]);
    assert_success(&out);
    let err = stderr(&out);
    assert!(err.contains("not computed once (its rows pass "), "{err}");
    assert!(err.contains(", half its readers' memory): each target that reads it computes it"), "{err}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.file(".dfpipe/run_results.json")).unwrap()).unwrap();
    for target in results["targets"].as_array().unwrap() {
        assert_eq!((target["strategy"].as_str(), target["rows"].as_u64()), (Some("in_memory"), Some(3_000_000)));
    }
    let peak = results["peak_rss_bytes"].as_u64().unwrap();
    assert!(peak <= LIMIT, "peak RSS {} MiB over the {} MiB limit", peak >> 20, LIMIT >> 20);
    let sum = "sum(id)::VARCHAR || ' ' || count(DISTINCT s)::VARCHAR";
    assert_eq!(one(p.duckdb(&format!("SELECT {sum} FROM wide"))), "4499998500000 3000000");
    assert_eq!(one(p.duckdb(&format!("SELECT {sum} FROM wide_copy"))), "4499998500000 3000000");
}

#[test]
fn an_in_memory_strategy_whose_estimate_proves_short_runs_again_under_spill() {
    const LIMIT: u64 = 192 << 20;
    let p = Project::new();
    // A few KiB of input (in_memory) sorted into 3 M rows of ~60 bytes: more than the pool.
    let ids: String = (0..1733).map(|i| format!("{i}\n")).collect();
    p.write("ids.csv", &format!("id\n{ids}"));
    p.write("dfpipe.yml", "name: short\nsources:\n  ids: { path: ids.csv }\noutputs:\n  - model: wide\n");
    p.write(
        "sql/wide.sql",
        "SELECT a.id * 1733 + b.id AS id, concat('row-', (a.id * 7919 + b.id) % 1000003, '-', repeat('x', 40)) AS s \
         FROM ids a CROSS JOIN ids b WHERE a.id * 1733 + b.id < 3000000 ORDER BY s, id\n",
    );
    let out = p.dfpipe(&["run", "--memory-limit", "192MiB"]);
    assert_success(&out);
    let err = stderr(&out);
    assert!(err.contains(" pool (the estimate was short); running the target again under spill"), "{err}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.file(".dfpipe/run_results.json")).unwrap()).unwrap();
    let target = &results["targets"][0];
    assert_eq!((target["strategy"].as_str(), target["rows"].as_u64()), (Some("spill"), Some(3_000_000)));
    let peak = results["peak_rss_bytes"].as_u64().unwrap();
    assert!(peak <= LIMIT, "peak RSS {} MiB over the {} MiB limit", peak >> 20, LIMIT >> 20);
    assert_eq!(one(p.duckdb("SELECT (count(*), sum(id))::VARCHAR FROM wide")), "(3000000, 4499998500000)");
    // Forced, in_memory fails cleanly instead: the user chose it.
    let forced = p.dfpipe(&["run", "--memory-limit", "192MiB", "--strategy", "in_memory"]);
    assert_eq!(forced.status.code(), Some(1));
    assert!(stderr(&forced).contains("not enough memory under the in_memory strategy"), "{}", stderr(&forced));
    assert_eq!(one(p.duckdb("SELECT count(*)::VARCHAR FROM wide")), "3000000");
}
