//! The fixed-width columns of a sort's buffered batches, held row by row.
//!
//! A run is copied out of its buffer in the sort's order, a row from here, the next from
//! anywhere else in hundreds of MiB. Column by column, each of a row's numbers and dates is a
//! load from another array, a cache miss each: lineitem's eleven cost eleven misses a row. Held
//! as rows, a row's fixed-width values are one copy of a few adjacent cache lines, and turning
//! the copied rows back into columns reads memory that is already in the cache. On lineitem
//! SF10 sorted under 512 MiB this took the sort's CPU to 0.896x and its wall time to 0.939x
//! (3 pairs, benches/README.md), holding about the same bytes (a row's NULL bits beside them).
//!
//! A row holds each column's value at its own offset, then a bit per column that is set where
//! the value is NULL. Columns of other types (strings, lists, booleans) stay in the batches.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayData, ArrayRef, BooleanBufferBuilder, RecordBatch, RecordBatchOptions, downcast_primitive_array,
    make_array,
};
use datafusion::arrow::buffer::{Buffer, NullBuffer};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::error::Result;

/// A column held in rows: its place in the schema, its type, and where its bytes are in a row.
#[derive(Debug)]
struct Fixed {
    index: usize,
    data_type: DataType,
    width: usize,
    offset: usize,
}

/// Which columns of a schema are held in rows, and how a row is laid out.
#[derive(Debug)]
pub struct RowLayout {
    schema: SchemaRef,
    fixed: Vec<Fixed>,
    /// The schema of the columns left in the batches, and their places in `schema`.
    rest: SchemaRef,
    rest_indices: Vec<usize>,
    /// Where the NULL bits start in a row.
    null_bits: usize,
    /// Bytes of a row.
    stride: usize,
}

impl RowLayout {
    /// The layout for batches of `schema`: its columns of Arrow's primitive types (numbers,
    /// dates, times, decimals, intervals) of 1 to 16 bytes; None when fewer than two (one column
    /// is copied as fast as it is).
    pub fn new(schema: &SchemaRef) -> Option<RowLayout> {
        let mut fixed = Vec::new();
        let mut offset = 0;
        for (index, field) in schema.fields().iter().enumerate() {
            let data_type = field.data_type();
            let Some(width) =
                data_type.primitive_width().filter(|w| data_type.is_primitive() && matches!(w, 1 | 2 | 4 | 8 | 16))
            else {
                continue;
            };
            fixed.push(Fixed { index, data_type: data_type.clone(), width, offset });
            offset += width;
        }
        if fixed.len() < 2 {
            return None;
        }
        let stride = offset + fixed.len().div_ceil(8);
        let rest_indices: Vec<usize> =
            (0..schema.fields().len()).filter(|i| !fixed.iter().any(|f| f.index == *i)).collect();
        let rest = Schema::new(rest_indices.iter().map(|&i| schema.field(i).clone()).collect::<Vec<_>>());
        Some(RowLayout { schema: schema.clone(), fixed, rest: Arc::new(rest), rest_indices, null_bits: offset, stride })
    }

    /// The byte of a row holding column `k`'s NULL bit (`k` among the fixed-width columns), and
    /// the bit.
    fn null_bit(&self, k: usize) -> (usize, u8) {
        (self.null_bits + k / 8, 1u8 << (k % 8))
    }

    /// The schema of the columns left in the batches ([`Self::split`]).
    pub fn rest(&self) -> &SchemaRef {
        &self.rest
    }

    /// `batch` (of the layout's schema) as its fixed-width columns in rows and a batch of the
    /// others.
    pub fn split(&self, batch: &RecordBatch) -> Result<(RowBlock, RecordBatch)> {
        let rows = batch.num_rows();
        let mut bytes = vec![0u8; rows * self.stride];
        let mut nulls = vec![false; self.fixed.len()];
        for (k, f) in self.fixed.iter().enumerate() {
            let array = batch.column(f.index);
            scatter(f.width, values(array.as_ref()), &mut bytes, self.stride, f.offset);
            if let Some(valid) = array.nulls().filter(|n| n.null_count() > 0) {
                nulls[k] = true;
                let (byte, bit) = self.null_bit(k);
                for row in valid.iter().enumerate().filter(|(_, v)| !v).map(|(r, _)| r) {
                    bytes[row * self.stride + byte] |= bit;
                }
            }
        }
        let columns: Vec<ArrayRef> = self.rest_indices.iter().map(|&i| batch.column(i).clone()).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let rest = RecordBatch::try_new_with_options(self.rest.clone(), columns, &options)?;
        Ok((RowBlock { bytes, nulls }, rest))
    }

