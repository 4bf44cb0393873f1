//! Report stage: the report's model, read from the KPI results (`kpi --format json`
//! rows, the one source of truth) and the lake's state files. Sums of KPI rows (all
//! desks, all services) and month-over-month changes are computed here; templates only
//! format. Nothing here reads Parquet or runs SQL.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use serde_json::{Value, json};

use super::charts::{self, Labels, PALETTE, Series};
use super::filters::{self, Lang};
use crate::config::Config;
use crate::decision::inputs::Decision;
use crate::decision::{Choice, totals_over};
use crate::engine::localtime::Month;

/// The KPIs the report reads over the whole trend (the month, the 11 before, and the
/// same month a year before): 13 months.
pub const TREND_KPIS: &[&str] = &[
    "volume",
    "group_service_volume",
    "service_level",
    "reopen_rate",
    "backlog",
    "recurring_incidents",
    "satisfaction",
    "first_level",
    "requalification",
];

/// The KPIs the report reads for the month alone.
pub const MONTH_KPIS: &[&str] = &[
    "resolution_time",
    "breaches_in_flight",
    "recurring_pairs",
    "history_coverage",
];

/// Months of trend before the report's month.
pub const TREND_BEFORE: i32 = 12;

/// A source's freshness, from its state file and quarantine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Freshness {
    pub source: String,
    /// Last successful write, RFC 3339 UTC.
    pub last_run: Option<String>,
    pub watermark: Option<String>,
    /// Records held in the quarantine (all runs).
    pub quarantined: u64,
    /// Why the source's history could not be read on its last pull.
    pub history_unavailable: Option<String>,
}

/// Everything the report is made of.
pub struct Inputs<'a> {
    pub month: Month,
    /// `kpi --format json` over the trend months, for [`TREND_KPIS`].
    pub trend: Value,
    /// `kpi --format json` over the month, for [`MONTH_KPIS`].
    pub current: Value,
    pub freshness: Vec<Freshness>,
    pub lake: String,
    pub config: &'a Config,
    /// `decide` over the `window_months` ending with the month.
    pub decision: Decision,
}

fn rows<'v>(kpis: &'v Value, name: &str) -> &'v [Value] {
    kpis.get(name)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn f(r: &Value, key: &str) -> Option<f64> {
    r.get(key).and_then(Value::as_f64)
}

fn s<'v>(r: &'v Value, key: &str) -> &'v str {
    r.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Sum of `field` over the rows that match `pred`.
fn sum(rows: &[Value], field: &str, pred: impl Fn(&Value) -> bool) -> f64 {
    rows.iter()
        .filter(|r| pred(r))
        .filter_map(|r| f(r, field))
        .sum()
}

/// `volume`'s rows added up over the columns the page does not show (service and its
/// scope), by month, org, desk, kind and channel: at 10M tickets, 13 months are 43,000
/// rows, which the page's hundred or so sums each read whole (half a second of the
/// report, after its queries), and about 2,000 once added up.
fn volume_as_shown(rows: &[Value]) -> Vec<Value> {
    const SHOWN: [&str; 5] = ["month", "org", "desk", "kind", "channel"];
    let mut sums: BTreeMap<[&str; 5], f64> = BTreeMap::new();
    for r in rows {
        *sums.entry(SHOWN.map(|k| s(r, k))).or_default() += f(r, "tickets").unwrap_or(0.0);
    }
    sums.into_iter()
        .map(|(key, tickets)| {
            let mut row: serde_json::Map<String, Value> = SHOWN
                .iter()
                .zip(key)
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            row.insert("tickets".to_string(), json!(tickets));
            Value::Object(row)
        })
        .collect()
}

fn month_row<'v>(rows: &'v [Value], month: &str) -> Option<&'v Value> {
    rows.iter().find(|r| s(r, "month") == month)
}

/// A catalogue lookup: `t("tile.created")`.
struct Words<'a>(&'a Value);

impl Words<'_> {
    fn get(&self, path: &str) -> String {
        let mut v = self.0;
        for part in path.split('.') {
            v = match v.get(part) {
                Some(x) => x,
                None => return format!("[{path}]"),
            };
        }
        v.as_str()
            .map_or_else(|| format!("[{path}]"), str::to_string)
    }
}

impl Words<'_> {
    /// A chart's title and axis descriptions: `chart.<name>`, `axis.<x>`, `axis.<y>`.
    fn chart(&self, name: &str, x: &str, y: &str) -> Labels {
        Labels {
            title: self.get(&format!("chart.{name}")),
            x_desc: self.get(&format!("axis.{x}")),
            y_desc: self.get(&format!("axis.{y}")),
        }
    }
}

