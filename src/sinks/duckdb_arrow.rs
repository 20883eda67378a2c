//! Batches turned into DuckDB vectors by DuckDB's own Arrow import (the C API's
//! `duckdb_data_chunk_from_arrow`, stable since DuckDB 1.5.6), for the load's feed.
//!
//! DuckDB's import points its vectors at the Arrow buffers: numbers, dates and strings are not
//! copied (a string longer than 12 bytes stays where the Parquet reader decoded it), and the
//! chunk keeps the batch alive until DuckDB has inserted its rows. duckdb-rs instead copies
//! every string into the vector through a call that validates its UTF-8 again, and converts
//! wide decimals one value at a time: ~9% of the CPU of a lineitem load.
//!
//! The import takes a connection for its settings: one to the process's in-memory DuckDB
//! ([`duckdb_file::process_database`]), opened once, serves every load. The table function
//! declares the types DuckDB imports the columns as, so the imported vectors are handed over as
//! they are. A schema with decimals inside lists or structs (whose range is not checked here), or
//! a type duckdb-rs cannot declare, is not imported this way: the feed converts it with duckdb-rs.

use std::ffi::CStr;
use std::ptr;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, ArrowNativeTypeOp, AsArray, RecordBatch, StructArray, new_null_array};
use datafusion::arrow::compute::{max, min};
use datafusion::arrow::datatypes::{
    DataType, Decimal32Type, Decimal64Type, Decimal128Type, DecimalType, Field, Schema,
};
use datafusion::arrow::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use duckdb::core::{DataChunkHandle, LogicalTypeHandle, LogicalTypeId};
use duckdb::ffi;

use crate::util::duckdb_file;

/// The connection the import reads its settings from; opened once, held (in a static) until the
/// process ends.
struct Importer {
    conn: ffi::duckdb_connection,
}

// SAFETY: the import only reads the connection's settings (`ArrowArrayScanState` keeps a
// reference to its client context); nothing runs queries on it, and it is never closed.
unsafe impl Send for Importer {}
// SAFETY: as above.
unsafe impl Sync for Importer {}

/// The process's [`Importer`], opened on first use.
fn importer() -> Result<&'static Importer, String> {
    static IMPORTER: OnceLock<Result<Importer, String>> = OnceLock::new();
    IMPORTER.get_or_init(open_importer).as_ref().map_err(Clone::clone)
}

fn open_importer() -> Result<Importer, String> {
    let db = duckdb_file::process_database()?;
    let mut conn: ffi::duckdb_connection = ptr::null_mut();
    // SAFETY: the process's database stays open for the life of the process.
    if unsafe { ffi::duckdb_connect(db, &mut conn) } != ffi::DuckDBSuccess {
        return Err("could not connect DuckDB's Arrow import".into());
    }
    Ok(Importer { conn })
}

/// DuckDB's Arrow import for the batches of one schema.
pub(super) struct ArrowImport {
    importer: &'static Importer,
    /// DuckDB's reading of the schema (its types and how to convert each column).
    converted: ffi::duckdb_arrow_converted_schema,
    /// The type DuckDB imports each column as (owned; the table function declares these).
    types: Vec<ffi::duckdb_logical_type>,
    /// The indexes of the decimal columns, for the range check.
    decimals: Vec<usize>,
}

// SAFETY: the converted schema and the types are only read after they are built (each import
// takes its own copy of a column's type), so DuckDB's threads may import batches at once.
unsafe impl Send for ArrowImport {}
// SAFETY: as above.
unsafe impl Sync for ArrowImport {}

impl Drop for ArrowImport {
    fn drop(&mut self) {
        // SAFETY: built in `new` (`duckdb_schema_from_arrow`, `duckdb_vector_get_column_type`),
        // destroyed once.
        unsafe {
            for t in &mut self.types {
                ffi::duckdb_destroy_logical_type(t);
            }
            ffi::duckdb_destroy_arrow_converted_schema(&mut self.converted);
        }
    }
}

