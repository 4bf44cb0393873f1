//! The canonical model: the `tickets` and `events` Arrow schemas and their value sets,
//! defined once. Every stage reads the column list from here; nothing else spells it.
//!
//! All instants are UTC `Timestamp(Microsecond, "UTC")`. Local time (Europe/Paris)
//! appears only in calendars, in the `month` partition and in KPI output.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// One documented column of a canonical table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub data_type: ColumnType,
    pub nullable: bool,
    pub doc: &'static str,
}

/// The few Arrow types the canonical model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Utf8,
    UInt8,
    UInt32,
    Float64,
    Boolean,
    Timestamp,
}

impl ColumnType {
    pub fn arrow(self) -> DataType {
        match self {
            ColumnType::Utf8 => DataType::Utf8,
            ColumnType::UInt8 => DataType::UInt8,
            ColumnType::UInt32 => DataType::UInt32,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Timestamp => timestamp_type(),
        }
    }

    pub fn sql_name(self) -> &'static str {
        match self {
            ColumnType::Utf8 => "utf8",
            ColumnType::UInt8 => "uint8",
            ColumnType::UInt32 => "uint32",
            ColumnType::Float64 => "float64",
            ColumnType::Boolean => "bool",
            ColumnType::Timestamp => "timestamp(us, UTC)",
        }
    }
}

/// `Timestamp(Microsecond, "UTC")`, the only instant type of the lake.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

const fn col(
    name: &'static str,
    data_type: ColumnType,
    nullable: bool,
    doc: &'static str,
) -> Column {
    Column {
        name,
        data_type,
        nullable,
        doc,
    }
}

use ColumnType::*;

/// Hive partition columns, derived from the object path (not stored in the files).
pub const PARTITION_COLUMNS: [Column; 2] = [
    col(
        "source",
        Utf8,
        false,
        "id of the source system in the config, e.g. `itop-group`, `glpi-lyon` (partition)",
    ),
    col(
        "month",
        Utf8,
        false,
        "partition: local (Europe/Paris) month `YYYY-MM` of created_at (tickets) or at (events)",
    ),
];

/// `tickets`: one row per ticket, its latest known state. Key: (source, ticket_id).
/// `source` is the first partition column and is not repeated here.
pub const TICKET_COLUMNS: &[Column] = &[
    col(
        "ticket_id",
        Utf8,
        false,
        "id inside the source (`R-000123`, `4711`)",
    ),
    col(
        "org",
        Utf8,
        false,
        "the requester's organisation, whatever desk took the ticket: GROUP, LYON, RENNES, TOULOUSE, ROUEN, STRASBOURG, CVL, HDF",
    ),
    col(
        "desk",
        Utf8,
        false,
        "`group` or `school`: which desk's system holds the ticket",
    ),
    col(
        "service",
        Utf8,
        false,
        "service in the catalogue (`Moodle`, `Mail`…)",
    ),
    col(
        "service_scope",
        Utf8,
        false,
        "`group` or `school`: whose service it is (from the catalogue)",
    ),
    col(
        "kind",
        Utf8,
        false,
        "`incident`, `service_request`, `assistance`",
    ),
    col(
        "category",
        Utf8,
        true,
        "category (poste de travail, imprimante, wifi…)",
    ),
    col("subcategory", Utf8, true, "subcategory"),
    col("impact", UInt8, true, "1 (highest) … 4"),
    col("urgency", UInt8, true, "1 (highest) … 4"),
    col(
        "priority",
        UInt8,
        false,
        "1 (critical) … 4 (low); computed from impact × urgency when the source has none",
    ),
    col(
        "channel",
        Utf8,
        false,
        "`portal`, `email`, `phone`, `chat`, `in_person`, `other`",
    ),
    col(
        "requester",
        Utf8,
        false,
        "keyed pseudonym (HMAC-SHA256), never the raw identity",
    ),
    col(
        "requester_profile",
        Utf8,
        false,
        "`staff`, `faculty`, `student`, `other`",
    ),
    col("team", Utf8, true, "assigned team"),
    col("agent", Utf8, true, "assigned agent, as a keyed pseudonym"),
    col(
        "level",
        UInt8,
        false,
        "highest support level reached: 1, 2 or 3",
    ),
    col(
        "status",
        Utf8,
        false,
        "`new`, `assigned`, `pending`, `resolved`, `closed`, `canceled`",
    ),
    col("created_at", Timestamp, false, "creation"),
    col("assigned_at", Timestamp, true, "first assignment"),
    col("resolved_at", Timestamp, true, "last resolution"),
    col("closed_at", Timestamp, true, "closure"),
    col("updated_at", Timestamp, true, "last change"),
    col(
        "origin",
        Utf8,
        true,
        "`source:ticket_id` of the ticket this one was forwarded from (school → group)",
    ),
    col(
        "satisfaction",
        UInt8,
        true,
        "survey answer normalised to 1..5 (5 best)",
    ),
    col(
        "reopen_count",
        UInt32,
        true,
        "as reported by the source, when it reports one",
    ),
    col(
        "source_sla_met",
        Boolean,
        true,
        "the source's own SLA verdict, kept to compare with ours",
    ),
    col(
        "effort_minutes",
        Float64,
        true,
        "time spent, when the source records it",
    ),
];

