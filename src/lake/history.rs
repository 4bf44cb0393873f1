//! The rows of the view `ticket_history` (`queries/views/ticket_history.sql`) for one
//! source, computed in one pass over its status events instead of by DataFusion: the
//! view orders every ticket's events twice over (a window, then five ordered
//! `array_agg`), which took 30 s of the 38 s of generating a million tickets; grouping
//! the events by ticket in a hash table and ordering each ticket's few events takes a
//! second. The SQL stays the definition: it is what a reader computes when the stored
//! rows do not match the events, and the tests check that both give the same rows.

use std::collections::HashMap;
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

/// Statuses after which a ticket is no longer open.
const FINISHED: [&str; 3] = ["resolved", "closed", "canceled"];

/// The columns of `events` read.
const COLUMNS: [&str; 6] = [
    "ticket_id",
    "event_id",
    "at",
    "kind",
    "from_value",
    "to_value",
];

/// Reads the status events of a source's `events` objects (the columns needed).
async fn status_events(lake: &Lake, objects: &[ObjectMeta]) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for meta in objects {
        let bytes: Bytes = lake.store.get(&meta.location).await?.bytes().await?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .with_context(|| format!("reading {}", meta.location))?;
        let mask = ProjectionMask::columns(builder.parquet_schema(), COLUMNS);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(64 * 1024)
            .build()?;
        for batch in reader {
            let batch = batch.with_context(|| format!("reading {}", meta.location))?;
            let kind = batch
                .column_by_name("kind")
                .context("events without kind")?
                .as_string::<i32>();
            let keep = arrow::compute::kernels::cmp::eq(kind, &StringArray::new_scalar("status"))?;
            out.push(arrow::compute::filter_record_batch(&batch, &keep)?);
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

/// The `ticket_history` rows of `source`, in ticket_id order, with `schema` (the view's).
pub async fn compute(
    lake: &Lake,
    source: &str,
    objects: &[ObjectMeta],
    schema: SchemaRef,
) -> Result<Vec<RecordBatch>> {
    let batches = status_events(lake, objects).await?;
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
    // each ticket's events, as (batch, row)
    let mut tickets: HashMap<&str, Vec<(u32, u32)>> = HashMap::new();
    for (b, (ticket, ..)) in cols.iter().enumerate() {
        for r in 0..ticket.len() {
            tickets
                .entry(ticket.value(r))
                .or_default()
                .push((b as u32, r as u32));
        }
    }
    let mut ids: Vec<&str> = tickets.keys().copied().collect();
    ids.sort_unstable();

    let mut first_status = Vec::with_capacity(ids.len());
    let mut first_resolved = Vec::with_capacity(ids.len());
    let mut reopened = Vec::with_capacity(ids.len());
    let (mut open_from, mut open_to) = (Vec::new(), Vec::new());
    let (mut pending_id, mut pending_from, mut pending_to) =
        (StringBuilder::new(), Vec::new(), Vec::new());
    let (mut open_lists, mut pending_lists) = (Lists::new(), Lists::new());
    for id in &ids {
        let events = tickets.get_mut(id).expect("a key");
        // in the order of the history: at, then event_id
        events.sort_unstable_by(|&(b1, r1), &(b2, r2)| {
            let (x, y) = (&cols[b1 as usize], &cols[b2 as usize]);
            (x.2.value(r1 as usize), x.1.value(r1 as usize))
                .cmp(&(y.2.value(r2 as usize), y.1.value(r2 as usize)))
        });
        let mut resolved = None;
        let mut again = false;
        for (k, &(b, r)) in events.iter().enumerate() {
            let (c, r) = (&cols[b as usize], r as usize);
            let at = c.2.value(r);
            let next_at = events
                .get(k + 1)
                .map(|&(b, r)| cols[b as usize].2.value(r as usize));
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
        let (b, r) = events[0];
        first_status.push(cols[b as usize].2.value(r as usize));
        first_resolved.push(resolved);
        reopened.push(again);
        open_lists.end_row(open_from.len());
        pending_lists.end_row(pending_from.len());
    }

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
