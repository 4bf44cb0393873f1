//! Writing the lake: stage canonical batches, then write each touched partition whole,
//! merged by key with what it already holds, and move each source's state file last.
//!
//! The write contract (DESIGN.md): a partition is one object, `part-0.parquet`, replaced
//! by a single `put` (atomic on object stores and, through a rename, on local disks), so
//! a reader sees either the old or the new partition, never a half-written one and never
//! the same key twice. A crash between partitions leaves a valid lake whose state file has
//! not moved; the next run re-merges the same records and converges.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{interleave, take};
use arrow::datatypes::TimestampMicrosecondType;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use super::Lake;
use super::validate::{self, Rejected};
use crate::engine::localtime::LocalDays;
use crate::model::Table;

/// Rows per Parquet row group: small enough for row-group pruning within a month.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// `_state/<source>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceState {
    pub source: String,
    /// The newest `updated_at` (or `created_at`) merged so far: the next pull starts there.
    pub watermark: Option<DateTime<Utc>>,
    pub last_run: DateTime<Utc>,
    /// Records merged by the last run.
    pub tickets_written: u64,
    pub events_written: u64,
    /// Records the last run sent to the quarantine.
    pub quarantined: u64,
}

/// What one writer did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WriteSummary {
    pub tickets: u64,
    pub events: u64,
    pub quarantined: u64,
    pub partitions: u64,
}

type PartitionKey = (Table, String, String);

/// Stages batches and writes partitions.
pub struct LakeWriter {
    lake: Lake,
    days: LocalDays,
    staged: BTreeMap<PartitionKey, Vec<RecordBatch>>,
    rejected: BTreeMap<(String, Table), Vec<Rejected>>,
    watermarks: BTreeMap<String, Option<i64>>,
    summary: WriteSummary,
    per_source: BTreeMap<String, (u64, u64, u64)>,
}

impl LakeWriter {
    pub fn new(lake: Lake, days: LocalDays) -> LakeWriter {
        LakeWriter {
            lake,
            days,
            staged: BTreeMap::new(),
            rejected: BTreeMap::new(),
            watermarks: BTreeMap::new(),
            summary: WriteSummary::default(),
            per_source: BTreeMap::new(),
        }
    }

    /// Validates a canonical batch of `source` and stages its rows by partition.
    pub fn stage(&mut self, table: Table, source: &str, batch: &RecordBatch) -> Result<()> {
        let (good, rejected) =
            validate::split(table, batch).with_context(|| format!("source '{source}'"))?;
        if !rejected.is_empty() {
            self.rejected
                .entry((source.to_string(), table))
                .or_default()
                .extend(rejected);
        }
        self.watermarks.entry(source.to_string()).or_insert(None);
        if good.num_rows() == 0 {
            return Ok(());
        }
        let instants = good
            .column_by_name(table.partition_instant())
            .expect("canonical column")
            .as_primitive::<TimestampMicrosecondType>();
        if table == Table::Tickets {
            let updated = good
                .column_by_name("updated_at")
                .expect("canonical column")
                .as_primitive::<TimestampMicrosecondType>();
            let newest = (0..good.num_rows())
                .map(|i| {
                    if updated.is_null(i) {
                        instants.value(i)
                    } else {
                        updated.value(i)
                    }
                })
                .max();
            let w = self.watermarks.get_mut(source).unwrap();
            *w = (*w).max(newest);
        }
        let mut by_month: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut last: Option<(i32, String)> = None;
        for i in 0..good.num_rows() {
            let day = self.days.day_of(instants.value(i));
            let month = match &last {
                Some((d, m)) if *d == day => m.clone(),
                _ => {
                    let m = self.days.month_of(instants.value(i));
                    last = Some((day, m.clone()));
                    m
                }
            };
            by_month.entry(month).or_default().push(i as u32);
        }
        for (month, rows) in by_month {
            let idx = arrow::array::UInt32Array::from(rows);
            let columns = good
                .columns()
                .iter()
                .map(|c| take(c, &idx, None))
                .collect::<Result<Vec<_>, _>>()?;
            let part = RecordBatch::try_new(good.schema(), columns)?;
            self.staged
                .entry((table, source.to_string(), month))
                .or_default()
                .push(part);
        }
        Ok(())
    }

    /// Writes every staged partition whose month is at or before `month` (all with `None`).
    pub async fn flush(&mut self, through: Option<&str>) -> Result<()> {
        let keys: Vec<PartitionKey> = self
            .staged
            .keys()
            .filter(|(_, _, m)| through.is_none_or(|t| m.as_str() <= t))
            .cloned()
            .collect();
        for key in keys {
            let batches = self.staged.remove(&key).unwrap_or_default();
            let (table, source, month) = &key;
            let rows = write_partition(&self.lake, *table, source, month, batches)
                .await
                .with_context(|| {
                    format!("writing {}/source={source}/month={month}", table.name())
                })?;
            let entry = self.per_source.entry(source.clone()).or_default();
            match table {
                Table::Tickets => {
                    self.summary.tickets += rows;
                    entry.0 += rows;
                }
                Table::Events => {
                    self.summary.events += rows;
                    entry.1 += rows;
                }
            }
            self.summary.partitions += 1;
        }
        Ok(())
    }

