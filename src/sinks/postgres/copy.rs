//! One `COPY … FROM STDIN (FORMAT binary)`: batches cast to the table's column types (a value
//! that does not fit is an error naming the column, never a silent NULL), encoded by
//! [`super::encode`], sent, and the server's row count checked against what was sent.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use futures::{SinkExt, StreamExt};
use tokio_postgres::Transaction;

use super::{Failure, PostgresSink, encode};
use crate::error::df_message;
use crate::util::progress::RowCounter;

/// What a table's columns are written as: the Arrow type each column is cast to and encoded
/// from, and, for array columns of an existing table, the OID of its element type.
#[derive(Debug, Clone, Default)]
pub(super) struct ColumnTypes {
    /// One per model column.
    pub arrow: Vec<DataType>,
    /// One per model column (empty: each array's element OID follows its Arrow type).
    pub array_elements: Vec<Option<u32>>,
}

/// Sends batches through one `COPY ... FROM STDIN (FORMAT binary)`.
#[derive(Debug, Clone)]
pub(super) struct Copier {
    table: String,
    column_list: String,
    schema: SchemaRef,
    types: Vec<DataType>,
    array_elements: Vec<Option<u32>>,
    counter: RowCounter,
}

/// The model's batches, each with the number of rows before it (for row numbers in errors).
pub(super) fn batches(
    data: SendableRecordBatchStream,
) -> impl futures::Stream<Item = Result<(RecordBatch, u64), Failure>> {
    data.scan(0u64, |before, batch| {
        let item = batch.map(|b| {
            let first = *before;
            *before += b.num_rows() as u64;
            (b, first)
        });
        futures::future::ready(Some(item.map_err(|e| Failure::Other(df_message(&e)))))
    })
}

impl PostgresSink {
    /// A copier into `table`, after checking every column type can be encoded.
    pub(super) fn copier(&self, table: &str, column_list: &str, types: ColumnTypes) -> Result<Copier, String> {
        let ColumnTypes { arrow: types, array_elements } = types;
        for (field, ty) in self.schema.fields().iter().zip(&types) {
            if !encode::supported(ty) {
                return Err(format!(
                    "column `{}`: Arrow type {ty} has no PostgreSQL encoding yet; CAST it in the model",
                    field.name()
                ));
            }
        }
        Ok(Copier {
            table: table.to_string(),
            column_list: column_list.to_string(),
            schema: self.schema.clone(),
            types,
            array_elements,
            counter: self.counter.clone(),
        })
    }
}

impl Copier {
    /// Streams every batch through binary COPY inside `tx`; returns the rows copied.
    pub(super) async fn copy(
        &self,
        tx: &Transaction<'_>,
        data: impl futures::Stream<Item = Result<(RecordBatch, u64), Failure>>,
    ) -> Result<u64, Failure> {
        let sink = tx
            .copy_in::<_, Bytes>(&format!("COPY {} ({}) FROM STDIN (FORMAT binary)", self.table, self.column_list))
            .await?;
        futures::pin_mut!(sink);
        futures::pin_mut!(data);
        sink.send(Bytes::from_static(encode::HEADER)).await?;
        let mut encoder = encode::Encoder::with_array_elements(self.array_elements.clone());
        let mut slicer = MessageRows::default();
        let mut rows = 0u64;
        while let Some(item) = data.next().await {
            let (batch, before) = item?;
            let batch = self.cast(batch, before)?;
            let mut offset = 0;
            while offset < batch.num_rows() {
                let part = batch.slice(offset, slicer.next(batch.num_rows() - offset));
                let first = before + offset as u64;
                let bytes = encoder
                    .encode(&part)
                    .map_err(|e| format!("column `{}`, row {}: {}", e.column, first + e.row as u64 + 1, e.reason))?;
                slicer.sent(part.num_rows(), bytes.len());
                if let Err(e) = sink.send(Bytes::copy_from_slice(bytes)).await {
                    // A closed connection hides the server's reason in the COPY's pending response.
                    return Err(match sink.as_mut().finish().await {
                        Err(reason) if reason.as_db_error().is_some() => reason.into(),
                        _ => e.into(),
                    });
                }
                offset += part.num_rows();
            }
            if rows == 0 {
                crate::util::fault::pause_mid_load_async().await;
            }
            rows += batch.num_rows() as u64;
            self.counter.add(batch.num_rows() as u64);
        }
        sink.send(Bytes::from_static(encode::TRAILER)).await?;
        let copied = sink.as_mut().finish().await?;
        if copied != rows {
            return Err(Failure::Other(format!("PostgreSQL reports {copied} rows copied, dfpipe sent {rows}")));
        }
        Ok(rows)
    }

    /// Casts each column to the type it is encoded as; a value that does not fit is an error
    /// naming the column (never a silent NULL).
    fn cast(&self, batch: RecordBatch, rows_before: u64) -> Result<RecordBatch, String> {
        let types = &self.types;
        if batch.columns().iter().zip(types).all(|(c, t)| c.data_type() == t) {
            return Ok(batch);
        }
        let options = CastOptions { safe: false, ..Default::default() };
        let schema = self.schema.clone();
        let columns = batch
            .columns()
            .iter()
            .zip(types)
            .zip(schema.fields())
            .map(|((c, t), f)| {
                if c.data_type() == t {
                    Ok(c.clone())
                } else {
                    cast_with_options(c, t, &options).map_err(|e| {
                        format!(
                            "column `{}` (rows {}..): cannot convert {} to the table's type: {e}",
                            f.name(),
                            rows_before + 1,
                            c.data_type()
                        )
                    })
                }
            })
            .collect::<Result<Vec<_>, String>>()?;
        let fields: Vec<_> =
            schema.fields().iter().zip(types).map(|(f, t)| f.as_ref().clone().with_data_type(t.clone())).collect();
        RecordBatch::try_new(Arc::new(datafusion::arrow::datatypes::Schema::new(fields)), columns)
            .map_err(|e| e.to_string())
    }
}

/// How many rows go into one `CopyData` message: as many as fill about [`MessageRows::BYTES`],
/// judged from the bytes per row of the message before. A whole batch in one message would be
/// held three times over (the encoder's buffer, the message, the connection's write buffer),
/// per stream; at ~256 KiB each the load holds about a megabyte per stream instead.
#[derive(Debug)]
struct MessageRows {
    rows: usize,
}

impl MessageRows {
    /// The size a message aims at.
    const BYTES: usize = 256 << 10;

    /// The rows of the next message, at most `left`.
    fn next(&self, left: usize) -> usize {
        self.rows.min(left)
    }

    /// Learns the bytes per row from a message just encoded.
    fn sent(&mut self, rows: usize, bytes: usize) {
        let per_row = bytes.div_ceil(rows.max(1)).max(1);
        self.rows = (Self::BYTES / per_row).max(1);
    }
}

impl Default for MessageRows {
    /// The first message: 1,024 rows, then sized from what they took.
    fn default() -> Self {
        MessageRows { rows: 1024 }
    }
}
