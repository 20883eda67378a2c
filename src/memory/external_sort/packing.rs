//! The narrower types a sort holds its rows in between its input and its output.
//!
//! Parquet readers hand DataFusion strings as views (16 bytes a value, plus the bytes of values
//! longer than 12) and decimals of up to 18 digits as 128-bit integers. A sort copies every row
//! twice (into its run, then into its output), compresses and writes it, reads and decompresses
//! it again: every byte of a row costs it several times. Held as plain strings (4 bytes of offset
//! a value) and 64-bit integers, TPC-H lineitem's rows take ~95 bytes instead of ~180, so each
//! run holds twice the rows and there is half as much to copy, compress and write.
//!
//! Only columns that are not sort keys are packed, and only when every key is a column: the keys'
//! row encoding is computed from the same arrays before the sort and during its merge.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, Int64Type, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::error::Result;
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_expr::expressions::Column;

/// The widest decimal precision whose values fit a 64-bit integer.
const INT64_DECIMAL_DIGITS: u8 = 18;

/// How one column is held inside the sort.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Held {
    /// As it comes.
    AsIs,
    /// A decimal of at most 18 digits, as its unscaled 64-bit integers.
    Decimal { precision: u8, scale: i8 },
    /// String or binary views, as plain strings or binary (the type they are cast back to).
    Views,
}

/// The sort's schema inside and out, and how each column goes from one to the other.
#[derive(Debug)]
pub struct Packing {
    outside: SchemaRef,
    inside: SchemaRef,
    columns: Vec<Held>,
}

