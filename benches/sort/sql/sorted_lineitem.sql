SELECT * FROM lineitem ORDER BY l_shipdate, l_orderkey, l_linenumber
