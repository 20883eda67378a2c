//! `replace` over several connections: under the table's writer lock, the hidden new table is
//! created and committed, filled by parallel COPY streams each in its own transaction (batches
//! dealt round-robin), then swapped in by one transaction. On failure the hidden table is
//! dropped and the target is never touched.

use datafusion::arrow::array::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;

use super::copy::Copier;
use super::{Failure, PostgresSink, connect};
use crate::error::df_message;
use crate::util::sql::quote;

impl PostgresSink {
    /// `replace` over several connections: under the table's writer lock (held by the main
    /// connection's session), the new table is created (committed, under its hidden name),
    /// filled by parallel COPY streams each in its own transaction, then swapped in by one
    /// transaction. On failure the hidden table is dropped; the target is never touched.
    pub(super) async fn replace_in_parallel(
        &self,
        config: &connect::Settings,
        data: SendableRecordBatchStream,
    ) -> Result<u64, String> {
        let mut main = connect::connect(config).await?;
        let result = self.replace_on(&mut main.client, config, data).await;
        let result = match result {
            Ok(rows) => return Ok(rows),
            Err(Failure::Db(e)) => main.describe(&e).await,
            Err(Failure::Other(message)) => message,
        };
        // The session ends with the connection, and its writer lock with it.
        let _ = main.client.batch_execute(&format!("ROLLBACK; DROP TABLE IF EXISTS {}", self.new_table())).await;
        Err(result)
    }

    async fn replace_on(
        &self,
        main: &mut tokio_postgres::Client,
        config: &connect::Settings,
        data: SendableRecordBatchStream,
    ) -> Result<u64, Failure> {
        if let Some(s) = self.table.schema.as_deref() {
            main.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote(s))).await?;
        }
        let schema = self.lock_target(main, false).await?;
        let copier = self.copier(&self.new_table(), &self.column_list(), self.created_types())?;
        main.batch_execute(&self.create_hidden_sql(&schema)?).await?;
        let rows = self.copy_in_parallel(config, &copier, data).await?;
        let tx = main.transaction().await?;
        self.swap(&tx, &schema).await?;
        self.record_marker(tx.client()).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Deals the batches round-robin to `self.streams` COPY streams on their own connections.
    async fn copy_in_parallel(
        &self,
        config: &connect::Settings,
        copier: &Copier,
        mut data: SendableRecordBatchStream,
    ) -> Result<u64, Failure> {
        let mut senders = Vec::with_capacity(self.streams);
        let mut workers = Vec::with_capacity(self.streams);
        for _ in 0..self.streams {
            let (tx, rx) = tokio::sync::mpsc::channel::<Message>(1);
            let mut connection = connect::connect(config).await?;
            let copier = copier.clone();
            workers.push(tokio::spawn(async move {
                let result = async {
                    let tx = connection.client.transaction().await?;
                    let rows = copier.copy(&tx, messages(rx)).await?;
                    tx.commit().await?;
                    Ok::<_, Failure>(rows)
                }
                .await;
                match result {
                    Ok(rows) => Ok(rows),
                    Err(Failure::Db(e)) => Err(connection.describe(&e).await),
                    Err(Failure::Other(m)) => Err(m),
                }
            }));
            senders.push(tx);
        }
        let (mut next, mut before, mut failure) = (0, 0u64, None);
        while let Some(batch) = data.next().await {
            match batch {
                Ok(batch) => {
                    let n = batch.num_rows() as u64;
                    if senders[next].send(Message::Batch(batch, before)).await.is_err() {
                        break; // that stream failed; its error is collected below
                    }
                    before += n;
                    next = (next + 1) % senders.len();
                }
                Err(e) => {
                    failure = Some(df_message(&e));
                    break;
                }
            }
        }
        if failure.is_none() {
            for sender in &senders {
                let _ = sender.send(Message::End).await;
            }
        }
        drop(senders);
        let mut rows = 0;
        for worker in workers {
            match worker.await {
                Ok(Ok(n)) => rows += n,
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(e) => failure = failure.or(Some(e.to_string())),
            }
        }
        match failure {
            Some(e) => Err(Failure::Other(e)),
            None => Ok(rows),
        }
    }
}

/// What a parallel COPY stream receives.
enum Message {
    /// A batch and the number of rows dealt before it.
    Batch(RecordBatch, u64),
    /// The input ended cleanly: finish the COPY and commit.
    End,
}

/// A stream's batches; a channel that closes without [`Message::End`] is a cancelled load.
fn messages(
    rx: tokio::sync::mpsc::Receiver<Message>,
) -> impl futures::Stream<Item = Result<(RecordBatch, u64), Failure>> {
    futures::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Some(Message::Batch(batch, before)) => Some((Ok((batch, before)), Some(rx))),
            Some(Message::End) => None,
            None => Some((Err(Failure::Other("the load was cancelled".to_string())), None)),
        }
    })
}
