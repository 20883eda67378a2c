//! `dfpipe docs`, looked at as a person would: the page rendered by headless Chromium (Debian's
//! `chromium`; .ci/run installs it), its DOM checked after the script ran.

use std::process::Command;

use crate::util::*;

/// The DOM of `page` (with `fragment`) after Chromium ran its script.
fn dom(page: &std::path::Path, fragment: &str) -> String {
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}{fragment}", page.display()))
        .output()
        .expect("chromium runs (the docs tests need Debian's chromium package: apt-get install chromium)");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `(classes, data-id)` of every node in the DOM.
fn nodes(dom: &str) -> Vec<(String, String)> {
    dom.split("<g class=\"")
        .skip(1)
        .filter_map(|rest| {
            let classes = rest.split('"').next()?.to_string();
            let id = rest.split("data-id=\"").nth(1)?.split('"').next()?.to_string();
            Some((classes, id))
        })
        .collect()
}

#[test]
fn the_page_shows_every_node_lights_a_columns_lineage_and_the_last_run() {
    let p = Project::demo(500);
    assert_success(&p.dfpipe(&["run", "-q"]));
    let out = p.dfpipe(&["docs", "--out", "site"]);
    assert_success(&out);
    let page = p.file("site/index.html");
    let html = std::fs::read_to_string(&page).unwrap();
    for fetch in ["src=\"http", "href=\"http", "url(http", "@import", "fetch("] {
        assert!(!html.contains(fetch), "the page loads nothing from the network ({fetch})");
    }

    let shown = nodes(&dom(&page, ""));
    let ids: Vec<&str> = shown.iter().map(|(_, id)| id.as_str()).collect();
    for id in [
        "source:orders",
        "source:customers",
        "model:stg_orders",
        "model:daily_revenue",
        "model:customer_revenue",
        "target:warehouse.daily_revenue",
        "target:out/daily_revenue.parquet",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }

    // The click on daily_revenue.revenue (the fragment runs the same handler) lights exactly
    // its path: orders → stg_orders → daily_revenue → both its targets.
    let clicked = dom(&page, "#column=model:daily_revenue.revenue");
    let lit: Vec<String> =
        nodes(&clicked).into_iter().filter(|(c, _)| c.split(' ').any(|c| c == "lit")).map(|(_, id)| id).collect();
    assert_eq!(
        lit,
        [
            "source:orders",
            "model:stg_orders",
            "model:daily_revenue",
            "target:warehouse.daily_revenue",
            "target:out/daily_revenue.parquet"
        ]
    );
    assert!(
        clicked.contains(r#"<li class="col lit" data-node="model:daily_revenue" data-column="revenue""#),
        "{clicked}"
    );
    assert!(clicked.contains("aggregated from stg_orders.amount"));
    // The last run's figures: its status and the rows it wrote, as the page formats them.
    let rows: u64 =
        one(duckdb_rows(&p.file(".dfpipe/catalog.duckdb"), "SELECT CAST(rows AS VARCHAR) FROM runs")).parse().unwrap();
    let digits = rows.to_string();
    let grouped: Vec<&str> = digits.as_bytes().rchunks(3).rev().map(|c| std::str::from_utf8(c).unwrap()).collect();
    let shown_rows = format!("<td>{}</td>", grouped.join(","));
    assert!(clicked.contains("<h3>Project runs</h3>") && clicked.contains("<td>success</td>"), "{clicked}");
    assert!(clicked.contains(&shown_rows), "{shown_rows} in {clicked}");
}

#[test]
fn two_hundred_models_render_and_a_deep_column_lights_its_whole_chain() {
    let p = Project::new();
    p.write("data/raw.csv", "id,a\n1,2\n");
    p.write("dfpipe.yml", "name: big\nsources:\n  raw: { path: data/raw.csv }\ncontracts:\n  m000:\n    - { name: a, description: the first a }\n");
    p.write("sql/m000.sql", "SELECT id, a FROM raw\n");
    for i in 1..200 {
        p.write(
            &format!("sql/m{i:03}.sql"),
            &format!("-- model {i}\nSELECT id, a + {i} AS a FROM m{:03}\n", (i - 1) / 2),
        );
    }
    assert_success(&p.dfpipe(&["docs", "--out", "site"]));
    let page = p.file("site/index.html");
    let shown = nodes(&dom(&page, ""));
    assert_eq!(shown.iter().filter(|(c, _)| c.starts_with("node model")).count(), 200);
    let clicked = dom(&page, "#column=model:m199.a");
    let lit: Vec<String> =
        nodes(&clicked).into_iter().filter(|(c, _)| c.split(' ').any(|c| c == "lit")).map(|(_, id)| id).collect();
    // raw → m000 → m002 → m005 → m011 → m024 → m049 → m099 → m199 → its table.
    assert_eq!(
        lit,
        [
            "source:raw",
            "model:m000",
            "model:m002",
            "model:m005",
            "model:m011",
            "model:m024",
            "model:m049",
            "model:m099",
            "model:m199",
            "target:warehouse.m199"
        ]
    );
    let first = dom(&page, "#column=model:m000.a");
    assert!(first.contains("<b>a</b> <span class=\"muted\">Int64</span> — the first a"), "{first}");
}

#[test]
fn serve_answers_the_page_on_localhost_and_nothing_outside_it() {
    let p = Project::demo(100);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dfpipe"))
        .args(["docs", "--out", "site", "--serve", "--port", &port.to_string()])
        .current_dir(p.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let get = |path: &str| -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).ok()?;
        let mut reply = String::new();
        s.read_to_string(&mut reply).ok()?;
        Some(reply)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let page = loop {
        if let Some(reply) = get("/") {
            break reply;
        }
        assert!(std::time::Instant::now() < deadline, "dfpipe docs --serve never answered");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let outside = get("/../dfpipe.yml").unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(page.starts_with("HTTP/1.1 200 OK") && page.contains(" — dfpipe docs</title>"), "{page}");
    assert!(outside.starts_with("HTTP/1.1 404"), "{outside}");
}