impl ArrowImport {
    /// The import for batches of `schema`, or why it does not take them (the feed then converts
    /// them with duckdb-rs): a type DuckDB does not import or duckdb-rs cannot declare, or a
    /// decimal inside a list or struct (whose range [`Self::fill`] does not check).
    pub(super) fn new(schema: &Schema) -> Result<ArrowImport, String> {
        if let Some(field) = schema.fields().iter().find(|f| f.data_type().is_nested() && holds_decimal(f.data_type()))
        {
            return Err(format!("column `{}` holds decimals inside a nested type", field.name()));
        }
        let importer = importer()?;
        let mut exported = FFI_ArrowSchema::try_from(schema).map_err(|e| e.to_string())?;
        let mut converted: ffi::duckdb_arrow_converted_schema = ptr::null_mut();
        // SAFETY: `exported` is a valid Arrow C schema that DuckDB only reads (we release it).
        let error = unsafe {
            ffi::duckdb_schema_from_arrow(importer.conn, ptr::from_mut(&mut exported).cast(), &mut converted)
        };
        take_error(error)?;
        let mut import = ArrowImport {
            importer,
            converted,
            types: Vec::new(),
            decimals: schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| {
                    matches!(
                        f.data_type(),
                        DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..)
                    )
                })
                .map(|(i, _)| i)
                .collect(),
        };
        // The types DuckDB gives the columns, read off the import of a row of NULLs.
        let nullable: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
        let columns = nullable.iter().map(|f| new_null_array(f.data_type(), 1)).collect();
        let sample = RecordBatch::try_new(Arc::new(Schema::new(nullable)), columns).map_err(|e| e.to_string())?;
        let chunk = import.import(&sample)?;
        for i in 0..schema.fields().len() as u64 {
            // SAFETY: `chunk` has a vector per column; the type is owned by `import` from here.
            import
                .types
                .push(unsafe { ffi::duckdb_vector_get_column_type(ffi::duckdb_data_chunk_get_vector(chunk.0, i)) });
        }
        for (field, &t) in schema.fields().iter().zip(&import.types) {
            declared_type(t).map_err(|e| format!("column `{}`: {e}", field.name()))?;
        }
        Ok(import)
    }

    /// The columns' types as the table function declares them: the types DuckDB imports them as.
    pub(super) fn column_types(&self) -> Result<Vec<LogicalTypeHandle>, String> {
        self.types.iter().map(|&t| declared_type(t)).collect()
    }

    /// `batch` as DuckDB's chunk.
    fn import(&self, batch: &RecordBatch) -> Result<Chunk, String> {
        let mut array = FFI_ArrowArray::new(&StructArray::from(batch.clone()).into_data());
        let mut chunk: ffi::duckdb_data_chunk = ptr::null_mut();
        // SAFETY: `array` is a valid Arrow C array of the schema `converted` was built from;
        // DuckDB takes it over (clearing its `release`, so dropping `array` frees nothing).
        let error = unsafe {
            ffi::duckdb_data_chunk_from_arrow(
                self.importer.conn,
                ptr::from_mut(&mut array).cast(),
                self.converted,
                &mut chunk,
            )
        };
        take_error(error)?;
        Ok(Chunk(chunk))
    }

    /// Puts `batch` (at most one vector of rows) into `output`, whose columns are the batch's.
    /// A decimal beyond its column's precision fails: DuckDB's import would store it unchecked.
    pub(super) fn fill(&self, batch: &RecordBatch, output: &mut DataChunkHandle) -> Result<(), String> {
        self.check_decimals(batch)?;
        let chunk = self.import(batch)?;
        let target = output.get_ptr();
        for i in 0..batch.num_columns() as u64 {
            // SAFETY: both chunks have a vector per column of the same type (the table function
            // declares `column_types`). Referencing shares the imported vectors' buffers; the
            // Arrow array they point into is held by the first column's buffer (DuckDB's import
            // hands it the array), and DuckDB resets the output's columns together, once the
            // insert has copied their rows.
            unsafe {
                ffi::duckdb_vector_reference_vector(
                    ffi::duckdb_data_chunk_get_vector(target, i),
                    ffi::duckdb_data_chunk_get_vector(chunk.0, i),
                );
            }
        }
        output.set_len(batch.num_rows());
        Ok(())
    }

    /// Fails on a decimal value with more digits than its column's precision.
    fn check_decimals(&self, batch: &RecordBatch) -> Result<(), String> {
        for &i in &self.decimals {
            let column = batch.column(i);
            let (beyond, p, s) = match *column.data_type() {
                DataType::Decimal32(p, s) => (beyond_precision::<Decimal32Type>(column, p, s), p, s),
                DataType::Decimal64(p, s) => (beyond_precision::<Decimal64Type>(column, p, s), p, s),
                DataType::Decimal128(p, s) => (beyond_precision::<Decimal128Type>(column, p, s), p, s),
                _ => continue,
            };
            if let Some(value) = beyond {
                return Err(format!(
                    "column `{}`: {value} has more digits than DECIMAL({p},{s}); CAST it to a wider DECIMAL in the \
                     model",
                    batch.schema().field(i).name()
                ));
            }
        }
        Ok(())
    }
}

