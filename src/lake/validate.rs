//! Record checks before anything reaches the lake: a batch's rows that break the
//! canonical model are split off with a reason, for the quarantine. Pure; no I/O.

use anyhow::{Result, bail};
use arrow::array::{
    Array, AsArray, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray, UInt8Array,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{TimestampMicrosecondType, UInt8Type};

use crate::model::{Table, values};

/// A rejected record: its columns as JSON and why it was rejected.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// The record's id in its source (ticket or history row), to replace or clear it later.
    pub key: String,
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
    let checks = Checks::new(table, batch);
    let reasons: Vec<Option<String>> = (0..batch.num_rows()).map(|row| checks.row(row)).collect();
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
    let key_name = table.key_column();
    let rejected = records
        .into_iter()
        .zip(reasons.into_iter().flatten())
        .map(|(record, reason)| Rejected {
            key: record
                .get(key_name)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
            record,
            reason,
        })
        .collect();
    Ok((good, rejected))
}

/// The columns a table's checks read, resolved once per batch.
struct Checks<'a> {
    key: (&'static str, &'a StringArray),
    /// text columns and their allowed values
    enums: Vec<(&'static str, &'a StringArray, &'static [&'static str])>,
    /// small integers and their inclusive range
    ranges: Vec<(&'static str, &'a UInt8Array, u8, u8)>,
    /// instants that may not come before `created_at`
    after_creation: Vec<(&'static str, &'a TimestampMicrosecondArray)>,
    created_at: Option<&'a TimestampMicrosecondArray>,
    /// events: the kind, and the status values of status events
    event_kind: Option<&'a StringArray>,
    status_values: Vec<(&'static str, &'a StringArray)>,
}

