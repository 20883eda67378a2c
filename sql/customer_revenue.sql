-- Revenue per customer, with the customer's cleaned name and country.
SELECT
    c.customer_id,
    clean_text(c.name) AS customer_name,
    co.name            AS country,
    co.region,
    count(*)           AS orders,
    sum(o.amount)      AS revenue
FROM stg_orders AS o
JOIN customers AS c ON o.customer_id = c.customer_id
JOIN countries AS co ON c.country_code = co.code
GROUP BY c.customer_id, clean_text(c.name), co.name, co.region
