//! A sort's runs: each input partition's batches buffered until its reservation is refused, then
//! sorted at once by their keys' row encoding and written to a spill file as one sorted run.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::utils::memory::get_record_batch_memory_size;
use datafusion::error::Result;
use datafusion::execution::disk_manager::RefCountedTempFile;
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;

use super::gather::take_rows;
use super::packing::Packing;
use super::reclaim::Reclaimer;
use super::row_block::{RowBlock, RowLayout};
use super::spill_file::{self, SpillDisk};
use crate::memory::compact_views::compact;

/// One row of a buffer in the index it is sorted through: its key's prefix, its batch and row.
type Entry = (u128, u32, u32);

/// Bytes of one [`Entry`].
const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();

/// The in-memory size a spilled run's batches aim at: the final merge holds one batch of every
/// run (and the one before it until its rows are emitted), so smaller batches let more runs be
/// merged in one pass; much smaller ones cost the IPC writer (and LZ4) a message per batch.
const SPILL_BATCH_BYTES: usize = 256 << 10;

/// What a partition's buffer leaves free in its share of the pool: spilling allocates beside the
/// buffer (the batch being written, the direct writer's two blocks or LZ4 frames).
const SPILL_ROOM_BYTES: usize = 16 << 20;

/// The sort's keys and their row encoding, in which byte order is the sort's order.
#[derive(Debug)]
pub struct SortKeys {
    ordering: LexOrdering,
    converter: RowConverter,
}

impl SortKeys {
    /// The keys of `ordering` over rows of `schema`; an error when the row format cannot encode
    /// one of them (which is how the rule tells the sorts it leaves to DataFusion).
    pub fn new(ordering: &LexOrdering, schema: &SchemaRef) -> Result<SortKeys> {
        let fields = ordering
            .iter()
            .map(|e| Ok(SortField::new_with_options(e.expr.data_type(schema)?, e.options)))
            .collect::<Result<Vec<_>>>()?;
        Ok(SortKeys { ordering: ordering.clone(), converter: RowConverter::new(fields)? })
    }

    /// The bytes the row converter holds (beside the rows it makes).
    pub fn size(&self) -> usize {
        self.converter.size()
    }

    /// The row encoding of `batch`'s keys.
    pub fn rows(&self, batch: &RecordBatch) -> Result<Rows> {
        let keys = self
            .ordering
            .iter()
            .map(|e| e.expr.evaluate(batch)?.into_array(batch.num_rows()))
            .collect::<Result<Vec<ArrayRef>>>()?;
        Ok(self.converter.convert_columns(&keys)?)
    }
}

/// A sorted run as the merge reads it: its batches, in order.
pub type RunReader = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// A sorted run: in memory (the whole input of a partition that never filled its reservation)
/// or in a spill file.
pub enum Run {
    /// Buffered batches and the order their rows are emitted in; holds their reservation.
    Memory(SortedBuffer),
    /// A spill file of sorted batches.
    File(SpilledRun),
}

/// A spill file holding one sorted run.
pub struct SpilledRun {
    file: RefCountedTempFile,
    /// Whether it was written past the page cache ([`spill_file`]).
    direct: bool,
    /// The in-memory size of its largest batch.
    pub max_batch_bytes: usize,
    /// The rows of its largest batch.
    pub batch_rows: usize,
    /// Frees the file's disk space as it is read, and the file once read.
    reclaimer: Reclaimer,
}

impl SpilledRun {
    /// What reading the run holds at most: three of its batches (the one the merge is at, the one
    /// read ahead, and the one before until its rows are copied) and the reader's buffer.
    pub fn held_while_read(&self) -> usize {
        3 * self.max_batch_bytes + spill_file::read_buffer_bytes(self.direct)
    }

    /// Reads the run's batches back, in order, freeing its disk space as it goes; the file is
    /// removed (on the reclaiming thread) when the reader is dropped.
    pub fn read(self) -> Result<RunReader> {
        let reader = spill_file::open(self.file.path(), self.direct, &self.reclaimer)?;
        // SAFETY: the file was written by `write_run` in this process, from arrays that were
        // valid, so the reader need not check them again (DataFusion reads its spills so too).
        let reader = unsafe { StreamReader::try_new(reader, None)?.with_skip_validation(true) };
        let file = self.reclaimer.drop_later(self.file);
        Ok(Box::new(reader.map(move |batch| {
            let _ = &file;
            Ok(batch?)
        })))
    }
}

