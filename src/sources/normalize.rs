//! From what a connector decoded to canonical batches: mapping tables, local dates,
//! team levels and transfers, the figures derived from the history, and the quarantine
//! of every record that cannot be normalised (with its reason). Shared by every
//! connector, so iTop, GLPI and files follow the same rules.
//!
//! Connectors hand over [`RawTicket`]s and [`RawEvent`]s whose identities (requester,
//! agent, actor) are already keyed pseudonyms. A ticket's `record` (kept for the
//! quarantine) is either pseudonymised already or the source's JSON text with the names
//! of its identity keys ([`Record`]); the normaliser pseudonymises those when the record
//! goes to the quarantine, so nothing unpseudonymised leaves this stage.

use std::borrow::Cow;

use anyhow::Result;
use arrow::array::RecordBatch;
use chrono::{DateTime, NaiveDateTime, Offset, TimeZone};
use compact_str::CompactString;

use super::config::SourceConfig;
use crate::config::Config;
use crate::lake::validate::Rejected;
use crate::model::{Table, priority_from, values};
use crate::sources::batch::{EventFields, EventsBuilder, TicketFields, TicketsBuilder};

/// One ticket as a connector decoded it: source values, not yet mapped.
///
/// Its texts are [`CompactString`]s: most source values (ids, dates, codes, names,
/// pseudonyms) fit in 24 bytes and are kept inline, so decoding a ticket allocates for
/// its few long values only.
#[derive(Debug, Clone, Default)]
pub struct RawTicket {
    pub ticket_id: CompactString,
    /// The source record, for the quarantine.
    pub record: Record,
    pub org: Option<CompactString>,
    pub service: Option<CompactString>,
    pub category: Option<CompactString>,
    pub subcategory: Option<CompactString>,
    pub kind: Option<CompactString>,
    pub impact: Option<CompactString>,
    pub urgency: Option<CompactString>,
    pub priority: Option<CompactString>,
    pub channel: Option<CompactString>,
    pub requester: Option<CompactString>,
    pub profile: Option<CompactString>,
    pub team: Option<CompactString>,
    pub agent: Option<CompactString>,
    pub status: Option<CompactString>,
    pub created_at: Option<CompactString>,
    pub assigned_at: Option<CompactString>,
    pub resolved_at: Option<CompactString>,
    pub closed_at: Option<CompactString>,
    pub updated_at: Option<CompactString>,
    pub origin: Option<CompactString>,
    pub satisfaction: Option<CompactString>,
    pub reopen_count: Option<u32>,
    pub source_sla_met: Option<bool>,
    pub effort_minutes: Option<CompactString>,
}

/// A ticket's source record, kept in case the ticket goes to the quarantine.
#[derive(Debug, Clone)]
pub enum Record {
    /// Its identities already pseudonymised.
    Value(serde_json::Value),
    /// The record as the source sent it (its JSON text, a share of the answer's buffer:
    /// nothing is copied), and its keys whose values are identities. The identities are
    /// pseudonymised only if the record is quarantined.
    Json {
        text: bytes::Bytes,
        identities: &'static [&'static str],
    },
}

impl Default for Record {
    fn default() -> Record {
        Record::Value(serde_json::Value::Null)
    }
}

impl Record {
    /// The record with its identities pseudonymised.
    pub fn into_value(self, pseudo: &crate::pseudonym::Pseudonymizer) -> serde_json::Value {
        match self {
            Record::Value(v) => v,
            Record::Json { text, identities } => {
                // the text was read as JSON already
                let mut v = serde_json::from_slice(&text).unwrap_or(serde_json::Value::Null);
                scrub(&mut v, identities, pseudo);
                v
            }
        }
    }
}

/// What a history row says.
#[derive(Debug, Clone, PartialEq)]
pub enum RawChange {
    /// The ticket was created (its first status is `new`).
    Created,
    /// A status change, in source values.
    Status(Option<CompactString>, CompactString),
    /// The assigned team changed (names; `None` for no team).
    Team(Option<CompactString>, Option<CompactString>),
    /// The priority changed, in source values.
    Priority(Option<CompactString>, CompactString),
}

/// One history row (its texts inline when short, as [`RawTicket`]'s).
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub event_id: CompactString,
    pub ticket_id: CompactString,
    pub at: CompactString,
    pub change: RawChange,
    pub actor: Option<CompactString>,
    /// The source row, when the connector keeps it (else [`RawEvent::record`] rebuilds
    /// one from the decoded fields: a pull holds hundreds of thousands of history rows).
    pub raw: Option<serde_json::Value>,
}

impl RawEvent {
    /// The record for the quarantine.
    pub fn record(&self) -> serde_json::Value {
        match &self.raw {
            Some(r) => r.clone(),
            None => serde_json::json!({
                "event_id": self.event_id.as_str(),
                "ticket_id": self.ticket_id.as_str(),
                "at": self.at.as_str(),
                "change": format!("{:?}", self.change),
                "actor": self.actor.as_deref(),
            }),
        }
    }
}

/// What a connector brought back from one pull.
#[derive(Debug, Default)]
pub struct Pulled {
    pub tickets: Vec<RawTicket>,
    pub events: Vec<RawEvent>,
    /// Time spent decoding the answers (parsing JSON, reading the records), apart from
    /// waiting for them: the connector's own cost.
    pub decode_time: std::time::Duration,
    /// Records the connector itself could not decode.
    pub rejected: Vec<(Table, Rejected)>,
    /// Why the source's history could not be read, if it could not.
    pub history_unavailable: Option<String>,
}

