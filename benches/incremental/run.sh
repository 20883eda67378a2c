#!/bin/sh
# Incremental loads by new files, measured: lineitem split into 30 Parquet files (one per
# "day", by l_orderkey % 31) loaded into the embedded DuckDB target, then one more file, then a
# rerun with nothing new; and a rerun with nothing new over a source of 1,000 files. Prints
# wall seconds and peak RSS of each `dfpipe run`.
#
#   LINEITEM=~/.cache/dfpipe-bench/data/sf1/lineitem.parquet DFPIPE=target/release/dfpipe \
#     benches/incremental/run.sh
#
# Needs the `duckdb` CLI (../shared/bench/setup.sh installs it) to split the file.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dfpipe=${DFPIPE:-$here/../../target/release/dfpipe}
duckdb=${DUCKDB:-duckdb}
lineitem=${LINEITEM:?set LINEITEM to lineitem.parquet}
work=${WORK:-$(mktemp -d)}
echo "work directory: $work"

measure() { # label, then the command
    label=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null
    read -r seconds kb < "$work/time"
    printf '%-44s %8.2f s %8d MB\n' "$label" "$seconds" $((kb / 1024))
}

# 1. lineitem in 31 files; 30 of them form the history.
mkdir -p "$work/files/data" "$work/files/sql" "$work/held"
if [ ! -f "$work/held/day-31.parquet" ]; then
    for i in $(seq 1 31); do
        dir=$work/files/data; [ "$i" = 31 ] && dir=$work/held
        "$duckdb" -c "COPY (SELECT * FROM read_parquet('$lineitem') WHERE l_orderkey % 31 = $((i - 1))) TO '$dir/day-$(printf %02d "$i").parquet' (FORMAT parquet)"
    done
fi
cat > "$work/files/dfpipe.yml" <<YML
name: incremental_bench
sources:
  lineitem: { path: data/ }
outputs:
  - model: stg_lineitem
    mode: append
    incremental: { by: files }
YML
echo "SELECT * FROM lineitem" > "$work/files/sql/stg_lineitem.sql"
rm -rf "$work/files/dfpipe.duckdb" "$work/files/.dfpipe" "$work/files/data/day-31.parquet"
measure "30 files, first load" "$dfpipe" run -q --project "$work/files"
cp "$work/held/day-31.parquet" "$work/files/data/"
measure "1 new file of 31" "$dfpipe" run -q --project "$work/files"
measure "no new file (31 files)" "$dfpipe" run -q --project "$work/files"
measure "31 files, --full-refresh (for scale)" "$dfpipe" run -q --full-refresh --project "$work/files"

# 2. A source of 1,000 small files: the rerun with nothing new.
mkdir -p "$work/many/sql"
if [ ! -d "$work/many/data" ]; then
    "$duckdb" -c "COPY (SELECT i % 1000 AS part, i AS id, i * 2 AS v FROM range(100000) t(i)) TO '$work/many/data' (FORMAT parquet, PARTITION_BY (part))"
fi
cat > "$work/many/dfpipe.yml" <<YML
name: many_files
sources:
  events: { path: data/ }
outputs:
  - model: facts
    mode: append
    incremental: { by: files }
YML
echo "SELECT id, v FROM events" > "$work/many/sql/facts.sql"
rm -rf "$work/many/dfpipe.duckdb" "$work/many/.dfpipe"
measure "1,000 files, first load" "$dfpipe" run -q --project "$work/many"
measure "1,000 files, nothing new" "$dfpipe" run -q --project "$work/many"
measure "process start-up (dfpipe --version)" "$dfpipe" --version

# 3. Time windows: a daily model over three years of history (1,066 windows), first with one
# window per transaction, then 30; then the rerun that redoes only the current day.
mkdir -p "$work/days/sql" "$work/days/data"
printf 'id,ts\n1,2024-01-01 10:00:00\n2,2025-06-01 12:00:00\n' > "$work/days/data/events.csv"
echo 'SELECT id, CAST(ts AS TIMESTAMP) AS ts FROM events WHERE CAST(ts AS TIMESTAMP) >= $start AND CAST(ts AS TIMESTAMP) < $end' > "$work/days/sql/daily.sql"
for batch in 1 30; do
    cat > "$work/days/dfpipe.yml" <<YML
name: days
sources:
  events: { path: data/events.csv }
outputs:
  - model: daily
    mode: append
    incremental: { by: time, column: ts, grain: day, begin: 2024-01-01, batch: $batch }
YML
    rm -rf "$work/days/dfpipe.duckdb" "$work/days/.dfpipe"
    measure "time windows since 2024-01-01, batch $batch" env DFPIPE_TEST_NOW=2026-12-01T12:00:00 "$dfpipe" run -q --project "$work/days"
done
measure "time windows, rerun (current day only)" env DFPIPE_TEST_NOW=2026-12-01T12:00:00 "$dfpipe" run -q --project "$work/days"
