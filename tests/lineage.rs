//! `dfpipe lineage`: column lineage read from the plans, each construct with its exact edges.

use crate::util::*;

fn project() -> Project {
    let p = Project::new();
    p.write("raw.csv", "id,k,amount,flag\n1,a,10,y\n2,b,20,n\n");
    p.write("other.csv", "rid,label\n1,one\n2,two\n");
    p.write(
        "dfpipe.yml",
        "name: l\nsources:\n  raw: { path: raw.csv }\n  other: { path: other.csv }\n\
         outputs:\n  - model: chain\n  - model: joined\n  - model: totals\n  - model: shadow\n  - model: unioned\n  - model: ranked\n  - model: netted\n",
    );
    p.write("sql/stg.sql", "SELECT id, k, amount AS amt, amount * 2 AS doubled FROM raw WHERE flag = 'y'\n");
    p.write("sql/chain.sql", "SELECT * FROM stg\n");
    p.write("sql/joined.sql", "SELECT s.id, o.label FROM stg AS s JOIN other AS o ON s.id = o.rid\n");
    p.write("sql/totals.sql", "SELECT k, sum(amt) AS total, count(*) AS n FROM chain GROUP BY k\n");
    // A CTE named like a model: it is the CTE that is read, not the model `stg`.
    p.write("sql/shadow.sql", "WITH stg AS (SELECT rid AS id FROM other) SELECT id FROM stg\n");
    // A SQL-defined function is expanded: its argument is what the column derives from.
    p.write("udfs/net.sql", "CREATE FUNCTION net(x BIGINT, rate DOUBLE) RETURNS DOUBLE RETURN $1 * (1 - $2);\n");
    p.write("sql/netted.sql", "SELECT id, net(amount, 0.2) AS net_amount FROM raw\n");
    p.write("sql/unioned.sql", "SELECT id FROM raw UNION ALL SELECT rid FROM other\n");
    p.write(
        "sql/ranked.sql",
        "SELECT id, row_number() OVER (PARTITION BY k ORDER BY amount) AS rn, \
         (SELECT max(rid) FROM other) AS top FROM raw\n",
    );
    p
}

fn lineage(p: &Project, args: &[&str]) -> String {
    let out = p.dfpipe(&[&["lineage"], args].concat());
    assert_success(&out);
    stdout(&out)
}

#[test]
fn each_construct_has_its_exact_edges() {
    let p = project();
    let cases: [(&str, &str); 9] = [
        ("netted.net_amount", "netted.net_amount (model)\n└─ computed  raw.amount (source)\n"),
        (
            "chain.doubled",
            "chain.doubled (model)\n\
             └─ passed through  stg.doubled (model)\n   \
                ├─ computed  raw.amount (source)\n   \
                └─ filter  raw.flag (source)\n",
        ),
        (
            "chain.amt",
            "chain.amt (model)\n\
             └─ passed through  stg.amt (model)\n   \
                ├─ renamed  raw.amount (source)\n   \
                └─ filter  raw.flag (source)\n",
        ),
        (
            "joined.label",
            "joined.label (model)\n\
             ├─ passed through  other.label (source)\n\
             ├─ join key  other.rid (source)\n\
             └─ join key  stg.id (model)\n   \
                ├─ passed through  raw.id (source)\n   \
                └─ filter  raw.flag (source)\n",
        ),
        (
            "totals.total",
            "totals.total (model)\n\
             └─ aggregated  chain.amt (model)\n   \
                └─ passed through  stg.amt (model)\n      \
                   ├─ renamed  raw.amount (source)\n      \
                   └─ filter  raw.flag (source)\n",
        ),
        ("shadow.id", "shadow.id (model)\n└─ renamed  other.rid (source)\n"),
        ("unioned.id", "unioned.id (model)\n├─ renamed  other.rid (source)\n└─ passed through  raw.id (source)\n"),
        ("ranked.rn", "ranked.rn (model)\n├─ computed  raw.amount (source)\n└─ computed  raw.k (source)\n"),
        ("ranked.top", "ranked.top (model)\n└─ aggregated  other.rid (source)\n"),
    ];
    for (column, expected) in cases {
        assert_eq!(lineage(&p, &[column]), expected, "lineage {column}");
    }
}

#[test]
fn downstream_reaches_the_targets_and_json_has_the_same_tree() {
    let p = project();
    assert_eq!(
        lineage(&p, &["raw.flag", "--downstream"]).lines().take(4).collect::<Vec<_>>(),
        [
            "raw.flag (source)",
            "├─ filter  stg.id (model)",
            "│  ├─ passed through  chain.id (model)",
            "│  │  └─ passed through  warehouse.chain.id (target)",
        ]
    );
    let json: serde_json::Value = serde_json::from_str(&lineage(&p, &["totals.total", "-f", "json"])).unwrap();
    assert_eq!(json["children"][0]["relation"], "chain");
    assert_eq!(json["children"][0]["how"], "aggregated");
    assert_eq!(json["children"][0]["children"][0]["children"][0]["kind"], "source");

    let out = p.dfpipe(&["lineage", "stg.amount"]);
    assert_error(
        &out,
        2,
        "lineage: `stg` has no column `amount` that a model reads (its columns: id, k, amt, doubled)",
    );
    assert_error(&p.dfpipe(&["lineage", "stgg.id"]), 2, "lineage: no model or source `stgg` (did you mean `stg`?)");
}