/// Adds up the time a connector spends decoding answers (its calls may be in flight
/// together; decoding happens on the pulling task, one answer at a time).
///
/// It counts the CPU time of the decoding thread, not the time on the wall clock: the
/// loopback servers of `demo` and of the benchmarks answer from the same process, and a
/// thread that waits for a core while they work is not decoding.
#[derive(Debug, Default)]
pub struct DecodeClock(std::sync::atomic::AtomicU64);

impl DecodeClock {
    /// Runs `f`, counting its time.
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let started = thread_cpu_ns();
        let out = f();
        self.0.fetch_add(
            thread_cpu_ns().saturating_sub(started),
            std::sync::atomic::Ordering::Relaxed,
        );
        out
    }

    pub fn total(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// CPU time of the calling thread, in ns.
pub fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write to; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    if rc != 0 {
        return 0;
    }
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Canonical batches and the quarantine of one pull.
#[derive(Debug)]
pub struct Normalized {
    pub tickets: RecordBatch,
    pub events: RecordBatch,
    pub rejected: Vec<(Table, Rejected)>,
}

/// Parses the source's local dates.
#[derive(Debug, Clone)]
pub struct LocalDates {
    tz: chrono_tz::Tz,
    format: String,
    /// The format is `%Y-%m-%d %H:%M:%S` (iTop's history, GLPI's dates).
    iso_seconds: bool,
    offsets: DayOffsets,
}

/// The zone's UTC offsets of the local days already met, in a direct-mapped table of
/// [`DayOffsets::SLOTS`] days (a pull reads millions of local times, which fall on a few
/// hundred days; finding an offset in the zone's transitions is a binary search each
/// time). A day whose every hour has the same single offset keeps it; a day when the
/// offset changes (summer time) is kept as such, and its times go to the zone.
///
/// A slot holds the day (local seconds since the epoch ÷ 86,400, 32 bits) and the offset
/// in seconds plus [`DayOffsets::BIAS`] (so an empty slot, 0, matches nothing), or
/// [`DayOffsets::CHANGES`]. Relaxed atomics, so the dates can be shared; a race only means
/// a miss.
struct DayOffsets(Box<[std::sync::atomic::AtomicU64]>);

impl DayOffsets {
    const SLOTS: usize = 1024;
    const BIAS: i64 = 1 << 30;
    const CHANGES: u64 = 0xffff_ffff;

    fn new() -> DayOffsets {
        DayOffsets(
            (0..Self::SLOTS)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
        )
    }

    fn slot(&self, day: i64) -> &std::sync::atomic::AtomicU64 {
        &self.0[day.rem_euclid(Self::SLOTS as i64) as usize]
    }

    /// `Some(Some(offset))`, in seconds, for a day of one offset; `Some(None)` for a day
    /// when it changes; `None` if not kept.
    fn get(&self, day: i64) -> Option<Option<i64>> {
        let v = self.slot(day).load(std::sync::atomic::Ordering::Relaxed);
        if v == 0 || (v >> 32) as u32 != day as u32 {
            return None;
        }
        let low = v & 0xffff_ffff;
        Some((low != Self::CHANGES).then(|| low as i64 - Self::BIAS))
    }

    fn set(&self, day: i64, offset: Option<i64>) {
        let low = offset.map_or(Self::CHANGES, |o| (o + Self::BIAS) as u64);
        self.slot(day).store(
            (u64::from(day as u32) << 32) | low,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

impl Clone for DayOffsets {
    fn clone(&self) -> DayOffsets {
        DayOffsets::new()
    }
}

impl std::fmt::Debug for DayOffsets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DayOffsets")
    }
}

/// `YYYY-MM-DD HH:MM:SS` exactly, the common case read without going through a format
/// string (a pull reads millions of them), as seconds since the epoch of that wall-clock
/// time (as if it were UTC); `None` for anything else (an impossible date or time too),
/// which the format then reads or rejects.
fn iso_seconds(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let n = |range: std::ops::Range<usize>| {
        b[range].iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if d == 0 || d > month_days || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    // days since 1970-01-01 of the proleptic Gregorian date (years from March)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

impl LocalDates {
    pub fn new(tz: chrono_tz::Tz, format: &str) -> LocalDates {
        LocalDates {
            tz,
            format: format.to_string(),
            iso_seconds: format == "%Y-%m-%d %H:%M:%S",
            offsets: DayOffsets::new(),
        }
    }

    /// The UTC offset (seconds) of every instant of the local day `day` (local seconds
    /// since the epoch ÷ 86,400), if they all have the same single one: the same at
    /// every hour of the day and at its last second.
    fn day_offset(&self, day: i64) -> Option<i64> {
        if let Some(kept) = self.offsets.get(day) {
            return kept;
        }
        let at = |s: i64| {
            let naive = DateTime::from_timestamp(s, 0)?.naive_utc();
            match self.tz.offset_from_local_datetime(&naive) {
                chrono::LocalResult::Single(o) => Some(i64::from(o.fix().local_minus_utc())),
                _ => None,
            }
        };
        let start = day * 86_400;
        let offset = at(start).filter(|&o| {
            (1..24)
                .map(|h| start + h * 3600)
                .chain([start + 86_399])
                .all(|s| at(s) == Some(o))
        });
        self.offsets.set(day, offset);
        offset
    }

    /// UTC µs of a local wall-clock time; `rfc3339` reads instants with an offset. A time
    /// repeated when summer time ends reads as the first of the two; a time skipped when
    /// it begins reads as one hour later.
    pub fn parse(&self, text: &str) -> Result<i64, String> {
        let text = text.trim();
        if self.format == "rfc3339" {
            return DateTime::parse_from_rfc3339(text)
                .map(|d| d.timestamp_micros())
                .map_err(|e| format!("'{text}' is not an RFC 3339 instant ({e})"));
        }
        let (local_us, naive) = match self.iso_seconds.then(|| iso_seconds(text)).flatten() {
            Some(s) => (s * 1_000_000, None),
            None => {
                let naive = NaiveDateTime::parse_from_str(text, &self.format).map_err(|_| {
                    format!("'{text}' does not match the date format '{}'", self.format)
                })?;
                (naive.and_utc().timestamp_micros(), Some(naive))
            }
        };
        if let Some(offset) = self.day_offset(local_us.div_euclid(86_400_000_000)) {
            return Ok(local_us - offset * 1_000_000);
        }
        let naive = match naive {
            Some(naive) => naive,
            None => DateTime::from_timestamp_micros(local_us)
                .ok_or_else(|| format!("'{text}' is out of range"))?
                .naive_utc(),
        };
        let local = match self.tz.from_local_datetime(&naive) {
            chrono::LocalResult::Single(d) => d,
            chrono::LocalResult::Ambiguous(first, _) => first,
            chrono::LocalResult::None => self
                .tz
                .from_local_datetime(&(naive + chrono::Duration::hours(1)))
                .earliest()
                .ok_or_else(|| format!("'{text}' does not exist in {}", self.tz))?,
        };
        Ok(local.timestamp_micros())
    }

    /// The local wall-clock text of an instant (for filters sent to the source).
    pub fn format(&self, us: i64) -> String {
        DateTime::from_timestamp_micros(us)
            .unwrap_or_default()
            .with_timezone(&self.tz)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    }
}

/// The rules of one source, resolved once.
pub struct Normalizer<'a> {
    source: &'a SourceConfig,
    pseudo: &'a crate::pseudonym::Pseudonymizer,
    config: &'a Config,
    dates: LocalDates,
    /// History rows' dates (iTop keeps these in `Y-m-d H:i:s` whatever its display format).
    history_dates: LocalDates,
    status: Mapping,
    priority: Mapping,
    impact: Mapping,
    urgency: Mapping,
    kind: Mapping,
    channel: Mapping,
    service: Mapping,
    org: Mapping,
    satisfaction: Mapping,
    profile: Mapping,
    /// `<org>-`, lower case, of every other org: a team named so is another desk's.
    other_desks: Vec<String>,
    /// The catalogue's services: name → scope.
    scopes: foldhash::HashMap<&'a str, &'a str>,
}

/// A mapping table of a source (source value → canonical value), looked up for every
/// ticket and history row.
type Mapping = foldhash::HashMap<String, String>;

/// Default tables of a connector: (table name, entries).
pub type Defaults = &'static [(&'static str, &'static [(&'static str, &'static str)])];

impl<'a> Normalizer<'a> {
    /// `pseudo` pseudonymises the identities of the records that go to the quarantine.
    pub fn new(
        source: &'a SourceConfig,
        config: &'a Config,
        defaults: Defaults,
        pseudo: &'a crate::pseudonym::Pseudonymizer,
    ) -> Result<Self> {
        let table = |name: &str| {
            let d = defaults
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, e)| *e)
                .unwrap_or(&[]);
            source.table(name, d).into_iter().collect::<Mapping>()
        };
        // orgs are found by id or display name, whatever the case
        let mut org = Mapping::default();
        for o in &config.orgs {
            org.insert(o.id.to_lowercase(), o.id.clone());
            org.insert(o.name.to_lowercase(), o.id.clone());
        }
        for (k, v) in table("org") {
            org.insert(k.to_lowercase(), v);
        }
        let format = match &source.files {
            Some(f) if source.kind == super::config::SourceKind::Files => {
                f.timestamp_format.as_str()
            }
            _ => source.date_format.as_str(),
        };
        Ok(Normalizer {
            source,
            pseudo,
            config,
            dates: LocalDates::new(source.tz()?, format),
            history_dates: LocalDates::new(source.tz()?, format),
            status: table("status"),
            priority: table("priority"),
            impact: table("impact"),
            urgency: table("urgency"),
            kind: table("kind"),
            channel: table("channel"),
            service: table("service"),
            org,
            satisfaction: table("satisfaction"),
            profile: table("profile"),
            other_desks: config
                .orgs
                .iter()
                .filter(|o| o.id != source.org)
                .map(|o| format!("{}-", o.id.to_lowercase()))
                .collect(),
            // the first of a repeated name, as a search of the catalogue finds it
            scopes: config
                .services
                .iter()
                .rev()
                .map(|s| (s.name.as_str(), s.scope.as_str()))
                .collect(),
        })
    }

    pub fn dates(&self) -> &LocalDates {
        &self.dates
    }

    /// Reads history dates in `format` instead of the source's date format.
    pub fn with_history_format(mut self, format: &str) -> Self {
        self.history_dates = LocalDates::new(self.history_dates.tz, format);
        self
    }

    /// The support level of a team, and whether it belongs to another desk.
    pub fn team(&self, name: &str) -> (u8, bool) {
        let own = self.source.teams.get(name);
        let lower = name.to_lowercase();
        let level = own.and_then(|t| t.level).unwrap_or_else(|| {
            let tail = lower.trim_end();
            if tail.ends_with("n3") {
                3
            } else if tail.ends_with("n2") {
                2
            } else if tail.ends_with("n1") {
                1
            } else if self.config.services.iter().any(|s| s.owner_team == name) {
                2
            } else {
                1
            }
        });
        let other_desk = own.and_then(|t| t.other_desk).unwrap_or_else(|| {
            self.other_desks
                .iter()
                .any(|prefix| lower.starts_with(prefix.as_str()))
        });
        (level, other_desk)
    }

    fn date(&self, field: &str, v: &Option<CompactString>) -> Result<Option<i64>, String> {
        match v.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(t) => self
                .dates
                .parse(t)
                .map(Some)
                .map_err(|e| format!("unparseable {field}: {e}")),
        }
    }

    fn mapped(
        table: &Mapping,
        field: &str,
        v: &str,
        allowed: &[&'static str],
    ) -> Result<&'static str, String> {
        let out = table.get(v).map(String::as_str).unwrap_or(v);
        allowed
            .iter()
            .find(|a| **a == out)
            .copied()
            .ok_or_else(|| format!("unknown {field} '{v}'"))
    }

    fn level_value(table: &Mapping, field: &str, v: &str) -> Result<u8, String> {
        let out = table.get(v).map(String::as_str).unwrap_or(v);
        match out.parse::<u8>() {
            Ok(n) if (1..=4).contains(&n) => Ok(n),
            _ => Err(format!("unknown {field} '{v}'")),
        }
    }

    fn status_value(&self, v: &str) -> Result<&'static str, String> {
        Self::mapped(&self.status, "status", v, values::STATUSES)
    }

    /// Maps a whole pull to canonical batches; records that cannot be normalised go to
    /// the returned quarantine with their reason.
    pub fn normalize(&self, pulled: Pulled, history: bool) -> Normalized {
        let Pulled {
            tickets: raw_tickets,
            events: raw_events,
            mut rejected,
            ..
        } = pulled;
        // each ticket's number: its place in the pull (the first of a repeated id)
        let mut number: foldhash::HashMap<&str, u32> =
            foldhash::HashMap::with_capacity_and_hasher(raw_tickets.len(), Default::default());
        for (i, t) in raw_tickets.iter().enumerate() {
            number.entry(t.ticket_id.as_str()).or_insert(i as u32);
        }
        // the events read, as (ticket, instant, event), then in each ticket's time order
        let mut order: Vec<(u32, i64, u32)> = Vec::with_capacity(raw_events.len());
        for (i, e) in raw_events.iter().enumerate() {
            let Some(&ticket) = number.get(e.ticket_id.as_str()) else {
                rejected.push((
                    Table::Events,
                    Rejected {
                        key: e.event_id.to_string(),
                        reason: format!("event for unknown ticket '{}'", e.ticket_id),
                        record: e.record(),
                    },
                ));
                continue;
            };
            match self.history_dates.parse(&e.at) {
                Ok(at) => order.push((ticket, at, i as u32)),
                Err(why) => rejected.push((
                    Table::Events,
                    Rejected {
                        key: e.event_id.to_string(),
                        reason: format!("unparseable date: {why}"),
                        record: e.record(),
                    },
                )),
            }
        }
        drop(number);
        // ties on the instant by event id, then in the order the connector gave them: the
        // numbers sorted first, then each run of one ticket's instant by event id (a
        // stable sort, so the connector's order stays among equal ids)
        order.sort_unstable();
        for run in order.chunk_by_mut(|a, b| (a.0, a.1) == (b.0, b.1)) {
            if run.len() > 1 {
                run.sort_by(|a, b| {
                    raw_events[a.2 as usize]
                        .event_id
                        .cmp(&raw_events[b.2 as usize].event_id)
                });
            }
        }
        let mut tickets = TicketsBuilder::with_capacity(raw_tickets.len());
        let mut events = EventsBuilder::with_capacity(order.len() + order.len() / 8);
        let mut next = order.iter().peekable();
        let mut history_of: Vec<(i64, &RawEvent)> = Vec::new();
        let mut found = Found::default();
        for (i, t) in raw_tickets.iter().enumerate() {
            history_of.clear();
            while let Some((_, at, e)) = next.next_if(|(ticket, ..)| *ticket == i as u32) {
                history_of.push((*at, &raw_events[*e as usize]));
            }
            match self.ticket(t, &history_of, history, &mut found) {
                Ok((ticket, evs)) => {
                    tickets.append(&ticket.fields());
                    for e in &evs {
                        events.append(&EventFields {
                            ticket_id: &t.ticket_id,
                            event_id: &e.event_id,
                            at: e.at,
                            kind: e.kind,
                            from_value: e.from.as_deref(),
                            to_value: e.to.as_deref(),
                            actor: e.actor,
                        });
                    }
                }
                Err(reason) => {
                    rejected.push((
                        Table::Tickets,
                        Rejected {
                            key: t.ticket_id.to_string(),
                            record: t.record.clone().into_value(self.pseudo),
                            reason,
                        },
                    ));
                    // its history goes with it, so nothing refers to a missing ticket
                    for (_, e) in &history_of {
                        rejected.push((
                            Table::Events,
                            Rejected {
                                key: e.event_id.to_string(),
                                reason: format!("event of quarantined ticket '{}'", t.ticket_id),
                                record: e.record(),
                            },
                        ));
                    }
                }
            }
        }
        Normalized {
            tickets: tickets.finish(),
            events: events.finish(),
            rejected,
        }
    }

    /// One ticket and its canonical events, or why it cannot be normalised.
    fn ticket<'t>(
        &'t self,
        t: &'t RawTicket,
        history: &[(i64, &'t RawEvent)],
        has_history: bool,
        found: &mut Found<'t>,
    ) -> Result<(Ticket<'t>, Vec<Event<'t>>), String> {
        let mut team_of =
            |name: &'t str| *found.teams.entry(name).or_insert_with(|| self.team(name));
        if t.ticket_id.trim().is_empty() {
            return Err("empty ticket id".into());
        }
        let status = self.status_value(t.status.as_deref().ok_or("no status")?)?;
        let created_at = self
            .date("created_at", &t.created_at)?
            .ok_or("no creation date")?;
        let raw_service = t.service.as_deref().ok_or("no service")?;
        let service = self
            .service
            .get(raw_service)
            .map(String::as_str)
            .unwrap_or(raw_service);
        let scope = self.scopes.get(service).copied().ok_or_else(|| {
            format!(
                "service '{raw_service}' is not in the catalogue (map it in [sources.map.service])"
            )
        })?;
        let org = match &t.org {
            Some(o) if !o.trim().is_empty() => found
                .orgs
                .entry(o)
                .or_insert_with(|| self.org.get(&o.trim().to_lowercase()).map(String::as_str))
                .ok_or_else(|| format!("unknown org '{o}' (map it in [sources.map.org])"))?,
            _ => self.source.org.as_str(),
        };
        let kind = Self::mapped(
            &self.kind,
            "kind",
            t.kind.as_deref().ok_or("no kind")?,
            values::KINDS,
        )?;
        let small = |table: &Mapping, field: &str, v: &Option<CompactString>| {
            v.as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| Self::level_value(table, field, s))
                .transpose()
        };
        let impact = small(&self.impact, "impact", &t.impact)?;
        let urgency = small(&self.urgency, "urgency", &t.urgency)?;
        let priority = match small(&self.priority, "priority", &t.priority)? {
            Some(p) => p,
            None => priority_from(impact.unwrap_or(3), urgency.unwrap_or(3)),
        };
        let channel = match t.channel.as_deref().filter(|s| !s.is_empty()) {
            Some(c) => self.channel.get(c).map(String::as_str).unwrap_or("other"),
            None => "other",
        };
        let Some(channel) = values::CHANNELS.iter().find(|c| **c == channel).copied() else {
            return Err(format!("channel map gives '{channel}', not a channel"));
        };
        let profile = t
            .profile
            .as_deref()
            .map(|p| self.profile.get(p).map(String::as_str).unwrap_or(p))
            .and_then(|p| values::PROFILES.iter().find(|v| **v == p).copied())
            .unwrap_or("other");
        let satisfaction = match t
            .satisfaction
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(s) => {
                let v = self.satisfaction.get(s).map(String::as_str).unwrap_or(s);
                match v.parse::<f64>() {
                    Ok(x) if (1.0..=5.0).contains(&x.round()) => Some(x.round() as u8),
                    Ok(x) if x == 0.0 && !self.satisfaction.contains_key(s) => None,
                    _ => return Err(format!("satisfaction '{s}' is not on a 1..5 scale")),
                }
            }
        };
        let effort = match t
            .effort_minutes
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(s) => Some(
                s.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| format!("effort '{s}' is not a number of minutes"))?,
            ),
        };

        // the history: status, team changes as assign / escalate / transfer
        let mut events = Vec::with_capacity(history.len() + 1);
        let mut team_now: Option<&str> = None;
        let mut level = 1u8;
        let mut first_assign: Option<i64> = None;
        let mut last_resolution: Option<i64> = None;
        let mut last_closing: Option<i64> = None;
        let mut first_assigned_status: Option<i64> = None;
        let mut reopens = 0u32;
        for &(at, e) in history {
            let at = &at;
            let mut push = |kind: &'static str,
                            from: Option<Cow<'t, str>>,
                            to: Option<Cow<'t, str>>,
                            suffix: &str| {
                events.push(Event {
                    event_id: if suffix.is_empty() {
                        Cow::Borrowed(e.event_id.as_str())
                    } else {
                        Cow::Owned(format!("{}{suffix}", e.event_id))
                    },
                    at: *at,
                    kind,
                    from,
                    to,
                    actor: e.actor.as_deref(),
                });
            };
            match &e.change {
                RawChange::Created => push("status", None, Some("new".into()), ""),
                RawChange::Status(from, to) => {
                    let to = self
                        .status_value(to)
                        .map_err(|r| format!("history {}: {r}", e.event_id))?;
                    let from = from
                        .as_deref()
                        .filter(|f| !f.is_empty())
                        .map(|f| self.status_value(f))
                        .transpose()
                        .map_err(|r| format!("history {}: {r}", e.event_id))?;
                    if to == "resolved" || (to == "closed" && !matches!(from, Some("resolved"))) {
                        last_resolution = Some(*at);
                    }
                    if to == "closed" {
                        last_closing = Some(*at);
                    }
                    if to == "assigned" {
                        first_assigned_status.get_or_insert(*at);
                    }
                    if matches!(from, Some("resolved" | "closed"))
                        && !matches!(to, "resolved" | "closed" | "canceled")
                    {
                        reopens += 1;
                    }
                    if from == Some(to) {
                        continue;
                    }
                    push("status", from.map(Cow::Borrowed), Some(to.into()), "");
                }
                RawChange::Team(_, None) => {}
                RawChange::Team(_, Some(to)) => {
                    let (to_level, other_desk) = team_of(to);
                    if other_desk {
                        push("transfer", team_now.map(Cow::Borrowed), Some(to.into()), "");
                    } else {
                        if to_level > level {
                            push(
                                "escalate",
                                Some(level_text(level)),
                                Some(level_text(to_level)),
                                "-escalate",
                            );
                            level = to_level;
                        }
                        push("assign", None, Some(to.into()), "");
                        first_assign.get_or_insert(*at);
                    }
                    team_now = Some(to);
                }
                RawChange::Priority(from, to) => {
                    let to = Self::level_value(&self.priority, "priority", to)
                        .map_err(|r| format!("history {}: {r}", e.event_id))?;
                    let from = from
                        .as_deref()
                        .and_then(|f| Self::level_value(&self.priority, "priority", f).ok());
                    push("priority", from.map(level_text), Some(level_text(to)), "");
                }
            }
        }
        let team = t.team.as_deref().filter(|s| !s.is_empty());
        if let Some(tm) = &team {
            level = level.max(team_of(tm).0.min(3));
        }
        let assigned_at = match self.date("assigned_at", &t.assigned_at)? {
            Some(a) => Some(a),
            None => first_assign.or(first_assigned_status),
        };
        let resolved_at = if has_history && !history.is_empty() {
            last_resolution
        } else {
            self.date("resolved_at", &t.resolved_at)?
        };
        let updated_at = self.date("updated_at", &t.updated_at)?;
        let closed_at = match self.date("closed_at", &t.closed_at)? {
            Some(c) => Some(c),
            None if status == "closed" => last_closing,
            None => None,
        };
        let ticket = Ticket {
            ticket_id: &t.ticket_id,
            org,
            desk: &self.source.desk,
            service,
            scope,
            kind,
            category: t.category.as_deref().filter(|s| !s.is_empty()),
            subcategory: t.subcategory.as_deref().filter(|s| !s.is_empty()),
            impact,
            urgency,
            priority,
            channel,
            requester: t.requester.as_deref().unwrap_or_default(),
            profile,
            agent: t
                .agent
                .as_deref()
                .filter(|s| !s.is_empty())
                .filter(|_| team.is_some()),
            team,
            level,
            status,
            created_at,
            assigned_at,
            resolved_at,
            closed_at,
            updated_at,
            origin: t.origin.as_deref().filter(|s| !s.is_empty()),
            satisfaction,
            reopen_count: t
                .reopen_count
                .or((has_history && !history.is_empty()).then_some(reopens)),
            source_sla_met: t.source_sla_met,
            effort_minutes: effort,
        };
        Ok((ticket, events))
    }
}