impl Packing {
    /// How a sort by `ordering` of rows of `schema` holds them; nothing is packed when a key is
    /// not a plain column.
    pub fn new(schema: &SchemaRef, ordering: &LexOrdering) -> Packing {
        let keys: Option<Vec<usize>> =
            ordering.iter().map(|e| e.expr.downcast_ref::<Column>().map(|c| c.index())).collect();
        let columns: Vec<Held> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| match (&keys, field.data_type()) {
                (Some(keys), _) if keys.contains(&i) => Held::AsIs,
                (None, _) => Held::AsIs,
                (_, &DataType::Decimal128(precision, scale)) if precision <= INT64_DECIMAL_DIGITS => {
                    Held::Decimal { precision, scale }
                }
                (_, DataType::Utf8View | DataType::BinaryView) => Held::Views,
                _ => Held::AsIs,
            })
            .collect();
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .zip(&columns)
            .map(|(field, held)| {
                let inside = match (held, field.data_type()) {
                    (Held::Decimal { .. }, _) => DataType::Int64,
                    (Held::Views, DataType::Utf8View) => DataType::Utf8,
                    (Held::Views, _) => DataType::Binary,
                    (Held::AsIs, other) => other.clone(),
                };
                field.as_ref().clone().with_data_type(inside)
            })
            .collect();
        let inside = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        Packing { outside: schema.clone(), inside, columns }
    }

    /// The schema of the rows inside the sort.
    pub fn inside(&self) -> &SchemaRef {
        &self.inside
    }

    /// `batch` (of the outside schema) as the sort holds it.
    pub fn pack(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        self.convert(batch, &self.inside, |i, held, column| match held {
            Held::AsIs => Ok(column.clone()),
            Held::Decimal { .. } => {
                let field = self.outside.field(i);
                let values = column.as_primitive::<Decimal128Type>().try_unary::<_, Int64Type, _>(|v| {
                    i64::try_from(v).map_err(|_| {
                        ArrowError::InvalidArgumentError(format!(
                            "column {}: the decimal value {v} has more digits than its type {} allows; \
                             cast the column to a wider DECIMAL before sorting",
                            field.name(),
                            field.data_type()
                        ))
                    })
                })?;
                Ok(Arc::new(values))
            }
            Held::Views => Ok(cast(column, self.inside.field(i).data_type())?),
        })
    }

    /// `batch` (of the inside schema) as the sort's output.
    pub fn unpack(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        self.convert(batch, &self.outside, |i, held, column| match held {
            Held::AsIs => Ok(column.clone()),
            Held::Decimal { precision, scale } => Ok(Arc::new(
                column
                    .as_primitive::<Int64Type>()
                    .unary::<_, Decimal128Type>(i128::from)
                    .with_precision_and_scale(precision, scale)?,
            )),
            Held::Views => Ok(cast(column, self.outside.field(i).data_type())?),
        })
    }

    /// Whether anything is packed.
    pub fn packs(&self) -> bool {
        self.columns.iter().any(|held| *held != Held::AsIs)
    }

    /// `batch`'s columns converted by `convert` (given the column's index, how it is held and
    /// the column) into a batch of `to`.
    fn convert(
        &self,
        batch: &RecordBatch,
        to: &SchemaRef,
        convert: impl Fn(usize, Held, &ArrayRef) -> Result<ArrayRef>,
    ) -> Result<RecordBatch> {
        if !self.packs() {
            return Ok(batch.clone());
        }
        let columns = batch
            .columns()
            .iter()
            .zip(&self.columns)
            .enumerate()
            .map(|(i, (column, held))| convert(i, *held, column))
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(to.clone(), columns, &options)?)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{BinaryViewArray, Decimal128Array, Int32Array, StringViewArray};
    use datafusion::physical_expr::PhysicalSortExpr;
    use datafusion::physical_expr::expressions::{col, lit};

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int32, false),
            Field::new("price", DataType::Decimal128(15, 2), true),
            Field::new("wide", DataType::Decimal128(38, 2), false),
            Field::new("s", DataType::Utf8View, true),
            Field::new("b", DataType::BinaryView, true),
            Field::new("key_s", DataType::Utf8View, false),
        ]));
        let price = Decimal128Array::from(vec![Some(-999_999_999_999_999_999), None, Some(12_345)])
            .with_precision_and_scale(15, 2)
            .unwrap();
        let wide = Decimal128Array::from(vec![i128::MAX / 7, 0, -1]).with_precision_and_scale(38, 2).unwrap();
        let s = StringViewArray::from(vec![Some("short"), None, Some("a string longer than a view holds")]);
        let b = BinaryViewArray::from(vec![Some(&b"\x00\x01"[..]), Some(&[0xff; 40][..]), None]);
        let key_s = StringViewArray::from(vec!["x", "a string key longer than twelve bytes", "z"]);
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![3, 1, 2])),
                Arc::new(price),
                Arc::new(wide),
                Arc::new(s),
                Arc::new(b),
                Arc::new(key_s),
            ],
        )
        .unwrap()
    }

    fn ordering(schema: &SchemaRef, keys: &[&str]) -> LexOrdering {
        LexOrdering::new(keys.iter().map(|k| PhysicalSortExpr::new_default(col(k, schema).unwrap()))).unwrap()
    }

    #[test]
    fn narrow_decimals_and_views_that_are_not_keys_are_packed_and_come_back_as_they_were() {
        let batch = batch();
        let packing = Packing::new(&batch.schema(), &ordering(&batch.schema(), &["k", "key_s"]));
        let inside: Vec<String> = packing.inside().fields().iter().map(|f| f.data_type().to_string()).collect();
        assert_eq!(inside, ["Int32", "Int64", "Decimal128(38, 2)", "Utf8", "Binary", "Utf8View"]);
        let packed = packing.pack(&batch).unwrap();
        assert_eq!(packed.schema(), *packing.inside());
        assert_eq!(packed.column(1).as_primitive::<Int64Type>().value(0), -999_999_999_999_999_999);
        assert_eq!(packed.column(3).as_string::<i32>().value(2), "a string longer than a view holds");
        let back = packing.unpack(&packed).unwrap();
        assert_eq!(back, batch);
    }

    #[test]
    fn a_key_that_is_an_expression_leaves_every_column_as_it_is() {
        let batch = batch();
        let schema = batch.schema();
        let expr = datafusion::physical_expr::expressions::binary(
            col("k", &schema).unwrap(),
            datafusion::logical_expr::Operator::Plus,
            lit(1),
            &schema,
        )
        .unwrap();
        let packing = Packing::new(&schema, &LexOrdering::new([PhysicalSortExpr::new_default(expr)]).unwrap());
        assert!(!packing.packs());
        assert_eq!(packing.inside(), &schema);
        assert_eq!(packing.pack(&batch).unwrap(), batch);
    }

    #[test]
    fn a_decimal_beyond_its_precision_is_refused_by_name() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int32, false),
            Field::new("price", DataType::Decimal128(15, 2), false),
        ]));
        // Arrow does not check a decimal's precision when it is built: a value past 18 digits.
        let price = Decimal128Array::from(vec![i128::from(i64::MAX) + 1]).with_precision_and_scale(15, 2).unwrap();
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int32Array::from(vec![1])), Arc::new(price)]).unwrap();
        let err = Packing::new(&schema, &ordering(&schema, &["k"])).pack(&batch).unwrap_err().to_string();
        assert!(
            err.contains(
                "column price: the decimal value 9223372036854775808 has more digits than its type Decimal128(15, 2) \
                 allows; cast the column to a wider DECIMAL before sorting"
            ),
            "{err}"
        );
    }
}