/// Batches of one partition waiting to be sorted, with their keys.
#[derive(Default)]
struct Buffer {
    /// The batches, or what is left of them when their fixed-width columns are held in `blocks`.
    batches: Vec<RecordBatch>,
    /// Each batch's fixed-width columns in rows, when the sort holds them so ([`RowLayout`]).
    blocks: Vec<RowBlock>,
    keys: Vec<Rows>,
    rows: usize,
    bytes: usize,
}

impl Buffer {
    /// The buffer's rows as (key prefix, batch, row) in the sort's order: by a 16-byte prefix of
    /// each row's key, then, where prefixes tie, by the whole key.
    fn sorted_order(&self) -> Vec<Entry> {
        let mut entries: Vec<Entry> = Vec::with_capacity(self.rows);
        for (b, keys) in self.keys.iter().enumerate() {
            for r in 0..keys.num_rows() {
                entries.push((prefix(keys.row(r).data()), b as u32, r as u32));
            }
        }
        let keys = &self.keys;
        entries.sort_unstable_by(|x, y| {
            x.0.cmp(&y.0).then_with(|| keys[x.1 as usize].row(x.2 as usize).cmp(&keys[y.1 as usize].row(y.2 as usize)))
        });
        entries
    }

    /// Rows per batch of a spill of this buffer: batches of about [`SPILL_BATCH_BYTES`], or an
    /// eighth of the buffer when that is less (a small pool makes short runs, and must still
    /// read many of them at once).
    fn spill_rows(&self) -> usize {
        let row_bytes = (self.bytes / self.rows.max(1)).max(1);
        (SPILL_BATCH_BYTES.min(self.bytes / 8) / row_bytes).clamp(64, 1 << 16)
    }

    /// The buffer sorted, as a run of `schema` read from its batches (and blocks, laid out by
    /// `layout`); `reservation` (a run kept in memory) is held until the run is dropped.
    fn sorted(
        self,
        schema: SchemaRef,
        layout: Option<Arc<RowLayout>>,
        reservation: Option<MemoryReservation>,
    ) -> SortedBuffer {
        let spill_rows = self.spill_rows();
        let order = self.sorted_order();
        SortedBuffer {
            schema,
            batches: self.batches,
            blocks: self.blocks,
            layout,
            order,
            spill_rows,
            _reservation: reservation,
        }
    }
}

/// The (batch, row) places of `entries`' rows.
fn places(entries: &[Entry]) -> Vec<(usize, usize)> {
    entries.iter().map(|&(_, b, r)| (b as usize, r as usize)).collect()
}

/// The first 16 bytes of `key`, big-endian, zero-padded: comparing prefixes orders keys as
/// comparing the keys does, except where the prefixes are equal.
pub fn prefix(key: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    let n = key.len().min(16);
    bytes[..n].copy_from_slice(&key[..n]);
    u128::from_be_bytes(bytes)
}

/// A partition's buffered batches, sorted: a run whose rows are taken from them as it is read.
pub struct SortedBuffer {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    blocks: Vec<RowBlock>,
    layout: Option<Arc<RowLayout>>,
    order: Vec<Entry>,
    spill_rows: usize,
    /// Holds the batches' memory in the pool until the run is dropped (a run kept in memory).
    _reservation: Option<MemoryReservation>,
}

impl SortedBuffer {
    /// The run's rows in order, in batches of `rows` rows.
    pub fn read(self, rows: usize) -> impl Iterator<Item = Result<RecordBatch>> + Send {
        let SortedBuffer { schema, batches, blocks, layout, order, _reservation, .. } = self;
        let mut start = 0;
        std::iter::from_fn(move || {
            let _ = &_reservation;
            let chunk = order.get(start..(start + rows).min(order.len())).filter(|c| !c.is_empty())?;
            start += chunk.len();
            let batches: Vec<&RecordBatch> = batches.iter().collect();
            let places = places(chunk);
            Some(match &layout {
                None => take_rows(&schema, &batches, &places),
                Some(layout) => take_rows(layout.rest(), &batches, &places).and_then(|rest| {
                    let blocks: Vec<&RowBlock> = blocks.iter().collect();
                    layout.gather(&blocks, &places, rest)
                }),
            })
        })
    }

