//! One `COPY … FROM STDIN (FORMAT binary)`: batches cast to the table's column types (a value
//! that does not fit is an error naming the column, never a silent NULL; a fraction going into
//! an integer column is rounded as PostgreSQL's own cast rounds it, never truncated), encoded by
//! [`super::encode`], sent, and the server's row count checked against what was sent.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray, RecordBatch};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, SchemaRef};
use datafusion::arrow::error::ArrowError;
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
                    cast_like_postgres(c, t, &options).map_err(|e| {
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

/// Casts `array` to `to` as PostgreSQL's own cast would: Arrow truncates a fraction going into
/// an integer, PostgreSQL rounds it — a `real` or `double precision` to the nearest integer,
/// halves to even (`rint`: 0.5 → 0, 1.5 → 2, 2.5 → 2), a `numeric` halves away from zero
/// (0.5 → 1, -2.5 → -3). The range is checked after rounding, as PostgreSQL does (32767.5 does
/// not fit a `smallint`). Array elements are cast the same way; everything else is Arrow's cast.
fn cast_like_postgres(array: &ArrayRef, to: &DataType, options: &CastOptions) -> Result<ArrayRef, ArrowError> {
    match (array.data_type(), to) {
        (DataType::Float16 | DataType::Float32 | DataType::Float64, to) if to.is_integer() => {
            // Every float16 and float32 is exact in a float64, so it rounds the same there.
            let wide = cast_with_options(array, &DataType::Float64, options)?;
            let wide = wide.as_primitive::<Float64Type>();
            let rounded = wide.unary::<_, Float64Type>(f64::round_ties_even);
            cast_with_options(&rounded, to, options).map_err(|e| {
                // Name the value as the model had it, not as rounded.
                let fits = |i: usize| cast_with_options(&rounded.slice(i, 1), to, options).is_ok();
                match (0..rounded.len()).find(|&i| rounded.is_valid(i) && !fits(i)) {
                    Some(i) => ArrowError::CastError(format!("value {} is out of range for {to}", wide.value(i))),
                    None => e,
                }
            })
        }
        // Arrow rescales a decimal rounding halves away from zero, as PostgreSQL's numeric does.
        (DataType::Decimal128(..), to) if to.is_integer() => {
            cast_with_options(&cast_with_options(array, &DataType::Decimal128(38, 0), options)?, to, options)
        }
        (DataType::Decimal256(..), to) if to.is_integer() => {
            cast_with_options(&cast_with_options(array, &DataType::Decimal256(76, 0), options)?, to, options)
        }
        (DataType::List(_), DataType::List(element)) => {
            let list = array.as_list::<i32>();
            let values = cast_like_postgres(list.values(), element.data_type(), options)?;
            Ok(Arc::new(ListArray::try_new(element.clone(), list.offsets().clone(), values, list.nulls().cloned())?))
        }
        (DataType::LargeList(from), DataType::List(_)) => {
            let narrow = DataType::List(Arc::new(Field::clone(from)));
            cast_like_postgres(&cast_with_options(array, &narrow, options)?, to, options)
        }
        _ => cast_with_options(array, to, options),
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

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Decimal128Array, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array};
    use datafusion::arrow::datatypes::Int32Type;

    use super::*;

    fn strict() -> CastOptions<'static> {
        CastOptions { safe: false, ..Default::default() }
    }

    #[test]
    fn floats_round_halves_to_even_like_rint() {
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(0.5),
            Some(1.5),
            Some(2.5),
            Some(-0.5),
            Some(-1.5),
            Some(-2.5),
            Some(1.7),
            Some(-1.2),
            None,
        ]));
        let cast = cast_like_postgres(&floats, &DataType::Int16, &strict()).unwrap();
        assert_eq!(
            cast.as_primitive::<datafusion::arrow::datatypes::Int16Type>(),
            &Int16Array::from(vec![Some(0), Some(2), Some(2), Some(0), Some(-2), Some(-2), Some(2), Some(-1), None])
        );
        let reals: ArrayRef = Arc::new(Float32Array::from(vec![2.5f32, 3.5, 1e10]));
        let cast = cast_like_postgres(&reals, &DataType::Int64, &strict()).unwrap();
        assert_eq!(
            cast.as_primitive::<datafusion::arrow::datatypes::Int64Type>(),
            &Int64Array::from(vec![2, 4, 10_000_000_000])
        );
    }

    #[test]
    fn decimals_round_halves_away_from_zero() {
        let decimals: ArrayRef =
            Arc::new(Decimal128Array::from(vec![25, 15, -25, -15, 24, -26]).with_precision_and_scale(4, 1).unwrap());
        let cast = cast_like_postgres(&decimals, &DataType::Int32, &strict()).unwrap();
        assert_eq!(cast.as_primitive::<Int32Type>(), &Int32Array::from(vec![3, 2, -3, -2, 2, -3]));
    }

    #[test]
    fn array_elements_round_too() {
        let lists: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(vec![
            Some(vec![Some(0.5), Some(1.5), None]),
            None,
            Some(vec![Some(-2.5)]),
        ]));
        let to = DataType::new_list(DataType::Int32, true);
        let cast = cast_like_postgres(&lists, &to, &strict()).unwrap();
        assert_eq!(
            cast.as_list::<i32>(),
            &ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
                Some(vec![Some(0), Some(2), None]),
                None,
                Some(vec![Some(-2)])
            ])
        );
    }

    #[test]
    fn out_of_range_after_rounding_is_an_error_naming_the_value() {
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![32767.4, 32767.5]));
        let err = cast_like_postgres(&floats, &DataType::Int16, &strict()).unwrap_err();
        assert_eq!(err.to_string(), "Cast error: value 32767.5 is out of range for Int16");
        let nan: ArrayRef = Arc::new(Float64Array::from(vec![f64::NAN]));
        let err = cast_like_postgres(&nan, &DataType::Int32, &strict()).unwrap_err();
        assert_eq!(err.to_string(), "Cast error: value NaN is out of range for Int32");
        let decimals: ArrayRef = Arc::new(Decimal128Array::from(vec![327675]).with_precision_and_scale(6, 1).unwrap());
        let err = cast_like_postgres(&decimals, &DataType::Int16, &strict()).unwrap_err();
        assert_eq!(err.to_string(), "Cast error: value of 32768 is out of range Int16");
    }
}
