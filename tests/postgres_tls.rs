//! PostgreSQL over TLS (rustls): libpq's sslmode values against a server that refuses plain TCP,
//! and its Unix socket, where there is no TLS.

use crate::pg;
use crate::util::*;

/// A project loading three rows to `tls.m` on the TLS server, through the DSN `dsn`.
fn project(dsn: &str) -> Project {
    let p = Project::new();
    p.write(
        "dfpipe.yml",
        &format!(
            "name: t\nconnections:\n  pg: {{ kind: postgres, dsn: \"{dsn}\" }}\n\
             outputs:\n  - model: m\n    to: pg\n    table: tls.m\n"
        ),
    );
    p.write("sql/m.sql", "SELECT * FROM (VALUES (1), (2), (3)) AS t(id)\n");
    p
}

/// Runs with HOME in the project, so no `~/.postgresql/root.crt` of the machine takes part.
fn run(p: &Project, env: &[(&str, &str)]) -> std::process::Output {
    let home = p.path().display().to_string();
    let mut env = env.to_vec();
    env.push(("HOME", &home));
    p.dfpipe_env(&["run"], &env)
}

fn loaded(server: &pg::TlsServer) -> String {
    let rows = pg::query_at(&server.socket_url, "SELECT count(*) || ':' || sum(id) FROM tls.m");
    pg::query_at(&server.socket_url, "DROP TABLE tls.m");
    rows[0][0].clone()
}

#[test]
fn sslmode_is_honoured_over_tls() {
    let server = pg::tls_server();
    pg::query_at(&server.socket_url, "CREATE SCHEMA IF NOT EXISTS tls");
    let (port, ca, other) = (server.port, server.ca.display(), server.other_ca.display());

    // The server refuses plain connections, so `disable` fails with its reason, without retrying.
    let out = run(&project(&format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable")), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("after 1 attempt(s): FATAL: pg_hba.conf rejects connection"), "{}", stderr(&out));
    assert!(stderr(&out).contains("no encryption"), "{}", stderr(&out));

    // `prefer` (the default) and `require` encrypt without checking the certificate.
    for mode in ["", "?sslmode=require"] {
        let out = run(&project(&format!("postgres://postgres@127.0.0.1:{port}/postgres{mode}")), &[]);
        assert_success(&out);
        assert_eq!(loaded(server), "3:6", "sslmode {mode}");
    }

    // `verify-full` checks the chain and the name: `localhost` is the certificate's name.
    let full = format!("host=localhost port={port} user=postgres sslmode=verify-full sslrootcert='{ca}'");
    assert_success(&run(&project(&full), &[]));
    assert_eq!(loaded(server), "3:6");

    // ... and 127.0.0.1 is not, which `verify-ca` accepts and `verify-full` does not.
    let by_ip = |mode: &str| format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode={mode}&sslrootcert={ca}");
    assert_success(&run(&project(&by_ip("verify-ca")), &[]));
    assert_eq!(loaded(server), "3:6");
    let out = run(&project(&by_ip("verify-full")), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("after 1 attempt(s)") && err.contains("not valid for name"), "{err}");
    assert!(err.contains("point it at the CA that signed the server's certificate"), "{err}");

    // A root that signed nothing the server presents fails, and nothing is created.
    let out =
        run(&project(&format!("host=localhost port={port} user=postgres sslmode=verify-ca sslrootcert={other}")), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("UnknownIssuer"), "{}", stderr(&out));
    let tables = pg::query_at(&server.socket_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'tls'");
    assert_eq!(tables, [["0"]]);

    // libpq's variables set what the DSN leaves out.
    let env = [("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &*server.ca.display().to_string())];
    let dsn = format!("postgres://postgres@localhost:{port}/postgres");
    assert_success(&run(&project(&dsn), &env));
    assert_eq!(loaded(server), "3:6");
    let out = run(&project(&dsn), &[("PGSSLMODE", "verify_full")]);
    // Refused before the run starts, as a config error.
    let message =
        "connection `pg`: sslmode `verify_full` is not one of disable, allow, prefer, require, verify-ca, verify-full";
    assert_error(&out, 2, message);

    // A Unix socket (a host that is a directory) has no TLS and no host name to check: `prefer`
    // and `disable` connect (they failed: "`` is not a valid TLS host name", five times).
    for mode in ["", " sslmode=disable"] {
        assert_success(&run(&project(&format!("{}{mode}", server.socket_url)), &[]));
        assert_eq!(loaded(server), "3:6", "sslmode {mode}");
    }
}
