-- Orders that count: cancelled ones are dropped, timestamps become dates.
SELECT
    order_id,
    customer_id,
    CAST(ordered_at AS DATE) AS order_date,
    status,
    quantity,
    amount
FROM orders
WHERE status <> 'cancelled'