/// What a pull's tickets name again and again (a few dozen teams and orgs, for
/// thousands of tickets), found once per pull.
#[derive(Default)]
struct Found<'t> {
    /// A team's support level, and whether it belongs to another desk.
    teams: foldhash::HashMap<&'t str, (u8, bool)>,
    /// An org as the source writes it: its id (none: unknown).
    orgs: foldhash::HashMap<&'t str, Option<&'t str>>,
}

/// A normalised ticket (borrowed from the raw one and the rules), appended to the
/// builder at once.
struct Ticket<'t> {
    ticket_id: &'t str,
    org: &'t str,
    desk: &'t str,
    service: &'t str,
    scope: &'t str,
    kind: &'static str,
    category: Option<&'t str>,
    subcategory: Option<&'t str>,
    impact: Option<u8>,
    urgency: Option<u8>,
    priority: u8,
    channel: &'static str,
    requester: &'t str,
    profile: &'static str,
    team: Option<&'t str>,
    agent: Option<&'t str>,
    level: u8,
    status: &'static str,
    created_at: i64,
    assigned_at: Option<i64>,
    resolved_at: Option<i64>,
    closed_at: Option<i64>,
    updated_at: Option<i64>,
    origin: Option<&'t str>,
    satisfaction: Option<u8>,
    reopen_count: Option<u32>,
    source_sla_met: Option<bool>,
    effort_minutes: Option<f64>,
}

