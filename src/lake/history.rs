//! The rows of the view `ticket_history` (`queries/views/ticket_history.sql`) for one
//! source, computed in one pass over its events instead of by DataFusion: the
//! view orders every ticket's events twice over (a window, then five ordered
//! `array_agg`), which took 30 s of the 38 s of generating a million tickets; numbering
//! the tickets in a hash table and sorting the events once by (ticket, at, event_id)
//! takes about a second. The SQL stays the definition: it is what a reader computes when
//! the stored rows do not match the events, and the tests check that both give the same
//! rows. Every ticket of `tickets` has a row, and every ticket only events name (those
//! without a status event have null status columns). The ticket's own state (`status`
//! and its times; `settled_at` from them) comes from the
//! source's `tickets`. The rows are stored by the ticket's `tickets` partition (its month
//! of creation), and within it in the order of the partition's own rows: resolved first,
//! by `resolved_at`, then the others by `settled_at`, the open ones last (see
//! [`compute`]).

use std::hash::BuildHasher;
use std::ops::Range;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, BooleanArray, BooleanBuilder, ListArray, RecordBatch,
    StringArray, StringBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
    UInt32Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, FieldRef, SchemaRef, TimestampMicrosecondType};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryFutureExt};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};

use super::Lake;
use super::derived::of_table;
use crate::model::Table;

/// Statuses after which a ticket is no longer open.
const FINISHED: [&str; 3] = ["resolved", "closed", "canceled"];

/// The columns of `tickets` read besides those copied ([`COPIED`]).
const TICKET_KEYS_AND_TIMES: [&str; 3] = ["ticket_id", "created_at", "resolved_at"];

/// The columns of `tickets` the rows carry as they are, in the view's order (its last).
const COPIED: [&str; 7] = [
    "status",
    "closed_at",
    "updated_at",
    "org",
    "desk",
    "priority",
    "assigned_at",
];

/// The columns of `events` read.
const COLUMNS: [&str; 6] = [
    "ticket_id",
    "event_id",
    "at",
    "kind",
    "from_value",
    "to_value",
];

/// Reads `columns` of Parquet objects, handing each batch to `each` as it is decoded,
/// with the number of its object.
async fn each_batch(
    lake: &Lake,
    objects: &[&ObjectMeta],
    columns: &[&str],
    each: impl FnMut(u32, RecordBatch) -> Result<()>,
) -> Result<()> {
    each_selected(lake, objects, None, columns, each).await
}

/// [`each_batch`], of the rows `selected` of each object (all when `None`). A whole
/// object is fetched in one request; of a selection, only the pages holding a selected
/// row are fetched and decompressed (a piece reads a few rows of most `events` objects:
/// fetched whole, they cost each piece of `glpi-lyon` at 10M tickets about 80 MB and
/// 100 ms).
async fn each_selected(
    lake: &Lake,
    objects: &[&ObjectMeta],
    selected: Option<&[RowSelection]>,
    columns: &[&str],
    mut each: impl FnMut(u32, RecordBatch) -> Result<()>,
) -> Result<()> {
    for (part, meta) in (0u32..).zip(objects) {
        let context = || format!("reading {}", meta.location);
        let Some(selection) = selected.map(|s| s[part as usize].clone()) else {
            let bytes: Bytes = lake.store.get(&meta.location).await?.bytes().await?;
            let options = ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Skip);
            let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(bytes, options)
                .with_context(context)?;
            let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
            for batch in builder
                .with_projection(mask)
                .with_batch_size(64 * 1024)
                .build()?
            {
                each(part, batch.with_context(context)?).with_context(context)?;
            }
            continue;
        };
        if !selection.selects_any() {
            continue;
        }
        // the offset index tells where the pages of the selection are
        let options = ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional);
        let builder =
            ParquetRecordBatchStreamBuilder::new_with_options(Ranges::new(lake, meta), options)
                .await
                .with_context(context)?;
        let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
        let mut batches = builder
            .with_projection(mask)
            .with_batch_size(64 * 1024)
            .with_row_selection(selection)
            .build()?;
        while let Some(batch) = batches.next().await {
            each(part, batch.with_context(context)?).with_context(context)?;
        }
    }
    Ok(())
}

/// Byte ranges of one lake object, for Parquet's asynchronous reader.
struct Ranges {
    store: Arc<dyn ObjectStore>,
    meta: ObjectMeta,
}

