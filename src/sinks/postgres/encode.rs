//! Arrow record batches to PostgreSQL's binary COPY format, column by column.
//!
//! The format is row-major (per row: an i16 field count, then per field an i32 length, -1 for
//! NULL, and the value's big-endian bytes), but Arrow is columnar. The encoder first computes
//! every row's size, lays the rows out in one buffer, then fills it one column at a time with a
//! loop specialised for that column's type: no per-value dynamic dispatch, no `ToSql`, no text
//! round trip. The buffer is reused from batch to batch.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType,
    TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::record_batch::RecordBatch;

use super::numeric::{self, Groups};

/// The 19-byte header every binary COPY stream starts with.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The 2-byte trailer that ends the stream.
pub const TRAILER: &[u8] = &[0xff, 0xff];

/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's).
const PG_EPOCH_DAYS: i64 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * 86_400_000_000;

/// A value PostgreSQL cannot hold, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    /// The column's name.
    pub column: String,
    /// The row, 0-based within the batch.
    pub row: usize,
    /// What is wrong with the value.
    pub reason: String,
}

/// Whether the encoder supports an Arrow type (after dictionaries are unpacked).
pub fn supported(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Null
            | DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(_, _)
            | DataType::Decimal256(_, _)
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(_, _)
            | DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Interval(_)
            | DataType::Duration(_)
            | DataType::Struct(_)
            | DataType::Map(_, _)
    ) || matches!(data_type, DataType::List(f) | DataType::LargeList(f) if element_oid(f.data_type()).is_some())
}

/// The OID of the PostgreSQL type an array element of this Arrow type is encoded as.
pub fn element_oid(data_type: &DataType) -> Option<u32> {
    Some(match data_type {
        DataType::Boolean => 16,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => 21,
        DataType::Int32 | DataType::UInt16 => 23,
        DataType::Int64 | DataType::UInt32 => 20,
        DataType::UInt64 | DataType::Decimal128(_, _) | DataType::Decimal256(_, _) => 1700,
        DataType::Float32 => 700,
        DataType::Float64 => 701,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => 25,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => 17,
        DataType::Date32 | DataType::Date64 => 1082,
        DataType::Timestamp(_, None) => 1114,
        DataType::Timestamp(_, Some(_)) => 1184,
        DataType::Time32(_) | DataType::Time64(_) => 1083,
        DataType::Interval(_) | DataType::Duration(_) => 1186,
        _ => return None,
    })
}

/// Nested and interval columns become binary columns holding their finished PostgreSQL
/// payloads (array, jsonb, interval), so the row layout below handles them like bytea.
/// `array_element` is the OID written in each array's header (`None`: the element type's own).
fn prepare(column: &ArrayRef, array_element: Option<u32>) -> Result<ArrayRef, RowError> {
    use datafusion::arrow::array::BinaryBuilder;
    let nested_or_interval = matches!(
        column.data_type(),
        DataType::Interval(_)
            | DataType::Duration(_)
            | DataType::List(_)
            | DataType::LargeList(_)
            | DataType::Struct(_)
            | DataType::Map(_, _)
    );
    if !nested_or_interval {
        // The common case, on every column of every batch: nothing to build.
        return Ok(column.clone());
    }
    let mut out = BinaryBuilder::with_capacity(column.len(), column.len() * 16);
    match column.data_type() {
        DataType::Interval(unit) => {
            use datafusion::arrow::datatypes::{
                IntervalDayTimeType, IntervalMonthDayNanoType, IntervalUnit, IntervalYearMonthType,
            };
            for row in 0..column.len() {
                if column.is_null(row) {
                    out.append_null();
                    continue;
                }
                let (months, days, micros) = match unit {
                    IntervalUnit::YearMonth => (column.as_primitive::<IntervalYearMonthType>().value(row), 0, 0i64),
                    IntervalUnit::DayTime => {
                        let v = column.as_primitive::<IntervalDayTimeType>().value(row);
                        (0, v.days, v.milliseconds as i64 * 1_000)
                    }
                    IntervalUnit::MonthDayNano => {
                        let v = column.as_primitive::<IntervalMonthDayNanoType>().value(row);
                        (v.months, v.days, v.nanoseconds / 1_000)
                    }
                };
                out.append_value(interval(micros, days, months));
            }
        }
        DataType::Duration(unit) => {
            use datafusion::arrow::datatypes::{
                DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType, DurationSecondType,
            };
            for row in 0..column.len() {
                if column.is_null(row) {
                    out.append_null();
                    continue;
                }
                let micros = match unit {
                    TimeUnit::Second => column.as_primitive::<DurationSecondType>().value(row).checked_mul(1_000_000),
                    TimeUnit::Millisecond => {
                        column.as_primitive::<DurationMillisecondType>().value(row).checked_mul(1_000)
                    }
                    TimeUnit::Microsecond => Some(column.as_primitive::<DurationMicrosecondType>().value(row)),
                    TimeUnit::Nanosecond => Some(column.as_primitive::<DurationNanosecondType>().value(row) / 1_000),
                }
                .ok_or_else(|| (row, "duration is too long for a PostgreSQL interval".to_string()))?;
                out.append_value(interval(micros, 0, 0));
            }
        }
        DataType::List(_) => arrays(
            column.as_list::<i32>().offsets().iter().map(|o| *o as usize),
            column,
            column.as_list::<i32>().values(),
            array_element,
            &mut out,
        )?,
        DataType::LargeList(_) => arrays(
            column.as_list::<i64>().offsets().iter().map(|o| *o as usize),
            column,
            column.as_list::<i64>().values(),
            array_element,
            &mut out,
        )?,
        DataType::Struct(_) | DataType::Map(_, _) => jsonb(column, &mut out)?,
        other => unreachable!("{other} is not nested or an interval"),
    }
    Ok(std::sync::Arc::new(out.finish()))
}