impl Ticket<'_> {
    fn fields(&self) -> TicketFields<'_> {
        TicketFields {
            ticket_id: self.ticket_id,
            org: self.org,
            desk: self.desk,
            service: self.service,
            service_scope: self.scope,
            kind: self.kind,
            category: self.category,
            subcategory: self.subcategory,
            impact: self.impact,
            urgency: self.urgency,
            priority: self.priority,
            channel: self.channel,
            requester: self.requester,
            requester_profile: self.profile,
            team: self.team,
            agent: self.agent,
            level: self.level,
            status: self.status,
            created_at: self.created_at,
            assigned_at: self.assigned_at,
            resolved_at: self.resolved_at,
            closed_at: self.closed_at,
            updated_at: self.updated_at,
            origin: self.origin,
            satisfaction: self.satisfaction,
            reopen_count: self.reopen_count,
            source_sla_met: self.source_sla_met,
            effort_minutes: self.effort_minutes,
        }
    }
}

struct Event<'t> {
    event_id: Cow<'t, str>,
    at: i64,
    kind: &'static str,
    from: Option<Cow<'t, str>>,
    to: Option<Cow<'t, str>>,
    actor: Option<&'t str>,
}

/// A support level or priority (1 … 4) as text.
fn level_text(n: u8) -> Cow<'static, str> {
    match n {
        1 => "1".into(),
        2 => "2".into(),
        3 => "3".into(),
        4 => "4".into(),
        n => n.to_string().into(),
    }
}