    /// Writes the run to a spill file and lets go of its memory.
    pub fn spill(self, disk: &SpillDisk) -> Result<SpilledRun> {
        let schema = self.schema.clone();
        let rows = self.spill_rows;
        write_run(disk, &schema, self.read(rows))
    }
}

/// Sorts `input` into runs: its batches, as `packing` holds them, are buffered while
/// `reservation` grows to hold them, and each time the pool refuses, sorted and written to a
/// spill file. A partition that never spilled
/// comes back as one run in memory, holding its reservation.
pub async fn sort_partition(
    mut input: SendableRecordBatchStream,
    keys: Arc<SortKeys>,
    packing: Arc<Packing>,
    reservation: MemoryReservation,
    disk: Arc<SpillDisk>,
) -> Result<Vec<Run>> {
    // The batches' schema and how their rows are held, from the first batch on.
    let mut shape: Option<(SchemaRef, Option<Arc<RowLayout>>)> = None;
    let mut buffer = Buffer::default();
    let mut runs = Vec::new();
    while let Some(batch) = input.next().await {
        let batch = compact(&packing.pack(&batch?)?)?;
        if batch.num_rows() == 0 {
            continue;
        }
        let rows = keys.rows(&batch)?;
        let (schema, layout) =
            shape.get_or_insert_with(|| (batch.schema(), RowLayout::new(&batch.schema()).map(Arc::new))).clone();
        let (batch, block) = match &layout {
            Some(layout) => layout.split(&batch).map(|(block, rest)| (rest, Some(block)))?,
            None => (batch, None),
        };
        let bytes = get_record_batch_memory_size(&batch)
            + block.as_ref().map_or(0, RowBlock::size)
            + rows.size()
            + ENTRY_BYTES * batch.num_rows();
        // Room is left for what spilling allocates beside the buffer.
        let grown = reservation.try_grow(bytes + SPILL_ROOM_BYTES).map(|()| reservation.shrink(SPILL_ROOM_BYTES));
        if grown.is_err() {
            if buffer.rows > 0 {
                let full = std::mem::take(&mut buffer);
                runs.push(Run::File(full.sorted(schema.clone(), layout.clone(), None).spill(&disk)?));
                reservation.free();
            }
            // Without the room: a batch that does not fit even so fails with the pool's error.
            reservation.try_grow(bytes)?;
        }
        buffer.rows += batch.num_rows();
        buffer.bytes += bytes;
        buffer.batches.push(batch);
        buffer.blocks.extend(block);
        buffer.keys.push(rows);
    }
    let Some((schema, layout)) = shape.filter(|_| buffer.rows > 0) else { return Ok(runs) };
    if runs.is_empty() {
        return Ok(vec![Run::Memory(buffer.sorted(schema, layout, Some(reservation)))]);
    }
    runs.push(Run::File(buffer.sorted(schema, layout, None).spill(&disk)?));
    Ok(runs)
}

/// Writes `batches`, a sorted run, to a new Arrow IPC spill file on `disk` (uncompressed past the
/// page cache, or LZ4-compressed through it: [`spill_file`]).
pub fn write_run(
    disk: &SpillDisk,
    schema: &SchemaRef,
    batches: impl Iterator<Item = Result<RecordBatch>>,
) -> Result<SpilledRun> {
    let (mut file, sink) = disk.create()?;
    let compressed = sink.compression();
    let options = IpcWriteOptions::default().try_with_compression(compressed)?;
    let mut writer = StreamWriter::try_new_with_options(sink, schema, options)?;
    let (mut max_batch_bytes, mut batch_rows) = (0, 0);
    for batch in batches {
        let batch = batch?;
        if compressed.is_none() {
            disk.time_compression(&batch);
        }
        max_batch_bytes = max_batch_bytes.max(get_record_batch_memory_size(&batch));
        batch_rows = batch_rows.max(batch.num_rows());
        writer.write(&batch)?;
    }
    writer.finish()?;
    let direct = writer.into_inner()?.finish(disk)?;
    file.update_disk_usage()?;
    Ok(SpilledRun { file, direct, max_batch_bytes, batch_rows, reclaimer: disk.reclaimer().clone() })
}