fn interval(micros: i64, days: i32, months: i32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&micros.to_be_bytes());
    b[8..12].copy_from_slice(&days.to_be_bytes());
    b[12..16].copy_from_slice(&months.to_be_bytes());
    b
}

/// One-dimensional PostgreSQL arrays from a list column, their elements of type `oid` (the
/// column's element type: `varchar[]` takes only arrays of varchar, not of text).
fn arrays(
    offsets: impl Iterator<Item = usize>,
    list: &ArrayRef,
    values: &ArrayRef,
    oid: Option<u32>,
    out: &mut datafusion::arrow::array::BinaryBuilder,
) -> Result<(), RowError> {
    let oid = oid
        .or_else(|| element_oid(values.data_type()))
        .ok_or_else(|| (0, format!("arrays of {} are not supported", values.data_type())))?;
    // Encode every element once, as fields (length + bytes), then slice per row.
    let values = prepare(values, None)?;
    let mut starts = vec![4usize; values.len()];
    add_value_sizes(&values, &mut starts);
    let mut total = 0;
    for s in starts.iter_mut() {
        let size = *s;
        *s = total;
        total += size;
    }
    starts.push(total);
    let mut elements = vec![0u8; total];
    let mut cursors = starts[..values.len()].to_vec();
    write_column(&values, &mut elements, &mut cursors)
        .map_err(|(_, reason)| (0, format!("array element: {reason}")))?;
    let offsets: Vec<usize> = offsets.collect();
    let mut payload = Vec::new();
    for row in 0..list.len() {
        if list.is_null(row) {
            out.append_null();
            continue;
        }
        let (a, b) = (offsets[row], offsets[row + 1]);
        payload.clear();
        let has_null = (a..b).any(|i| values.is_null(i));
        payload.extend_from_slice(&(if a == b { 0i32 } else { 1 }).to_be_bytes());
        payload.extend_from_slice(&(has_null as i32).to_be_bytes());
        payload.extend_from_slice(&oid.to_be_bytes());
        if a < b {
            payload.extend_from_slice(&((b - a) as i32).to_be_bytes());
            payload.extend_from_slice(&1i32.to_be_bytes());
            payload.extend_from_slice(&elements[starts[a]..starts[b]]);
        }
        out.append_value(&payload);
    }
    Ok(())
}

