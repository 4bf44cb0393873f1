//! Builders of canonical `tickets` and `events` batches, shared by every source: a
//! source appends borrowed field values and gets a `RecordBatch` with the schema of
//! [`crate::model`]. The column order is the model's; nothing else is spelled here.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder, UInt8Builder, UInt32Builder,
};

use crate::model::Table;

/// One ticket's fields, borrowed for appending (instants in UTC µs).
#[derive(Debug, Clone, Default)]
pub struct TicketFields<'a> {
    pub ticket_id: &'a str,
    pub org: &'a str,
    pub desk: &'a str,
    pub service: &'a str,
    pub service_scope: &'a str,
    pub kind: &'a str,
    pub category: Option<&'a str>,
    pub subcategory: Option<&'a str>,
    pub impact: Option<u8>,
    pub urgency: Option<u8>,
    pub priority: u8,
    pub channel: &'a str,
    pub requester: &'a str,
    pub requester_profile: &'a str,
    pub team: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub level: u8,
    pub status: &'a str,
    pub created_at: i64,
    pub assigned_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub updated_at: Option<i64>,
    pub origin: Option<&'a str>,
    pub satisfaction: Option<u8>,
    pub reopen_count: Option<u32>,
    pub source_sla_met: Option<bool>,
    pub effort_minutes: Option<f64>,
}

/// Bytes reserved per text value by `with_capacity`: ids, codes, names and pseudonyms
/// are mostly shorter; a longer one only grows the buffer.
const TEXT_BYTES: usize = 12;

fn ts(capacity: usize) -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC")
}

/// The rows and string bytes of a next batch that is `scale` times a builder's content:
/// the builders of a batch whose size is known in advance are allocated once, instead of
/// doubling as they grow (which leaves them up to half empty, and a month of generated
/// tickets is held whole while the previous one is written).
fn scaled(n: usize, scale: f64) -> usize {
    (n as f64 * scale).ceil() as usize
}

/// Accumulates tickets.
pub struct TicketsBuilder {
    s: [StringBuilder; 15],
    u8s: [UInt8Builder; 5],
    t: [TimestampMicrosecondBuilder; 5],
    reopen_count: UInt32Builder,
    source_sla_met: BooleanBuilder,
    effort_minutes: Float64Builder,
    rows: usize,
}

impl Default for TicketsBuilder {
    fn default() -> Self {
        TicketsBuilder {
            s: std::array::from_fn(|_| StringBuilder::new()),
            u8s: std::array::from_fn(|_| UInt8Builder::new()),
            t: std::array::from_fn(|_| ts(0)),
            reopen_count: UInt32Builder::new(),
            source_sla_met: BooleanBuilder::new(),
            effort_minutes: Float64Builder::new(),
            rows: 0,
        }
    }
}

impl TicketsBuilder {
    /// A builder with room for `rows` tickets (and about [`TEXT_BYTES`] per text value).
    pub fn with_capacity(rows: usize) -> Self {
        TicketsBuilder {
            s: std::array::from_fn(|_| StringBuilder::with_capacity(rows, rows * TEXT_BYTES)),
            u8s: std::array::from_fn(|_| UInt8Builder::with_capacity(rows)),
            t: std::array::from_fn(|_| ts(rows)),
            reopen_count: UInt32Builder::with_capacity(rows),
            source_sla_met: BooleanBuilder::with_capacity(rows),
            effort_minutes: Float64Builder::with_capacity(rows),
            rows: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn append(&mut self, f: &TicketFields<'_>) {
        let s = &mut self.s;
        s[0].append_value(f.ticket_id);
        s[1].append_value(f.org);
        s[2].append_value(f.desk);
        s[3].append_value(f.service);
        s[4].append_value(f.service_scope);
        s[5].append_value(f.kind);
        s[6].append_option(f.category);
        s[7].append_option(f.subcategory);
        s[8].append_value(f.channel);
        s[9].append_value(f.requester);
        s[10].append_value(f.requester_profile);
        s[11].append_option(f.team);
        s[12].append_option(f.agent);
        s[13].append_value(f.status);
        s[14].append_option(f.origin);
        let u = &mut self.u8s;
        u[0].append_option(f.impact);
        u[1].append_option(f.urgency);
        u[2].append_value(f.priority);
        u[3].append_value(f.level);
        u[4].append_option(f.satisfaction);
        let t = &mut self.t;
        t[0].append_value(f.created_at);
        t[1].append_option(f.assigned_at);
        t[2].append_option(f.resolved_at);
        t[3].append_option(f.closed_at);
        t[4].append_option(f.updated_at);
        self.reopen_count.append_option(f.reopen_count);
        self.source_sla_met.append_option(f.source_sla_met);
        self.effort_minutes.append_option(f.effort_minutes);
        self.rows += 1;
    }

    /// The batch so far, like [`TicketsBuilder::finish`]; the builder is then allocated
    /// for a next batch `scale` times this one (see [`scaled`]).
    pub fn finish_sized(&mut self, scale: f64) -> RecordBatch {
        let rows = scaled(self.rows, scale);
        let bytes: [usize; 15] =
            std::array::from_fn(|i| scaled(self.s[i].values_slice().len(), scale));
        let batch = self.finish();
        self.s = std::array::from_fn(|i| StringBuilder::with_capacity(rows, bytes[i]));
        self.u8s = std::array::from_fn(|_| UInt8Builder::with_capacity(rows));
        self.t = std::array::from_fn(|_| ts(rows));
        self.reopen_count = UInt32Builder::with_capacity(rows);
        self.source_sla_met = BooleanBuilder::with_capacity(rows);
        self.effort_minutes = Float64Builder::with_capacity(rows);
        batch
    }

    /// The batch so far; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        let [
            ticket_id,
            org,
            desk,
            service,
            scope,
            kind,
            category,
            subcategory,
            channel,
            requester,
            profile,
            team,
            agent,
            status,
            origin,
        ] = &mut self.s;
        let [impact, urgency, priority, level, satisfaction] = &mut self.u8s;
        let [created, assigned, resolved, closed, updated] = &mut self.t;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(ticket_id.finish()),
            Arc::new(org.finish()),
            Arc::new(desk.finish()),
            Arc::new(service.finish()),
            Arc::new(scope.finish()),
            Arc::new(kind.finish()),
            Arc::new(category.finish()),
            Arc::new(subcategory.finish()),
            Arc::new(impact.finish()),
            Arc::new(urgency.finish()),
            Arc::new(priority.finish()),
            Arc::new(channel.finish()),
            Arc::new(requester.finish()),
            Arc::new(profile.finish()),
            Arc::new(team.finish()),
            Arc::new(agent.finish()),
            Arc::new(level.finish()),
            Arc::new(status.finish()),
            Arc::new(created.finish()),
            Arc::new(assigned.finish()),
            Arc::new(resolved.finish()),
            Arc::new(closed.finish()),
            Arc::new(updated.finish()),
            Arc::new(origin.finish()),
            Arc::new(satisfaction.finish()),
            Arc::new(self.reopen_count.finish()),
            Arc::new(self.source_sla_met.finish()),
            Arc::new(self.effort_minutes.finish()),
        ];
        self.rows = 0;
        RecordBatch::try_new(Table::Tickets.file_schema(), columns)
            .expect("ticket builder columns follow the model")
    }
}

