//! Helpers shared by the integration tests: local Paris times, tiny lakes built by hand.

use chrono::TimeZone;
use ticketlake::config::Config;
use ticketlake::engine::localtime::{LocalDays, Month};
use ticketlake::kpi::{self, Period};
use ticketlake::lake::Lake;
use ticketlake::lake::write::LakeWriter;
use ticketlake::model::Table;
use ticketlake::sources::batch::{EventFields, EventsBuilder, TicketFields, TicketsBuilder};

/// `YYYY-MM-DD HH:MM` in Europe/Paris → UTC µs.
pub fn paris(s: &str) -> i64 {
    let naive = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
    chrono_tz::Europe::Paris
        .from_local_datetime(&naive)
        .single()
        .unwrap()
        .timestamp_micros()
}

/// A ticket with sensible defaults; tests override what they need.
pub fn ticket(id: &'static str, created: &str) -> TicketFields<'static> {
    TicketFields {
        ticket_id: id,
        org: "LYON",
        desk: "school",
        service: "Messagerie",
        service_scope: "school",
        kind: "incident",
        category: Some("boîte"),
        subcategory: Some("quota"),
        impact: Some(3),
        urgency: Some(3),
        priority: 3,
        channel: "portal",
        requester: "p_requester",
        requester_profile: "staff",
        team: Some("lyon-n1"),
        agent: Some("p_agent"),
        level: 1,
        status: "new",
        created_at: paris(created),
        ..Default::default()
    }
}

/// An event of a hand-built lake: (ticket_id, event_id, at, kind, from, to).
pub type Event = (String, String, i64, String, Option<String>, Option<String>);

/// Status history of a ticket: (local time, from, to).
pub fn history(events: &mut Vec<Event>, id: &str, steps: &[(&str, Option<&str>, &str)]) {
    for (at, from, to) in steps {
        let n = events.len() + 1;
        events.push((
            id.to_string(),
            format!("{n:06}"),
            paris(at),
            "status".into(),
            from.map(str::to_string),
            Some(to.to_string()),
        ));
    }
}

/// One source's tickets and events.
pub struct SourceData {
    pub id: &'static str,
    pub tickets: Vec<TicketFields<'static>>,
    pub events: Vec<Event>,
}

/// Writes sources into a new lake in a temporary directory.
pub async fn write_lake(dir: &std::path::Path, sources: &[SourceData]) -> Lake {
    write_into(Lake::open(dir.to_str().unwrap(), true).unwrap(), sources).await
}

/// Writes sources into a lake over any object store.
pub async fn write_into(lake: Lake, sources: &[SourceData]) -> Lake {
    let mut writer = LakeWriter::new(lake.clone(), LocalDays::new(chrono_tz::Europe::Paris));
    for s in sources {
        let mut tb = TicketsBuilder::default();
        for t in &s.tickets {
            tb.append(t);
        }
        writer.stage(Table::Tickets, s.id, &tb.finish()).unwrap();
        let mut eb = EventsBuilder::default();
        for (tid, eid, at, kind, from, to) in &s.events {
            eb.append(&EventFields {
                ticket_id: tid,
                event_id: eid,
                at: *at,
                kind,
                from_value: from.as_deref(),
                to_value: to.as_deref(),
                actor: None,
            });
        }
        writer.stage(Table::Events, s.id, &eb.finish()).unwrap();
    }
    writer.finish().await.unwrap();
    lake
}

/// All KPIs of [from, to] as the JSON contract of `kpi --format json`.
pub async fn kpis(lake: &Lake, from: &str, to: &str) -> serde_json::Value {
    kpis_in_chunks(lake, from, to, None).await
}

/// All KPIs of [from, to], those split by month computed over chunks of about `bytes` of
/// tickets (None: as `kpi` does).
pub async fn kpis_in_chunks(
    lake: &Lake,
    from: &str,
    to: &str,
    bytes: Option<u64>,
) -> serde_json::Value {
    let config = Config::default();
    let ctx = ticketlake::engine::session(lake, &config).await.unwrap();
    let days = LocalDays::new(chrono_tz::Europe::Paris);
    let period = Period::new(Month::parse(from).unwrap(), Month::parse(to).unwrap()).unwrap();
    let results = match bytes {
        None => kpi::run(&ctx, lake, &days, &[], period).await,
        Some(bytes) => {
            let jobs = ticketlake::queries::kpi_names()
                .into_iter()
                .map(|n| (n, period));
            kpi::side_by_side_in(&ctx, lake, &days, jobs, bytes).await
        }
    };
    kpi::to_json(&results.unwrap()).unwrap()
}

/// The float at `row[key]`, or a panic naming what is missing.
pub fn num(row: &serde_json::Value, key: &str) -> f64 {
    row.get(key)
        .and_then(|v| v.as_f64())
        .unwrap_or_else(|| panic!("no number '{key}' in {row}"))
}

pub fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() < 1e-6,
        "{what}: got {actual}, expected {expected}"
    );
}

/// The row of `kpi` whose string columns equal `keys`.
pub fn row<'a>(
    all: &'a serde_json::Value,
    kpi: &str,
    keys: &[(&str, serde_json::Value)],
) -> &'a serde_json::Value {
    let rows = all[kpi]
        .as_array()
        .unwrap_or_else(|| panic!("no KPI {kpi}"));
    rows.iter()
        .find(|r| keys.iter().all(|(k, v)| &r[*k] == v))
        .unwrap_or_else(|| panic!("{kpi}: no row with {keys:?} in {rows:#?}"))
}

/// The path of the built `ticketlake` binary.
pub fn bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_ticketlake"))
}

/// Writes a generated lake into `dir` with `ticketlake fixtures` and `args` (its size and
/// span), and opens it.
pub fn fixtures_lake(dir: &std::path::Path, args: &[&str]) -> Lake {
    let made = std::process::Command::new(bin())
        .args(["fixtures", "--lake", dir.to_str().unwrap(), "-q"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    Lake::open(dir.to_str().unwrap(), false).unwrap()
}

/// The option of `decide --format json` with the lowest total FTE.
pub fn cheapest(decision: &serde_json::Value) -> &serde_json::Value {
    decision["options"]
        .as_array()
        .unwrap()
        .iter()
        .min_by(|a, b| num(a, "fte_total").total_cmp(&num(b, "fte_total")))
        .unwrap()
}
