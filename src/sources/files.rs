//! CSV and JSON-lines exports (ServiceNow-style incident logs, Zammad exports, spreadsheet
//! dumps), read with arrow's CSV and JSON readers and described entirely by the config:
//! which column holds which canonical field, value maps, the timestamp format and time
//! zone. Two layouts:
//!
//! - `events`: one row per state change of a ticket (audit-log style). A ticket's
//!   status events come from its rows in time order; its attributes are the last
//!   non-empty value of each mapped column; `created_at` is the mapped column or the
//!   first row's time, `updated_at` the last row's, `closed_at` its last move to
//!   `closed`. A `team` column that changes gives assign / escalate / transfer events.
//!   The event id is the mapped `event_id` column, else `<file>:<line>`.
//! - `tickets`: one row per ticket, its dates in columns; no history.
//!
//! Every file is read whole on each pull: the merge by key makes that idempotent, and a
//! partition whose rows did not change is not rewritten.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use compact_str::CompactString;

use super::config::{FilesConfig, SourceConfig};
use super::normalize::{Defaults, Pulled, RawChange, RawEvent, RawTicket, scrub};
use crate::pseudonym::Pseudonymizer;

/// No default mapping: an export's values are mapped in the config.
pub const DEFAULTS: Defaults = &[];

/// Canonical fields that hold an identity (pseudonymised on reading).
const IDENTITIES: &[&str] = &["requester", "agent", "actor"];

/// The files a source names: files as given, directories' `*.csv` / `*.jsonl`, sorted.
fn paths(files: &FilesConfig) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in &files.paths {
        let path = Path::new(p);
        if path.is_dir() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading directory {p}"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().and_then(|x| x.to_str()) == Some(files.format.as_str()))
                .collect();
            inner.sort();
            out.extend(inner);
        } else if path.exists() {
            out.push(path.to_path_buf());
        } else {
            anyhow::bail!("export file {p} does not exist");
        }
    }
    Ok(out)
}