/// A headline figure with its changes.
fn tile(
    key: &str,
    fmt: &str,
    values: [Option<f64>; 3],
    points: bool,
    better: &str,
    na: Option<&str>,
    denominator: Option<f64>,
) -> Value {
    let [now, prev, year] = values;
    let change = |then: Option<f64>| -> Option<f64> {
        let (n, t) = (now?, then?);
        if points {
            Some(n - t)
        } else if t > 0.0 {
            Some((n - t) / t)
        } else {
            None
        }
    };
    json!({
        "key": key,
        "fmt": fmt,
        "value": now,
        "prev": prev,
        "year": year,
        "change_prev": change(prev),
        "change_year": change(year),
        "change_kind": if points { "points" } else { "relative" },
        "better": better,
        "na": if now.is_none() { na } else { None },
        "denominator": denominator,
    })
}

/// A table: columns (catalogue key under `col.`, format kind), rows of cells.
fn table(columns: &[(&str, &str)], rows: Vec<Vec<Value>>, total: Option<Vec<Value>>) -> Value {
    json!({
        "columns": columns
            .iter()
            .map(|(k, f)| json!({"key": k, "fmt": f, "numeric": !matches!(*f, "text" | "month")}))
            .collect::<Vec<_>>(),
        "rows": rows,
        "total": total,
    })
}

fn opt(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |x| json!(x))
}

fn ratio(n: f64, d: f64) -> Option<f64> {
    (d > 0.0).then(|| n / d)
}