impl<'a> Checks<'a> {
    fn new(table: Table, b: &'a RecordBatch) -> Checks<'a> {
        let text = |n: &str| {
            b.column_by_name(n)
                .expect("canonical column")
                .as_string::<i32>()
        };
        let small = |n: &str| {
            b.column_by_name(n)
                .expect("canonical column")
                .as_primitive::<UInt8Type>()
        };
        let instant = |n: &str| {
            b.column_by_name(n)
                .expect("canonical column")
                .as_primitive::<TimestampMicrosecondType>()
        };
        match table {
            Table::Tickets => Checks {
                key: ("ticket_id", text("ticket_id")),
                enums: [
                    ("desk", values::DESKS),
                    ("service_scope", values::SCOPES),
                    ("kind", values::KINDS),
                    ("channel", values::CHANNELS),
                    ("requester_profile", values::PROFILES),
                    ("status", values::STATUSES),
                ]
                .into_iter()
                .map(|(n, allowed)| (n, text(n), allowed))
                .collect(),
                ranges: [
                    ("priority", 1, 4),
                    ("impact", 1, 4),
                    ("urgency", 1, 4),
                    ("level", 1, 3),
                    ("satisfaction", 1, 5),
                ]
                .into_iter()
                .map(|(n, lo, hi)| (n, small(n), lo, hi))
                .collect(),
                after_creation: ["assigned_at", "resolved_at", "closed_at"]
                    .into_iter()
                    .map(|n| (n, instant(n)))
                    .collect(),
                created_at: Some(instant("created_at")),
                event_kind: None,
                status_values: Vec::new(),
            },
            Table::Events => Checks {
                key: ("event_id", text("event_id")),
                enums: vec![("kind", text("kind"), values::EVENT_KINDS)],
                ranges: Vec::new(),
                after_creation: Vec::new(),
                created_at: None,
                event_kind: Some(text("kind")),
                status_values: vec![
                    ("to_value", text("to_value")),
                    ("from_value", text("from_value")),
                ],
            },
        }
    }

    /// Why row `r` breaks the model, or None.
    fn row(&self, r: usize) -> Option<String> {
        let (key_name, key) = self.key;
        if key.is_null(r) || key.value(r).is_empty() {
            return Some(format!("empty {key_name}"));
        }
        for (name, col, allowed) in &self.enums {
            if col.is_valid(r) && !allowed.contains(&col.value(r)) {
                return Some(format!(
                    "{name} '{}' is not one of {allowed:?}",
                    col.value(r)
                ));
            }
        }
        for (name, col, lo, hi) in &self.ranges {
            if col.is_valid(r) && !(*lo..=*hi).contains(&col.value(r)) {
                return Some(format!("{name} {} is outside {lo}..{hi}", col.value(r)));
            }
        }
        if let Some(created) = self.created_at.filter(|c| c.is_valid(r)) {
            for (name, col) in &self.after_creation {
                if col.is_valid(r) && col.value(r) < created.value(r) {
                    return Some(format!("{name} is before created_at"));
                }
            }
        }
        if self
            .event_kind
            .is_some_and(|k| k.is_valid(r) && k.value(r) == "status")
        {
            for (name, col) in &self.status_values {
                if col.is_valid(r) && !values::STATUSES.contains(&col.value(r)) {
                    return Some(format!(
                        "{name} '{}' is not one of {:?}",
                        col.value(r),
                        values::STATUSES
                    ));
                }
            }
            if self.status_values[0].1.is_null(r) {
                return Some("status event without to_value".into());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::batch::{EventFields, EventsBuilder, TicketFields, TicketsBuilder};

    fn reasons(table: Table, batch: &RecordBatch) -> Vec<String> {
        split(table, batch)
            .unwrap()
            .1
            .into_iter()
            .map(|r| r.reason)
            .collect()
    }

    #[test]
    fn ticket_rules() {
        let ok = TicketFields {
            ticket_id: "1",
            desk: "school",
            service_scope: "school",
            kind: "incident",
            channel: "email",
            requester_profile: "staff",
            status: "new",
            priority: 3,
            level: 1,
            created_at: 1_000,
            ..Default::default()
        };
        let mut b = TicketsBuilder::default();
        b.append(&ok);
        b.append(&TicketFields {
            ticket_id: "",
            ..ok.clone()
        });
        b.append(&TicketFields {
            priority: 7,
            ..ok.clone()
        });
        b.append(&TicketFields {
            resolved_at: Some(999),
            ..ok.clone()
        });
        b.append(&TicketFields {
            channel: "fax",
            satisfaction: Some(9),
            ..ok.clone()
        });
        let batch = b.finish();
        assert_eq!(
            reasons(Table::Tickets, &batch),
            vec![
                "empty ticket_id".to_string(),
                "priority 7 is outside 1..4".into(),
                "resolved_at is before created_at".into(),
                format!("channel 'fax' is not one of {:?}", values::CHANNELS),
            ]
        );
        assert_eq!(split(Table::Tickets, &batch).unwrap().0.num_rows(), 1);
    }

    #[test]
    fn event_rules() {
        let ok = EventFields {
            ticket_id: "1",
            event_id: "e1",
            at: 5,
            kind: "status",
            from_value: None,
            to_value: Some("new"),
            actor: None,
        };
        let mut b = EventsBuilder::default();
        b.append(&ok);
        b.append(&EventFields {
            to_value: Some("solved"),
            ..ok.clone()
        });
        b.append(&EventFields {
            to_value: None,
            ..ok.clone()
        });
        b.append(&EventFields {
            kind: "assign",
            to_value: Some("any-team"),
            ..ok.clone()
        });
        b.append(&EventFields {
            kind: "note",
            ..ok.clone()
        });
        let batch = b.finish();
        let r = reasons(Table::Events, &batch);
        assert_eq!(r.len(), 3, "{r:?}");
        assert!(r[0].starts_with("to_value 'solved'"), "{r:?}");
        assert_eq!(r[1], "status event without to_value");
        assert!(r[2].starts_with("kind 'note'"), "{r:?}");
    }
}