/// Reads one file as batches of text columns.
fn read_file(path: &Path, files: &FilesConfig) -> Result<Vec<RecordBatch>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // rows per batch: 64 Ki, less for a small file (a row takes at least 16 bytes or so),
    // since the readers allocate a whole batch's buffers up front
    let len = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    let batch_size = (len / 16).clamp(1024, 64 * 1024) as usize;
    let text_schema = |s: &Schema| {
        Arc::new(Schema::new(
            s.fields()
                .iter()
                .map(|f| Field::new(f.name(), DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ))
    };
    let batches: Vec<RecordBatch> = if files.format == "csv" {
        let delimiter = *files.delimiter.as_bytes().first().unwrap_or(&b',');
        let format = arrow::csv::reader::Format::default()
            .with_header(true)
            .with_delimiter(delimiter);
        let (schema, _) = format
            .infer_schema(std::io::BufReader::new(&file), Some(0))
            .with_context(|| format!("reading the header of {}", path.display()))?;
        let file = std::fs::File::open(path)?;
        arrow::csv::ReaderBuilder::new(text_schema(&schema))
            .with_format(format)
            .with_batch_size(batch_size)
            .build(file)?
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading {}", path.display()))?
    } else {
        let (schema, _) =
            arrow::json::reader::infer_json_schema(std::io::BufReader::new(&file), None)
                .with_context(|| format!("reading {}", path.display()))?;
        let file = std::fs::File::open(path)?;
        let batches: Vec<RecordBatch> = arrow::json::ReaderBuilder::new(Arc::new(schema))
            .with_batch_size(batch_size)
            .build(std::io::BufReader::new(file))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading {}", path.display()))?;
        batches
            .into_iter()
            .map(|b| {
                let schema = text_schema(&b.schema());
                let cols = b
                    .columns()
                    .iter()
                    .map(|c| arrow::compute::cast(c, &DataType::Utf8))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(RecordBatch::try_new(schema, cols)?)
            })
            .collect::<Result<_>>()?
    };
    Ok(batches)
}

/// One row: canonical field → value (mapped columns and constants), and the raw record.
struct Row {
    values: BTreeMap<String, String>,
    record: serde_json::Value,
    line: String,
}

fn rows(
    batches: &[RecordBatch],
    files: &FilesConfig,
    file_name: &str,
    pseudo: &Pseudonymizer,
) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    let mut line = 1usize;
    for b in batches {
        let schema = b.schema();
        let mapped: Vec<(&String, usize)> = files
            .columns
            .iter()
            .map(|(canonical, column)| {
                schema
                    .index_of(column)
                    .map(|i| (canonical, i))
                    .with_context(|| {
                        format!("{file_name}: no column '{column}' (mapped to {canonical})")
                    })
            })
            .collect::<Result<_>>()?;
        let identity_columns: Vec<&str> = IDENTITIES
            .iter()
            .filter_map(|c| files.columns.get(*c).map(String::as_str))
            .collect();
        for r in 0..b.num_rows() {
            line += 1;
            let mut values = files.constants.clone();
            for (canonical, i) in &mapped {
                let col = b.column(*i).as_string::<i32>();
                if col.is_valid(r) && !col.value(r).trim().is_empty() {
                    values.insert((*canonical).clone(), col.value(r).trim().to_string());
                }
            }
            let mut record = serde_json::Map::new();
            for (i, f) in schema.fields().iter().enumerate() {
                let col = b.column(i).as_string::<i32>();
                if col.is_valid(r) {
                    record.insert(f.name().clone(), col.value(r).into());
                }
            }
            let mut record = serde_json::Value::Object(record);
            scrub(&mut record, &identity_columns, pseudo);
            for id in IDENTITIES {
                if let Some(v) = values.get_mut(*id) {
                    *v = pseudo.pseudonym(v).into();
                }
            }
            out.push(Row {
                values,
                record,
                line: format!("{file_name}:{line}"),
            });
        }
    }
    Ok(out)
}

fn ticket_of(id: &str, v: &BTreeMap<String, String>, record: serde_json::Value) -> RawTicket {
    let g = |k: &str| v.get(k).map(|s| CompactString::from(s.as_str()));
    RawTicket {
        ticket_id: id.into(),
        record: super::normalize::Record::Value(record),
        org: g("org"),
        service: g("service"),
        category: g("category"),
        subcategory: g("subcategory"),
        kind: g("kind"),
        impact: g("impact"),
        urgency: g("urgency"),
        priority: g("priority"),
        channel: g("channel"),
        requester: g("requester"),
        profile: g("requester_profile"),
        team: g("team"),
        agent: g("agent"),
        status: g("status"),
        created_at: g("created_at"),
        assigned_at: g("assigned_at"),
        resolved_at: g("resolved_at"),
        closed_at: g("closed_at"),
        updated_at: g("updated_at"),
        origin: g("origin"),
        satisfaction: g("satisfaction"),
        reopen_count: g("reopen_count").and_then(|s| s.parse().ok()),
        source_sla_met: g("source_sla_met")
            .map(|s| matches!(s.to_lowercase().as_str(), "true" | "yes" | "1")),
        effort_minutes: g("effort_minutes"),
    }
}