impl Ranges {
    fn new(lake: &Lake, meta: &ObjectMeta) -> Ranges {
        Ranges {
            store: lake.store.clone(),
            meta: meta.clone(),
        }
    }
}

fn parquet_error(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for Ranges {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.store
            .get_range(&self.meta.location, range)
            .map_err(parquet_error)
            .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.meta.location, &ranges)
                .await
                .map_err(parquet_error)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.meta.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// A column of a batch read with it.
fn column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b ArrayRef> {
    batch
        .column_by_name(name)
        .with_context(|| format!("no column {name}"))
}

/// A timestamp column of a batch read with it.
fn timestamps<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b TimestampMicrosecondArray> {
    Ok(column(batch, name)?.as_primitive::<TimestampMicrosecondType>())
}

/// A ticket's own times, as the view's `created_at`, `resolved_at` and `settled_at`
/// give them, and the partition of `tickets` it was read from.
#[derive(Debug, Clone, Copy)]
struct Times {
    part: u32,
    created: i64,
    resolved: Option<i64>,
    settled: Option<i64>,
}

/// A source's tickets: their ids, and the columns copied as they are (only these columns
/// of each batch are kept), and their times, in the same order.
struct Tickets {
    ids: Vec<StringArray>,
    copied: [Vec<ArrayRef>; COPIED.len()],
    times: Vec<Times>,
}

impl Tickets {
    /// Reads the ids and times of a source's `tickets` objects (in the order given: by
    /// path, so by month of creation).
    async fn read(lake: &Lake, objects: &[&ObjectMeta]) -> Result<Tickets> {
        let mut out = Tickets {
            ids: Vec::new(),
            copied: Default::default(),
            times: Vec::new(),
        };
        let columns: Vec<&str> = TICKET_KEYS_AND_TIMES
            .iter()
            .chain(&COPIED)
            .copied()
            .collect();
        each_batch(lake, objects, &columns, |part, b| {
            let status = column(&b, "status")?.as_string::<i32>();
            let (created, resolved, closed, updated) = (
                timestamps(&b, "created_at")?,
                timestamps(&b, "resolved_at")?,
                timestamps(&b, "closed_at")?,
                timestamps(&b, "updated_at")?,
            );
            let at = |a: &TimestampMicrosecondArray, r: usize| (!a.is_null(r)).then(|| a.value(r));
            for r in 0..b.num_rows() {
                let status = opt(status, r);
                let (resolved_at, closed_at, updated_at) =
                    (at(resolved, r), at(closed, r), at(updated, r));
                // the view's `settled_at`
                let open = match status {
                    None => true,
                    Some(s) => {
                        !FINISHED.contains(&s)
                            || updated_at.is_none()
                            || (resolved_at.is_none() && closed_at.is_none() && s != "canceled")
                    }
                };
                let settled = (!open).then(|| {
                    [resolved_at, closed_at, updated_at]
                        .into_iter()
                        .flatten()
                        .fold(created.value(r), i64::max)
                });
                out.times.push(Times {
                    part,
                    created: created.value(r),
                    resolved: resolved_at,
                    settled,
                });
            }
            out.ids
                .push(column(&b, "ticket_id")?.as_string::<i32>().clone());
            for (name, arrays) in COPIED.iter().zip(&mut out.copied) {
                arrays.push(compact(column(&b, name)?)?);
            }
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// The columns of [`COPIED`] of the tickets numbered (a null number: null), from
    /// the batches taken out of [`Tickets::copied`].
    fn copied(
        batches: [Vec<ArrayRef>; COPIED.len()],
        numbers: &UInt32Array,
    ) -> Result<Vec<ArrayRef>> {
        let mut out = Vec::new();
        for arrays in batches {
            let parts: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
            let all = arrow::compute::concat(&parts)?;
            drop(parts);
            drop(arrays);
            out.push(arrow::compute::take(&all, numbers, None)?);
        }
        Ok(out)
    }
}

/// A copied column as it is kept until the rows are built: a text column (`status`,
/// `org`, `desk`: a few values each) as a dictionary, which holds four bytes a ticket
/// rather than the text; it goes back to text a row group at a time (`model::cast_to`).
fn compact(a: &ArrayRef) -> Result<ArrayRef> {
    Ok(match a.data_type() {
        DataType::Utf8 => arrow::compute::cast(
            a,
            &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        )?,
        _ => a.clone(),
    })
}

/// The hash of a ticket id in a [`Listed`] (the same in all).
pub(super) fn hash(id: &str) -> u64 {
    foldhash::fast::FixedState::default().hash_one(id)
}

/// Ticket ids, each numbered by its first position, and found by hashing: the ids' text
/// once, in one array, and four bytes a ticket in the table (where a map of `&str` held
/// sixteen and more, beside a vector of them).
struct Listed {
    ids: StringArray,
    table: hashbrown::HashTable<u32>,
}

impl Listed {
    fn new(arrays: &[StringArray]) -> Result<Listed> {
        let parts: Vec<&dyn Array> = arrays.iter().map(|a| a as &dyn Array).collect();
        let ids = if parts.is_empty() {
            StringArray::new_null(0)
        } else {
            arrow::compute::concat(&parts)?.as_string::<i32>().clone()
        };
        let mut table = hashbrown::HashTable::with_capacity(ids.len());
        for n in 0..ids.len() {
            let id = ids.value(n);
            let equal = |&m: &u32| ids.value(m as usize) == id;
            let rehash = |&m: &u32| hash(ids.value(m as usize));
            if let hashbrown::hash_table::Entry::Vacant(v) = table.entry(hash(id), equal, rehash) {
                v.insert(n as u32);
            }
        }
        Ok(Listed { ids, table })
    }

    /// The number of `id`: the position where it was first given.
    fn number(&self, id: &str) -> Option<u32> {
        self.number_hashed(hash(id), id)
    }

    /// [`Listed::number`] of an id already hashed (by [`hash`]).
    fn number_hashed(&self, hash: u64, id: &str) -> Option<u32> {
        self.table
            .find(hash, |&m| self.ids.value(m as usize) == id)
            .copied()
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// A string that may be null.
fn opt(a: &StringArray, r: usize) -> Option<&str> {
    (!a.is_null(r)).then(|| a.value(r))
}

/// What a status event says, as flags: its new status is `resolved`; it goes from
/// resolved or closed to a status that is not finished (a reopening); its new status is
/// not finished (an open interval begins); its new status is `pending`.
const TO_RESOLVED: u8 = 1;
const REOPENS: u8 = 2;
const OPENS: u8 = 4;
const TO_PENDING: u8 = 8;

/// What is known of a ticket besides its status history: it has an event, a transfer,
/// and a row in `tickets` (the first of its key).
const EVENTED: u8 = 1;
const TRANSFERRED: u8 = 2;
const LISTED: u8 = 4;

fn flags(from: Option<&str>, to: Option<&str>) -> u8 {
    let mut f = 0;
    if let Some(t) = to {
        let finished = FINISHED.contains(&t);
        if t == "resolved" {
            f |= TO_RESOLVED;
        }
        if !finished {
            f |= OPENS;
            if matches!(from, Some("resolved" | "closed")) {
                f |= REOPENS;
            }
        }
        if t == "pending" {
            f |= TO_PENDING;
        }
    }
    f
}

/// One status event, compactly (16 bytes): its ticket's number (its rank in the stored
/// order, once known), when, what it says (the flags, in the top 4 bits of `said`) and
/// its position among the piece's status events as read (the other 28), which tells
/// where its event_id is kept.
#[derive(Debug, Clone, Copy)]
struct Event {
    ticket: u32,
    said: u32,
    at: i64,
}

const _: () = assert!(std::mem::size_of::<Event>() == 16);

/// How many status events a piece can hold: positions have 28 bits.
const MAX_STATUS_EVENTS: usize = 1 << 28;

impl Event {
    fn flags(&self) -> u8 {
        (self.said >> 28) as u8
    }
    fn position(&self) -> usize {
        (self.said & (MAX_STATUS_EVENTS as u32 - 1)) as usize
    }
}

/// A list column of `field` from per-row optional lists (None: a null list).
struct Lists {
    offsets: Vec<i32>,
    valid: Vec<bool>,
}

impl Lists {
    fn new() -> Lists {
        Lists {
            offsets: vec![0],
            valid: Vec::new(),
        }
    }

    /// Ends a row whose values were pushed since the last one; an empty row is null.
    fn end_row(&mut self, len: usize) {
        let last = *self.offsets.last().unwrap();
        self.valid.push(len as i32 > last);
        self.offsets.push(len as i32);
    }

    /// A list column of `field` over `values`, with these rows (the same rows serve
    /// every list of one kind: from, to, event ids).
    fn finish(&self, field: &FieldRef, values: ArrayRef) -> Result<ArrayRef> {
        let DataType::List(item) = field.data_type() else {
            bail!("{} is not a list", field.name());
        };
        Ok(Arc::new(ListArray::try_new(
            item.clone(),
            OffsetBuffer::new(self.offsets.clone().into()),
            values,
            Some(NullBuffer::from(self.valid.clone())),
        )?))
    }
}

/// The most bytes of a source's `tickets` objects whose rows are computed at once
/// ([`Pieces`]): about 370,000 tickets (the largest source at a million tickets is one
/// piece), with their events. A larger source is computed a piece at a time: each piece
/// decodes only the rows of `events` of its tickets (the pages without one are not
/// decompressed). The memory taken then grows with the source only by what tells each
/// event's piece (the ticket ids, about 15 bytes a ticket, while planning; 8 bytes a run
/// of events of one piece), for one more read of the events' `ticket_id` column and the
/// pages shared by two pieces decoded twice.
/// At 10M tickets, `glpi-lyon` (124 MiB of `tickets`, 2.7M tickets) alone took 6.2–6.4 s
/// and 1.04–1.10 GiB whole; 6.7–6.9 s and 378–394 MiB in pieces of 16 MiB (267–284 MiB
/// of 8, for 8.1–8.3 s).
pub const PIECE_BYTES: u64 = 16 << 20;

/// How a source's rows are computed: the ranges of its `tickets` objects (in path order,
/// so by month of creation) computed at once, and when there are several, the rows of
/// each `events` object that each piece reads: those of its tickets, and in the last
/// piece those of the tickets only events name.
pub struct Pieces {
    ranges: Vec<Range<usize>>,
    /// The rows each piece reads, by piece, then by `events` object (8 bytes a run of
    /// rows: a piece's [`RowSelection`]s, 16 bytes a run read or skipped, are made when
    /// it is computed), and the rows of each `events` object.
    events: Option<(Vec<Runs>, Vec<u32>)>,
}

/// The runs of rows a piece reads, by `events` object.
type Runs = Vec<Vec<Range<u32>>>;

impl Pieces {
    /// The pieces of a source's inputs (its `events` and `tickets` objects), each with at
    /// most `piece_bytes` of `tickets` objects (or one object). When there are several,
    /// the ids of the source's tickets are read (about 20 bytes a ticket in their tables),
    /// then the `ticket_id` of its events, to know which piece reads each event.
    pub async fn plan(lake: &Lake, objects: &[ObjectMeta], piece_bytes: u64) -> Result<Pieces> {
        let tickets = of_table(objects, Table::Tickets);
        let mut ranges = Vec::new();
        let (mut start, mut bytes) = (0, 0);
        for (i, meta) in tickets.iter().enumerate() {
            if i > start && bytes + meta.size > piece_bytes {
                ranges.push(start..i);
                (start, bytes) = (i, 0);
            }
            bytes += meta.size;
        }
        ranges.push(start..tickets.len());
        let whole = Pieces {
            ranges: std::iter::once(0..tickets.len()).collect(),
            events: None,
        };
        if ranges.len() == 1 {
            return Ok(whole);
        }
        let started = std::time::Instant::now();
        // the ids of each object, each in its own table: the events of a month are mostly
        // those of tickets of the same and the previous months, whose tables are small
        // enough to stay in the processor's caches (one table of 8M tickets took 190 ns a
        // lookup, most of the planning's time)
        let mut ids: Vec<Vec<StringArray>> = vec![Vec::new(); tickets.len()];
        let mut hashes: Vec<u64> = Vec::new();
        each_batch(lake, &tickets, &["ticket_id"], |part, b| {
            let batch_ids = column(&b, "ticket_id")?.as_string::<i32>().clone();
            hashes.extend(batch_ids.iter().map(|id| hash(id.unwrap_or(""))));
            ids[part as usize].push(batch_ids);
            Ok(())
        })
        .await?;
        // a key in two objects, against the write contract: its row is that of the first,
        // which only the whole source at once tells. Two equal hashes are taken for one
        // (a false alarm, about once in 10^12 sources of 8M tickets, only costs the pieces).
        // Checked before the tables are built, and each object's ids given back once its
        // table holds them: all the ids read, their copy in the tables and the hashes
        // were held at once
        hashes.sort_unstable();
        let repeated = hashes.windows(2).any(|w| w[0] == w[1]);
        drop(hashes);
        if repeated {
            return Ok(whole);
        }
        let listed = ids
            .iter_mut()
            .map(|arrays| Listed::new(&std::mem::take(arrays)))
            .collect::<Result<Vec<_>>>()?;
        drop(ids);
        let piece_of_object: Vec<usize> = (0..tickets.len())
            .map(|i| ranges.partition_point(|r| r.end <= i))
            .collect();
        let last = ranges.len() - 1;
        // the rows of each object each piece reads, as ranges
        let events = of_table(objects, Table::Events);
        // for each events object, the tickets objects in the order they are looked in:
        // its month's, then the months before it from the nearest, then those after
        let month = |m: &ObjectMeta| {
            m.location.parts().find_map(|p| {
                let (year, month) = p.as_ref().strip_prefix("month=")?.split_once('-')?;
                Some(year.parse::<i64>().ok()? * 12 + month.parse::<i64>().ok()?)
            })
        };
        let ticket_months: Vec<Option<i64>> = tickets.iter().map(|m| month(m)).collect();
        let order: Vec<Vec<usize>> = events
            .iter()
            .map(|e| {
                let at = month(e);
                let mut order: Vec<usize> = (0..tickets.len()).collect();
                order.sort_by_key(|&t| match (ticket_months[t], at) {
                    (Some(t), Some(e)) if t <= e => (0, e - t),
                    (Some(t), Some(e)) => (1, t - e),
                    _ => (2, 0),
                });
                order
            })
            .collect();
        let mut read: Vec<Runs> = vec![vec![Vec::new(); events.len()]; ranges.len()];
        let mut total = vec![0u32; events.len()];
        each_batch(lake, &events, &["ticket_id"], |part, b| {
            let part = part as usize;
            let ids = column(&b, "ticket_id")?.as_string::<i32>();
            for r in 0..b.num_rows() {
                let id = ids.value(r);
                let h = hash(id);
                let piece = order[part]
                    .iter()
                    .find(|&&t| listed[t].number_hashed(h, id).is_some())
                    // only events name it: the last piece gives it its row, after the others
                    .map_or(last, |&t| piece_of_object[t]);
                let row = total[part] + r as u32;
                let rows = &mut read[piece][part];
                match rows.last_mut() {
                    Some(range) if range.end == row => range.end += 1,
                    _ => rows.push(row..row + 1),
                }
            }
            total[part] += b.num_rows() as u32;
            Ok(())
        })
        .await?;
        let runs: usize = read.iter().flatten().map(Vec::len).sum();
        tracing::debug!(pieces = ranges.len(), runs, elapsed = ?started.elapsed(), "ticket_history: pieces planned");
        Ok(Pieces {
            ranges,
            events: Some((read, total)),
        })
    }

    /// The rows of each `events` object piece `piece` reads (all when `None`).
    fn selection(&self, piece: usize) -> Option<Vec<RowSelection>> {
        let (read, total) = self.events.as_ref()?;
        Some(
            read[piece]
                .iter()
                .zip(total)
                .map(|(rows, &total)| {
                    let rows = rows.iter().map(|r| r.start as usize..r.end as usize);
                    RowSelection::from_consecutive_ranges(rows, total as usize)
                })
                .collect(),
        )
    }

    /// How many pieces: one at least (if empty).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.ranges.len()
    }
}

/// The `ticket_history` rows of `source`, with `schema` (the view's, but for text columns
/// held as dictionaries: `model::cast_to` gives each batch the view's schema), from the
/// source's `events` and `tickets` objects, one batch per row group to store: those of
/// piece `piece` of `pieces` (the pieces' rows one after the other are the source's).
///
/// The rows go by the `tickets` partition of their ticket (its month of creation; a
/// ticket only events name goes last), and a row group never spans two partitions, so a
/// KPI of one period that filters on `created_at` reads the row groups of that month
/// only. Within a partition the rows are in this order: the resolved tickets by
/// `resolved_at`, then the others by `settled_at`, those without (possibly open) last;
/// ties by `created_at`, then `ticket_id`. The page index then skips the pages of the
/// tickets resolved, or settled, before a period: a filter on `resolved_at`
/// (`resolution_time`, `service_level`) or on `settled_at` (`backlog`,
/// `breaches_in_flight`) reads the pages of the tickets it wants and the few beside
/// them, rather than every row group of the months before the period.
pub async fn compute(
    lake: &Lake,
    source: &str,
    objects: &[ObjectMeta],
    pieces: &Pieces,
    piece: usize,
    schema: SchemaRef,
) -> Result<Vec<RecordBatch>> {
    // what the previous piece held goes back first (freed, it stays with the allocator)
    super::write::release_free_memory();
    let all_tickets = of_table(objects, Table::Tickets);
    let mut tickets = Tickets::read(lake, &all_tickets[pieces.ranges[piece].clone()]).await?;
    let copied_batches = std::mem::take(&mut tickets.copied);
    let times = std::mem::take(&mut tickets.times);
    // the tickets by number: those of `tickets` first (the first of a repeated key; the
    // key is unique in `tickets` by the write contract), then those only events name
    let known = Listed::new(&std::mem::take(&mut tickets.ids))?;
    let mut has: Vec<u8> = vec![0; known.len()];
    for (n, has) in has.iter_mut().enumerate() {
        if known.number(known.ids.value(n)) == Some(n as u32) {
            *has = LISTED;
        }
    }
    let mut unknown: foldhash::HashMap<String, u32> = foldhash::HashMap::default();
    // every status event, compactly: of its batch only the event_ids of its status
    // events are kept (for ties and pending periods), the other columns go as read; of
    // the other events, only that their ticket has one, and a transfer
    let mut event_ids: Vec<StringArray> = Vec::new();
    // the position of the first status event of each batch of `event_ids`
    let mut firsts: Vec<usize> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    // each ticket's first event, by number (i64::MAX: none yet)
    let mut first_event: Vec<i64> = vec![i64::MAX; known.len()];
    // the events of the piece's tickets (and in the last piece, of those only events
    // name): a ticket not among the piece's `tickets` is one only events name
    let selected = pieces.selection(piece);
    let events_objects = of_table(objects, Table::Events);
    each_selected(
        lake,
        &events_objects,
        selected.as_deref(),
        &COLUMNS,
        |_, b| {
            let kind = column(&b, "kind")?.as_string::<i32>();
            let is = |k: &str| -> Result<arrow::array::BooleanArray> {
                let eq = arrow::compute::kernels::cmp::eq(kind, &StringArray::new_scalar(k))?;
                // a null kind is neither
                Ok(match eq.nulls() {
                    Some(_) => arrow::compute::prep_null_mask_filter(&eq),
                    None => eq,
                })
            };
            let (status, transfer) = (is("status")?, is("transfer")?);
            // sized exactly, batch by batch: doubled, the vector was up to half empty
            // (and is the largest of a piece); large blocks grow by remapping their pages
            let count = status.true_count();
            if events.len() + count > MAX_STATUS_EVENTS {
                bail!(
                    "ticket_history of {source}: more than {MAX_STATUS_EVENTS} status events in one piece"
                );
            }
            events.reserve_exact(count);
            firsts.push(events.len());
            let s = |n: &str| -> Result<&StringArray> { Ok(column(&b, n)?.as_string::<i32>()) };
            let (ticket, from, to, at) = (
                s("ticket_id")?,
                s("from_value")?,
                s("to_value")?,
                timestamps(&b, "at")?,
            );
            // a ticket's events often come one after another: its number is looked up once
            let mut last: Option<(&str, u32)> = None;
            for r in 0..b.num_rows() {
                let id = ticket.value(r);
                let n = match last {
                    Some((previous, n)) if previous == id => n,
                    _ => {
                        let n = match known.number(id) {
                            Some(n) => n,
                            None => {
                                let next = (known.len() + unknown.len()) as u32;
                                *unknown.entry(id.to_string()).or_insert(next)
                            }
                        };
                        last = Some((id, n));
                        n
                    }
                };
                if has.len() <= n as usize {
                    has.resize(n as usize + 1, 0);
                    first_event.resize(n as usize + 1, i64::MAX);
                }
                has[n as usize] |= EVENTED | if transfer.value(r) { TRANSFERRED } else { 0 };
                let first = &mut first_event[n as usize];
                *first = (*first).min(at.value(r));
                if status.value(r) {
                    let said = (flags(opt(from, r), opt(to, r)) as u32) << 28;
                    events.push(Event {
                        ticket: n,
                        said: said | events.len() as u32,
                        at: at.value(r),
                    });
                }
            }
            let ids = arrow::compute::filter(s("event_id")?, &status)?;
            event_ids.push(ids.as_string::<i32>().clone());
            Ok(())
        },
    )
    .await?;
    // the ids only events name, by number
    let mut unknown_ids = vec![String::new(); unknown.len()];
    for (id, n) in unknown {
        unknown_ids[n as usize - known.len()] = id;
    }
    // the tickets, ranked in the stored order (above; a ticket unknown to `tickets`
    // last, by ticket_id); the status events get their ticket's rank, and
    // one sort puts them in the view's order within each ticket: by at, then event_id
    let id_of = |n: u32| -> &str {
        match n as usize {
            n if n < known.len() => known.ids.value(n),
            n => &unknown_ids[n - known.len()],
        }
    };
    // (partition, resolved or not, resolved_at, settled or not, settled_at, created_at)
    let stored_order = |n: u32| {
        times
            .get(n as usize)
            .map_or((u32::MAX, true, 0, true, 0, 0), |t| {
                (
                    t.part,
                    t.resolved.is_none(),
                    t.resolved.unwrap_or(0),
                    t.settled.is_none(),
                    t.settled.unwrap_or(0),
                    t.created,
                )
            })
    };
    // the tickets of `tickets` (the first of a repeated key) and those only events name
    let mut by_rank: Vec<u32> = (0..has.len() as u32)
        .filter(|&n| has[n as usize] & (LISTED | EVENTED) != 0)
        .collect();
    by_rank.sort_unstable_by_key(|&n| (stored_order(n), id_of(n)));
    let mut rank = vec![0u32; known.len() + unknown_ids.len()];
    for (k, &n) in by_rank.iter().enumerate() {
        rank[n as usize] = k as u32;
    }
    for e in &mut events {
        e.ticket = rank[e.ticket as usize];
    }
    drop(rank);
    let ids: Vec<&str> = by_rank.iter().map(|&n| id_of(n)).collect();
    // the ticket's own times, by rank, as the columns they go into
    let own = |f: fn(&Times) -> Option<i64>| -> TimestampMicrosecondArray {
        by_rank
            .iter()
            .map(|&n| times.get(n as usize).and_then(f))
            .collect()
    };
    let (created_at, resolved_at, settled_at) = (
        own(|t| Some(t.created)),
        own(|t| t.resolved),
        own(|t| t.settled),
    );
    // where a row group must end: where the partition changes
    let part = |k: usize| times.get(by_rank[k] as usize).map_or(u32::MAX, |t| t.part);
    let mut ends: Vec<usize> = (1..by_rank.len())
        .filter(|&k| part(k) != part(k - 1))
        .collect();
    ends.push(by_rank.len());
    drop(times);
    let transferred: Vec<bool> = by_rank
        .iter()
        .map(|&n| has[n as usize] & TRANSFERRED != 0)
        .collect();
    drop(has);
    let first_event: TimestampMicrosecondArray = by_rank
        .iter()
        .map(|&n| Some(first_event[n as usize]).filter(|&at| at != i64::MAX))
        .collect();
    let numbers: UInt32Array = by_rank
        .iter()
        .map(|&n| ((n as usize) < known.len()).then_some(n))
        .collect();
    let copied = Tickets::copied(copied_batches, &numbers)?;
    drop(numbers);
    drop(by_rank);
    let event_id = |e: &Event| {
        let p = e.position();
        // the last batch that starts at or before it (a batch without any starts where
        // the next one does)
        let batch = firsts.partition_point(|&first| first <= p) - 1;
        event_ids[batch].value(p - firsts[batch])
    };
    events.sort_unstable_by(|x, y| {
        (x.ticket, x.at)
            .cmp(&(y.ticket, y.at))
            .then_with(|| event_id(x).cmp(event_id(y)))
    });

    // the values go straight into Arrow builders (no vectors of options copied after)
    let times = |n: usize| TimestampMicrosecondBuilder::with_capacity(n);
    let mut first_status = times(ids.len());
    let mut first_resolved = times(ids.len());
    let mut reopened = BooleanBuilder::with_capacity(ids.len());
    let opens = events.iter().filter(|e| e.flags() & OPENS != 0).count();
    let (mut open_from, mut open_to) = (times(opens), times(opens));
    let (mut pending_id, mut pending_from, mut pending_to) =
        (StringBuilder::new(), times(0), times(0));
    let (mut open_lists, mut pending_lists) = (Lists::new(), Lists::new());
    // each ticket's status events, in rank order (none: the status columns are null)
    let mut rest = &events[..];
    for k in 0..ids.len() as u32 {
        let len = rest
            .iter()
            .position(|e| e.ticket != k)
            .unwrap_or(rest.len());
        let (ticket, after) = rest.split_at(len);
        rest = after;
        if ticket.is_empty() {
            first_status.append_null();
            first_resolved.append_null();
            reopened.append_null();
            open_lists.end_row(open_from.len());
            pending_lists.end_row(pending_from.len());
            continue;
        }
        let mut resolved = None;
        let mut again = false;
        for (k, e) in ticket.iter().enumerate() {
            let next_at = ticket.get(k + 1).map(|e| e.at);
            if e.flags() & TO_RESOLVED != 0 && resolved.is_none() {
                resolved = Some(e.at);
            }
            again |= e.flags() & REOPENS != 0;
            if e.flags() & OPENS != 0 {
                open_from.append_value(e.at);
                open_to.append_option(next_at);
            }
            if e.flags() & TO_PENDING != 0 {
                pending_id.append_value(event_id(e));
                pending_from.append_value(e.at);
                pending_to.append_option(next_at);
            }
        }
        first_status.append_value(ticket[0].at);
        first_resolved.append_option(resolved);
        reopened.append_value(again);
        open_lists.end_row(open_from.len());
        pending_lists.end_row(pending_from.len());
    }
    drop(events);

    let field = |name: &str| -> Result<FieldRef> {
        Ok(Arc::new(
            schema
                .field_with_name(name)
                .with_context(|| format!("ticket_history has no column {name}"))?
                .clone(),
        ))
    };
    let ts = |name: &str, a: TimestampMicrosecondArray| -> Result<ArrayRef> {
        let f = field(name)?;
        Ok(Arc::new(a.with_data_type(match f.data_type() {
            DataType::List(item) => item.data_type().clone(),
            t => t.clone(),
        })))
    };
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            source,
            ids.len(),
        ))),
        Arc::new(StringArray::from_iter_values(ids.iter().copied())),
        ts("first_status_at", first_status.finish())?,
        ts("first_resolved_at", first_resolved.finish())?,
        Arc::new(reopened.finish()),
        open_lists.finish(&field("open_from")?, ts("open_from", open_from.finish())?)?,
        open_lists.finish(&field("open_to")?, ts("open_to", open_to.finish())?)?,
        pending_lists.finish(&field("pending_event_id")?, Arc::new(pending_id.finish()))?,
        pending_lists.finish(
            &field("pending_from")?,
            ts("pending_from", pending_from.finish())?,
        )?,
        pending_lists.finish(
            &field("pending_to")?,
            ts("pending_to", pending_to.finish())?,
        )?,
        ts("created_at", created_at)?,
        ts("resolved_at", resolved_at)?,
        ts("settled_at", settled_at)?,
        Arc::new(BooleanArray::from(transferred)),
        ts("first_event_at", first_event)?,
    ];
    columns.extend(copied);
    // the view's schema, but for the text columns kept as dictionaries (see [`compact`])
    let held = Arc::new(arrow::datatypes::Schema::new(
        schema
            .fields()
            .iter()
            .zip(&columns)
            .map(|(f, c)| match (f.data_type(), c.data_type()) {
                (DataType::Utf8, DataType::Dictionary(..)) => {
                    Arc::new(f.as_ref().clone().with_data_type(c.data_type().clone()))
                }
                _ => f.clone(),
            })
            .collect::<Vec<_>>(),
    ));
    let all =
        RecordBatch::try_new(held, columns).context("ticket_history: the columns of the view")?;
    // in slices the size of a row group, at most: one or more per partition
    let mut slices = Vec::new();
    let mut from = 0;
    for end in ends {
        while from < end {
            let len = super::write::ROW_GROUP_ROWS.min(end - from);
            slices.push(all.slice(from, len));
            from += len;
        }
    }
    Ok(slices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_status_event_says() {
        assert_eq!(flags(None, Some("new")), OPENS);
        assert_eq!(flags(Some("in_progress"), Some("resolved")), TO_RESOLVED);
        assert_eq!(
            flags(Some("resolved"), Some("in_progress")),
            OPENS | REOPENS
        );
        assert_eq!(
            flags(Some("closed"), Some("pending")),
            OPENS | REOPENS | TO_PENDING
        );
        assert_eq!(flags(Some("resolved"), Some("closed")), 0);
        // from canceled is not a reopening; to canceled is not open
        assert_eq!(flags(Some("canceled"), Some("assigned")), OPENS);
        assert_eq!(flags(Some("in_progress"), Some("canceled")), 0);
        // an unknown new status is open; no new status says nothing
        assert_eq!(flags(Some("resolved"), Some("waiting")), OPENS | REOPENS);
        assert_eq!(flags(Some("resolved"), None), 0);
    }
}