/// jsonb (version byte 1, then JSON text) from struct and map columns.
fn jsonb(column: &ArrayRef, out: &mut datafusion::arrow::array::BinaryBuilder) -> Result<(), RowError> {
    use datafusion::arrow::json::writer::{LineDelimited, WriterBuilder};
    let schema = datafusion::arrow::datatypes::Schema::new(vec![datafusion::arrow::datatypes::Field::new(
        "v",
        column.data_type().clone(),
        true,
    )]);
    let batch =
        RecordBatch::try_new(std::sync::Arc::new(schema), vec![column.clone()]).map_err(|e| (0, e.to_string()))?;
    let mut writer = WriterBuilder::new().with_explicit_nulls(true).build::<_, LineDelimited>(Vec::new());
    writer.write(&batch).map_err(|e| (0, format!("cannot write it as JSON: {e}")))?;
    writer.finish().map_err(|e| (0, e.to_string()))?;
    let text = writer.into_inner();
    let mut payload = Vec::new();
    for (row, line) in text.split(|b| *b == b'\n').take(column.len()).enumerate() {
        if column.is_null(row) {
            out.append_null();
            continue;
        }
        // Each line is {"v":<value>}.
        let value = line
            .strip_prefix(b"{\"v\":")
            .and_then(|l| l.strip_suffix(b"}"))
            .ok_or_else(|| (row, "unexpected JSON".to_string()))?;
        payload.clear();
        payload.push(1);
        payload.extend_from_slice(value);
        out.append_value(&payload);
    }
    Ok(())
}

/// Encodes batches into one reusable buffer.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
    cursors: Vec<usize>,
    array_elements: Vec<Option<u32>>,
}

impl Encoder {
    /// An encoder whose array columns carry the given element type OIDs (by column; `None`
    /// or missing: the OID of the Arrow element type), as an existing table's columns require.
    pub fn with_array_elements(array_elements: Vec<Option<u32>>) -> Encoder {
        Encoder { array_elements, ..Encoder::default() }
    }