/// The least or greatest value of a decimal column when it has more digits than `precision`,
/// formatted in full for the message.
fn beyond_precision<T: DecimalType>(column: &ArrayRef, precision: u8, scale: i8) -> Option<String>
where
    T::Native: ArrowNativeTypeOp,
{
    let values = column.as_primitive::<T>();
    [min(values), max(values)]
        .into_iter()
        .flatten()
        .find(|v| !T::is_valid_decimal_precision(*v, precision))
        .map(|v| T::format_decimal(v, T::MAX_PRECISION, scale))
}

/// Whether `data_type` is or holds a decimal.
fn holds_decimal(data_type: &DataType) -> bool {
    match data_type {
        DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) | DataType::Decimal256(..) => true,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::Map(f, _) => holds_decimal(f.data_type()),
        DataType::Struct(fields) => fields.iter().any(|f| holds_decimal(f.data_type())),
        DataType::Union(fields, _) => fields.iter().any(|(_, f)| holds_decimal(f.data_type())),
        DataType::Dictionary(_, values) => holds_decimal(values),
        DataType::RunEndEncoded(_, values) => holds_decimal(values.data_type()),
        _ => false,
    }
}

/// DuckDB's logical type `t` built again through duckdb-rs, for the table function to declare;
/// an error for types duckdb-rs cannot build (unions, enums).
fn declared_type(t: ffi::duckdb_logical_type) -> Result<LogicalTypeHandle, String> {
    // A child type read off `t`, built again, then destroyed.
    let child = |mut c: ffi::duckdb_logical_type| {
        let built = declared_type(c);
        // SAFETY: `c` was returned (owned) by one of the C API's child-type getters.
        unsafe { ffi::duckdb_destroy_logical_type(&mut c) };
        built
    };
    // SAFETY: `t` is a valid logical type; the getters match its id, and names are freed with
    // `duckdb_free`.
    unsafe {
        let id = ffi::duckdb_get_type_id(t);
        Ok(match LogicalTypeId::from(id) {
            LogicalTypeId::Decimal => {
                LogicalTypeHandle::decimal(ffi::duckdb_decimal_width(t), ffi::duckdb_decimal_scale(t))
            }
            LogicalTypeId::List => LogicalTypeHandle::list(&child(ffi::duckdb_list_type_child_type(t))?),
            LogicalTypeId::Array => LogicalTypeHandle::array(
                &child(ffi::duckdb_array_type_child_type(t))?,
                ffi::duckdb_array_type_array_size(t),
            ),
            LogicalTypeId::Map => LogicalTypeHandle::map(
                &child(ffi::duckdb_map_type_key_type(t))?,
                &child(ffi::duckdb_map_type_value_type(t))?,
            ),
            LogicalTypeId::Struct => {
                let (mut names, mut types) = (Vec::new(), Vec::new());
                for i in 0..ffi::duckdb_struct_type_child_count(t) {
                    let name = ffi::duckdb_struct_type_child_name(t, i);
                    names.push(CStr::from_ptr(name).to_string_lossy().into_owned());
                    ffi::duckdb_free(name.cast());
                    types.push(child(ffi::duckdb_struct_type_child_type(t, i))?);
                }
                let fields: Vec<(&str, LogicalTypeHandle)> = names.iter().map(String::as_str).zip(types).collect();
                LogicalTypeHandle::struct_type(&fields)
            }
            LogicalTypeId::Union
            | LogicalTypeId::Enum
            | LogicalTypeId::Any
            | LogicalTypeId::Invalid
            | LogicalTypeId::Unsupported
            | LogicalTypeId::SqlNull
            | LogicalTypeId::StringLiteral
            | LogicalTypeId::IntegerLiteral => {
                return Err(format!("DuckDB type {id} is not declared through duckdb-rs"));
            }
            simple => LogicalTypeHandle::from(simple),
        })
    }
}

