-- The 10M-row target, keyed on id as a merge target is (psql -f setup.sql).
DROP SCHEMA IF EXISTS bench_merge CASCADE;
CREATE SCHEMA bench_merge;
CREATE TABLE bench_merge.big AS
  SELECT g::bigint AS id, concat('row ', g) AS label, g::double precision / 4 AS amount
  FROM generate_series(1, 10000000) g;
ALTER TABLE bench_merge.big ADD PRIMARY KEY (id);
ANALYZE bench_merge.big;
