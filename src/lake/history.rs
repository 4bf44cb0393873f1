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
use arrow::datatypes::{
    DataType, FieldRef, Int32Type, Int64Type, SchemaRef, TimestampMicrosecondType, UInt8Type,
    UInt32Type,
};
use arrow::ipc::writer::FileWriter;
use bytes::Bytes;
use object_store::{ObjectMeta, ObjectStoreExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::PageIndexPolicy;

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
    each_batch_as(lake, objects, columns, None, each).await
}

/// [`each_batch`] of `events`, with `kind`, `from_value` and `to_value` as dictionaries
/// (as they are stored: a few values each), which [`saids`] reads.
async fn each_events_batch(
    lake: &Lake,
    objects: &[&ObjectMeta],
    each: impl FnMut(u32, RecordBatch) -> Result<()>,
) -> Result<()> {
    let fields: Vec<_> = Table::Events
        .file_schema()
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "kind" | "from_value" | "to_value" => Arc::new(f.as_ref().clone().with_data_type(
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            )),
            _ => f.clone(),
        })
        .collect();
    let schema = Arc::new(arrow::datatypes::Schema::new(fields));
    each_batch_as(lake, objects, &COLUMNS, Some(schema), each).await
}

/// [`each_batch`], the columns given the types of `schema` (a schema of the whole object).
async fn each_batch_as(
    lake: &Lake,
    objects: &[&ObjectMeta],
    columns: &[&str],
    schema: Option<SchemaRef>,
    mut each: impl FnMut(u32, RecordBatch) -> Result<()>,
) -> Result<()> {
    for (part, meta) in (0u32..).zip(objects) {
        let context = || format!("reading {}", meta.location);
        let bytes: Bytes = lake.store.get(&meta.location).await?.bytes().await?;
        let mut options = ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Skip);
        if let Some(schema) = &schema {
            options = options.with_schema(schema.clone());
        }
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
    }
    Ok(())
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
/// piece), with their events. A larger source is computed a piece at a time: the
/// planning reads its events once and writes each to its piece's file, numbered
/// ([`PieceEvents`], about 30 bytes an event, in the system's temporary directory), and
/// each piece reads its own file. The memory taken then grows with the source only by
/// what tells each event's piece (the ticket ids, about 15 bytes a ticket, while
/// planning), for one more read of the events.
/// At 10M tickets, `glpi-lyon` (124 MiB of `tickets`, 2.7M tickets) alone took 6.2–6.4 s
/// and 1.04–1.10 GiB whole; 6.7–6.9 s and 378–394 MiB in pieces of 16 MiB (267–284 MiB
/// of 8, for 8.1–8.3 s), when each piece read its rows of the `events` objects.
pub const PIECE_BYTES: u64 = 16 << 20;

/// How a source's rows are computed: the ranges of its `tickets` objects (in path order,
/// so by month of creation) computed at once, and when there are several, each piece's
/// events, sorted out by the planning: those of its tickets, and in the last piece those
/// of the tickets only events name.
pub struct Pieces {
    ranges: Vec<Range<usize>>,
    /// With several pieces, the directory of their events: one file a piece
    /// ([`PieceEvents`]), removed with the pieces.
    events: Option<tempfile::TempDir>,
}

/// The events of one piece as the planning writes them (an Arrow IPC file), each once,
/// already numbered: what a piece needs of an event, without decoding `events` again.
/// Each piece decoded every `events` object holding one of its events (most of them, for
/// a few of their rows) and looked each ticket up again: 0.33 s of the 0.65 s of a piece
/// of `glpi-lyon` at 10M tickets, against 0.21 s for the same number of events read
/// whole.
struct PieceEvents;

impl PieceEvents {
    /// The ticket's number in its piece ([`NOT_LISTED`]: only events name it).
    const TICKET: &str = "ticket";
    /// The ticket id, for a ticket only events name (else null).
    const UNLISTED_ID: &str = "unlisted_id";
    const AT: &str = "at";
    /// [`STATUS`], [`TRANSFER`] and, for a status event, its [`flags`].
    const SAID: &str = "said";
    /// The event id (a piece keeps those of its status events).
    const EVENT_ID: &str = "event_id";

    fn schema() -> SchemaRef {
        use arrow::datatypes::{Field, Schema};
        Arc::new(Schema::new(vec![
            Field::new(Self::TICKET, DataType::UInt32, false),
            Field::new(Self::UNLISTED_ID, DataType::Utf8, true),
            Field::new(Self::AT, DataType::Int64, false),
            Field::new(Self::SAID, DataType::UInt8, false),
            Field::new(Self::EVENT_ID, DataType::Utf8, true),
        ]))
    }