/// Builds the template context and the charts (name → SVG) for one language.
pub fn build(
    inputs: &Inputs,
    lang: Lang,
    catalogue: &Value,
) -> Result<(Value, BTreeMap<String, String>)> {
    let t = Words(catalogue);
    let m = inputs.month;
    let month = m.to_string();
    let months: Vec<String> = (-TREND_BEFORE..=0).map(|i| m.plus(i).to_string()).collect();
    let prev = m.plus(-1).to_string();
    let year = m.plus(-12).to_string();
    let short: Vec<String> = months
        .iter()
        .map(|x| filters::month(lang, x, true))
        .collect();
    let tr = &inputs.trend;
    let cur = &inputs.current;
    let mut charts = BTreeMap::new();
    let count_fmt = move |v: f64| filters::number(lang, v, 0);
    let rate_fmt = move |v: f64| filters::percent(lang, v, 0);
    let hours_fmt = move |v: f64| filters::number(lang, v, 0);

    // ---- headline tiles
    let volume = &volume_as_shown(rows(tr, "volume"));
    let created = |mm: &str| {
        let n = sum(volume, "tickets", |r| s(r, "month") == mm);
        Some(n)
    };
    let sl = rows(tr, "service_level");
    let sl_f = |mm: &str, k: &str| month_row(sl, mm).and_then(|r| f(r, k));
    let resolved = |mm: &str| Some(sl_f(mm, "resolved").unwrap_or(0.0));
    let backlog = rows(tr, "backlog");
    let last_day = |mm: Month| {
        let d = mm.next().first_day().pred_opt().expect("a day");
        d.format("%Y-%m-%d").to_string()
    };
    let backlog_end = |mm: Month| {
        let day = last_day(mm);
        backlog
            .iter()
            .find(|r| s(r, "day") == day)
            .and_then(|r| f(r, "open_tickets"))
    };
    let rr = rows(tr, "reopen_rate");
    let reopen = |mm: &str| {
        month_row(rr, mm)
            .filter(|r| f(r, "first_resolved").unwrap_or(0.0) > 0.0)
            .and_then(|r| f(r, "reopen_rate"))
    };
    let sat = rows(tr, "satisfaction");
    let satisfied = |mm: &str| month_row(sat, mm).and_then(|r| f(r, "satisfied_rate"));
    let m3 = |g: &dyn Fn(&str) -> Option<f64>| [g(&month), g(&prev), g(&year)];
    let history_sources = rows(cur, "history_coverage")
        .iter()
        .filter(|r| f(r, "with_history").unwrap_or(0.0) > 0.0)
        .count();
    let tiles = vec![
        tile("created", "int", m3(&created), false, "neutral", None, None),
        tile("resolved", "int", m3(&resolved), false, "up", None, None),
        tile(
            "backlog_end",
            "int",
            [
                backlog_end(m),
                backlog_end(m.plus(-1)),
                backlog_end(m.plus(-12)),
            ],
            false,
            "down",
            Some("no_data"),
            None,
        ),
        tile(
            "median_ttr",
            "hours",
            m3(&|mm| sl_f(mm, "median_bh")),
            false,
            "down",
            Some("no_resolved"),
            sl_f(&month, "resolved"),
        ),
        tile(
            "sla_ttr",
            "pct",
            m3(&|mm| sl_f(mm, "sla_ttr_rate")),
            true,
            "up",
            Some("no_resolved"),
            sl_f(&month, "resolved"),
        ),
        tile(
            "sla_tto",
            "pct",
            m3(&|mm| sl_f(mm, "sla_tto_rate")),
            true,
            "up",
            Some("no_owned"),
            sl_f(&month, "owned"),
        ),
        tile(
            "reopen_rate",
            "pct",
            m3(&reopen),
            true,
            "down",
            Some(if history_sources == 0 {
                "no_history"
            } else {
                "no_first_resolved"
            }),
            month_row(rr, &month).and_then(|r| f(r, "first_resolved")),
        ),
        tile(
            "satisfaction",
            "pct",
            m3(&satisfied),
            true,
            "up",
            Some("no_answers"),
            month_row(sat, &month).and_then(|r| f(r, "answered")),
        ),
    ];

    // ---- the decisive section: group-service volume by path
    let gsv = rows(tr, "group_service_volume");
    let paths = ["direct", "forwarded", "kept_at_school"];
    let path_colors = [PALETTE[0], PALETTE[2], PALETTE[1]];
    let series: Vec<Series> = paths
        .iter()
        .zip(path_colors)
        .map(|(p, color)| Series {
            label: t.get(&format!("path.{p}")),
            color,
            values: months
                .iter()
                .map(|mm| {
                    Some(sum(gsv, "tickets", |r| {
                        s(r, "month") == mm && s(r, "path") == *p
                    }))
                })
                .collect(),
        })
        .collect();
    charts.insert(
        "gsv_paths".to_string(),
        charts::stacked_bars(
            &short,
            &series,
            &t.chart("gsv_paths", "month", "tickets"),
            &count_fmt,
        )?,
    );
    let headcount: BTreeMap<&str, f64> = inputs
        .config
        .orgs
        .iter()
        .filter_map(|o| Some((o.id.as_str(), f64::from(o.headcount?))))
        .collect();
    let all_counted = inputs.config.orgs.iter().all(|o| o.headcount.is_some());
    let users: Option<f64> = all_counted.then(|| headcount.values().sum());
    let per_1000 = |n: f64, u: Option<f64>| u.filter(|u| *u > 0.0).map(|u| n / u * 1000.0);
    let trailing: Vec<&String> = months[1..].iter().collect(); // the 12 months ending with the month
    let mut services: Vec<&str> = gsv
        .iter()
        .filter(|r| trailing.iter().any(|mm| *mm == s(r, "month")))
        .map(|r| s(r, "service"))
        .collect();
    services.sort_unstable();
    services.dedup();
    let in_month = |r: &Value| s(r, "month") == month;
    let mut service_rows = Vec::new();
    for svc in &services {
        let by = |p: &str| {
            sum(gsv, "tickets", |r| {
                in_month(r) && s(r, "service") == *svc && s(r, "path") == p
            })
        };
        let total: f64 = paths.iter().map(|p| by(p)).sum();
        let mean12 = sum(gsv, "tickets", |r| {
            s(r, "service") == *svc && trailing.iter().any(|mm| *mm == s(r, "month"))
        }) / trailing.len() as f64;
        service_rows.push(vec![
            json!(svc),
            json!(by("direct")),
            json!(by("forwarded")),
            json!(by("kept_at_school")),
            json!(total),
            json!(mean12),
            opt(per_1000(total, users)),
        ]);
    }
    let by_path = |p: &str| sum(gsv, "tickets", |r| in_month(r) && s(r, "path") == p);
    let gsv_total: f64 = paths.iter().map(|p| by_path(p)).sum();
    let gsv_mean12 = sum(gsv, "tickets", |r| {
        trailing.iter().any(|mm| *mm == s(r, "month"))
    }) / trailing.len() as f64;
    let gsv_table = table(
        &[
            ("service", "text"),
            ("direct", "int"),
            ("forwarded", "int"),
            ("kept_at_school", "int"),
            ("total", "int"),
            ("mean_12", "num1"),
            ("per_1000", "num1"),
        ],
        service_rows,
        Some(vec![
            json!(t.get("col.all")),
            json!(by_path("direct")),
            json!(by_path("forwarded")),
            json!(by_path("kept_at_school")),
            json!(gsv_total),
            json!(gsv_mean12),
            opt(per_1000(gsv_total, users)),
        ]),
    );
    let kept = by_path("kept_at_school");
    let forwarded = by_path("forwarded");
    let org_rows: Vec<Vec<Value>> = inputs
        .config
        .orgs
        .iter()
        .map(|o| {
            let n = sum(gsv, "tickets", |r| in_month(r) && s(r, "org") == o.id);
            let hc = o.headcount.map(f64::from);
            vec![
                json!(o.id),
                json!(o.name),
                json!(n),
                opt(hc),
                opt(per_1000(n, hc)),
            ]
        })
        .collect();
    let gsv_orgs = table(
        &[
            ("org", "text"),
            ("org_name", "text"),
            ("group_tickets", "int"),
            ("headcount", "int"),
            ("per_1000", "num1"),
        ],
        org_rows,
        Some(vec![
            json!(t.get("col.all")),
            json!(""),
            json!(gsv_total),
            opt(users),
            opt(per_1000(gsv_total, users)),
        ]),
    );

    // ---- volume by org and desk, kind, channel
    let orgs: Vec<&str> = inputs.config.orgs.iter().map(|o| o.id.as_str()).collect();
    let desks = [("group", PALETTE[0]), ("school", PALETTE[1])];
    let desk_series: Vec<Series> = desks
        .iter()
        .map(|(d, color)| Series {
            label: t.get(&format!("desk.{d}")),
            color: *color,
            values: orgs
                .iter()
                .map(|o| {
                    Some(sum(volume, "tickets", |r| {
                        in_month(r) && s(r, "org") == *o && s(r, "desk") == *d
                    }))
                })
                .collect(),
        })
        .collect();
    charts.insert(
        "volume_orgs".to_string(),
        charts::stacked_bars(
            &orgs.iter().map(|o| o.to_string()).collect::<Vec<_>>(),
            &desk_series,
            &t.chart("volume_orgs", "org", "tickets"),
            &count_fmt,
        )?,
    );
    let kinds = [
        ("incident", PALETTE[6]),
        ("service_request", PALETTE[2]),
        ("assistance", PALETTE[7]),
    ];
    let kind_series: Vec<Series> = kinds
        .iter()
        .map(|(k, color)| Series {
            label: t.get(&format!("kind.{k}")),
            color: *color,
            values: months
                .iter()
                .map(|mm| {
                    Some(sum(volume, "tickets", |r| {
                        s(r, "month") == mm && s(r, "kind") == *k
                    }))
                })
                .collect(),
        })
        .collect();
    charts.insert(
        "volume_kinds".to_string(),
        charts::stacked_bars(
            &short,
            &kind_series,
            &t.chart("volume_kinds", "month", "tickets"),
            &count_fmt,
        )?,
    );
    let month_total = sum(volume, "tickets", in_month);
    let channels = ["portal", "email", "phone", "chat", "in_person", "other"];
    let channel_rows: Vec<Vec<Value>> = channels
        .iter()
        .map(|c| {
            let n = sum(volume, "tickets", |r| in_month(r) && s(r, "channel") == *c);
            let p = sum(volume, "tickets", |r| {
                s(r, "month") == prev && s(r, "channel") == *c
            });
            vec![
                json!(t.get(&format!("channel.{c}"))),
                json!(n),
                opt(ratio(n, month_total)),
                json!(p),
            ]
        })
        .collect();
    let channel_table = table(
        &[
            ("channel", "text"),
            ("tickets", "int"),
            ("share", "pct"),
            ("prev_month", "int"),
        ],
        channel_rows,
        Some(vec![
            json!(t.get("col.all")),
            json!(month_total),
            opt(ratio(month_total, month_total)),
            json!(sum(volume, "tickets", |r| s(r, "month") == prev)),
        ]),
    );
    let kind_rows: Vec<Vec<Value>> = kinds
        .iter()
        .map(|(k, _)| {
            let n = sum(volume, "tickets", |r| in_month(r) && s(r, "kind") == *k);
            vec![
                json!(t.get(&format!("kind.{k}"))),
                json!(n),
                opt(ratio(n, month_total)),
            ]
        })
        .collect();
    let kind_table = table(
        &[("kind", "text"), ("tickets", "int"), ("share", "pct")],
        kind_rows,
        None,
    );

    // ---- resolution time by priority, against the targets
    let rt = rows(cur, "resolution_time");
    let target = |p: u8| inputs.config.sla_for(p).map(|x| x.ttr_h);
    let tto_target = |p: u8| inputs.config.sla_for(p).map(|x| x.tto_min / 60.0);
    let rt_rows: Vec<Vec<Value>> = rt
        .iter()
        .map(|r| {
            let p = f(r, "priority").unwrap_or(0.0) as u8;
            vec![
                json!(t.get(&format!("desk.{}", s(r, "desk")))),
                json!(format!("P{p}")),
                opt(f(r, "resolved")),
                opt(f(r, "median_bh")),
                opt(f(r, "p90_bh")),
                opt(target(p)),
                opt(f(r, "sla_ttr_rate")),
            ]
        })
        .collect();
    let rt_table = table(
        &[
            ("desk", "text"),
            ("priority", "text"),
            ("resolved", "int"),
            ("median_bh", "hours"),
            ("p90_bh", "hours"),
            ("target_h", "hours"),
            ("sla_rate", "pct"),
        ],
        rt_rows,
        None,
    );
    let priorities: Vec<u8> = inputs.config.sla.iter().map(|x| x.priority).collect();
    let mut rt_series = Vec::new();
    for (i, (d, _)) in desks.iter().enumerate() {
        for (j, q) in ["median_bh", "p90_bh"].iter().enumerate() {
            rt_series.push(Series {
                label: format!(
                    "{} · {}",
                    t.get(&format!("desk.{d}")),
                    t.get(&format!("col.{q}"))
                ),
                color: PALETTE[[0, 5, 1, 7][i * 2 + j]],
                values: priorities
                    .iter()
                    .map(|p| {
                        rt.iter()
                            .find(|r| s(r, "desk") == *d && f(r, "priority") == Some(f64::from(*p)))
                            .and_then(|r| f(r, q))
                    })
                    .collect(),
            });
        }
    }
    charts.insert(
        "resolution".to_string(),
        charts::grouped_bars(
            &priorities
                .iter()
                .map(|p| format!("P{p}"))
                .collect::<Vec<_>>(),
            &rt_series,
            &priorities.iter().map(|p| target(*p)).collect::<Vec<_>>(),
            &t.get("chart.target"),
            &t.chart("resolution", "priority", "business_hours"),
            &hours_fmt,
        )?,
    );
    let targets_table = table(
        &[
            ("priority", "text"),
            ("tto_target", "hours"),
            ("target_h", "hours"),
        ],
        priorities
            .iter()
            .map(|p| vec![json!(format!("P{p}")), opt(tto_target(*p)), opt(target(*p))])
            .collect(),
        None,
    );

    // ---- SLA trend and breaches in flight
    let sla_series = vec![
        Series {
            label: t.get("tile.sla_ttr"),
            color: PALETTE[0],
            values: months.iter().map(|mm| sl_f(mm, "sla_ttr_rate")).collect(),
        },
        Series {
            label: t.get("tile.sla_tto"),
            color: PALETTE[1],
            values: months.iter().map(|mm| sl_f(mm, "sla_tto_rate")).collect(),
        },
    ];
    charts.insert(
        "sla".to_string(),
        charts::lines(
            &short,
            &sla_series,
            Some(1.0),
            &t.chart("sla", "month", "share"),
            &rate_fmt,
        )?,
    );
    let bif = rows(cur, "breaches_in_flight");
    let bif_rows: Vec<Vec<Value>> = bif
        .iter()
        .map(|r| {
            vec![
                json!(t.get(&format!("desk.{}", s(r, "desk")))),
                json!(format!("P{}", f(r, "priority").unwrap_or(0.0))),
                opt(f(r, "open_tickets")),
                opt(f(r, "unowned")),
                opt(f(r, "past_tto")),
                opt(f(r, "past_ttr")),
            ]
        })
        .collect();
    let bif_total = |k: &str| json!(sum(bif, k, |_| true));
    let bif_table = table(
        &[
            ("desk", "text"),
            ("priority", "text"),
            ("open_tickets", "int"),
            ("unowned", "int"),
            ("past_tto", "int"),
            ("past_ttr", "int"),
        ],
        bif_rows,
        Some(vec![
            json!(t.get("col.all")),
            json!(""),
            bif_total("open_tickets"),
            bif_total("unowned"),
            bif_total("past_tto"),
            bif_total("past_ttr"),
        ]),
    );

    // ---- backlog
    let parse_day = |r: &Value| NaiveDate::parse_from_str(s(r, "day"), "%Y-%m-%d").ok();
    let month_days: Vec<&Value> = backlog
        .iter()
        .filter(|r| s(r, "day").starts_with(&month))
        .collect();
    let day_series = |rs: &[&Value]| -> Result<(Vec<NaiveDate>, Vec<Series>)> {
        let days = rs
            .iter()
            .map(|r| parse_day(r).context("a backlog row without a day"))
            .collect::<Result<Vec<_>>>()?;
        Ok((
            days,
            vec![Series {
                label: t.get("col.open_tickets"),
                color: PALETTE[0],
                values: rs.iter().map(|r| f(r, "open_tickets")).collect(),
            }],
        ))
    };
    let month_label = |d: NaiveDate| filters::month(lang, &d.format("%Y-%m").to_string(), true);
    let (days, series) = day_series(&month_days)?;
    charts.insert(
        "backlog_month".to_string(),
        charts::daily(
            &days,
            &series,
            &month_label,
            &t.chart("backlog_month", "day", "open_tickets"),
            &count_fmt,
        )?,
    );
    let all_days: Vec<&Value> = backlog.iter().collect();
    let (days, series) = day_series(&all_days)?;
    charts.insert(
        "backlog_year".to_string(),
        charts::daily(
            &days,
            &series,
            &month_label,
            &t.chart("backlog_year", "month", "open_tickets"),
            &count_fmt,
        )?,
    );
    let end_day = last_day(m);
    let end_row = backlog.iter().find(|r| s(r, "day") == end_day);
    let buckets = ["age_0_7", "age_8_30", "age_31_90", "age_over_90"];
    let open_end = end_row.and_then(|r| f(r, "open_tickets"));
    let ages_table = table(
        &[("age", "text"), ("open_tickets", "int"), ("share", "pct")],
        buckets
            .iter()
            .map(|b| {
                let n = end_row.and_then(|r| f(r, b));
                vec![
                    json!(t.get(&format!("age.{b}"))),
                    opt(n),
                    opt(n.zip(open_end).and_then(|(n, o)| ratio(n, o))),
                ]
            })
            .collect(),
        Some(vec![
            json!(t.get("col.all")),
            opt(open_end),
            opt(open_end.and_then(|o| ratio(o, o))),
        ]),
    );

    // ---- quality of service: reopen, first level, requalification, recurring
    let fl = rows(tr, "first_level");
    let first_level = |mm: &str| {
        let resolved = sum(fl, "resolved", |r| s(r, "month") == mm);
        ratio(sum(fl, "first_level", |r| s(r, "month") == mm), resolved)
    };
    let rq = rows(tr, "requalification");
    let ri = rows(tr, "recurring_incidents");
    let rate_of = |rs: &[Value], mm: &str, k: &str| month_row(rs, mm).and_then(|r| f(r, k));
    let quality_series = vec![
        Series {
            label: t.get("tile.reopen_rate"),
            color: PALETTE[6],
            values: months.iter().map(|mm| reopen(mm)).collect(),
        },
        Series {
            label: t.get("col.first_level_rate"),
            color: PALETTE[0],
            values: months.iter().map(|mm| first_level(mm)).collect(),
        },
        Series {
            label: t.get("col.requalification_rate"),
            color: PALETTE[1],
            values: months.iter().map(|mm| rate_of(rq, mm, "rate")).collect(),
        },
        Series {
            label: t.get("col.recurring_rate"),
            color: PALETTE[2],
            values: months
                .iter()
                .map(|mm| rate_of(ri, mm, "recurring_rate"))
                .collect(),
        },
    ];
    charts.insert(
        "quality".to_string(),
        charts::lines(
            &short,
            &quality_series,
            Some(1.0),
            &t.chart("quality", "month", "share"),
            &rate_fmt,
        )?,
    );
    let quality_row = |mm: &str| {
        vec![
            json!(mm),
            opt(reopen(mm)),
            opt(first_level(mm)),
            opt(rate_of(rq, mm, "rate")),
            opt(rate_of(ri, mm, "recurring_rate")),
        ]
    };
    let quality_table = table(
        &[
            ("month", "month"),
            ("reopen_rate", "pct"),
            ("first_level_rate", "pct"),
            ("requalification_rate", "pct"),
            ("recurring_rate", "pct"),
        ],
        vec![quality_row(&month), quality_row(&prev), quality_row(&year)],
        None,
    );
    let fl_table = table(
        &[
            ("desk", "text"),
            ("resolved", "int"),
            ("first_level", "int"),
            ("first_level_rate", "pct"),
        ],
        fl.iter()
            .filter(|r| in_month(r))
            .map(|r| {
                vec![
                    json!(t.get(&format!("desk.{}", s(r, "desk")))),
                    opt(f(r, "resolved")),
                    opt(f(r, "first_level")),
                    opt(f(r, "first_level_rate")),
                ]
            })
            .collect(),
        None,
    );
    let pairs_table = table(
        &[
            ("service", "text"),
            ("category", "text"),
            ("incidents", "int"),
            ("recurring", "int"),
            ("recurring_rate", "pct"),
        ],
        rows(cur, "recurring_pairs")
            .iter()
            .filter(|r| f(r, "recurring").unwrap_or(0.0) > 0.0)
            .take(10)
            .map(|r| {
                vec![
                    r["service"].clone(),
                    r["category"].clone(),
                    opt(f(r, "incidents")),
                    opt(f(r, "recurring")),
                    opt(f(r, "recurring_rate")),
                ]
            })
            .collect(),
        None,
    );
    let sat_series = vec![
        Series {
            label: t.get("col.answer_rate"),
            color: PALETTE[5],
            values: months
                .iter()
                .map(|mm| rate_of(sat, mm, "answer_rate"))
                .collect(),
        },
        Series {
            label: t.get("col.satisfied_rate"),
            color: PALETTE[0],
            values: months
                .iter()
                .map(|mm| rate_of(sat, mm, "satisfied_rate"))
                .collect(),
        },
    ];
    charts.insert(
        "satisfaction".to_string(),
        charts::lines(
            &short,
            &sat_series,
            Some(1.0),
            &t.chart("satisfaction", "month", "share"),
            &rate_fmt,
        )?,
    );
    let sat_row = |mm: &str| {
        let r = month_row(sat, mm);
        let g = |k: &str| opt(r.and_then(|r| f(r, k)));
        vec![
            json!(mm),
            g("closed"),
            g("answered"),
            g("answer_rate"),
            g("satisfied_rate"),
            g("mean_score"),
        ]
    };
    let sat_table = table(
        &[
            ("month", "month"),
            ("closed", "int"),
            ("answered", "int"),
            ("answer_rate", "pct"),
            ("satisfied_rate", "pct"),
            ("mean_score", "score"),
        ],
        vec![sat_row(&month), sat_row(&prev), sat_row(&year)],
        None,
    );

    // ---- data quality and freshness
    let hc = rows(cur, "history_coverage");
    let mut notes = Vec::new();
    let fresh_rows: Vec<Vec<Value>> = inputs
        .freshness
        .iter()
        .map(|fr| {
            let cov = hc.iter().find(|r| s(r, "source") == fr.source);
            let tickets = cov.and_then(|r| f(r, "tickets"));
            let without = cov.and_then(|r| f(r, "without_history"));
            if let Some(why) = &fr.history_unavailable {
                notes
                    .push(json!({"key": "history_unreadable", "source": fr.source, "detail": why}));
            } else if cov.is_some_and(|r| f(r, "with_history") == Some(0.0)) {
                notes.push(
                    json!({"key": "source_without_history", "source": fr.source, "detail": null}),
                );
            }
            vec![
                json!(fr.source),
                json!(
                    fr.last_run
                        .as_deref()
                        .map(|x| x.replace('T', " ").replace('Z', " UTC"))
                ),
                json!(fr.quarantined),
                json!(tickets.unwrap_or(0.0)),
                json!(without.unwrap_or(0.0)),
                opt(cov.and_then(|r| f(r, "history_rate"))),
            ]
        })
        .collect();
    let fresh_table = table(
        &[
            ("source", "text"),
            ("last_run", "text"),
            ("quarantined", "int"),
            ("tickets", "int"),
            ("without_history", "int"),
            ("history_rate", "pct"),
        ],
        fresh_rows,
        None,
    );

    // ---- appendix: how to reproduce each figure
    let lake = &inputs.lake;
    let from = m.plus(-TREND_BEFORE);
    let kpi_cmd = |names: &[&str], whole: bool| {
        let ks: String = names.iter().map(|n| format!(" --kpi {n}")).collect();
        if whole {
            format!("ticketlake kpi --lake {lake} --from {from} --to {m}{ks} --format json")
        } else {
            format!("ticketlake kpi --lake {lake} --from {m}{ks} --format json")
        }
    };
    let appendix = vec![
        json!({"key": "tiles", "command": kpi_cmd(&["volume", "service_level", "backlog", "reopen_rate", "satisfaction"], true)}),
        json!({"key": "gsv", "command": kpi_cmd(&["group_service_volume"], true)}),
        json!({"key": "volume", "command": kpi_cmd(&["volume"], true)}),
        json!({"key": "resolution", "command": kpi_cmd(&["resolution_time"], false)}),
        json!({"key": "sla", "command": kpi_cmd(&["service_level", "breaches_in_flight"], true)}),
        json!({"key": "backlog", "command": kpi_cmd(&["backlog"], true)}),
        json!({"key": "quality", "command": kpi_cmd(&["reopen_rate", "first_level", "requalification", "recurring_incidents", "recurring_pairs", "satisfaction"], true)}),
        json!({"key": "data_quality", "command": kpi_cmd(&["history_coverage"], false)}),
        json!({"key": "sql", "command": format!("ticketlake sql --lake {lake} \"select source, count(*) as tickets from tickets where local_month(created_at) = '{m}' group by source order by source\"")}),
    ];

    // ---- the decision
    let d = &inputs.decision;
    let model = d.measured.model();
    let option_names: Vec<String> = Choice::ALL
        .iter()
        .map(|c| t.get(&format!("option.{}", c.name())))
        .collect();
    let curve = totals_over(&model, &d.assumptions, 0.25, 4.0, 0.05);
    let curve_series: Vec<Series> = (0..3)
        .map(|i| Series {
            label: option_names[i].clone(),
            color: [PALETTE[1], PALETTE[0], PALETTE[2]][i],
            values: curve.iter().map(|(_, v)| Some(v[i])).collect(),
        })
        .collect();
    let marks: Vec<f64> = d.crossovers.iter().map(|c| c.k).collect();
    let k_fmt = move |k: f64| {
        format!(
            "×{}",
            filters::number(lang, k, if k.fract() == 0.0 { 0 } else { 2 })
        )
    };
    charts.insert(
        "decision".to_string(),
        charts::curves(
            &curve.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            &curve_series,
            &marks,
            &t.chart("decision", "multiplier", "fte"),
            &k_fmt,
            &move |v: f64| filters::number(lang, v, 0),
        )?,
    );
    let mut ranked: Vec<&crate::decision::Outcome> = d.options.iter().collect();
    ranked.sort_by(|a, b| a.fte_total.total_cmp(&b.fte_total));
    let best = ranked[0].option;
    // the next change of the cheapest option above today's volumes, the last one below
    let next = d
        .crossovers
        .iter()
        .find(|c| c.k > 1.0 && c.ranking_above[0] != best);
    let since = d
        .crossovers
        .iter()
        .rev()
        .find(|c| c.k <= 1.0 && c.ranking_below[0] != best);
    let measured_rows: Vec<Vec<Value>> = [
        ("r", d.measured.r, "pct"),
        ("aht_g", d.measured.aht_g, "num1"),
        ("aht_s", d.measured.aht_s, "num1"),
        ("hop_bh", d.measured.hop_bh, "hours"),
        ("m", d.measured.m, "pct"),
    ]
    .iter()
    .map(|(k, p, f)| {
        vec![
            json!(t.get(&format!("input.{k}"))),
            json!(p.value),
            json!(f),
            json!(t.get(&format!("provenance.{}", p.source))),
        ]
    })
    .collect();
    let outcome_rows: Vec<Vec<Value>> = [
        ("group_tickets_per_month", "num1"),
        ("fte_group_workload", "num2"),
        ("fte_group_queue", "num2"),
        ("fte_group", "num2"),
        ("fte_schools", "num2"),
        ("fte_setup", "num2"),
        ("fte_total", "num2"),
        ("tto_service_level", "pct"),
        ("added_delay_bh", "hours"),
    ]
    .iter()
    .map(|(k, f)| {
        let mut row = vec![json!(t.get(&format!("outcome.{k}"))), json!(f)];
        for o in &d.options {
            row.push(
                serde_json::to_value(o)
                    .ok()
                    .and_then(|v| v.get(*k).cloned())
                    .unwrap_or(Value::Null),
            );
        }
        row
    })
    .collect();
    let decision = json!({
        "window": d.window,
        "g": model.g(),
        "s": model.s(),
        "best": best.name(),
        "ranked": ranked.iter().map(|o| json!({"option": o.option.name(), "fte_total": o.fte_total})).collect::<Vec<_>>(),
        "next": next.map(|c| json!({"option": c.ranking_above[0].name(), "k": c.k, "group_volume": c.group_volume})),
        "since": since.map(|c| json!({"option": c.ranking_below[0].name(), "k": c.k, "group_volume": c.group_volume})),
        "measured": measured_rows,
        "options": Choice::ALL.iter().map(|c| c.name()).collect::<Vec<_>>(),
        "outcomes": outcome_rows,
        "crossovers": d.crossovers.iter().map(|c| json!({"k": c.k, "group_volume": c.group_volume, "below": c.ranking_below[0].name(), "above": c.ranking_above[0].name()})).collect::<Vec<_>>(),
        "assumptions": d.assumptions,
        "command": format!("ticketlake decide --lake {} --from {} --to {} --format json", inputs.lake, d.window.from, d.window.to),
    });

    let ctx = json!({
        "decision": decision,
        "lang": lang.code(),
        "t": catalogue,
        "month": month,
        "prev": prev,
        "year": year,
        "from": months[0],
        "lake": lake,
        "tiles": tiles,
        "gsv": {
            "table": gsv_table,
            "orgs": gsv_orgs,
            "users": users,
            "total": gsv_total,
            "kept_share": ratio(kept, kept + forwarded),
        },
        "volume": {"channels": channel_table, "kinds": kind_table, "total": month_total},
        "resolution": {"table": rt_table, "targets": targets_table},
        "breaches": bif_table,
        "backlog": {"ages": ages_table, "end": open_end, "end_day": end_day},
        "quality": {"table": quality_table, "first_level": fl_table, "pairs": pairs_table},
        "satisfaction": sat_table,
        "freshness": fresh_table,
        "notes": notes,
        "appendix": appendix,
    });
    Ok((ctx, charts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_is_added_up_over_service_and_scope() {
        let row = |month: &str, org: &str, service: &str, scope: &str, n: u64| {
            json!({"month": month, "org": org, "desk": "school", "service": service,
                "service_scope": scope, "kind": "incident", "channel": "email", "tickets": n})
        };
        let rows = [
            row("2026-04", "LYON", "wifi", "school", 3),
            row("2026-04", "LYON", "erp", "group", 4),
            row("2026-04", "RENNES", "wifi", "school", 5),
            row("2026-03", "LYON", "wifi", "school", 6),
        ];
        let shown = volume_as_shown(&rows);
        // LYON's two April services are one row of 3 + 4, in (month, org, …) order
        let key = |r: &Value| (s(r, "month").to_string(), s(r, "org").to_string());
        assert_eq!(
            shown
                .iter()
                .map(|r| (key(r), f(r, "tickets")))
                .collect::<Vec<_>>(),
            [
                (("2026-03".into(), "LYON".into()), Some(6.0)),
                (("2026-04".into(), "LYON".into()), Some(7.0)),
                (("2026-04".into(), "RENNES".into()), Some(5.0)),
            ]
        );
        assert!(shown.iter().all(|r| s(r, "desk") == "school"
            && s(r, "kind") == "incident"
            && s(r, "channel") == "email"
            && r.get("service").is_none()));
    }
}
