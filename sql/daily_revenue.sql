-- Revenue per day, from the staged orders.
SELECT
    order_date,
    count(*)      AS orders,
    sum(quantity) AS items,
    sum(amount)   AS revenue
FROM stg_orders
GROUP BY order_date