/// One event's fields, borrowed for appending.
#[derive(Debug, Clone, Default)]
pub struct EventFields<'a> {
    pub ticket_id: &'a str,
    pub event_id: &'a str,
    pub at: i64,
    pub kind: &'a str,
    pub from_value: Option<&'a str>,
    pub to_value: Option<&'a str>,
    pub actor: Option<&'a str>,
}

/// Accumulates events.
pub struct EventsBuilder {
    ticket_id: StringBuilder,
    event_id: StringBuilder,
    at: TimestampMicrosecondBuilder,
    kind: StringBuilder,
    from_value: StringBuilder,
    to_value: StringBuilder,
    actor: StringBuilder,
    rows: usize,
}

impl Default for EventsBuilder {
    fn default() -> Self {
        EventsBuilder {
            ticket_id: StringBuilder::new(),
            event_id: StringBuilder::new(),
            at: ts(0),
            kind: StringBuilder::new(),
            from_value: StringBuilder::new(),
            to_value: StringBuilder::new(),
            actor: StringBuilder::new(),
            rows: 0,
        }
    }
}

impl EventsBuilder {
    /// A builder with room for `rows` events (and about [`TEXT_BYTES`] per text value).
    pub fn with_capacity(rows: usize) -> Self {
        let text = || StringBuilder::with_capacity(rows, rows * TEXT_BYTES);
        EventsBuilder {
            ticket_id: text(),
            event_id: text(),
            at: ts(rows),
            kind: text(),
            from_value: text(),
            to_value: text(),
            actor: text(),
            rows: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn append(&mut self, f: &EventFields<'_>) {
        self.ticket_id.append_value(f.ticket_id);
        self.event_id.append_value(f.event_id);
        self.at.append_value(f.at);
        self.kind.append_value(f.kind);
        self.from_value.append_option(f.from_value);
        self.to_value.append_option(f.to_value);
        self.actor.append_option(f.actor);
        self.rows += 1;
    }

    /// The batch so far, like [`EventsBuilder::finish`]; the builder is then allocated
    /// for a next batch `scale` times this one (see [`scaled`]).
    pub fn finish_sized(&mut self, scale: f64) -> RecordBatch {
        let rows = scaled(self.rows, scale);
        let like = |b: &StringBuilder| {
            StringBuilder::with_capacity(rows, scaled(b.values_slice().len(), scale))
        };
        let next = EventsBuilder {
            ticket_id: like(&self.ticket_id),
            event_id: like(&self.event_id),
            at: ts(rows),
            kind: like(&self.kind),
            from_value: like(&self.from_value),
            to_value: like(&self.to_value),
            actor: like(&self.actor),
            rows: 0,
        };
        std::mem::replace(self, next).finish()
    }

    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ticket_id.finish()),
            Arc::new(self.event_id.finish()),
            Arc::new(self.at.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.from_value.finish()),
            Arc::new(self.to_value.finish()),
            Arc::new(self.actor.finish()),
        ];
        self.rows = 0;
        RecordBatch::try_new(Table::Events.file_schema(), columns)
            .expect("event builder columns follow the model")
    }
}
