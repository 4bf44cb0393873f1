//! Record checks before anything reaches the lake: a batch's rows that break the
//! canonical model are split off with a reason, for the quarantine. Pure; no I/O.

use anyhow::{Result, bail};
use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{TimestampMicrosecondType, UInt8Type};

use crate::model::{Table, values};

/// A rejected record: its columns as JSON and why it was rejected.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub record: serde_json::Value,
    pub reason: String,
}

/// Checks a batch against the file schema of `table` (an error when the columns differ:
/// that is a connector bug, not bad data) and splits it into good rows and rejected ones.
pub fn split(table: Table, batch: &RecordBatch) -> Result<(RecordBatch, Vec<Rejected>)> {
    let expected = table.file_schema();
    if batch.schema().fields() != expected.fields() {
        bail!(
            "batch for '{}' does not have the canonical columns: got {:?}",
            table.name(),
            batch
                .schema()
                .fields()
                .iter()
                .map(|f| format!("{}: {}", f.name(), f.data_type()))
                .collect::<Vec<_>>()
        );
    }
    let reasons: Vec<Option<String>> = (0..batch.num_rows())
        .map(|row| check_row(table, batch, row))
        .collect();
    if reasons.iter().all(Option::is_none) {
        return Ok((batch.clone(), Vec::new()));
    }
    let keep = BooleanArray::from(reasons.iter().map(|r| r.is_none()).collect::<Vec<_>>());
    let drop = BooleanArray::from(reasons.iter().map(|r| r.is_some()).collect::<Vec<_>>());
    let good = filter_record_batch(batch, &keep)?;
    let bad = filter_record_batch(batch, &drop)?;
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    writer.write(&bad)?;
    writer.finish()?;
    let records: Vec<serde_json::Value> = serde_json::from_slice(&writer.into_inner())?;
    let rejected = records
        .into_iter()
        .zip(reasons.into_iter().flatten())
        .map(|(record, reason)| Rejected { record, reason })
        .collect();
    Ok((good, rejected))
}

fn text<'a>(batch: &'a RecordBatch, name: &str, row: usize) -> Option<&'a str> {
    let a = batch.column_by_name(name)?.as_string::<i32>();
    (!a.is_null(row)).then(|| a.value(row))
}

fn small(batch: &RecordBatch, name: &str, row: usize) -> Option<u8> {
    let a = batch.column_by_name(name)?.as_primitive::<UInt8Type>();
    (!a.is_null(row)).then(|| a.value(row))
}

fn instant(batch: &RecordBatch, name: &str, row: usize) -> Option<i64> {
    let a = batch
        .column_by_name(name)?
        .as_primitive::<TimestampMicrosecondType>();
    (!a.is_null(row)).then(|| a.value(row))
}

fn one_of(batch: &RecordBatch, name: &str, row: usize, allowed: &[&str]) -> Option<String> {
    match text(batch, name, row) {
        Some(v) if !allowed.contains(&v) => Some(format!("{name} '{v}' is not one of {allowed:?}")),
        _ => None,
    }
}

fn in_range(batch: &RecordBatch, name: &str, row: usize, lo: u8, hi: u8) -> Option<String> {
    match small(batch, name, row) {
        Some(v) if !(lo..=hi).contains(&v) => Some(format!("{name} {v} is outside {lo}..{hi}")),
        _ => None,
    }
}

fn check_row(table: Table, b: &RecordBatch, row: usize) -> Option<String> {
    match table {
        Table::Tickets => {
            if text(b, "ticket_id", row).is_none_or(str::is_empty) {
                return Some("empty ticket_id".into());
            }
            let checks = [
                one_of(b, "desk", row, values::DESKS),
                one_of(b, "service_scope", row, values::SCOPES),
                one_of(b, "kind", row, values::KINDS),
                one_of(b, "channel", row, values::CHANNELS),
                one_of(b, "requester_profile", row, values::PROFILES),
                one_of(b, "status", row, values::STATUSES),
                in_range(b, "priority", row, 1, 4),
                in_range(b, "impact", row, 1, 4),
                in_range(b, "urgency", row, 1, 4),
                in_range(b, "level", row, 1, 3),
                in_range(b, "satisfaction", row, 1, 5),
            ];
            if let Some(reason) = checks.into_iter().flatten().next() {
                return Some(reason);
            }
            let created = instant(b, "created_at", row)?;
            for later in ["assigned_at", "resolved_at", "closed_at"] {
                if let Some(t) = instant(b, later, row)
                    && t < created
                {
                    return Some(format!("{later} is before created_at"));
                }
            }
            None
        }
        Table::Events => {
            if text(b, "event_id", row).is_none_or(str::is_empty) {
                return Some("empty event_id".into());
            }
            if let Some(reason) = one_of(b, "kind", row, values::EVENT_KINDS) {
                return Some(reason);
            }
            if text(b, "kind", row) == Some("status") {
                return one_of(b, "to_value", row, values::STATUSES)
                    .or_else(|| one_of(b, "from_value", row, values::STATUSES))
                    .or_else(|| {
                        text(b, "to_value", row)
                            .is_none()
                            .then(|| "status event without to_value".into())
                    });
            }
            None
        }
    }
}
