//! Rows staged beyond the writer's memory bound: each spill is a run, rows merged by key
//! and sorted in the partition's order ([`merge_by_key`]), kept in an Arrow IPC file on
//! the local disk; when the partition is written, its runs are merged back in that order
//! a few thousand rows at a time, so a month's partition is never held whole.
//!
//! A key in two runs (a record staged twice) needs every row of the partition to tell
//! which one wins; it is found by the keys' hashes, and the partition is then merged in
//! memory, as it would have been without a bound.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{Array, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::compute::interleave;
use arrow::datatypes::TimestampMicrosecondType;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;

use crate::model::Table;

/// Rows per batch of what the merge gives: a multiple of the Parquet writer's mini-batch
/// (1,024 rows) that divides its row groups, so a partition written from the merge is
/// the same bytes as one written whole.
pub(super) const MERGE_ROWS: usize = 8192;

/// Rows per batch of a run file: the merge holds one batch of each run, and a partition
/// of 30M tickets' largest source has about 40 runs.
const RUN_ROWS: usize = 2048;

/// One spill of a partition's staged rows, sorted, on disk until the partition is written.
pub(super) struct Run {
    path: PathBuf,
    /// the hash of each key (8 bytes each), to find a key in two runs: on disk too, read
    /// when the partition is written (at 30M tickets, the hashes of the runs of the
    /// partitions staged took about 100 MB)
    hashes: PathBuf,
    pub(super) rows: usize,
    /// the spill directory, removed once its last run and the writer are gone
    _dir: Arc<tempfile::TempDir>,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(&self.hashes);
    }
}

/// The hash of each key of `batch` (the history's planning's, the same in every run).
pub(super) fn key_hashes(table: Table, batch: &RecordBatch) -> Vec<u64> {
    let keys = batch
        .column_by_name(table.key_column())
        .expect("canonical column")
        .as_string::<i32>();
    keys.iter()
        .map(|k| super::history::hash(k.unwrap_or_default()))
        .collect()
}

/// Writes `sorted` (rows merged by key and sorted) as run number `n` of `dir`.
pub(super) fn write_run(
    dir: &Arc<tempfile::TempDir>,
    n: u64,
    table: Table,
    sorted: &RecordBatch,
) -> Result<Run> {
    let path = dir.path().join(format!("run-{n}.arrow"));
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = FileWriter::try_new(BufWriter::new(file), &sorted.schema())?;
    let mut offset = 0;
    while offset < sorted.num_rows() {
        let len = RUN_ROWS.min(sorted.num_rows() - offset);
        writer.write(&sorted.slice(offset, len))?;
        offset += len;
    }
    writer
        .finish()
        .with_context(|| format!("writing {}", path.display()))?;
    let hashes = dir.path().join(format!("run-{n}.hashes"));
    let bytes: Vec<u8> = key_hashes(table, sorted)
        .into_iter()
        .flat_map(u64::to_le_bytes)
        .collect();
    std::fs::write(&hashes, bytes).with_context(|| format!("writing {}", hashes.display()))?;
    Ok(Run {
        path,
        hashes,
        rows: sorted.num_rows(),
        _dir: Arc::clone(dir),
    })
}

/// Every row of a run, back in memory.
pub(super) fn read_run(run: &Run) -> Result<Vec<RecordBatch>> {
    reader(run)?
        .map(|b| b.with_context(|| format!("reading {}", run.path.display())))
        .collect()
}

fn reader(run: &Run) -> Result<FileReader<BufReader<File>>> {
    let file = File::open(&run.path).with_context(|| format!("opening {}", run.path.display()))?;
    FileReader::try_new(BufReader::new(file), None)
        .with_context(|| format!("reading {}", run.path.display()))
}

/// Whether a key hash comes back in two of the runs, or in a run and `rest` (the hashes
/// of the rows still in memory). Each run holds each of its keys once.
pub(super) fn repeated_key(runs: &[Run], rest: &[u64]) -> Result<bool> {
    let rows = runs.iter().map(|r| r.rows).sum::<usize>() + rest.len();
    let mut all: Vec<u64> = Vec::with_capacity(rows);
    for run in runs {
        let bytes = std::fs::read(&run.hashes)
            .with_context(|| format!("reading {}", run.hashes.display()))?;
        all.extend(
            bytes
                .chunks_exact(8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))),
        );
    }
    all.extend_from_slice(rest);
    all.sort_unstable();
    Ok(all.windows(2).any(|w| w[0] == w[1]))
}

/// Where the merge reads a sorted run from.
enum Input {
    /// rows still in memory, merged and sorted, and how far they were read
    Memory(RecordBatch, usize),
    File(FileReader<BufReader<File>>),
}

impl Input {
    /// The next batch with rows, if any.
    fn next(&mut self) -> Result<Option<RecordBatch>> {
        match self {
            Input::Memory(batch, offset) => {
                if *offset >= batch.num_rows() {
                    return Ok(None);
                }
                let len = RUN_ROWS.min(batch.num_rows() - *offset);
                let part = batch.slice(*offset, len);
                *offset += len;
                Ok(Some(part))
            }
            Input::File(reader) => {
                for b in reader.by_ref() {
                    let b = b?;
                    if b.num_rows() > 0 {
                        return Ok(Some(b));
                    }
                }
                Ok(None)
            }
        }
    }
}

