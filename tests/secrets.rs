//! Credentials written into URLs (a source's `user:password@`, a signed query) and into a
//! config line never show: not in errors, logs, plans, results or the catalog.

use crate::util::*;

/// Every text a user or a log collector sees after `args`, plus the run's files.
fn everything_shown(p: &Project, env: &[(&str, &str)]) -> Vec<String> {
    let plan = p.dfpipe_env(&["plan", "-vv"], env);
    let run = p.dfpipe_env(&["run", "-vv"], env);
    let json = p.dfpipe_env(&["run", "--log-format", "json", "-vv"], env);
    let mut texts = vec![stdout(&plan), stderr(&plan), stdout(&run), stderr(&run), stdout(&json), stderr(&json)];
    texts.push(std::fs::read_to_string(p.file(".dfpipe/run_results.json")).unwrap_or_default());
    if p.file(".dfpipe/catalog.duckdb").exists() {
        texts.push(
            duckdb_rows(
                &p.file(".dfpipe/catalog.duckdb"),
                "SELECT coalesce(error, '') FROM runs UNION ALL SELECT coalesce(error, '') FROM targets",
            )
            .concat()
            .join("\n"),
        );
    }
    texts.push(stdout(&p.dfpipe_env(&["runs", "--format", "json"], env)));
    texts
}

#[test]
fn a_source_url_and_a_lineage_url_keep_their_credentials_hidden() {
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        "name: t\nsources:\n  r: { path: \"http://reader:${PW}@127.0.0.1:9/x.parquet?sig=${SIG}\" }\n\
         lineage: { openlineage: { url: \"http://user:${PW}@127.0.0.1:9/api\" } }\n",
    );
    p.write("sql/m.sql", "SELECT * FROM r\n");
    let env = [("PW", "S3cr3tPw_xyzzy"), ("SIG", "SIGSECRET42")];
    let run = p.dfpipe_env(&["run"], &env);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("error: source `r` (http://reader:***@127.0.0.1:9/x.parquet?sig=***): "),
        "{}",
        stderr(&run)
    );
    for text in everything_shown(&p, &env) {
        for secret in ["S3cr3tPw_xyzzy", "SIGSECRET42"] {
            assert!(!text.contains(secret), "{secret} leaked:\n{text}");
        }
    }
}

#[test]
fn a_config_error_on_a_line_holding_a_password_masks_it_in_place() {
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        "name: t\nconnections:\n  pg: { kind: postgres, dsn: \"postgresql://u:S3cr3tPw@127.0.0.1:1/db\", copy_stream: 2 }\n",
    );
    p.write("sql/m.sql", "SELECT 1 AS x\n");
    let out = p.dfpipe(&["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains("S3cr3tPw"), "{err}");
    assert!(
        err.contains("3 |   pg: { kind: postgres, dsn: \"postgresql://u:********@127.0.0.1:1/db\", copy_stream: 2 }\n"),
        "{err}"
    );
}