    /// Writes what is left, then the quarantine, then each source's state: last.
    pub async fn finish(mut self) -> Result<WriteSummary> {
        self.flush(None).await?;
        let run = Utc::now();
        for ((source, table), rejected) in std::mem::take(&mut self.rejected) {
            let mut text = String::new();
            for r in &rejected {
                let line = serde_json::json!({"reason": r.reason, "table": table.name(), "record": r.record});
                text.push_str(&line.to_string());
                text.push('\n');
            }
            let path = object_store::path::Path::from(format!(
                "_quarantine/{source}/{}-{}.jsonl",
                run.format("%Y%m%dT%H%M%S%.6fZ"),
                table.name()
            ));
            self.lake
                .store
                .put(&path, PutPayload::from(text.into_bytes()))
                .await?;
            self.per_source.entry(source).or_default().2 += rejected.len() as u64;
            self.summary.quarantined += rejected.len() as u64;
        }
        for (source, watermark) in &self.watermarks {
            let (tickets, events, quarantined) =
                self.per_source.get(source).copied().unwrap_or_default();
            let previous = self.lake.state(source).await?.and_then(|s| s.watermark);
            let watermark = watermark
                .and_then(DateTime::<Utc>::from_timestamp_micros)
                .max(previous);
            let state = SourceState {
                source: source.clone(),
                watermark,
                last_run: run,
                tickets_written: tickets,
                events_written: events,
                quarantined,
            };
            self.lake
                .store
                .put(
                    &Lake::state_path(source),
                    PutPayload::from(serde_json::to_vec_pretty(&state)?),
                )
                .await?;
        }
        Ok(self.summary)
    }
}

/// Reads every Parquet object of a partition.
async fn read_partition(
    lake: &Lake,
    table: Table,
    source: &str,
    month: &str,
) -> Result<(Vec<RecordBatch>, Vec<object_store::path::Path>)> {
    let mut batches = Vec::new();
    let mut paths = Vec::new();
    for meta in lake
        .list(&Lake::partition_dir(table, source, month))
        .await?
    {
        if !meta.location.as_ref().ends_with(".parquet") {
            continue;
        }
        let bytes: Bytes = lake.store.get(&meta.location).await?.bytes().await?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .with_context(|| format!("reading {}", meta.location))?
            .with_batch_size(64 * 1024)
            .build()?;
        for b in reader {
            let b = b.with_context(|| format!("reading {}", meta.location))?;
            // a file written by an older schema is brought to the canonical columns
            batches.push(b.with_schema(table.file_schema()).with_context(|| {
                format!("{} does not have the canonical columns", meta.location)
            })?);
        }
        paths.push(meta.location);
    }
    Ok((batches, paths))
}

/// Merges `new` into the partition by key (new rows win), sorts by (instant, key) and
/// replaces the partition's object. Returns the number of new rows merged.
async fn write_partition(
    lake: &Lake,
    table: Table,
    source: &str,
    month: &str,
    new: Vec<RecordBatch>,
) -> Result<u64> {
    let (old, old_paths) = read_partition(lake, table, source, month).await?;
    let new_rows: usize = new.iter().map(|b| b.num_rows()).sum();
    let batches: Vec<RecordBatch> = old.into_iter().chain(new).collect();
    let merged = merge_by_key(table, &batches)?;

    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, table.file_schema(), Some(props))?;
    writer.write(&merged)?;
    writer.close()?;
    let target = Lake::partition_file(table, source, month);
    let bytes = buf.len();
    lake.store.put(&target, PutPayload::from(buf)).await?;
    tracing::debug!(
        table = table.name(),
        source,
        month,
        new_rows,
        rows = merged.num_rows(),
        bytes,
        "partition written"
    );
    for p in old_paths.into_iter().filter(|p| *p != target) {
        lake.store.delete(&p).await?;
    }
    Ok(new_rows as u64)
}

/// One batch with each key once (the last occurrence wins), sorted by (instant, key).
pub fn merge_by_key(table: Table, batches: &[RecordBatch]) -> Result<RecordBatch> {
    let schema = table.file_schema();
    let instants: Vec<_> = batches
        .iter()
        .map(|b| {
            b.column_by_name(table.partition_instant())
                .expect("canonical column")
                .as_primitive::<TimestampMicrosecondType>()
        })
        .collect();
    let mut latest: HashMap<&str, (usize, usize)> = HashMap::new();
    for (b, batch) in batches.iter().enumerate() {
        let keys = batch
            .column_by_name(table.key_column())
            .expect("canonical column")
            .as_string::<i32>();
        for r in 0..batch.num_rows() {
            latest.insert(keys.value(r), (b, r));
        }
    }
    let mut order: Vec<(i64, &str, (usize, usize))> = latest
        .into_iter()
        .map(|(key, (b, r))| (instants[b].value(r), key, (b, r)))
        .collect();
    order.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let indices: Vec<(usize, usize)> = order.into_iter().map(|(_, _, i)| i).collect();
    let columns = (0..schema.fields().len())
        .map(|c| {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            interleave(&arrays, &indices)
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(&schema), columns)?)
}