/// A chunk made by DuckDB's import, destroyed when dropped.
struct Chunk(ffi::duckdb_data_chunk);

impl Drop for Chunk {
    fn drop(&mut self) {
        // SAFETY: made by `duckdb_data_chunk_from_arrow`, destroyed once.
        unsafe { ffi::duckdb_destroy_data_chunk(&mut self.0) }
    }
}

/// The message of a C API error (destroying it), or `Ok` for none.
fn take_error(mut error: ffi::duckdb_error_data) -> Result<(), String> {
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null error from the C API, read and destroyed once.
    unsafe {
        let message = CStr::from_ptr(ffi::duckdb_error_data_message(error)).to_string_lossy().into_owned();
        ffi::duckdb_destroy_error_data(&mut error);
        Err(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Decimal128Array, Int64Array, StringViewArray};
    use duckdb::types::DuckString;

    fn import_into_chunk(batch: &RecordBatch) -> Result<DataChunkHandle, String> {
        let import = ArrowImport::new(&batch.schema())?;
        let mut output = DataChunkHandle::new(&import.column_types()?);
        import.fill(batch, &mut output)?;
        Ok(output)
    }

    #[test]
    fn duckdb_imports_numbers_strings_and_nulls() {
        let long = "a string longer than the twelve bytes DuckDB inlines";
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![Some(1), None, Some(-3)])) as ArrayRef),
            ("note", Arc::new(StringViewArray::from(vec![Some("short"), Some(long), None])) as ArrayRef),
        ])
        .unwrap();
        // A slice, as the feed hands DuckDB: offsets into the batch's buffers.
        let output = import_into_chunk(&batch.slice(1, 2)).unwrap();
        assert_eq!(output.len(), 2);
        let ids = output.flat_vector(0);
        assert!(ids.row_is_null(0));
        // SAFETY: a BIGINT vector of 2 rows.
        assert_eq!(unsafe { ids.as_slice_with_len::<i64>(2) }[1], -3);
        let notes = output.flat_vector(1);
        // SAFETY: a VARCHAR vector of 2 rows.
        let mut first = unsafe { notes.as_slice_with_len::<ffi::duckdb_string_t>(2) }[0];
        assert_eq!(DuckString::new(&mut first).as_str(), long);
        assert!(notes.row_is_null(1));
    }

    #[test]
    fn a_decimal_beyond_its_precision_is_refused_naming_its_column() {
        let price = Decimal128Array::from(vec![Some(12_345), Some(-100_000)]).with_precision_and_scale(5, 2).unwrap();
        let batch = RecordBatch::try_from_iter([("price", Arc::new(price) as ArrayRef)]).unwrap();
        assert_eq!(
            import_into_chunk(&batch).err().unwrap(),
            "column `price`: -1000.00 has more digits than DECIMAL(5,2); CAST it to a wider DECIMAL in the model"
        );
        assert_eq!(import_into_chunk(&batch.slice(0, 1)).unwrap().len(), 1);
    }

    #[test]
    fn decimals_inside_lists_are_left_to_duckdb_rs() {
        let item = Field::new("item", DataType::Decimal128(10, 2), true);
        let schema = Schema::new(vec![Field::new("prices", DataType::List(Arc::new(item)), true)]);
        assert_eq!(ArrowImport::new(&schema).err().unwrap(), "column `prices` holds decimals inside a nested type");
    }
}