/// Replaces the values of identity keys of a JSON record by their pseudonyms.
pub fn scrub(
    record: &mut serde_json::Value,
    keys: &[&str],
    pseudo: &crate::pseudonym::Pseudonymizer,
) {
    if let Some(map) = record.as_object_mut() {
        for k in keys {
            if let Some(v) = map.get_mut(*k) {
                let text = match v {
                    serde_json::Value::String(s) if !s.is_empty() && s != "0" => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                };
                if let Some(t) = text {
                    *v = serde_json::Value::String(pseudo.pseudonym(&t).into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> SourceConfig {
        toml::from_str("id = \"glpi-lyon\"\nkind = \"files\"\norg = \"LYON\"\ndesk = \"school\"\n")
            .unwrap()
    }

    fn raw(id: &str) -> RawTicket {
        RawTicket {
            ticket_id: id.into(),
            service: Some("Messagerie".into()),
            kind: Some("incident".into()),
            status: Some("new".into()),
            created_at: Some("2026-03-02 09:00:00".into()),
            ..Default::default()
        }
    }

    fn event(id: &str, ticket: &str, at: &str, change: RawChange) -> RawEvent {
        RawEvent {
            event_id: id.into(),
            ticket_id: ticket.into(),
            at: at.into(),
            change,
            actor: None,
            raw: None,
        }
    }

    #[test]
    fn iso_seconds_reads_as_the_format_does() {
        use chrono::Datelike;
        let format = "%Y-%m-%d %H:%M:%S";
        let chrono = |text: &str| {
            NaiveDateTime::parse_from_str(text, format)
                .ok()
                .map(|n| n.and_utc().timestamp())
        };
        for text in [
            "2025-03-30 02:30:00",
            "2024-02-29 23:59:59",
            "2000-02-29 12:00:00",
            "1900-02-29 12:00:00",
            "2100-02-29 12:00:00",
            "2025-04-31 12:00:00",
            "2025-00-10 12:00:00",
            "2025-01-00 12:00:00",
            "0999-01-01 00:00:00",
            "0000-03-01 00:00:00",
            "1969-12-31 23:59:59",
            "9999-12-31 23:59:59",
            "2025-02-29 10:00:00",
            "2025-13-01 10:00:00",
            "2025-01-01 24:00:00",
            "2025-01-01 10:60:00",
            "2025-01-01 10:00:60",
            "2025-1-05 09:00:00",
            "2025-01-05T09:00:00",
            "2025-01-05 09:00",
            "2025-01-0a 09:00:00",
            "+2025-01-05 09:00:0",
        ] {
            // what the fast path reads is what the format reads; the rest goes to the format
            if let Some(fast) = iso_seconds(text) {
                assert_eq!(Some(fast), chrono(text), "{text}");
            }
        }
        // every day of 1599..2401 (leap years of every kind), at a time that moves
        let mut day = chrono::NaiveDate::from_ymd_opt(1599, 1, 1).unwrap();
        let mut second = 0u32;
        while day.year() < 2401 {
            let text = day
                .and_hms_opt(second / 3600, second / 60 % 60, second % 60)
                .unwrap()
                .format(format)
                .to_string();
            assert_eq!(iso_seconds(&text), chrono(&text), "{text}");
            assert!(iso_seconds(&text).is_some(), "{text}");
            day = day.succ_opt().unwrap();
            second = (second + 7919) % 86_400;
        }
        for wrong in [
            "2025-02-29 10:00:00",
            "1900-02-29 12:00:00",
            "2025-04-31 12:00:00",
            "2025-00-10 12:00:00",
            "2025-01-01 24:00:00",
            "2025-1-05 09:00:00",
        ] {
            assert_eq!(iso_seconds(wrong), None, "{wrong}");
        }
        assert_eq!(
            iso_seconds("2024-02-29 23:59:59"),
            Some(1_709_251_199),
            "2024-02-29T23:59:59Z"
        );
        // through LocalDates: a time skipped in spring reads one hour later
        let d = LocalDates::new(chrono_tz::Europe::Paris, format);
        assert_eq!(d.parse("2025-03-30 02:30:00"), Ok(1_743_298_200_000_000));
        assert_eq!(d.parse("2025-01-05 09:00:00"), Ok(1_736_064_000_000_000));
        assert!(
            d.parse("2025-02-29 10:00:00")
                .unwrap_err()
                .contains("does not match")
        );
    }

    #[test]
    fn a_kept_record_is_pseudonymised_when_quarantined() {
        let pseudo = crate::pseudonym::Pseudonymizer::new(b"k");
        let text = bytes::Bytes::from_static(
            br#"{"ref":"R-1","caller_id_friendlyname":"Alice Martin","agent_id":0,"n":3}"#,
        );
        let record = Record::Json {
            text,
            identities: &["caller_id_friendlyname", "agent_id"],
        };
        let v = record.into_value(&pseudo);
        assert_eq!(v["ref"], "R-1");
        assert_eq!(
            v["caller_id_friendlyname"],
            pseudo.pseudonym("Alice Martin").as_str()
        );
        assert_eq!(
            v["agent_id"],
            pseudo.pseudonym("0").as_str(),
            "a number is an identity too"
        );
        assert_eq!(v["n"], 3);
    }

    #[test]
    fn teams_give_levels_transfers_and_events() {
        let (s, c) = (source(), Config::default());
        let pseudo = crate::pseudonym::Pseudonymizer::new(b"k");
        let n = Normalizer::new(&s, &c, &[], &pseudo).unwrap();
        assert_eq!(n.team("lyon-n1"), (1, false));
        assert_eq!(n.team("Lyon N3"), (3, false));
        assert_eq!(
            n.team("group-pedagogy"),
            (2, true),
            "a catalogue owner team, at the group desk"
        );
        assert_eq!(n.team("rennes-n1"), (1, true));
        let pulled = Pulled {
            tickets: vec![raw("1")],
            events: vec![
                event("e1", "1", "2026-03-02 09:00:00", RawChange::Created),
                event(
                    "e2",
                    "1",
                    "2026-03-02 09:30:00",
                    RawChange::Team(None, Some("lyon-n1".into())),
                ),
                event(
                    "e3",
                    "1",
                    "2026-03-02 10:00:00",
                    RawChange::Team(None, Some("lyon-n2".into())),
                ),
                event(
                    "e4",
                    "1",
                    "2026-03-02 11:00:00",
                    RawChange::Status(Some("new".into()), "resolved".into()),
                ),
                event(
                    "e5",
                    "1",
                    "2026-03-03 11:00:00",
                    RawChange::Status(Some("resolved".into()), "assigned".into()),
                ),
                event(
                    "e6",
                    "1",
                    "2026-03-03 12:00:00",
                    RawChange::Status(Some("assigned".into()), "resolved".into()),
                ),
                event("x1", "404", "2026-03-02 09:00:00", RawChange::Created),
            ],
            ..Default::default()
        };
        let out = n.normalize(pulled, true);
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].1.reason, "event for unknown ticket '404'");
        assert_eq!(out.rejected[0].1.key, "x1");
        let kinds: Vec<String> = {
            let k = out.events.column_by_name("kind").unwrap();
            let k = arrow::array::AsArray::as_string::<i32>(k.as_ref());
            k.iter().map(|v| v.unwrap().to_string()).collect()
        };
        assert_eq!(
            kinds,
            [
                "status", "assign", "escalate", "assign", "status", "status", "status"
            ]
        );
        let t = &out.tickets;
        let level = arrow::array::AsArray::as_primitive::<arrow::datatypes::UInt8Type>(
            t.column_by_name("level").unwrap().as_ref(),
        );
        assert_eq!(level.value(0), 2);
        let ts = |name: &str| {
            arrow::array::AsArray::as_primitive::<arrow::datatypes::TimestampMicrosecondType>(
                t.column_by_name(name).unwrap().as_ref(),
            )
            .value(0)
        };
        let d = LocalDates::new(chrono_tz::Europe::Paris, "%Y-%m-%d %H:%M:%S");
        // assigned at the first team, resolved at the last resolution, one reopen
        assert_eq!(ts("assigned_at"), d.parse("2026-03-02 09:30:00").unwrap());
        assert_eq!(ts("resolved_at"), d.parse("2026-03-03 12:00:00").unwrap());
        let reopens = arrow::array::AsArray::as_primitive::<arrow::datatypes::UInt32Type>(
            t.column_by_name("reopen_count").unwrap().as_ref(),
        );
        assert_eq!(reopens.value(0), 1);
    }

    #[test]
    fn events_go_by_ticket_then_instant_then_id_then_the_connectors_order() {
        let (s, c) = (source(), Config::default());
        let pseudo = crate::pseudonym::Pseudonymizer::new(b"k");
        let n = Normalizer::new(&s, &c, &[], &pseudo).unwrap();
        let status = |from: &str, to: &str| RawChange::Status(Some(from.into()), to.into());
        let pulled = Pulled {
            tickets: vec![raw("2"), raw("1")],
            events: vec![
                event("b", "1", "2026-03-02 10:00:00", status("new", "assigned")),
                event("z", "2", "2026-03-02 09:00:00", RawChange::Created),
                event("a", "1", "2026-03-02 10:00:00", status("new", "pending")),
                event("c", "1", "2026-03-02 09:00:00", RawChange::Created),
                // the same id twice at one instant: as the connector gave them
                event("b", "1", "2026-03-02 10:00:00", status("new", "resolved")),
                event("y", "2", "2026-03-02 08:00:00", status("new", "assigned")),
            ],
            ..Default::default()
        };
        let out = n.normalize(pulled, true);
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        let text = |name: &str| -> Vec<String> {
            let c = out.events.column_by_name(name).unwrap();
            let c = arrow::array::AsArray::as_string::<i32>(c.as_ref());
            c.iter().map(|v| v.unwrap().to_string()).collect()
        };
        // ticket "2" comes first in the pull, so its events do too
        assert_eq!(text("event_id"), ["y", "z", "c", "a", "b", "b"]);
        assert_eq!(
            text("to_value"),
            ["assigned", "new", "new", "pending", "assigned", "resolved"]
        );
    }

    #[test]
    fn local_dates_follow_the_zone() {
        let d = LocalDates::new(chrono_tz::Europe::Paris, "%Y-%m-%d %H:%M:%S");
        // 12:04:20 Paris in November is 11:04:20 UTC (the live iTop's example)
        let us = d.parse("2026-11-23 12:04:20").unwrap();
        assert_eq!(
            DateTime::from_timestamp_micros(us).unwrap().to_rfc3339(),
            "2026-11-23T11:04:20+00:00"
        );
        assert_eq!(d.format(us), "2026-11-23 12:04:20");
        // summer time: UTC+2
        let us = d.parse("2026-07-01 08:00:00").unwrap();
        assert_eq!(
            DateTime::from_timestamp_micros(us).unwrap().to_rfc3339(),
            "2026-07-01T06:00:00+00:00"
        );
        // the repeated hour reads as the first one (02:30 CEST = 00:30 UTC)
        let us = d.parse("2026-10-25 02:30:00").unwrap();
        assert_eq!(
            DateTime::from_timestamp_micros(us).unwrap().to_rfc3339(),
            "2026-10-25T00:30:00+00:00"
        );
        let err = d.parse("23/11/2026 12:04").unwrap_err();
        assert!(err.contains("does not match"), "{err}");
    }

    #[test]
    fn kept_day_offsets_read_as_the_zone_does() {
        // every 7 minutes 13 seconds over two years, read twice (the second time from
        // the kept offsets), in a zone changing by an hour and in one changing by half an
        // hour in the middle of an hour (Lord Howe Island, 02:00 ↔ 02:30)
        for tz in [chrono_tz::Europe::Paris, chrono_tz::Australia::Lord_Howe] {
            let d = LocalDates::new(tz, "%Y-%m-%d %H:%M:%S");
            let start = chrono::NaiveDate::from_ymd_opt(2025, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap();
            for round in 0..2 {
                for i in 0..(2 * 365 * 24 * 3600 / 433) {
                    let naive = start + chrono::Duration::seconds(i * 433);
                    let text = naive.format("%Y-%m-%d %H:%M:%S").to_string();
                    let zone = match tz.from_local_datetime(&naive) {
                        chrono::LocalResult::Single(d) | chrono::LocalResult::Ambiguous(d, _) => d,
                        chrono::LocalResult::None => tz
                            .from_local_datetime(&(naive + chrono::Duration::hours(1)))
                            .earliest()
                            .unwrap(),
                    };
                    assert_eq!(
                        d.parse(&text),
                        Ok(zone.timestamp_micros()),
                        "{tz} {text}, round {round}"
                    );
                }
            }
        }
    }
}