    /// The rows `indices` ((block, row) pairs) name, as one batch of the layout's schema: the
    /// fixed-width columns from `blocks`, the others from `rest` (their columns gathered already,
    /// in the same order).
    pub fn gather(&self, blocks: &[&RowBlock], indices: &[(usize, usize)], rest: RecordBatch) -> Result<RecordBatch> {
        let stride = self.stride;
        let mut rows = vec![0u8; indices.len() * stride];
        for (out, &(b, r)) in rows.chunks_exact_mut(stride).zip(indices) {
            out.copy_from_slice(&blocks[b].bytes[r * stride..(r + 1) * stride]);
        }
        let mut columns: Vec<Option<ArrayRef>> = vec![None; self.schema.fields().len()];
        for (k, f) in self.fixed.iter().enumerate() {
            let values = column(f.width, &rows, stride, f.offset);
            let nulls = blocks.iter().any(|b| b.nulls[k]).then(|| {
                let (byte, bit) = self.null_bit(k);
                let mut valid = BooleanBufferBuilder::new(indices.len());
                for row in rows.chunks_exact(stride) {
                    valid.append(row[byte] & bit == 0);
                }
                NullBuffer::new(valid.finish())
            });
            let data = ArrayData::builder(f.data_type.clone()).len(indices.len()).add_buffer(values).nulls(nulls);
            columns[f.index] = Some(make_array(data.build()?));
        }
        for (&i, column) in self.rest_indices.iter().zip(rest.columns()) {
            columns[i] = Some(column.clone());
        }
        let columns: Vec<ArrayRef> = columns.into_iter().map(|c| c.expect("every column")).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(indices.len()));
        Ok(RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?)
    }
}

/// One batch's fixed-width columns, row by row ([`RowLayout`]).
pub struct RowBlock {
    bytes: Vec<u8>,
    /// Whether each fixed-width column has a NULL in this block.
    nulls: Vec<bool>,
}

impl RowBlock {
    /// The bytes the block holds.
    pub fn size(&self) -> usize {
        self.bytes.capacity() + self.nulls.capacity()
    }
}

/// The bytes of a fixed-width array's values (from its offset on).
fn values(array: &dyn Array) -> &[u8] {
    downcast_primitive_array!(
        array => {
            let values = array.values();
            // SAFETY: the slice covers exactly the values' bytes, borrowed from the array.
            unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values.as_ref())) }
        },
        t => unreachable!("a fixed-width column of {t} is not primitive")
    )
}

/// Copies values of `width` bytes from `from` into each row of `rows` at `offset`.
fn scatter(width: usize, from: &[u8], rows: &mut [u8], stride: usize, offset: usize) {
    fn each<const W: usize>(from: &[u8], rows: &mut [u8], stride: usize, offset: usize) {
        for (row, value) in rows.chunks_exact_mut(stride).zip(from.chunks_exact(W)) {
            row[offset..offset + W].copy_from_slice(value);
        }
    }
    match width {
        1 => each::<1>(from, rows, stride, offset),
        2 => each::<2>(from, rows, stride, offset),
        4 => each::<4>(from, rows, stride, offset),
        8 => each::<8>(from, rows, stride, offset),
        _ => each::<16>(from, rows, stride, offset),
    }
}