    /// Encodes `batch` (columns already of [`supported`] types) and returns its rows' bytes,
    /// valid until the next call.
    pub fn encode(&mut self, batch: &RecordBatch) -> Result<&[u8], EncodeError> {
        let rows = batch.num_rows();
        let fields = batch.num_columns();
        let schema = batch.schema();
        let columns = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .enumerate()
            .map(|(i, (c, f))| {
                prepare(c, self.array_elements.get(i).copied().flatten()).map_err(|(row, reason)| EncodeError {
                    column: f.name().clone(),
                    row,
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // 1. Row sizes: 2 bytes of field count, then 4 bytes of length per field plus the value.
        let mut sizes = vec![2 + 4 * fields; rows];
        for column in &columns {
            add_value_sizes(column, &mut sizes);
        }
        // 2. Row offsets and the field count of each row.
        self.cursors.clear();
        self.cursors.reserve(rows);
        let total: usize = sizes.iter().sum();
        self.buf.clear();
        self.buf.resize(total, 0);
        let mut offset = 0;
        for size in &sizes {
            self.buf[offset..offset + 2].copy_from_slice(&(fields as i16).to_be_bytes());
            self.cursors.push(offset + 2);
            offset += size;
        }
        // 3. Each column writes its field into every row, advancing that row's cursor.
        for (column, field) in columns.iter().zip(schema.fields()) {
            write_column(column, &mut self.buf, &mut self.cursors).map_err(|(row, reason)| EncodeError {
                column: field.name().clone(),
                row,
                reason,
            })?;
        }
        Ok(&self.buf)
    }
}

/// The encoded size of each value, NULLs being free (their -1 length is already counted).
fn add_value_sizes(column: &ArrayRef, sizes: &mut [usize]) {
    let fixed = |n: usize, sizes: &mut [usize]| {
        for (row, size) in sizes.iter_mut().enumerate() {
            if !column.is_null(row) {
                *size += n;
            }
        }
    };
    match column.data_type() {
        DataType::Null => {}
        DataType::Boolean => fixed(1, sizes),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => fixed(2, sizes),
        DataType::Int32 | DataType::UInt16 | DataType::Float32 | DataType::Date32 | DataType::Date64 => fixed(4, sizes),
        DataType::Int64
        | DataType::UInt32
        | DataType::Float64
        | DataType::Timestamp(_, _)
        | DataType::Time32(_)
        | DataType::Time64(_) => fixed(8, sizes),
        DataType::Utf8 => var_sizes(column.as_string::<i32>().iter().map(|v| v.map(str::len)), sizes),
        DataType::LargeUtf8 => var_sizes(column.as_string::<i64>().iter().map(|v| v.map(str::len)), sizes),
        DataType::Utf8View => var_sizes(column.as_string_view().iter().map(|v| v.map(str::len)), sizes),
        DataType::Binary => var_sizes(column.as_binary::<i32>().iter().map(|v| v.map(<[u8]>::len)), sizes),
        DataType::LargeBinary => var_sizes(column.as_binary::<i64>().iter().map(|v| v.map(<[u8]>::len)), sizes),
        DataType::BinaryView => var_sizes(column.as_binary_view().iter().map(|v| v.map(<[u8]>::len)), sizes),
        DataType::UInt64 => var_sizes(
            column
                .as_primitive::<UInt64Type>()
                .iter()
                .map(|v| v.map(|v| Groups::from_i128(v as i128, 0).encoded_len())),
            sizes,
        ),
        DataType::Decimal128(_, s) if *s < 0 => var_sizes(
            column.as_primitive::<Decimal128Type>().iter().map(|v| v.map(|v| numeric::encoded_len(&v.to_string(), *s))),
            sizes,
        ),
        DataType::Decimal128(_, s) => var_sizes(
            column.as_primitive::<Decimal128Type>().iter().map(|v| v.map(|v| Groups::from_i128(v, *s).encoded_len())),
            sizes,
        ),
        DataType::Decimal256(_, s) => var_sizes(
            column.as_primitive::<Decimal256Type>().iter().map(|v| v.map(|v| numeric::encoded_len(&v.to_string(), *s))),
            sizes,
        ),
        other => unreachable!("unsupported type {other} reached the encoder; supported() is checked first"),
    }
}

fn var_sizes(lengths: impl Iterator<Item = Option<usize>>, sizes: &mut [usize]) {
    for (len, size) in lengths.zip(sizes.iter_mut()) {
        if let Some(len) = len {
            *size += len;
        }
    }
}

type RowError = (usize, String);

/// Writes a length-prefixed value at `cursor` and advances it.
#[inline]
fn put(buf: &mut [u8], cursor: &mut usize, bytes: &[u8]) {
    buf[*cursor..*cursor + 4].copy_from_slice(&(bytes.len() as i32).to_be_bytes());
    buf[*cursor + 4..*cursor + 4 + bytes.len()].copy_from_slice(bytes);
    *cursor += 4 + bytes.len();
}

#[inline]
fn put_null(buf: &mut [u8], cursor: &mut usize) {
    buf[*cursor..*cursor + 4].copy_from_slice(&(-1i32).to_be_bytes());
    *cursor += 4;
}

/// Writes a primitive column through `f`, which maps a value to its big-endian bytes.
fn fixed<T, const N: usize>(
    values: impl Iterator<Item = Option<T>>,
    buf: &mut [u8],
    cursors: &mut [usize],
    f: impl Fn(T) -> Result<[u8; N], String>,
) -> Result<(), RowError> {
    for (row, (value, cursor)) in values.zip(cursors.iter_mut()).enumerate() {
        match value {
            Some(v) => put(buf, cursor, &f(v).map_err(|e| (row, e))?),
            None => put_null(buf, cursor),
        }
    }
    Ok(())
}

fn text<'a>(
    values: impl Iterator<Item = Option<&'a str>>,
    buf: &mut [u8],
    cursors: &mut [usize],
) -> Result<(), RowError> {
    for (row, (value, cursor)) in values.zip(cursors.iter_mut()).enumerate() {
        match value {
            Some(v) if v.as_bytes().contains(&0) => {
                return Err((row, "text contains a NUL byte (\\0), which PostgreSQL text cannot hold".to_string()));
            }
            Some(v) => put(buf, cursor, v.as_bytes()),
            None => put_null(buf, cursor),
        }
    }
    Ok(())
}

fn binary<'a>(values: impl Iterator<Item = Option<&'a [u8]>>, buf: &mut [u8], cursors: &mut [usize]) {
    for (value, cursor) in values.zip(cursors.iter_mut()) {
        match value {
            Some(v) => put(buf, cursor, v),
            None => put_null(buf, cursor),
        }
    }
}

/// Decimal128 (and integers as decimals of scale 0), from integer arithmetic.
fn decimals(values: impl Iterator<Item = Option<i128>>, scale: i8, buf: &mut [u8], cursors: &mut [usize]) {
    for (value, cursor) in values.zip(cursors.iter_mut()) {
        match value {
            Some(v) => {
                let groups = Groups::from_i128(v, scale);
                let len = groups.encoded_len();
                buf[*cursor..*cursor + 4].copy_from_slice(&(len as i32).to_be_bytes());
                groups.write(&mut buf[*cursor + 4..*cursor + 4 + len]);
                *cursor += 4 + len;
            }
            None => put_null(buf, cursor),
        }
    }
}

/// Decimal256, through its decimal text (rare; exact).
fn numerics(
    values: impl Iterator<Item = Option<String>>,
    scale: i8,
    buf: &mut [u8],
    cursors: &mut [usize],
) -> Result<(), RowError> {
    let mut scratch = Vec::new();
    for (row, (value, cursor)) in values.zip(cursors.iter_mut()).enumerate() {
        match value {
            Some(v) => {
                scratch.clear();
                numeric::encode(&v, scale, &mut scratch).map_err(|e| (row, e))?;
                put(buf, cursor, &scratch);
            }
            None => put_null(buf, cursor),
        }
    }
    Ok(())
}

/// PostgreSQL dates span 4713 BC to 5874897 AD; Arrow's Date32 can go beyond that.
fn pg_date(days_since_1970: i64) -> Result<[u8; 4], String> {
    let days = days_since_1970 - PG_EPOCH_DAYS;
    // date_recv accepts days in [-2451545 (4714-11-24 BC), 2147483494 - 2451545) in practice.
    if !(-2_451_545..=2_145_031_948).contains(&days) {
        return Err(format!("date {days_since_1970} days from 1970-01-01 is outside PostgreSQL's date range"));
    }
    Ok((days as i32).to_be_bytes())
}

/// PostgreSQL timestamps span 4713 BC to 294276 AD.
fn pg_timestamp(micros_since_1970: Option<i64>) -> Result<[u8; 8], String> {
    let micros = micros_since_1970
        .and_then(|m| m.checked_sub(PG_EPOCH_MICROS))
        .ok_or_else(|| "timestamp is outside PostgreSQL's timestamp range".to_string())?;
    // MIN_TIMESTAMP and END_TIMESTAMP from PostgreSQL's datatype/timestamp.h, relative to 2000-01-01.
    if !(-211_813_488_000_000_000..9_223_371_331_200_000_000).contains(&micros) {
        return Err("timestamp is outside PostgreSQL's timestamp range (4713 BC to 294276 AD)".to_string());
    }
    Ok(micros.to_be_bytes())
}

fn write_column(column: &ArrayRef, buf: &mut [u8], cursors: &mut [usize]) -> Result<(), RowError> {
    match column.data_type() {
        DataType::Null => {
            for cursor in cursors.iter_mut() {
                put_null(buf, cursor);
            }
            Ok(())
        }
        DataType::Boolean => fixed(column.as_boolean().iter(), buf, cursors, |v| Ok([v as u8])),
        DataType::Int8 => {
            fixed(column.as_primitive::<Int8Type>().iter(), buf, cursors, |v| Ok((v as i16).to_be_bytes()))
        }
        DataType::Int16 => fixed(column.as_primitive::<Int16Type>().iter(), buf, cursors, |v| Ok(v.to_be_bytes())),
        DataType::Int32 => fixed(column.as_primitive::<Int32Type>().iter(), buf, cursors, |v| Ok(v.to_be_bytes())),
        DataType::Int64 => fixed(column.as_primitive::<Int64Type>().iter(), buf, cursors, |v| Ok(v.to_be_bytes())),
        DataType::UInt8 => {
            fixed(column.as_primitive::<UInt8Type>().iter(), buf, cursors, |v| Ok((v as i16).to_be_bytes()))
        }
        DataType::UInt16 => {
            fixed(column.as_primitive::<UInt16Type>().iter(), buf, cursors, |v| Ok((v as i32).to_be_bytes()))
        }
        DataType::UInt32 => {
            fixed(column.as_primitive::<UInt32Type>().iter(), buf, cursors, |v| Ok((v as i64).to_be_bytes()))
        }
        DataType::UInt64 => {
            decimals(column.as_primitive::<UInt64Type>().iter().map(|v| v.map(|v| v as i128)), 0, buf, cursors);
            Ok(())
        }
        DataType::Float32 => {
            fixed(column.as_primitive::<Float32Type>().iter(), buf, cursors, |v| Ok(v.to_bits().to_be_bytes()))
        }
        DataType::Float64 => {
            fixed(column.as_primitive::<Float64Type>().iter(), buf, cursors, |v| Ok(v.to_bits().to_be_bytes()))
        }
        // Negative scales can need more digits than `Groups` holds: the exact text path.
        DataType::Decimal128(_, s) if *s < 0 => {
            numerics(column.as_primitive::<Decimal128Type>().iter().map(|v| v.map(|v| v.to_string())), *s, buf, cursors)
        }
        DataType::Decimal128(_, s) => {
            decimals(column.as_primitive::<Decimal128Type>().iter(), *s, buf, cursors);
            Ok(())
        }
        DataType::Decimal256(_, s) => {
            numerics(column.as_primitive::<Decimal256Type>().iter().map(|v| v.map(|v| v.to_string())), *s, buf, cursors)
        }
        DataType::Utf8 => text(column.as_string::<i32>().iter(), buf, cursors),
        DataType::LargeUtf8 => text(column.as_string::<i64>().iter(), buf, cursors),
        DataType::Utf8View => text(column.as_string_view().iter(), buf, cursors),
        DataType::Binary => {
            binary(column.as_binary::<i32>().iter(), buf, cursors);
            Ok(())
        }
        DataType::LargeBinary => {
            binary(column.as_binary::<i64>().iter(), buf, cursors);
            Ok(())
        }
        DataType::BinaryView => {
            binary(column.as_binary_view().iter(), buf, cursors);
            Ok(())
        }
        DataType::Date32 => fixed(column.as_primitive::<Date32Type>().iter(), buf, cursors, |v| pg_date(v as i64)),
        DataType::Date64 => {
            fixed(column.as_primitive::<Date64Type>().iter(), buf, cursors, |v| pg_date(v.div_euclid(86_400_000)))
        }
        DataType::Timestamp(unit, _) => {
            // Nanoseconds are truncated (floored) to PostgreSQL's microseconds.
            match unit {
                TimeUnit::Second => fixed(column.as_primitive::<TimestampSecondType>().iter(), buf, cursors, |v| {
                    pg_timestamp(v.checked_mul(1_000_000))
                }),
                TimeUnit::Millisecond => {
                    fixed(column.as_primitive::<TimestampMillisecondType>().iter(), buf, cursors, |v| {
                        pg_timestamp(v.checked_mul(1_000))
                    })
                }
                TimeUnit::Microsecond => {
                    fixed(column.as_primitive::<TimestampMicrosecondType>().iter(), buf, cursors, |v| {
                        pg_timestamp(Some(v))
                    })
                }
                TimeUnit::Nanosecond => {
                    fixed(column.as_primitive::<TimestampNanosecondType>().iter(), buf, cursors, |v| {
                        pg_timestamp(Some(v.div_euclid(1_000)))
                    })
                }
            }
        }
        DataType::Time32(TimeUnit::Second) => {
            fixed(column.as_primitive::<Time32SecondType>().iter(), buf, cursors, |v| {
                Ok((v as i64 * 1_000_000).to_be_bytes())
            })
        }
        DataType::Time32(_) => fixed(column.as_primitive::<Time32MillisecondType>().iter(), buf, cursors, |v| {
            Ok((v as i64 * 1_000).to_be_bytes())
        }),
        DataType::Time64(TimeUnit::Microsecond) => {
            fixed(column.as_primitive::<Time64MicrosecondType>().iter(), buf, cursors, |v| Ok(v.to_be_bytes()))
        }
        DataType::Time64(_) => {
            fixed(column.as_primitive::<Time64NanosecondType>().iter(), buf, cursors, |v| Ok((v / 1_000).to_be_bytes()))
        }
        other => unreachable!("unsupported type {other} reached the encoder; supported() is checked first"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int32Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn rows_are_laid_out_as_postgres_expects() {
        let schema =
            Arc::new(Schema::new(vec![Field::new("i", DataType::Int32, true), Field::new("s", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec![Some("ab"), Some("")])),
            ],
        )
        .unwrap();
        let mut encoder = Encoder::default();
        let bytes = encoder.encode(&batch).unwrap();
        let expected: Vec<u8> = [
            &[0, 2][..],
            &[0, 0, 0, 4, 0, 0, 0, 1],
            &[0, 0, 0, 2, b'a', b'b'],
            &[0, 2],
            &[0xff, 0xff, 0xff, 0xff],
            &[0, 0, 0, 0],
        ]
        .concat();
        assert_eq!(bytes, expected.as_slice());
    }

    #[test]
    fn nul_in_text_names_the_row() {
        let schema = Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["ok", "bad\0"]))]).unwrap();
        let err = Encoder::default().encode(&batch).unwrap_err();
        assert_eq!(err.column, "name");
        assert_eq!(err.row, 1);
    }

    #[test]
    fn dates_and_timestamps_shift_epochs() {
        assert_eq!(pg_date(10_957).unwrap(), 0i32.to_be_bytes());
        assert_eq!(pg_timestamp(Some(PG_EPOCH_MICROS + 5)).unwrap(), 5i64.to_be_bytes());
        assert!(pg_date(i32::MAX as i64).is_err());
    }
}
