-- 1M rows with ids no other run uses (20,000,001..21,000,000).
SELECT value AS id, concat('added ', value) AS label, CAST(value AS DOUBLE) / 4 AS amount
FROM generate_series(20000001, 21000000)