/// The values of `width` bytes at `offset` of each row, as a buffer aligned for their type.
fn column(width: usize, rows: &[u8], stride: usize, offset: usize) -> Buffer {
    macro_rules! read {
        ($t:ty) => {
            Buffer::from_vec(
                rows.chunks_exact(stride)
                    .map(|row| <$t>::from_ne_bytes(row[offset..offset + width].try_into().expect("a value's width")))
                    .collect::<Vec<$t>>(),
            )
        };
    }
    match width {
        1 => read!(u8),
        2 => read!(u16),
        4 => read!(u32),
        8 => read!(u64),
        _ => read!(u128),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{
        Date32Array, Decimal128Array, Float64Array, Int8Array, Int64Array, StringArray, UInt16Array,
    };
    use datafusion::arrow::compute::interleave_record_batch;
    use datafusion::arrow::datatypes::Field;

    use super::super::gather::take_rows;
    use super::*;

    fn batch(seed: i64, rows: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("small", DataType::Int8, true),
            Field::new("day", DataType::Date32, true),
            Field::new("price", DataType::Decimal128(20, 2), true),
            Field::new("ratio", DataType::Float64, true),
            Field::new("port", DataType::UInt16, false),
        ]));
        let n = |r: i64, m: i64| (seed * 31 + r) % m;
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values((0..rows).map(|r| seed * 1_000 + r))),
                Arc::new(StringArray::from_iter((0..rows).map(|r| (n(r, 5) != 0).then(|| format!("n{seed}.{r}"))))),
                Arc::new(Int8Array::from_iter((0..rows).map(|r| (n(r, 3) != 0).then_some(r as i8)))),
                Arc::new(Date32Array::from_iter((0..rows).map(|r| (n(r, 7) != 0).then_some(r as i32 * 3)))),
                Arc::new(
                    Decimal128Array::from_iter(
                        (0..rows).map(|r| (n(r, 4) != 0).then_some(r as i128 * -10_i128.pow(17))),
                    )
                    .with_precision_and_scale(20, 2)
                    .unwrap(),
                ),
                // No NULL in this one.
                Arc::new(Float64Array::from_iter_values((0..rows).map(|r| r as f64 / 3.0))),
                Arc::new(UInt16Array::from_iter_values((0..rows).map(|r| (r * 7) as u16))),
            ],
        )
        .unwrap()
    }

    #[test]
    fn rows_gathered_from_blocks_equal_arrow_s_interleave() {
        let batches = [batch(1, 50), batch(2, 9), batch(3, 33)];
        let layout = RowLayout::new(&batches[0].schema()).unwrap();
        assert_eq!(layout.rest().fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), ["name"]);
        // Five fixed columns of 8, 1, 4, 16, 8, 2 bytes, then one byte of NULL bits.
        assert_eq!(layout.stride, 8 + 1 + 4 + 16 + 8 + 2 + 1);
        let (blocks, rests): (Vec<RowBlock>, Vec<RecordBatch>) =
            batches.iter().map(|b| layout.split(b).unwrap()).unzip();
        let indices: Vec<(usize, usize)> =
            (0..200).map(|k| [(0, (k * 7) % 50), (1, k % 9), (2, (k * 5 + 1) % 33)][k % 3]).collect();
        let rest_refs: Vec<&RecordBatch> = rests.iter().collect();
        let rest = interleave_record_batch(&rest_refs, &indices).unwrap();
        let got = layout.gather(&blocks.iter().collect::<Vec<_>>(), &indices, rest).unwrap();
        let refs: Vec<&RecordBatch> = batches.iter().collect();
        let want = interleave_record_batch(&refs, &indices).unwrap();
        assert_eq!(got, want);
        assert!(got.column(3).null_count() > 0);
        // A column without NULLs gets no null buffer.
        assert!(got.column(5).nulls().is_none());
    }

    #[test]
    fn every_fixed_width_type_comes_back_as_it_was() {
        use datafusion::arrow::array::{
            Date64Array, Decimal32Array, Decimal64Array, DurationMillisecondArray, Float16Array, IntervalDayTimeArray,
            IntervalMonthDayNanoArray, IntervalYearMonthArray, Time32SecondArray, Time64NanosecondArray,
            TimestampMicrosecondArray, UInt8Array,
        };
        use datafusion::arrow::datatypes::{ArrowPrimitiveType, Float16Type, IntervalDayTime, IntervalMonthDayNano};
        type F16 = <Float16Type as ArrowPrimitiveType>::Native;

        let batch = |seed: i32, n: i32| {
            let some = |i: i32| (seed + i) % 4 != 0;
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Float16Array::from_iter((0..n).map(|i| some(i).then(|| F16::from_f32(i as f32 / 2.0))))),
                Arc::new(UInt8Array::from_iter_values((0..n).map(|i| (i * 3) as u8))),
                Arc::new(Time32SecondArray::from_iter((0..n).map(|i| some(i + 1).then_some(i * 60)))),
                Arc::new(Time64NanosecondArray::from_iter_values((0..n).map(|i| i64::from(i) * 1_000_001))),
                Arc::new(
                    TimestampMicrosecondArray::from_iter((0..n).map(|i| some(i + 2).then_some(i64::from(seed * i))))
                        .with_timezone("Europe/Paris"),
                ),
                Arc::new(DurationMillisecondArray::from_iter_values((0..n).map(|i| -i64::from(i)))),
                Arc::new(IntervalYearMonthArray::from_iter_values((0..n).map(|i| i - seed))),
                Arc::new(IntervalDayTimeArray::from_iter_values((0..n).map(|i| IntervalDayTime::new(i, seed)))),
                Arc::new(IntervalMonthDayNanoArray::from_iter(
                    (0..n).map(|i| some(i + 3).then(|| IntervalMonthDayNano::new(seed, i, i64::from(i) << 40))),
                )),
                Arc::new(
                    Decimal32Array::from_iter_values((0..n).map(|i| i * 7 - seed))
                        .with_precision_and_scale(9, 3)
                        .unwrap(),
                ),
                Arc::new(
                    Decimal64Array::from_iter((0..n).map(|i| some(i).then_some(i64::from(i) << 33)))
                        .with_precision_and_scale(18, 0)
                        .unwrap(),
                ),
                Arc::new(Date64Array::from_iter_values((0..n).map(|i| i64::from(i) * 86_400_000))),
            ];
            let fields: Vec<Field> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
                .collect();
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
        };
        let batches = [batch(1, 20), batch(2, 13)];
        let layout = RowLayout::new(&batches[0].schema()).unwrap();
        assert!(layout.rest().fields().is_empty());
        let (blocks, rests): (Vec<RowBlock>, Vec<RecordBatch>) =
            batches.iter().map(|b| layout.split(b).unwrap()).unzip();
        let indices: Vec<(usize, usize)> =
            (0..60).map(|k| if k % 2 == 0 { (0, (k * 3) % 20) } else { (1, k % 13) }).collect();
        // No column is left in the batches: the sort gathers them as a batch of no columns.
        let rest = take_rows(layout.rest(), &rests.iter().collect::<Vec<_>>(), &indices).unwrap();
        let got = layout.gather(&blocks.iter().collect::<Vec<_>>(), &indices, rest).unwrap();
        let want = interleave_record_batch(&batches.iter().collect::<Vec<_>>(), &indices).unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn one_fixed_width_column_is_left_in_the_batches() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        assert!(RowLayout::new(&schema).is_none());
    }
}