/// `events`: the status history, append-only. Key: (source, event_id).
pub const EVENT_COLUMNS: &[Column] = &[
    col(
        "ticket_id",
        Utf8,
        false,
        "the ticket (id inside the source)",
    ),
    col(
        "event_id",
        Utf8,
        false,
        "id inside the source (history row id)",
    ),
    col("at", Timestamp, false, "when"),
    col(
        "kind",
        Utf8,
        false,
        "`status`, `assign`, `escalate`, `transfer`, `priority`",
    ),
    col(
        "from_value",
        Utf8,
        true,
        "value before, e.g. status `resolved` (with to_value `assigned`: a reopen)",
    ),
    col("to_value", Utf8, true, "value after"),
    col(
        "actor",
        Utf8,
        true,
        "keyed pseudonym of who made the change",
    ),
];

/// The two canonical tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Tickets,
    Events,
}

impl Table {
    pub const ALL: [Table; 2] = [Table::Tickets, Table::Events];

    pub fn name(self) -> &'static str {
        match self {
            Table::Tickets => "tickets",
            Table::Events => "events",
        }
    }

    /// Columns stored in the Parquet files (partition columns excluded).
    pub fn columns(self) -> &'static [Column] {
        match self {
            Table::Tickets => TICKET_COLUMNS,
            Table::Events => EVENT_COLUMNS,
        }
    }

    /// The key column besides `source`.
    pub fn key_column(self) -> &'static str {
        match self {
            Table::Tickets => "ticket_id",
            Table::Events => "event_id",
        }
    }

    /// The instant whose local month is the partition.
    pub fn partition_instant(self) -> &'static str {
        match self {
            Table::Tickets => "created_at",
            Table::Events => "at",
        }
    }

    /// The Arrow schema of the stored files.
    pub fn file_schema(self) -> SchemaRef {
        match self {
            Table::Tickets => TICKETS_FILE_SCHEMA.clone(),
            Table::Events => EVENTS_FILE_SCHEMA.clone(),
        }
    }

    /// The schema analysts see: `source` first, then the stored columns, then `month`.
    pub fn full_columns(self) -> Vec<Column> {
        let mut cols = vec![PARTITION_COLUMNS[0]];
        cols.extend_from_slice(self.columns());
        cols.push(PARTITION_COLUMNS[1]);
        cols
    }
}

fn schema_of(columns: &[Column]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(c.name, c.data_type.arrow(), c.nullable))
            .collect::<Vec<_>>(),
    ))
}

static TICKETS_FILE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| schema_of(TICKET_COLUMNS));
static EVENTS_FILE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| schema_of(EVENT_COLUMNS));

/// Allowed values of the enumerated columns; the lake writer quarantines anything else.
pub mod values {
    pub const DESKS: &[&str] = &["group", "school"];
    pub const SCOPES: &[&str] = &["group", "school"];
    pub const KINDS: &[&str] = &["incident", "service_request", "assistance"];
    pub const CHANNELS: &[&str] = &["portal", "email", "phone", "chat", "in_person", "other"];
    pub const PROFILES: &[&str] = &["staff", "faculty", "student", "other"];
    pub const STATUSES: &[&str] = &[
        "new", "assigned", "pending", "resolved", "closed", "canceled",
    ];
    pub const EVENT_KINDS: &[&str] = &["status", "assign", "escalate", "transfer", "priority"];
}

/// Priority from impact × urgency (1 highest … 4 lowest), the ITIL matrix:
/// the sum of the two levels, 2–3 → P1, 4 → P2, 5–6 → P3, 7–8 → P4.
pub fn priority_from(impact: u8, urgency: u8) -> u8 {
    match impact.clamp(1, 4) + urgency.clamp(1, 4) {
        2 | 3 => 1,
        4 => 2,
        5 | 6 => 3,
        _ => 4,
    }
}

