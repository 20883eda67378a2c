#!/bin/sh
# The price of the exchange: lineitem split into 8 Parquet files, grouped by supplier (10,000
# groups at SF1) and by return flag and line status (4 groups), written to the embedded DuckDB
# target — on one machine, and on a Ballista cluster of `dfpipe scheduler` and two
# `dfpipe executor` processes (one slot each) on the same machine, over real gRPC and Arrow
# Flight. Prints wall seconds and peak RSS of each `dfpipe run` (the client), and the ratio.
#
#   LINEITEM=~/.cache/dfpipe-bench/data/sf1/lineitem.parquet DFPIPE=target/release/dfpipe \
#     benches/cluster/run.sh
#
# Needs the `duckdb` CLI (../shared/bench/setup.sh installs it) to split the file.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dfpipe=${DFPIPE:-$here/../../target/release/dfpipe}
duckdb=${DUCKDB:-duckdb}
lineitem=${LINEITEM:?set LINEITEM to lineitem.parquet}
rounds=${ROUNDS:-3}
work=${WORK:-$(mktemp -d)}
port=${PORT:-50750}
echo "work directory: $work"

mkdir -p "$work/project/data" "$work/project/sql"
if [ ! -f "$work/project/data/part-7.parquet" ]; then
    for i in $(seq 0 7); do
        "$duckdb" -c "COPY (SELECT * FROM read_parquet('$lineitem') WHERE l_orderkey % 8 = $i) TO '$work/project/data/part-$i.parquet' (FORMAT parquet)"
    done
fi
cat > "$work/project/dfpipe.yml" <<YML
name: cluster_bench
sources:
  lineitem: { path: data/ }
outputs:
  - model: by_supplier
  - model: by_flag
YML
cat > "$work/project/sql/by_supplier.sql" <<SQL
SELECT l_suppkey, count(*) AS lines, sum(l_quantity) AS quantity, sum(l_extendedprice) AS price,
       avg(l_discount) AS discount
FROM lineitem GROUP BY l_suppkey
SQL
cat > "$work/project/sql/by_flag.sql" <<SQL
SELECT l_returnflag, l_linestatus, count(*) AS lines, sum(l_extendedprice * (1 - l_discount)) AS revenue
FROM lineitem GROUP BY l_returnflag, l_linestatus
SQL

"$dfpipe" scheduler --bind "127.0.0.1:$port" >"$work/scheduler.log" 2>&1 &
scheduler=$!
sleep 1
"$dfpipe" executor --scheduler "127.0.0.1:$port" --bind "127.0.0.1:$((port + 1))" --slots 1 \
    --work-dir "$work/executor-1" >"$work/executor-1.log" 2>&1 &
e1=$!
"$dfpipe" executor --scheduler "127.0.0.1:$port" --bind "127.0.0.1:$((port + 3))" --slots 1 \
    --work-dir "$work/executor-2" >"$work/executor-2.log" 2>&1 &
e2=$!
trap 'kill $scheduler $e1 $e2 2>/dev/null' EXIT
sleep 2

measure() { # label, then the command; prints seconds and MB, leaves seconds in $seconds
    label=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null
    read -r seconds kb < "$work/time"
    printf '%-46s %8.2f s %8d MB\n' "$label" "$seconds" $((kb / 1024))
}

for round in $(seq 1 "$rounds"); do
    echo "round $round"
    measure "one machine (dfpipe run)" "$dfpipe" run -q --project "$work/project"
    alone=$seconds
    measure "cluster: 2 executors x 1 slot (--cluster)" "$dfpipe" run -q --project "$work/project" \
        --cluster "df://127.0.0.1:$port"
    echo "$seconds $alone" | awk '{ printf "%-46s %8.2f x\n", "cluster / one machine", $1 / $2 }'
done
