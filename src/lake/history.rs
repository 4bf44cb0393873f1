//! The rows of the view `ticket_history` (`queries/views/ticket_history.sql`) for one
//! source, computed in one pass over its status events instead of by DataFusion: the
//! view orders every ticket's events twice over (a window, then five ordered
//! `array_agg`), which took 30 s of the 38 s of generating a million tickets; numbering
//! the tickets in a hash table and sorting the events once by (ticket, at, event_id)
//! takes about a second. The SQL stays the definition: it is what a reader computes when
//! the stored rows do not match the events, and the tests check that both give the same
//! rows. The ticket's own times (`created_at`, `resolved_at`, `settled_at`) come from the
//! source's `tickets`, and the rows are in `created_at` order.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, ListArray, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, FieldRef, SchemaRef, TimestampMicrosecondType};
use bytes::Bytes;
use object_store::{ObjectMeta, ObjectStoreExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::Lake;
use super::derived::of_table;
use crate::model::Table;

/// Statuses after which a ticket is no longer open.
const FINISHED: [&str; 3] = ["resolved", "closed", "canceled"];

/// The columns of `tickets` read.
const TICKET_COLUMNS: [&str; 6] = [
    "ticket_id",
    "status",
    "created_at",
    "resolved_at",
    "closed_at",
    "updated_at",
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

/// Reads `columns` of Parquet objects, each batch through `keep` (None: kept whole).
async fn read(
    lake: &Lake,
    objects: &[&ObjectMeta],
    columns: &[&str],
    keep: impl Fn(&RecordBatch) -> Result<Option<BooleanArray>>,
) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for meta in objects {
        let bytes: Bytes = lake.store.get(&meta.location).await?.bytes().await?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .with_context(|| format!("reading {}", meta.location))?;
        let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
        let reader = builder
            .with_projection(mask)
            .with_batch_size(64 * 1024)
            .build()?;
        for batch in reader {
            let batch = batch.with_context(|| format!("reading {}", meta.location))?;
            match keep(&batch).with_context(|| format!("reading {}", meta.location))? {
                Some(keep) => out.push(arrow::compute::filter_record_batch(&batch, &keep)?),
                None => out.push(batch),
            }
        }
    }
    Ok(out)
}

/// Reads the status events of a source's `events` objects (the columns needed).
async fn status_events(lake: &Lake, objects: &[&ObjectMeta]) -> Result<Vec<RecordBatch>> {
    read(lake, objects, &COLUMNS, |batch| {
        let kind = batch
            .column_by_name("kind")
            .context("events without kind")?
            .as_string::<i32>();
        Ok(Some(arrow::compute::kernels::cmp::eq(
            kind,
            &StringArray::new_scalar("status"),
        )?))
    })
    .await
}

/// A ticket's own times, as the view's last three columns give them.
#[derive(Debug, Clone, Copy)]
struct Times {
    created: i64,
    resolved: Option<i64>,
    settled: Option<i64>,
}

/// The times of each ticket of a source's `tickets` objects, by ticket_id.
fn ticket_times(batches: &[RecordBatch]) -> Result<foldhash::HashMap<&str, Times>> {
    let mut out = foldhash::HashMap::default();
    for b in batches {
        let column = |n: &str| {
            b.column_by_name(n)
                .with_context(|| format!("tickets without {n}"))
        };
        let ts = |n: &str| -> Result<&TimestampMicrosecondArray> {
            Ok(column(n)?.as_primitive::<TimestampMicrosecondType>())
        };
        let (id, status) = (
            column("ticket_id")?.as_string::<i32>(),
            column("status")?.as_string::<i32>(),
        );
        let (created, resolved, closed, updated) = (
            ts("created_at")?,
            ts("resolved_at")?,
            ts("closed_at")?,
            ts("updated_at")?,
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
            // the key is unique in `tickets` (the write contract): the first one stays
            out.entry(id.value(r)).or_insert(Times {
                created: created.value(r),
                resolved: resolved_at,
                settled,
            });
        }
    }
    Ok(out)
}

/// A string that may be null.
fn opt(a: &StringArray, r: usize) -> Option<&str> {
    (!a.is_null(r)).then(|| a.value(r))
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

/// The `ticket_history` rows of `source`, in (created_at, ticket_id) order, with `schema`
/// (the view's), from the source's `events` and `tickets` objects.
pub async fn compute(
    lake: &Lake,
    source: &str,
    objects: &[ObjectMeta],
    schema: SchemaRef,
) -> Result<Vec<RecordBatch>> {
    let batches = status_events(lake, &of_table(objects, Table::Events)).await?;
    let tickets = read(
        lake,
        &of_table(objects, Table::Tickets),
        &TICKET_COLUMNS,
        |_| Ok(None),
    )
    .await?;
    let times = ticket_times(&tickets)?;
    let cols: Vec<_> = batches
        .iter()
        .map(|b| {
            let s = |n: &str| b.column_by_name(n).expect("projected").as_string::<i32>();
            (
                s("ticket_id"),
                s("event_id"),
                b.column_by_name("at")
                    .expect("projected")
                    .as_primitive::<TimestampMicrosecondType>(),
                s("from_value"),
                s("to_value"),
            )
        })
        .collect();
    // every status event as (ticket, at, batch, row), the ticket as a number given in
    // order of first sight; then the tickets' numbers are replaced by their rank in the
    // stored order (created_at, a ticket unknown to `tickets` last, then ticket_id), and
    // one sort puts the events in the view's order within each ticket: by at, then
    // event_id (no allocation per ticket)
    let total: usize = cols.iter().map(|c| c.0.len()).sum();
    let mut number: foldhash::HashMap<&str, u32> = foldhash::HashMap::default();
    let mut ids: Vec<&str> = Vec::new();
    let mut order: Vec<(u32, i64, u32, u32)> = Vec::with_capacity(total);
    for (b, (ticket, _, at, ..)) in cols.iter().enumerate() {
        for r in 0..ticket.len() {
            let id = ticket.value(r);
            let n = *number.entry(id).or_insert_with(|| {
                ids.push(id);
                (ids.len() - 1) as u32
            });
            order.push((n, at.value(r), b as u32, r as u32));
        }
    }
    drop(number);
    let created: Vec<i64> = ids
        .iter()
        .map(|id| times.get(id).map_or(i64::MAX, |t| t.created))
        .collect();
    let mut by_id: Vec<u32> = (0..ids.len() as u32).collect();
    by_id.sort_unstable_by_key(|&n| (created[n as usize], ids[n as usize]));
    drop(created);
    let mut rank = vec![0u32; ids.len()];
    for (k, &n) in by_id.iter().enumerate() {
        rank[n as usize] = k as u32;
    }
    for e in &mut order {
        e.0 = rank[e.0 as usize];
    }
    let ids: Vec<&str> = by_id.iter().map(|&n| ids[n as usize]).collect();
    drop(rank);
    let own: Vec<Option<Times>> = ids.iter().map(|id| times.get(id).copied()).collect();
    drop(times);
    drop(tickets);
    order.sort_unstable_by(|x, y| {
        (x.0, x.1).cmp(&(y.0, y.1)).then_with(|| {
            cols[x.2 as usize]
                .1
                .value(x.3 as usize)
                .cmp(cols[y.2 as usize].1.value(y.3 as usize))
        })
    });

    let mut first_status = Vec::with_capacity(ids.len());
    let mut first_resolved = Vec::with_capacity(ids.len());
    let mut reopened = Vec::with_capacity(ids.len());
    let (mut open_from, mut open_to) = (Vec::new(), Vec::new());
    let (mut pending_id, mut pending_from, mut pending_to) =
        (StringBuilder::new(), Vec::new(), Vec::new());
    let (mut open_lists, mut pending_lists) = (Lists::new(), Lists::new());
    for events in order.chunk_by(|x, y| x.0 == y.0) {
        let mut resolved = None;
        let mut again = false;
        for (k, &(_, at, b, r)) in events.iter().enumerate() {
            let (c, r) = (&cols[b as usize], r as usize);
            let next_at = events.get(k + 1).map(|e| e.1);
            let (from, to) = (opt(c.3, r), opt(c.4, r));
            if to == Some("resolved") && resolved.is_none() {
                resolved = Some(at);
            }
            if let (Some(f), Some(t)) = (from, to)
                && (f == "resolved" || f == "closed")
                && !FINISHED.contains(&t)
            {
                again = true;
            }
            if let Some(t) = to {
                if !FINISHED.contains(&t) {
                    open_from.push(at);
                    open_to.push(next_at);
                }
                if t == "pending" {
                    pending_id.append_value(c.1.value(r));
                    pending_from.push(at);
                    pending_to.push(next_at);
                }
            }
        }
        first_status.push(events[0].1);
        first_resolved.push(resolved);
        reopened.push(again);
        open_lists.end_row(open_from.len());
        pending_lists.end_row(pending_from.len());
    }
    drop(order);

    let field = |name: &str| -> Result<FieldRef> {
        Ok(Arc::new(
            schema
                .field_with_name(name)
                .with_context(|| format!("ticket_history has no column {name}"))?
                .clone(),
        ))
    };
    let ts = |name: &str, values: Vec<Option<i64>>| -> Result<ArrayRef> {
        let f = field(name)?;
        let a = TimestampMicrosecondArray::from(values);
        Ok(Arc::new(a.with_data_type(match f.data_type() {
            DataType::List(item) => item.data_type().clone(),
            t => t.clone(),
        })))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            source,
            ids.len(),
        ))),
        Arc::new(StringArray::from_iter_values(ids.iter().copied())),
        ts(
            "first_status_at",
            first_status.into_iter().map(Some).collect(),
        )?,
        ts("first_resolved_at", first_resolved)?,
        Arc::new(BooleanArray::from(reopened)),
        open_lists.finish(
            &field("open_from")?,
            ts("open_from", open_from.into_iter().map(Some).collect())?,
        )?,
        open_lists.finish(&field("open_to")?, ts("open_to", open_to)?)?,
        pending_lists.finish(&field("pending_event_id")?, Arc::new(pending_id.finish()))?,
        pending_lists.finish(
            &field("pending_from")?,
            ts("pending_from", pending_from.into_iter().map(Some).collect())?,
        )?,
        pending_lists.finish(&field("pending_to")?, ts("pending_to", pending_to)?)?,
        ts(
            "created_at",
            own.iter().map(|t| t.map(|t| t.created)).collect(),
        )?,
        ts(
            "resolved_at",
            own.iter().map(|t| t.and_then(|t| t.resolved)).collect(),
        )?,
        ts(
            "settled_at",
            own.iter().map(|t| t.and_then(|t| t.settled)).collect(),
        )?,
    ];
    let all =
        RecordBatch::try_new(schema, columns).context("ticket_history: the columns of the view")?;
    // in slices the size of a row group
    let step = 64 * 1024;
    Ok((0..all.num_rows())
        .step_by(step)
        .map(|o| all.slice(o, step.min(all.num_rows() - o)))
        .collect())
}