    fn path(dir: &tempfile::TempDir, piece: usize) -> std::path::PathBuf {
        dir.path().join(format!("piece-{piece}.arrow"))
    }
}

/// The number of a ticket only events name, in a piece's events.
const NOT_LISTED: u32 = u32::MAX;
/// An event's kind, with the flags of a status event ([`flags`], the low 4 bits).
const STATUS: u8 = 16;
const TRANSFER: u8 = 32;

impl Pieces {
    /// The pieces of a source's inputs (its `events` and `tickets` objects), each with at
    /// most `piece_bytes` of `tickets` objects (or one object). When there are several,
    /// the ids of the source's tickets are read (about 20 bytes a ticket in their tables),
    /// then its events, each written to the file of its ticket's piece.
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
        // each event goes to the piece of its ticket
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
        // a ticket's number in its piece: its position among the ids the piece reads
        let mut first_number = vec![0u32; tickets.len()];
        for range in &ranges {
            let mut n = 0u32;
            for t in range.clone() {
                first_number[t] = n;
                n += listed[t].len() as u32;
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("ticketlake-history-")
            .tempdir()
            .context("making a directory for the history's pieces")?;
        let schema = PieceEvents::schema();
        let mut writers = (0..ranges.len())
            .map(|piece| {
                let path = PieceEvents::path(&dir, piece);
                let file = std::fs::File::create(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                Ok(FileWriter::try_new(std::io::BufWriter::new(file), &schema)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut rows = vec![0u64; ranges.len()];
        each_events_batch(lake, &events, |part, b| {
            let ids = column(&b, "ticket_id")?.as_string::<i32>();
            let at = timestamps(&b, "at")?;
            // each row's piece and number
            let (mut piece_of, mut numbers) = (
                Vec::with_capacity(b.num_rows()),
                Vec::with_capacity(b.num_rows()),
            );
            for r in 0..b.num_rows() {
                let id = ids.value(r);
                let h = hash(id);
                let found = order[part as usize].iter().find_map(|&t| {
                    listed[t]
                        .number_hashed(h, id)
                        .map(|n| (piece_of_object[t], first_number[t] + n))
                });
                // only events name it: the last piece gives it its row, after the others
                let (piece, n) = found.unwrap_or((last, NOT_LISTED));
                piece_of.push(piece as u32);
                numbers.push(n);
            }
            let unlisted: StringArray = (0..b.num_rows())
                .map(|r| (numbers[r] == NOT_LISTED).then(|| ids.value(r)))
                .collect();
            let sorted = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(UInt32Array::from(numbers)),
                    Arc::new(unlisted),
                    Arc::new(arrow::array::Int64Array::new(at.values().clone(), None)),
                    Arc::new(arrow::array::UInt8Array::from(saids(&b)?)),
                    column(&b, "event_id")?.clone(),
                ],
            )?;
            // a batch of one month holds the events of one or two pieces, mostly
            let mut present = vec![false; writers.len()];
            for &p in &piece_of {
                present[p as usize] = true;
            }
            let pieces: Vec<u32> = (0..writers.len() as u32)
                .filter(|&p| present[p as usize])
                .collect();
            if let [piece] = pieces[..] {
                rows[piece as usize] += sorted.num_rows() as u64;
                return Ok(writers[piece as usize].write(&sorted)?);
            }
            for piece in pieces {
                let mine: BooleanArray = piece_of.iter().map(|&p| Some(p == piece)).collect();
                let part = arrow::compute::filter_record_batch(&sorted, &mine)?;
                rows[piece as usize] += part.num_rows() as u64;
                writers[piece as usize].write(&part)?;
            }
            Ok(())
        })
        .await?;
        for mut w in writers {
            w.finish()?;
        }
        tracing::debug!(pieces = ranges.len(), ?rows, elapsed = ?started.elapsed(), "ticket_history: pieces planned");
        Ok(Pieces {
            ranges,
            events: Some(dir),
        })
    }

    /// How many pieces: one at least (if empty).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.ranges.len()
    }
}

/// What each event of a batch read by [`each_events_batch`] says besides its ticket and
/// instant: [`STATUS`] with its [`flags`], or [`TRANSFER`]; worked out once for each
/// value of the batch's dictionaries.
fn saids(b: &RecordBatch) -> Result<Vec<u8>> {
    let dictionary = |name: &str| -> Result<_> {
        column(b, name)?
            .as_dictionary_opt::<Int32Type>()
            .with_context(|| format!("{name} is not read as a dictionary"))
    };
    let (kind, from, to) = (
        dictionary("kind")?,
        dictionary("from_value")?,
        dictionary("to_value")?,
    );
    let values = |d: &arrow::array::DictionaryArray<Int32Type>| -> Result<StringArray> {
        Ok(d.values()
            .as_string_opt::<i32>()
            .context("a dictionary of text")?
            .clone())
    };
    let (kinds, froms, tos) = (values(kind)?, values(from)?, values(to)?);
    // what each kind says (a status: STATUS); for each new status, its flags from an
    // unfinished status; for each old status, whether a new unfinished one reopens it
    let kind_says: Vec<u8> = (0..kinds.len())
        .map(|v| match opt(&kinds, v) {
            Some("status") => STATUS,
            Some("transfer") => TRANSFER,
            _ => 0,
        })
        .collect();
    let to_says: Vec<u8> = (0..tos.len()).map(|v| flags(None, opt(&tos, v))).collect();
    let reopens: Vec<bool> = (0..froms.len())
        .map(|v| flags(opt(&froms, v), Some("new")) & REOPENS != 0)
        .collect();
    let key = |d: &arrow::array::DictionaryArray<Int32Type>, r: usize| {
        (!d.is_null(r)).then(|| d.keys().value(r) as usize)
    };
    Ok((0..b.num_rows())
        .map(|r| {
            let says = key(kind, r).map_or(0, |k| kind_says[k]);
            if says != STATUS {
                return says;
            }
            let to = key(to, r).map_or(0, |k| to_says[k]);
            let reopened = to & OPENS != 0 && key(from, r).is_some_and(|k| reopens[k]);
            STATUS | to | if reopened { REOPENS } else { 0 }
        })
        .collect())
}

/// What a piece keeps of its events: every status event, compactly (of its batch only
/// the event_ids of its status events are kept, for ties and pending periods); of the
/// other events, only that their ticket has one, and a transfer.
struct Gathered {
    /// how many tickets `tickets` lists: those only events name are numbered after
    known: usize,
    unknown: foldhash::HashMap<String, u32>,
    /// [`LISTED`], [`EVENTED`], [`TRANSFERRED`], by number
    has: Vec<u8>,
    /// each ticket's first event, by number (i64::MAX: none yet)
    first_event: Vec<i64>,
    events: Vec<Event>,
    event_ids: Vec<StringArray>,
    /// the position of the first status event of each batch of `event_ids`
    firsts: Vec<usize>,
}

impl Gathered {
    /// The number of a ticket only events name.
    fn unlisted(&mut self, id: &str) -> u32 {
        let next = (self.known + self.unknown.len()) as u32;
        *self.unknown.entry(id.to_string()).or_insert(next)
    }

    /// Starts a batch of events, `count` of them status events.
    fn start(&mut self, source: &str, count: usize) -> Result<()> {
        if self.events.len() + count > MAX_STATUS_EVENTS {
            bail!(
                "ticket_history of {source}: more than {MAX_STATUS_EVENTS} status events in one piece"
            );
        }
        // sized exactly, batch by batch: doubled, the vector was up to half empty (and is
        // the largest of a piece); large blocks grow by remapping their pages
        self.events.reserve_exact(count);
        self.firsts.push(self.events.len());
        Ok(())
    }

    /// An event of ticket number `n` at `at` that says `said` ([`said`]).
    fn add(&mut self, n: u32, at: i64, said: u8) {
        let i = n as usize;
        if self.has.len() <= i {
            self.has.resize(i + 1, 0);
            self.first_event.resize(i + 1, i64::MAX);
        }
        self.has[i] |= EVENTED | if said & TRANSFER != 0 { TRANSFERRED } else { 0 };
        self.first_event[i] = self.first_event[i].min(at);
        if said & STATUS != 0 {
            let flags = u32::from(said & 0xf) << 28;
            self.events.push(Event {
                ticket: n,
                said: flags | self.events.len() as u32,
                at,
            });
        }
    }

    /// Ends a batch: the ids of its events, of which those of its `status` events are kept.
    fn end(&mut self, event_ids: &ArrayRef, status: &BooleanArray) -> Result<()> {
        let ids = arrow::compute::filter(event_ids, status)?;
        self.event_ids.push(ids.as_string::<i32>().clone());
        Ok(())
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
    let mut gathered = Gathered {
        known: known.len(),
        unknown: foldhash::HashMap::default(),
        has,
        first_event: vec![i64::MAX; known.len()],
        events: Vec::new(),
        event_ids: Vec::new(),
        firsts: Vec::new(),
    };
    // the events of the piece's tickets (and in the last piece, of those only events
    // name): a ticket not among the piece's `tickets` is one only events name
    match &pieces.events {
        // sorted out and numbered by the planning
        Some(dir) => {
            let path = PieceEvents::path(dir, piece);
            let context = || format!("reading {}", path.display());
            let file = std::fs::File::open(&path).with_context(context)?;
            let reader =
                arrow::ipc::reader::FileReader::try_new(std::io::BufReader::new(file), None)
                    .with_context(context)?;
            for b in reader {
                let b = b.with_context(context)?;
                let ticket = column(&b, PieceEvents::TICKET)?.as_primitive::<UInt32Type>();
                let unlisted = column(&b, PieceEvents::UNLISTED_ID)?.as_string::<i32>();
                let at = column(&b, PieceEvents::AT)?.as_primitive::<Int64Type>();
                let said = column(&b, PieceEvents::SAID)?.as_primitive::<UInt8Type>();
                let status: BooleanArray = said
                    .values()
                    .iter()
                    .map(|&s| Some(s & STATUS != 0))
                    .collect();
                gathered.start(source, status.true_count())?;
                for r in 0..b.num_rows() {
                    let n = match ticket.value(r) {
                        NOT_LISTED => gathered.unlisted(unlisted.value(r)),
                        n => n,
                    };
                    gathered.add(n, at.value(r), said.value(r));
                }
                gathered.end(column(&b, PieceEvents::EVENT_ID)?, &status)?;
            }
        }
        // the whole source
        None => {
            let events_objects = of_table(objects, Table::Events);
            each_events_batch(lake, &events_objects, |_, b| {
                let says = saids(&b)?;
                let status: BooleanArray = says.iter().map(|&s| Some(s & STATUS != 0)).collect();
                gathered.start(source, status.true_count())?;
                let ticket = column(&b, "ticket_id")?.as_string::<i32>();
                let at = timestamps(&b, "at")?;
                // a ticket's events often come one after another: its number is looked up once
                let mut last: Option<(&str, u32)> = None;
                for (r, &says) in says.iter().enumerate() {
                    let id = ticket.value(r);
                    let n = match last {
                        Some((previous, n)) if previous == id => n,
                        _ => {
                            let n = match known.number(id) {
                                Some(n) => n,
                                None => gathered.unlisted(id),
                            };
                            last = Some((id, n));
                            n
                        }
                    };
                    gathered.add(n, at.value(r), says);
                }
                gathered.end(column(&b, "event_id")?, &status)
            })
            .await?;
        }
    }
    let Gathered {
        unknown,
        has,
        first_event,
        mut events,
        event_ids,
        firsts,
        ..
    } = gathered;
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
    fn what_each_event_of_a_batch_says_from_its_dictionaries() {
        use arrow::array::DictionaryArray;
        let dict = |v: &[Option<&str>]| -> ArrayRef {
            Arc::new(v.iter().copied().collect::<DictionaryArray<Int32Type>>())
        };
        // (kind, from, to) and what it says, worked out from the flags' definitions
        type Row = (
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
            u8,
        );
        let rows: [Row; 9] = [
            (Some("status"), None, Some("new"), STATUS | OPENS),
            (
                Some("status"),
                Some("resolved"),
                Some("assigned"),
                STATUS | OPENS | REOPENS,
            ),
            (
                Some("status"),
                Some("assigned"),
                Some("resolved"),
                STATUS | TO_RESOLVED,
            ),
            (
                Some("status"),
                Some("closed"),
                Some("pending"),
                STATUS | OPENS | REOPENS | TO_PENDING,
            ),
            (Some("status"), Some("resolved"), Some("closed"), STATUS),
            (Some("status"), Some("resolved"), None, STATUS),
            (
                Some("transfer"),
                Some("resolved"),
                Some("assigned"),
                TRANSFER,
            ),
            (Some("assign"), Some("resolved"), Some("pending"), 0),
            (None, Some("resolved"), Some("assigned"), 0),
        ];
        let batch = RecordBatch::try_from_iter([
            ("kind", dict(&rows.map(|r| r.0))),
            ("from_value", dict(&rows.map(|r| r.1))),
            ("to_value", dict(&rows.map(|r| r.2))),
        ])
        .unwrap();
        assert_eq!(saids(&batch).unwrap(), rows.map(|r| r.3));
        // text columns are refused, not misread
        let text = RecordBatch::try_from_iter([
            (
                "kind",
                Arc::new(StringArray::from(vec!["status"])) as ArrayRef,
            ),
            (
                "from_value",
                Arc::new(StringArray::from(vec!["new"])) as ArrayRef,
            ),
            (
                "to_value",
                Arc::new(StringArray::from(vec!["assigned"])) as ArrayRef,
            ),
        ])
        .unwrap();
        assert!(saids(&text).is_err());
    }

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
