//! The merge of a sort's runs: one pass over all of them with a loser tree on their keys' row
//! encoding, emitting batches taken from the batches the runs are at.

use std::cmp::Ordering;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, channel, sync_channel};
use std::thread;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::Rows;
use datafusion::error::{DataFusionError, Result};

use super::gather::take_rows;
use super::runs::{RunReader, SortKeys, prefix};

/// Where a run is: the batch it is in, its keys, the row, and the batch's slot among those the
/// next output batch takes rows from.
struct Cursor {
    run: RunReader,
    batch: RecordBatch,
    keys: Rows,
    /// The first 16 bytes of each row's key ([`prefix`]).
    prefixes: Vec<u128>,
    row: usize,
    slot: usize,
}

/// Merges sorted runs into batches of `batch_rows` rows, in the sort's order.
pub struct Merge {
    schema: SchemaRef,
    keys: Arc<SortKeys>,
    batch_rows: usize,
    /// Each run's cursor; None once the run has ended.
    cursors: Vec<Option<Cursor>>,
    /// The loser tree: `tree[0]` is the run whose row is next, each other node the run that
    /// lost the match played there.
    tree: Vec<usize>,
    /// The batches the next output batch takes rows from.
    slots: Vec<RecordBatch>,
    /// The next output batch's rows, as (slot, row).
    taken: Vec<(usize, usize)>,
}

impl Merge {
    /// A merge of `runs`, each sorted by `keys`.
    pub fn new(schema: SchemaRef, keys: Arc<SortKeys>, runs: Vec<RunReader>, batch_rows: usize) -> Result<Merge> {
        let mut merge = Merge {
            schema,
            keys,
            batch_rows: batch_rows.max(1),
            cursors: Vec::with_capacity(runs.len()),
            tree: Vec::new(),
            slots: Vec::new(),
            taken: Vec::with_capacity(batch_rows),
        };
        for run in runs {
            let cursor = merge.open(run)?;
            merge.cursors.push(cursor);
        }
        merge.build_tree();
        Ok(merge)
    }

    /// `run`'s cursor at its next non-empty batch (None when it has ended), in a new slot.
    fn open(&mut self, mut run: RunReader) -> Result<Option<Cursor>> {
        for batch in run.by_ref() {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            let keys = self.keys.rows(&batch)?;
            let prefixes = (0..keys.num_rows()).map(|r| prefix(keys.row(r).data())).collect();
            self.slots.push(batch.clone());
            return Ok(Some(Cursor { run, batch, keys, prefixes, row: 0, slot: self.slots.len() - 1 }));
        }
        Ok(None)
    }

    /// Whether run `a`'s row comes after run `b`'s (an ended run comes after every other; equal
    /// keys in run order).
    fn after(&self, a: usize, b: usize) -> bool {
        match (&self.cursors[a], &self.cursors[b]) {
            (None, None) => a > b,
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (Some(x), Some(y)) => {
                let order = x.prefixes[x.row].cmp(&y.prefixes[y.row]);
                let order = order.then_with(|| x.keys.row(x.row).cmp(&y.keys.row(y.row)));
                order.then(a.cmp(&b)) == Ordering::Greater
            }
        }
    }

    /// The tree node run `run` enters at.
    fn leaf(&self, run: usize) -> usize {
        (run + self.cursors.len()) / 2
    }

    fn build_tree(&mut self) {
        self.tree = vec![usize::MAX; self.cursors.len()];
        for run in 0..self.cursors.len() {
            let mut winner = run;
            let mut node = self.leaf(run);
            while node != 0 && self.tree[node] != usize::MAX {
                let challenger = self.tree[node];
                if self.after(winner, challenger) {
                    self.tree[node] = winner;
                    winner = challenger;
                }
                node /= 2;
            }
            self.tree[node] = winner;
        }
    }

    /// Plays the matches of the winner's path again after its row moved on.
    fn replay(&mut self) {
        let mut winner = self.tree[0];
        let mut node = self.leaf(winner);
        while node != 0 {
            let challenger = self.tree[node];
            if self.after(winner, challenger) {
                self.tree[node] = winner;
                winner = challenger;
            }
            node /= 2;
        }
        self.tree[0] = winner;
    }

    /// Moves run `run` to its next row, reading its next batch when it is at the end of one.
    fn advance(&mut self, run: usize) -> Result<()> {
        let Some(cursor) = self.cursors[run].as_mut() else { return Ok(()) };
        cursor.row += 1;
        if cursor.row < cursor.batch.num_rows() {
            return Ok(());
        }
        let cursor = self.cursors[run].take().expect("checked above");
        self.cursors[run] = self.open(cursor.run)?;
        Ok(())
    }

