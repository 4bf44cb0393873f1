//! The SQL of `queries/`, embedded at build time. Setting `TICKETLAKE_QUERIES` to a
//! folder with the same layout reads the files from there at run time instead (for
//! benchmarks and for editing a query without rebuilding).

use anyhow::{Context, Result};

/// Shared views, in dependency order: (name, SQL).
const VIEWS: &[(&str, &str)] = &[
    (
        "ticket_history",
        include_str!("../queries/views/ticket_history.sql"),
    ),
    (
        "pending_periods",
        include_str!("../queries/views/pending_periods.sql"),
    ),
    (
        "status_intervals",
        include_str!("../queries/views/status_intervals.sql"),
    ),
];

/// KPI queries, in report order: (name, SQL).
const KPIS: &[(&str, &str)] = &[
    ("volume", include_str!("../queries/kpi/volume.sql")),
    (
        "group_service_volume",
        include_str!("../queries/kpi/group_service_volume.sql"),
    ),
    (
        "resolution_time",
        include_str!("../queries/kpi/resolution_time.sql"),
    ),
    (
        "time_to_own",
        include_str!("../queries/kpi/time_to_own.sql"),
    ),
    (
        "service_level",
        include_str!("../queries/kpi/service_level.sql"),
    ),
    (
        "breaches_in_flight",
        include_str!("../queries/kpi/breaches_in_flight.sql"),
    ),
    (
        "reopen_rate",
        include_str!("../queries/kpi/reopen_rate.sql"),
    ),
    ("backlog", include_str!("../queries/kpi/backlog.sql")),
    (
        "recurring_incidents",
        include_str!("../queries/kpi/recurring_incidents.sql"),
    ),
    (
        "recurring_pairs",
        include_str!("../queries/kpi/recurring_pairs.sql"),
    ),
    (
        "satisfaction",
        include_str!("../queries/kpi/satisfaction.sql"),
    ),
    (
        "first_level",
        include_str!("../queries/kpi/first_level.sql"),
    ),
    (
        "requalification",
        include_str!("../queries/kpi/requalification.sql"),
    ),
    ("effort", include_str!("../queries/kpi/effort.sql")),
    (
        "history_coverage",
        include_str!("../queries/kpi/history_coverage.sql"),
    ),
];

/// How the rows of a KPI computed a few months at a time (`-- Split: month` in its query)
/// are put together, when not in order: (KPI name, SQL over the table `chunks`).
const COMBINE: &[(&str, &str)] = &[(
    "recurring_pairs",
    include_str!("../queries/combine/recurring_pairs.sql"),
)];

/// The decision model's measured inputs (`queries/decision/`).
const DECISION: &[(&str, &str)] = &[
    ("volumes", include_str!("../queries/decision/volumes.sql")),
    ("r", include_str!("../queries/decision/r.sql")),
    ("aht", include_str!("../queries/decision/aht.sql")),
    ("hop_bh", include_str!("../queries/decision/hop_bh.sql")),
    ("m", include_str!("../queries/decision/m.sql")),
];

/// The names of the decision inputs' queries.
pub fn decision_names() -> Vec<&'static str> {
    DECISION.iter().map(|(n, _)| *n).collect()
}

/// The SQL of one decision input.
pub fn decision(name: &str) -> Result<String> {
    let (n, s) = DECISION
        .iter()
        .find(|(n, _)| *n == name)
        .with_context(|| format!("unknown decision input '{name}'"))?;
    load("decision", n, s)
}

fn load(folder: &str, name: &str, embedded: &str) -> Result<String> {
    let text = match std::env::var_os("TICKETLAKE_QUERIES") {
        Some(dir) => {
            let path = std::path::Path::new(&dir)
                .join(folder)
                .join(format!("{name}.sql"));
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
        }
        None => embedded.to_string(),
    };
    Ok(text.trim().trim_end_matches(';').to_string())
}

/// The SQL that puts together the rows of a KPI computed a few months at a time, when
/// it has one (else the rows are put one after the other).
pub fn combine(name: &str) -> Result<Option<String>> {
    COMBINE
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, s)| load("combine", n, s))
        .transpose()
}

/// The shared views, in dependency order.
pub fn views() -> Result<Vec<(String, String)>> {
    VIEWS
        .iter()
        .map(|(n, s)| Ok((n.to_string(), load("views", n, s)?)))
        .collect()
}

/// The names of every KPI, in report order.
pub fn kpi_names() -> Vec<&'static str> {
    KPIS.iter().map(|(n, _)| *n).collect()
}

/// The SQL of one KPI.
pub fn kpi(name: &str) -> Result<String> {
    let (n, s) = KPIS
        .iter()
        .find(|(n, _)| *n == name)
        .with_context(|| format!("unknown KPI '{name}' (known: {})", kpi_names().join(", ")))?;
    load("kpi", n, s)
}
