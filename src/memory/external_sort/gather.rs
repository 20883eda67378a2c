//! Rows copied from many batches into one: the sort's runs and its merge take each output
//! batch's rows from wherever they are in the batches they hold.
//!
//! A sort's rows come from random places of a buffer far larger than the CPU's caches, so the
//! copy waits on memory more than it computes. Strings and bytes wait twice over, for the
//! value's offsets and then for its bytes: [`interleave_bytes`] first finds every value (loads
//! the CPU can have in flight at once) and then copies them, asking for each value's bytes a few
//! values ahead (on lineitem SF10 under 512 MiB Arrow's `interleave` of strings, which does both
//! in one step a value at a time, was 30% of the first phase's CPU, benches/README.md).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBufferBuilder, ByteView, GenericByteArray, GenericByteViewArray,
    MAX_INLINE_VIEW_LEN, RecordBatch, RecordBatchOptions,
};
use datafusion::arrow::buffer::{Buffer as ArrowBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::compute::interleave;
use datafusion::arrow::datatypes::{
    ArrowNativeType, BinaryType, BinaryViewType, ByteArrayType, ByteViewType, DataType, LargeBinaryType, LargeUtf8Type,
    SchemaRef, StringViewType, Utf8Type,
};
use datafusion::error::{DataFusionError, Result};

/// The rows `indices` ((batch, row) pairs) name, from `batches`, as one batch of `schema`. String
/// and binary views are copied into buffers of the new batch's own, so that what it holds is
/// what it uses (views taken as they are would share every source batch's buffers).
pub fn take_rows(schema: &SchemaRef, batches: &[&RecordBatch], indices: &[(usize, usize)]) -> Result<RecordBatch> {
    let columns = (0..schema.fields().len())
        .map(|c| {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            Ok(match schema.field(c).data_type() {
                DataType::Utf8View => interleave_views::<StringViewType>(&arrays, indices),
                DataType::BinaryView => interleave_views::<BinaryViewType>(&arrays, indices),
                DataType::Utf8 => interleave_bytes::<Utf8Type>(&arrays, indices)?,
                DataType::LargeUtf8 => interleave_bytes::<LargeUtf8Type>(&arrays, indices)?,
                DataType::Binary => interleave_bytes::<BinaryType>(&arrays, indices)?,
                DataType::LargeBinary => interleave_bytes::<LargeBinaryType>(&arrays, indices)?,
                _ => interleave(&arrays, indices)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(indices.len()));
    Ok(RecordBatch::try_new_with_options(schema.clone(), columns, &options)?)
}

/// A buffer of the views [`interleave_views`] copies holds at most this many bytes (a view's
/// offset is a `u32`).
const VIEW_BUFFER_BYTES: usize = 1 << 31;

/// [`interleave`] for views, copying the values longer than a view holds into the new array's own
/// buffers (views shorter are copied as they are; a null's view is zero).
fn interleave_views<T: ByteViewType>(arrays: &[&dyn Array], indices: &[(usize, usize)]) -> ArrayRef {
    let arrays: Vec<&GenericByteViewArray<T>> = arrays.iter().map(|a| a.as_byte_view::<T>()).collect();
    let any_nulls = arrays.iter().any(|a| a.null_count() > 0);
    let mut nulls = any_nulls.then(|| BooleanBufferBuilder::new(indices.len()));
    let mut views: Vec<u128> = Vec::with_capacity(indices.len());
    let mut buffers: Vec<ArrowBuffer> = Vec::new();
    let mut data: Vec<u8> = Vec::new();
    for &(a, i) in indices {
        let array = arrays[a];
        if let Some(nulls) = nulls.as_mut() {
            let valid = array.is_valid(i);
            nulls.append(valid);
            if !valid {
                views.push(0);
                continue;
            }
        }
        let raw = array.views()[i];
        let length = raw as u32 as usize;
        if length <= MAX_INLINE_VIEW_LEN as usize {
            views.push(raw);
            continue;
        }
        let mut view = ByteView::from(raw);
        let start = view.offset as usize;
        let bytes = &array.data_buffers()[view.buffer_index as usize][start..start + length];
        if data.len() + length > VIEW_BUFFER_BYTES {
            buffers.push(ArrowBuffer::from_vec(std::mem::take(&mut data)));
        }
        view.buffer_index = buffers.len() as u32;
        view.offset = data.len() as u32;
        data.extend_from_slice(bytes);
        views.push(view.as_u128());
    }
    if !data.is_empty() {
        buffers.push(ArrowBuffer::from_vec(data));
    }
    let nulls = nulls.map(|mut n| NullBuffer::new(n.finish()));
    // SAFETY: every view is a source array's valid view, inline as it was or pointing at the
    // copy of its bytes in `buffers`; a null's view is zero, an empty inline value.
    Arc::new(unsafe { GenericByteViewArray::<T>::new_unchecked(ScalarBuffer::from(views), buffers, nulls) })
}

/// How many values ahead [`interleave_bytes`] asks for the bytes it will copy.
const PREFETCH_AHEAD: usize = 8;

/// [`interleave`] for strings and bytes with offsets: every value found first, then copied, each
/// value's bytes asked for [`PREFETCH_AHEAD`] values before they are copied (see the module).
/// An error when the values' bytes do not fit the type's offsets.
fn interleave_bytes<T: ByteArrayType>(arrays: &[&dyn Array], indices: &[(usize, usize)]) -> Result<ArrayRef> {
    let arrays: Vec<&GenericByteArray<T>> = arrays.iter().map(|a| a.as_bytes::<T>()).collect();
    let any_nulls = arrays.iter().any(|a| a.null_count() > 0);
    let nulls = any_nulls.then(|| {
        let mut nulls = BooleanBufferBuilder::new(indices.len());
        for &(a, i) in indices {
            nulls.append(arrays[a].is_valid(i));
        }
        NullBuffer::new(nulls.finish())
    });
    let values: Vec<&[u8]> = indices
        .iter()
        .enumerate()
        .map(|(k, &(a, i))| match &nulls {
            Some(nulls) if nulls.is_null(k) => &[][..],
            _ => arrays[a].value(i).as_ref(),
        })
        .collect();
    let mut offsets: Vec<T::Offset> = Vec::with_capacity(values.len() + 1);
    offsets.push(T::Offset::usize_as(0));
    let mut end = 0usize;
    for value in &values {
        end += value.len();
        offsets.push(T::Offset::from_usize(end).ok_or_else(|| {
            DataFusionError::Execution(format!("{end} bytes of {} values do not fit one array", T::PREFIX))
        })?);
    }
    let mut data: Vec<u8> = Vec::with_capacity(end);
    for (k, value) in values.iter().enumerate() {
        if let Some(ahead) = values.get(k + PREFETCH_AHEAD) {
            prefetch(ahead);
        }
        data.extend_from_slice(value);
    }
    // SAFETY: the offsets start at 0 and grow by each value's length to the data's length, and
    // every value is a whole value of an array of the same type (valid UTF-8 where it is a
    // string), so the new array is valid as built.
    let array = unsafe {
        GenericByteArray::<T>::new_unchecked(OffsetBuffer::new_unchecked(offsets.into()), data.into(), nulls)
    };
    Ok(Arc::new(array))
}

/// Asks the CPU to bring the start of `bytes` into its cache (nothing where it cannot be asked).
#[inline(always)]
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing the program sees and never faults.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{LargeBinaryArray, StringArray};

    use super::*;

    /// `n` (array, row) places over arrays of `lens` rows, in a scrambled order, with repeats.
    fn places(lens: &[usize], n: usize) -> Vec<(usize, usize)> {
        let all: Vec<(usize, usize)> =
            lens.iter().enumerate().flat_map(|(a, &len)| (0..len).map(move |i| (a, i))).collect();
        (0..n).map(|k| all[(k * 7_919 + k / 3) % all.len()]).collect()
    }

    #[test]
    fn strings_and_bytes_are_gathered_as_arrow_interleaves_them() {
        let strings: Vec<StringArray> = (0..3)
            .map(|a| {
                (0..40)
                    .map(|i| match (a + i) % 6 {
                        0 => None,
                        1 => Some(String::new()),
                        2 => Some("é".repeat(i)),
                        _ => Some(format!("value {a}.{i} {}", "x".repeat(i * 3))),
                    })
                    .collect()
            })
            .collect();
        let arrays: Vec<&dyn Array> = strings.iter().map(|a| a as &dyn Array).collect();
        let indices = places(&[40, 40, 40], 500);
        let got = interleave_bytes::<Utf8Type>(&arrays, &indices).unwrap();
        assert_eq!(got.as_ref(), interleave(&arrays, &indices).unwrap().as_ref());
        assert_eq!(got.null_count(), indices.iter().filter(|&&(a, i)| (a + i) % 6 == 0).count());

        // Without nulls, and offsets of 64 bits.
        let bytes: Vec<LargeBinaryArray> = (0..2_u8)
            .map(|a| LargeBinaryArray::from_iter_values((0..30_u8).map(|i| vec![a ^ i; i as usize])))
            .collect();
        let arrays: Vec<&dyn Array> = bytes.iter().map(|a| a as &dyn Array).collect();
        let indices = places(&[30, 30], 100);
        let got = interleave_bytes::<LargeBinaryType>(&arrays, &indices).unwrap();
        assert_eq!(got.as_ref(), interleave(&arrays, &indices).unwrap().as_ref());
        assert_eq!(got.null_count(), 0);
        assert_eq!(got.as_binary::<i64>().value(3), bytes[indices[3].0].value(indices[3].1));
    }
}
