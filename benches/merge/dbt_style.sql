-- The peer of `merge/`: dbt-postgres's delete+insert incremental strategy, typed into psql —
-- the same 1M rows COPY'd into a temporary table, then dbt's two statements for a single `unique_key` (see
-- benches/README.md). Run from benches/merge after `\copy` wrote changes.csv:
--   psql "$dsn" -c "\copy (SELECT value AS id, concat('changed ', value) AS label, value::float8 / 4 AS amount FROM generate_series(9500001, 10500000) value) TO 'changes.csv' CSV"
--   /usr/bin/time -f '%e s' psql "$dsn" -q -f dbt_style.sql
BEGIN;
CREATE TEMP TABLE changes (id bigint, label text, amount double precision) ON COMMIT DROP;
\copy changes FROM 'changes.csv' CSV
DELETE FROM bench_merge.big WHERE (id) IN (SELECT (id) FROM changes);
INSERT INTO bench_merge.big (id, label, amount) (SELECT id, label, amount FROM changes);
COMMIT;
