//! OpenLineage: events posted to a real HTTP listener in the test (and a JSON-lines file),
//! checked against the spec's required fields; an endpoint that is down never fails a run.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::util::*;

/// Requests received: (headers, body).
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// An HTTP listener on a free port answering 200 to every POST; returns its URL.
fn listener() -> (String, Received) {
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    let received: Received = Arc::default();
    let store = received.clone();
    std::thread::spawn(move || {
        for stream in server.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                headers.push_str(&line);
            }
            let length = headers
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            store.lock().unwrap().push((headers, String::from_utf8(body).unwrap()));
            let mut stream = stream;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, received)
}

fn project(lineage: &str) -> Project {
    let p = Project::new();
    p.write("data/orders.csv", "id,amount,status\n1,10,paid\n2,20,new\n");
    p.write("sql/paid.sql", "SELECT id, amount * 2 AS doubled FROM orders WHERE status = 'paid'\n");
    p.write("sql/broken.sql", "SELECT id, 1 / (amount - amount) AS boom FROM orders\n");
    p.write(
        "dfpipe.yml",
        &format!("name: shop\nsources:\n  orders: {{ path: data/orders.csv }}\nlineage:\n  openlineage: {lineage}\n"),
    );
    p
}

/// The fields OpenLineage 2-0-2 requires of a RunEvent, and of every facet.
fn assert_run_event(event: &Value) {
    for key in ["eventTime", "producer", "schemaURL", "eventType"] {
        assert!(event[key].is_string(), "{key} in {event}");
    }
    assert_eq!(event["schemaURL"], "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent");
    chrono::DateTime::parse_from_rfc3339(event["eventTime"].as_str().unwrap()).unwrap();
    let run_id = event["run"]["runId"].as_str().unwrap();
    assert_eq!(run_id.len(), 36, "{run_id} is a UUID");
    assert!(event["job"]["namespace"].is_string() && event["job"]["name"].is_string());
    for dataset in event["inputs"].as_array().unwrap().iter().chain(event["outputs"].as_array().unwrap()) {
        assert!(dataset["namespace"].is_string() && dataset["name"].is_string(), "{dataset}");
        for (_, facet) in dataset["facets"].as_object().into_iter().flatten() {
            assert!(facet["_producer"].is_string() && facet["_schemaURL"].is_string(), "{facet}");
        }
    }
}

#[test]
fn each_target_sends_start_then_complete_or_fail_with_schema_and_column_lineage() {
    let (url, received) = listener();
    let p = project(&format!("{{ url: \"{url}\", namespace: nightly, api_key: \"${{OL_KEY}}\" }}"));
    let out = p.dfpipe_env(&["run", "-v"], &[("OL_KEY", "s3cr3t-key")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out)); // `broken` divides by zero
    assert!(!stderr(&out).contains("s3cr3t-key"));
    let received = received.lock().unwrap().clone();
    let events: Vec<Value> = received.iter().map(|(_, body)| serde_json::from_str(body).unwrap()).collect();
    assert!(received.iter().all(|(headers, _)| headers.contains("POST /api/v1/lineage ")
        && headers.to_lowercase().contains("authorization: bearer s3cr3t-key")));
    let summary: Vec<(String, String)> = events
        .iter()
        .map(|e| (e["job"]["name"].as_str().unwrap().to_string(), e["eventType"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        summary,
        [
            ("warehouse.broken".to_string(), "START".to_string()),
            ("warehouse.broken".into(), "FAIL".into()),
            ("warehouse.paid".into(), "START".into()),
            ("warehouse.paid".into(), "COMPLETE".into())
        ]
    );
    for e in &events {
        assert_run_event(e);
        assert_eq!(e["job"]["namespace"], "nightly");
    }
    assert_eq!(events[2]["run"]["runId"], events[3]["run"]["runId"]);
    assert_ne!(events[0]["run"]["runId"], events[2]["run"]["runId"]);
    assert!(events[1]["run"]["facets"]["errorMessage"]["message"].as_str().unwrap().contains("Divide by zero"));

    let complete = &events[3];
    let input = &complete["inputs"][0];
    assert_eq!(input["namespace"], "file");
    assert_eq!(input["name"], p.file("data/orders.csv").display().to_string());
    let output = &complete["outputs"][0];
    assert_eq!(output["namespace"], format!("duckdb://{}", p.file("dfpipe.duckdb").display()));
    assert_eq!(output["name"], "main.paid");
    assert_eq!(output["outputFacets"]["outputStatistics"]["rowCount"], 1);
    let fields: Vec<&str> =
        output["facets"]["schema"]["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(fields, ["id", "doubled"]);
    let lineage = &output["facets"]["columnLineage"]["fields"];
    let inputs = |column: &str| -> Vec<(String, String, String)> {
        lineage[column]["inputFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let t = &f["transformations"][0];
                (
                    f["field"].as_str().unwrap().into(),
                    t["type"].as_str().unwrap().into(),
                    t["subtype"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    assert_eq!(
        inputs("doubled"),
        [
            ("amount".into(), "DIRECT".into(), "TRANSFORMATION".into()),
            ("status".into(), "INDIRECT".into(), "FILTER".into())
        ]
    );
    assert_eq!(
        inputs("id"),
        [("id".into(), "DIRECT".into(), "IDENTITY".into()), ("status".into(), "INDIRECT".into(), "FILTER".into())]
    );
}

#[test]
fn events_go_to_a_json_lines_file_and_an_endpoint_that_is_down_only_warns() {
    let p = project("{ file: lineage/events.jsonl }");
    std::fs::remove_file(p.file("sql/broken.sql")).unwrap();
    assert_success(&p.dfpipe(&["run", "-q"]));
    let text = std::fs::read_to_string(p.file("lineage/events.jsonl")).unwrap();
    let events: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 2);
    events.iter().for_each(assert_run_event);
    assert_eq!(events[0]["job"]["namespace"], "shop");

    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let p = project(&format!("{{ url: \"http://127.0.0.1:{port}\" }}"));
    std::fs::remove_file(p.file("sql/broken.sql")).unwrap();
    let out = p.dfpipe(&["run"]);
    assert_success(&out);
    assert_eq!(
        stderr(&out).matches("OpenLineage events are not sent for the rest of this run").count(),
        1,
        "{}",
        stderr(&out)
    );
    assert_eq!(one(p.duckdb("SELECT CAST(count(*) AS VARCHAR) FROM paid")), "1");
}