/// The documented schema as text, for `ticketlake schema`.
pub fn describe() -> String {
    let mut out = String::new();
    for table in Table::ALL {
        let (title, key) = match table {
            Table::Tickets => (
                "tickets — one row per ticket, its latest known state",
                "(source, ticket_id)",
            ),
            Table::Events => (
                "events — the status history, append-only; a ticket's history is ordered by at, then event_id",
                "(source, event_id)",
            ),
        };
        out.push_str(&format!("{title}\nkey: {key}\n"));
        for c in table.full_columns() {
            out.push_str(&format!(
                "  {:<18} {:<19} {:<9} {}\n",
                c.name,
                c.data_type.sql_name(),
                if c.nullable { "null" } else { "not null" },
                c.doc
            ));
        }
        out.push('\n');
    }
    out.push_str(
        "reference tables (from the config): services(service, service_scope, owner_team), \
         orgs(org, name, calendar, headcount), sla_targets(priority, tto_min, ttr_h)\n\
         views: status_intervals(source, ticket_id, event_id, from_at, next_at, from_value, status): the status history as intervals;\n\
         pending_periods(source, ticket_id, event_id, from_at, to_at): the periods spent pending;\n\
         ticket_history(source, ticket_id, first_status_at, first_resolved_at, reopened, open_from, open_to, pending_event_id,\n\
         pending_from, pending_to, created_at, resolved_at, settled_at, transferred, first_event_at, status, closed_at, updated_at,\n\
         org, desk, priority, assigned_at):\n\
         per ticket of tickets, and per ticket only events name (the status columns null when it has no status event), with\n\
         whether it has a transfer event and its first event of any kind, the ticket's own status, times, org, desk and priority, and settled_at\n\
         (null while its fields leave it possibly open, else the latest of its times)\n\
         (stored in the lake when it is written, under _derived/, by month of creation, then resolution)\n\
         functions: business_seconds(org, from, to), business_micros(org, from, to),
         pending_business_micros(org, starts, ends, from, to) (the business time of a list of intervals within [from, to)), local_month(ts), local_date(ts), local_day(ts), quantile_cont(x, q),
         quantiles_cont(x, q1, q2, …) (a list of the quantiles, in the order of the q's),
         open_by_age(created_day, from_day, to_day, first_day, end_day, bound, …) (the open spans covering each day of
         [first_day, end_day), in all and by age bucket: a list of {day, open_tickets, by_age}),
         recurring_instants(at, within_us) (a group's distinct instants in order, a list of {at, n, recurring}: n incidents at
         the instant, recurring = n when the group's previous distinct instant is at most within_us µs before, else 0)\n",
    );
    out
}

/// `schema` with every column of type `from` given type `to` (the engine reads text as
/// `Utf8View`; files written for users hold plain `Utf8`).
pub fn retyped(schema: &Schema, from: &DataType, to: &DataType) -> SchemaRef {
    Arc::new(Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| match f.data_type() == from {
                true => Arc::new(f.as_ref().clone().with_data_type(to.clone())),
                false => f.clone(),
            })
            .collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

/// The columns of `batch` cast to the types of `schema` (those already of that type are
/// kept as they are).
pub fn cast_to(
    batch: &arrow::array::RecordBatch,
    schema: &SchemaRef,
) -> Result<arrow::array::RecordBatch, arrow::error::ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| match c.data_type() == f.data_type() {
            true => Ok(c.clone()),
            false => arrow::compute::cast(c, f.data_type()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    arrow::array::RecordBatch::try_new(schema.clone(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_matrix_corners() {
        assert_eq!(priority_from(1, 1), 1);
        assert_eq!(priority_from(1, 2), 1);
        assert_eq!(priority_from(2, 2), 2);
        assert_eq!(priority_from(1, 3), 2);
        assert_eq!(priority_from(3, 3), 3);
        assert_eq!(priority_from(2, 4), 3);
        assert_eq!(priority_from(4, 3), 4);
        assert_eq!(priority_from(4, 4), 4);
    }

    #[test]
    fn schemas_have_keys_first() {
        assert_eq!(Table::Tickets.file_schema().field(0).name(), "ticket_id");
        assert_eq!(Table::Events.file_schema().field(1).name(), "event_id");
        assert_eq!(
            Table::Tickets.full_columns().first().unwrap().name,
            "source"
        );
        assert_eq!(Table::Events.full_columns().last().unwrap().name, "month");
    }
}