/// The current batch of one input, and the columns its rows are ordered by.
struct Cursor {
    batch: RecordBatch,
    row: usize,
    /// where `batch` is among the batches of the output being built
    slot: usize,
    resolved: Option<TimestampMicrosecondArray>,
    instant: TimestampMicrosecondArray,
    key: StringArray,
}

impl Cursor {
    fn new(table: Table, batch: RecordBatch, slot: usize) -> Cursor {
        let ts = |name: &str| {
            batch
                .column_by_name(name)
                .expect("canonical column")
                .as_primitive::<TimestampMicrosecondType>()
                .clone()
        };
        Cursor {
            resolved: (table == Table::Tickets).then(|| ts("resolved_at")),
            instant: ts(table.partition_instant()),
            key: batch
                .column_by_name(table.key_column())
                .expect("canonical column")
                .as_string::<i32>()
                .clone(),
            batch,
            row: 0,
            slot,
        }
    }

    /// The order of [`super::write::merge_by_key`]: (resolution, a ticket never resolved
    /// last; instant; key), events by (instant, key).
    fn order(&self) -> (i64, i64, &str) {
        let r = self.row;
        let resolution = match &self.resolved {
            Some(a) if a.is_valid(r) => a.value(r),
            Some(_) => i64::MAX,
            None => 0,
        };
        (resolution, self.instant.value(r), self.key.value(r))
    }
}

/// Merges sorted runs into batches of [`MERGE_ROWS`] rows in the partition's order.
pub(super) struct Merger {
    table: Table,
    inputs: Vec<Input>,
    cursors: Vec<Option<Cursor>>,
    /// the inputs with rows left, as a binary heap on their cursors' order
    heap: Vec<usize>,
    /// the batches the output being built takes rows from
    slots: Vec<RecordBatch>,
}

impl Merger {
    /// A merge of `runs` and of `rest` (rows still in memory, merged and sorted).
    pub(super) fn new(table: Table, runs: &[Run], rest: Option<RecordBatch>) -> Result<Merger> {
        let mut inputs = runs
            .iter()
            .map(|r| reader(r).map(Input::File))
            .collect::<Result<Vec<_>>>()?;
        inputs.extend(rest.map(|b| Input::Memory(b, 0)));
        let mut merger = Merger {
            table,
            cursors: Vec::with_capacity(inputs.len()),
            heap: Vec::with_capacity(inputs.len()),
            slots: Vec::with_capacity(inputs.len()),
            inputs,
        };
        for i in 0..merger.inputs.len() {
            let cursor = match merger.inputs[i].next()? {
                Some(b) => {
                    merger.slots.push(b.clone());
                    merger.heap.push(i);
                    Some(Cursor::new(table, b, merger.slots.len() - 1))
                }
                None => None,
            };
            merger.cursors.push(cursor);
        }
        for at in (0..merger.heap.len() / 2).rev() {
            merger.sift_down(at);
        }
        Ok(merger)
    }

    fn less(&self, a: usize, b: usize) -> bool {
        let (a, b) = (&self.cursors[a], &self.cursors[b]);
        a.as_ref().expect("live").order() < b.as_ref().expect("live").order()
    }

    fn sift_down(&mut self, mut at: usize) {
        loop {
            let (l, r) = (2 * at + 1, 2 * at + 2);
            let mut least = at;
            if l < self.heap.len() && self.less(self.heap[l], self.heap[least]) {
                least = l;
            }
            if r < self.heap.len() && self.less(self.heap[r], self.heap[least]) {
                least = r;
            }
            if least == at {
                return;
            }
            self.heap.swap(at, least);
            at = least;
        }
    }

    /// The next [`MERGE_ROWS`] rows in order (fewer at the end), or None when done.
    pub(super) fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if self.heap.is_empty() {
            return Ok(None);
        }
        let mut indices: Vec<(usize, usize)> = Vec::with_capacity(MERGE_ROWS);
        while indices.len() < MERGE_ROWS && !self.heap.is_empty() {
            let i = self.heap[0];
            let cursor = self.cursors[i].as_mut().expect("live");
            indices.push((cursor.slot, cursor.row));
            cursor.row += 1;
            if cursor.row == cursor.batch.num_rows() {
                match self.inputs[i].next()? {
                    Some(b) => {
                        self.slots.push(b.clone());
                        self.cursors[i] = Some(Cursor::new(self.table, b, self.slots.len() - 1));
                    }
                    None => {
                        self.cursors[i] = None;
                        let last = self.heap.pop().expect("not empty");
                        if self.heap.is_empty() {
                            break;
                        }
                        self.heap[0] = last;
                    }
                }
            }
            self.sift_down(0);
        }
        let columns = (0..self.table.file_schema().fields().len())
            .map(|c| {
                let arrays: Vec<&dyn Array> =
                    self.slots.iter().map(|b| b.column(c).as_ref()).collect();
                interleave(&arrays, &indices)
            })
            .collect::<Result<Vec<_>, _>>()?;
        // the next output takes rows from the cursors' batches only
        self.slots.clear();
        for cursor in self.cursors.iter_mut().flatten() {
            self.slots.push(cursor.batch.clone());
            cursor.slot = self.slots.len() - 1;
        }
        Ok(Some(RecordBatch::try_new(
            self.table.file_schema(),
            columns,
        )?))
    }
}
