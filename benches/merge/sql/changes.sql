-- 1M rows: half update rows of the 10M-row table (ids 9,500,001..10,000,000), half are new.
SELECT value AS id, concat('changed ', value) AS label, CAST(value AS DOUBLE) / 4 AS amount
FROM generate_series(9500001, 10500000)
