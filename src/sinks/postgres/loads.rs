//! The markers of incremental loads in a PostgreSQL database (`_dfpipe_loads` beside the
//! table): read before a run, rewritten by `dfpipe state forget`.

use super::{connect, qualified};
use crate::config::{Secret, TableName};
use crate::sinks::marker::{LOADS_TABLE, LoadMarker, TargetLoads, create_loads_sql, insert_load_sql};

/// What `table` holds of its incremental loads.
pub async fn read_loads(dsn: Option<&Secret>, table: &TableName) -> Result<TargetLoads, String> {
    let settings = connect::config(dsn.map(Secret::expose).transpose()?)?;
    let connection = connect::connect(&settings).await?;
    let client = &connection.client;
    let fail = |e: tokio_postgres::Error| format!("reading the incremental state of {table}: {e}");
    let target = qualified(table.schema.as_deref(), &table.name);
    let loads = qualified(table.schema.as_deref(), LOADS_TABLE);
    let exists = |name: String| async move {
        client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name]).await.map(|r| r.get::<_, bool>(0))
    };
    let mut out = TargetLoads { exists: exists(target.clone()).await.map_err(fail)?, ..TargetLoads::default() };
    if out.exists {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {target})");
        out.has_rows = client.query_one(&sql, &[]).await.map_err(fail)?.get(0);
    }
    if exists(loads.clone()).await.map_err(fail)? {
        let sql = format!(
            "SELECT target, load_id, kind, state, definition FROM {loads} WHERE target = $1 ORDER BY loaded_at, load_id"
        );
        let rows = client.query(&sql, &[&table.name]).await.map_err(fail)?;
        out.markers = rows
            .iter()
            .map(|r| LoadMarker {
                target: r.get(0),
                load_id: r.get(1),
                kind: r.get(2),
                state: r.get(3),
                definition: r.get(4),
            })
            .collect();
    }
    Ok(out)
}

/// Rewrites the markers of `table` to `markers` in one transaction.
pub async fn rewrite_loads(dsn: Option<&Secret>, table: &TableName, markers: &[LoadMarker]) -> Result<(), String> {
    let settings = connect::config(dsn.map(Secret::expose).transpose()?)?;
    let mut connection = connect::connect(&settings).await?;
    let fail = |e: tokio_postgres::Error| format!("rewriting the incremental state of {table}: {e}");
    let loads = qualified(table.schema.as_deref(), LOADS_TABLE);
    let tx = connection.client.transaction().await.map_err(fail)?;
    tx.batch_execute(&create_loads_sql(&loads)).await.map_err(fail)?;
    tx.execute(&format!("DELETE FROM {loads} WHERE target = $1"), &[&table.name]).await.map_err(fail)?;
    for m in markers {
        tx.execute(&insert_load_sql(&loads), &[&m.target, &m.load_id, &m.kind, &m.state, &m.definition])
            .await
            .map_err(fail)?;
    }
    tx.commit().await.map_err(fail)
}