    /// What the next batch of the merge takes: the rows it takes and the batches they are in;
    /// None when every run has ended.
    pub fn next_rows(&mut self) -> Result<Option<Taken>> {
        if self.cursors.is_empty() {
            return Ok(None);
        }
        while self.taken.len() < self.batch_rows {
            let winner = self.tree[0];
            let Some(cursor) = &self.cursors[winner] else { break };
            self.taken.push((cursor.slot, cursor.row));
            self.advance(winner)?;
            self.replay();
        }
        if self.taken.is_empty() {
            return Ok(None);
        }
        let taken = Taken {
            batches: std::mem::take(&mut self.slots),
            rows: std::mem::replace(&mut self.taken, Vec::with_capacity(self.batch_rows)),
        };
        // Only the batches the runs are at stay.
        for cursor in self.cursors.iter_mut().flatten() {
            cursor.slot = self.slots.len();
            self.slots.push(cursor.batch.clone());
        }
        Ok(Some(taken))
    }

    /// The next batch of the merge, None when every run has ended.
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let Some(taken) = self.next_rows()? else { return Ok(None) };
        taken.batch(&self.schema).map(Some)
    }

    /// The merge's batches, the rows of each chosen on a thread of its own and copied into the
    /// batch on the thread that reads them. A thread that stops without saying it ended (a
    /// panic) fails the reader, never ends it early.
    pub fn in_two_threads(mut self) -> RunReader {
        let schema = self.schema.clone();
        let (tx, rx) = sync_channel::<Option<Result<Taken>>>(TAKEN_AHEAD);
        let spawned = thread::Builder::new().name("dfpipe-merge".into()).spawn(move || {
            loop {
                let next = self.next_rows().transpose();
                let last = !matches!(next, Some(Ok(_)));
                if tx.send(next).is_err() || last {
                    break; // the reader has gone, or the merge ended or failed
                }
            }
        });
        if let Err(e) = spawned {
            return Box::new(std::iter::once(Err(DataFusionError::External(Box::new(e)))));
        }
        let mut ended = false;
        Box::new(std::iter::from_fn(move || {
            if ended {
                return None;
            }
            let next = match rx.recv() {
                Ok(next) => next.map(|taken| taken?.batch(&schema)),
                Err(_) => Some(Err(stopped("merge"))),
            };
            ended = !matches!(next, Some(Ok(_)));
            next
        }))
    }
}

/// The error of a sort thread that stopped without saying it ended.
fn stopped(thread: &str) -> DataFusionError {
    DataFusionError::Execution(format!("the sort's {thread} thread stopped before its runs ended"))
}

/// The rows of one output batch, as (batch, row) places in `batches`.
pub struct Taken {
    batches: Vec<RecordBatch>,
    rows: Vec<(usize, usize)>,
}

impl Taken {
    /// The rows, copied into one batch of `schema`.
    fn batch(&self, schema: &SchemaRef) -> Result<RecordBatch> {
        let batches: Vec<&RecordBatch> = self.batches.iter().collect();
        take_rows(schema, &batches, &self.rows)
    }
}

/// Output batches whose rows are chosen ahead of the one being copied.
const TAKEN_AHEAD: usize = 2;

/// A run being read ahead, and where its batches go.
type Ahead = (RunReader, SyncSender<Option<Result<RecordBatch>>>);

/// Each of `runs` read one batch ahead of the merge on a thread of their own ("dfpipe-read"),
/// which reads and decodes the files (Arrow IPC, LZ4 where compressed) while the merge compares
/// keys. A run holds at most the batch the merge is at and the next one; the thread ends when the
/// readers are dropped. A run's end is sent as such, so that a thread that stops (a panic) fails
/// the merge instead of ending its runs early.
pub fn read_ahead(runs: Vec<RunReader>) -> Result<Vec<RunReader>> {
    let (want_tx, want_rx) = channel::<usize>();
    let (senders, receivers): (Vec<_>, Vec<_>) =
        runs.iter().map(|_| sync_channel::<Option<Result<RecordBatch>>>(1)).unzip();
    thread::Builder::new()
        .name("dfpipe-read".into())
        .spawn(move || {
            let mut runs: Vec<Option<Ahead>> = runs.into_iter().zip(senders).map(Some).collect();
            let read = |run: usize, runs: &mut [Option<Ahead>]| {
                let Some((reader, tx)) = runs[run].as_mut() else { return };
                // The channel is empty: its batch was taken before this one was wanted.
                let next = reader.next();
                let ended = next.is_none();
                if tx.send(next).is_err() || ended {
                    runs[run] = None;
                }
            };
            for run in 0..runs.len() {
                read(run, &mut runs);
            }
            while let Ok(run) = want_rx.recv() {
                read(run, &mut runs);
            }
        })
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    Ok(receivers
        .into_iter()
        .enumerate()
        .map(|(run, rx)| {
            let want = want_tx.clone();
            let mut ended = false;
            Box::new(std::iter::from_fn(move || {
                if ended {
                    return None;
                }
                match rx.recv() {
                    Ok(Some(batch)) => {
                        let _ = want.send(run);
                        Some(batch)
                    }
                    Ok(None) => {
                        ended = true;
                        None
                    }
                    Err(_) => {
                        ended = true;
                        Some(Err(stopped("read-ahead")))
                    }
                }
            })) as RunReader
        })
        .collect())
}

impl Iterator for Merge {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}