/// Reads a files source.
pub fn read(
    source: &SourceConfig,
    pseudo: &Pseudonymizer,
    _since: Option<i64>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Pulled> {
    let files = source
        .files
        .as_ref()
        .context("a files source needs [sources.files]")?;
    let dates = super::normalize::LocalDates::new(source.tz()?, &files.timestamp_format);
    let mut pulled = Pulled::default();
    let mut all_rows = Vec::new();
    for path in paths(files)? {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        let batches = read_file(&path, files)?;
        all_rows.extend(rows(&batches, files, &name, pseudo)?);
    }
    if files.layout == "tickets" {
        let n = all_rows.len() as u64;
        for row in all_rows {
            let id = row.values.get("ticket_id").cloned().unwrap_or_default();
            pulled.tickets.push(ticket_of(&id, &row.values, row.record));
        }
        progress(n, n);
        return Ok(pulled);
    }
    // events: group the rows by ticket, in time order (then file order)
    let mut by_ticket: BTreeMap<String, Vec<(i64, usize, Row)>> = BTreeMap::new();
    for (seq, row) in all_rows.into_iter().enumerate() {
        let id = row.values.get("ticket_id").cloned().unwrap_or_default();
        let at = row.values.get("at").map(|a| dates.parse(a));
        match at {
            Some(Ok(at)) => by_ticket.entry(id).or_default().push((at, seq, row)),
            Some(Err(why)) => pulled.rejected.push((
                crate::model::Table::Events,
                crate::lake::validate::Rejected {
                    key: row.line.clone(),
                    record: row.record,
                    reason: format!("{}: unparseable date: {why}", row.line),
                },
            )),
            None => pulled.rejected.push((
                crate::model::Table::Events,
                crate::lake::validate::Rejected {
                    key: row.line.clone(),
                    record: row.record,
                    reason: format!("{}: no event time", row.line),
                },
            )),
        }
    }
    let n = by_ticket.len() as u64;
    for (id, mut rows) in by_ticket {
        rows.sort_by_key(|(at, seq, _)| (*at, *seq));
        let mut attrs: BTreeMap<String, String> = BTreeMap::new();
        let mut status: Option<String> = None;
        let mut team: Option<String> = None;
        let mut record = serde_json::Value::Null;
        let mut last_at = None;
        for (i, (_, _, row)) in rows.into_iter().enumerate() {
            let event_id = row
                .values
                .get("event_id")
                .cloned()
                .unwrap_or_else(|| row.line.clone());
            let actor = row.values.get("actor").cloned();
            let at_text = row.values.get("at").cloned().unwrap_or_default();
            if i == 0 && !row.values.contains_key("created_at") {
                attrs.insert("created_at".into(), at_text.clone());
            }
            if let Some(s) = row.values.get("status").cloned()
                && status.as_deref() != Some(s.as_str())
            {
                pulled.events.push(RawEvent {
                    event_id: event_id.as_str().into(),
                    ticket_id: id.as_str().into(),
                    at: at_text.as_str().into(),
                    change: RawChange::Status(
                        status.as_deref().map(CompactString::from),
                        s.as_str().into(),
                    ),
                    actor: actor.as_deref().map(CompactString::from),
                    raw: Some(row.record.clone()),
                });
                status = Some(s);
            }
            if let Some(t) = row.values.get("team").cloned()
                && team.as_deref() != Some(t.as_str())
            {
                pulled.events.push(RawEvent {
                    event_id: compact_str::format_compact!("{event_id}-team"),
                    ticket_id: id.as_str().into(),
                    at: at_text.as_str().into(),
                    change: RawChange::Team(
                        team.as_deref().map(CompactString::from),
                        Some(t.as_str().into()),
                    ),
                    actor: actor.as_deref().map(CompactString::from),
                    raw: Some(row.record.clone()),
                });
                team = Some(t);
            }
            for (k, v) in &row.values {
                if !matches!(k.as_str(), "at" | "event_id" | "actor" | "created_at") {
                    attrs.insert(k.clone(), v.clone());
                }
            }
            if let Some(c) = row.values.get("created_at") {
                attrs.entry("created_at".into()).or_insert(c.clone());
            }
            record = row.record;
            last_at = Some(at_text);
        }
        if let Some(last) = last_at {
            attrs.entry("updated_at".into()).or_insert(last);
        }
        pulled.tickets.push(ticket_of(&id, &attrs, record));
    }
    progress(n, n);
    // dates handed over as text in the source's zone and the export's format
    Ok(pulled)
}
