//! The decision model's measurements: runs `queries/decision/` over a window and hands
//! the rows to the pure model in `decision`. No formula lives here.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use datafusion::prelude::SessionContext;
use serde_json::{Value, json};

use super::Period;
use crate::config::Config;
use crate::decision::inputs::{self, Decision, Window};
use crate::engine::localtime::{LocalDays, Month};

/// The comparison for a lake over a window (the default window when `from`/`to` are none).
pub async fn compute(
    ctx: &SessionContext,
    config: &Config,
    days: &LocalDays,
    from: Option<Month>,
    to: Option<Month>,
    sets: &[String],
) -> Result<Decision> {
    compute_knowing(ctx, config, days, from, to, sets, serde_json::Map::new()).await
}

/// [`compute`], with the rows of some inputs already known (`{"input name": [rows…]}`,
/// as [`from_kpis`] gives them): only the other inputs' queries are run.
pub async fn compute_knowing(
    ctx: &SessionContext,
    config: &Config,
    days: &LocalDays,
    from: Option<Month>,
    to: Option<Month>,
    sets: &[String],
    known: serde_json::Map<String, serde_json::Value>,
) -> Result<Decision> {
    let decision = config.decision.with_overrides(sets)?;
    let to = match to {
        Some(m) => m,
        None => last_complete_month(ctx, days).await?,
    };
    let from = from.unwrap_or_else(|| to.plus(1 - decision.window_months as i32));
    let period = Period::new(from, to)?;
    let months = (0..).take_while(|i| from.plus(*i) <= to).count() as u32;
    let rows = super::decision_inputs_besides(ctx, days, period, known).await?;
    let orgs: Vec<String> = config.orgs.iter().map(|o| o.id.clone()).collect();
    let measured = inputs::measured(&rows, months, &orgs, &decision.fallback);
    let (start, end) = period.bounds(days);
    let calendars = crate::engine::udf::Calendars::from_config(config)?;
    let hours =
        calendars.default_calendar().business_seconds(start, end) / 3600.0 / f64::from(months);
    let assumptions = inputs::assumptions(&decision, hours);
    let window = Window {
        from: from.to_string(),
        to: to.to_string(),
        months,
    };
    Ok(inputs::decide(window, measured, assumptions))
}

/// The newest month with tickets, unless it is the current (incomplete) one.
async fn last_complete_month(
    ctx: &datafusion::prelude::SessionContext,
    days: &LocalDays,
) -> Result<Month> {
    let batches = ctx
        .sql_with_options(
            "select max(created_at) as newest from tickets",
            crate::engine::read_only(),
        )
        .await?
        .collect()
        .await?;
    let newest = batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
                .filter(|a| arrow::array::Array::is_valid(*a, 0))
                .map(|a| a.value(0))
        })
        .context("the lake has no tickets: nothing to measure (give --from and --to to compare on assumptions alone)")?;
    let newest = Month::parse(&days.month_of(newest))?;
    let now = Month::parse(&days.month_of(chrono::Utc::now().timestamp_micros()))?;
    Ok(if newest >= now { now.plus(-1) } else { newest })
}

/// The rows of the inputs `volumes` and `r` over `window`, added up from the rows of the
/// KPIs `volume` and `group_service_volume` (`{"kpi name": [rows…]}`) over a period that
/// holds the window, as the report has them: its decision then runs neither query (at
/// 10M tickets they were about half of its time).
///
/// The same counts as the queries: `volumes` counts, by org, the tickets on group
/// services that were not forwarded from a school desk (every path of
/// `group_service_volume`) and the tickets on school services (`volume`), with a row for
/// each org that has any; `r` is kept at school ÷ (kept + forwarded). Both sets of queries
/// look for the group ticket of a forwarded school ticket among those created from a day
/// before their period's start (clocks of two desks' servers can differ): a group ticket
/// recorded more than a day before the school ticket it was forwarded from is found by
/// one and not the other, and only then can the figures differ.
pub fn from_kpis(kpis: &Value, window: Period) -> serde_json::Map<String, Value> {
    let (from, to) = (window.from.to_string(), window.to.to_string());
    let in_window = |row: &&Value| {
        row.get("month")
            .and_then(Value::as_str)
            .is_some_and(|m| from.as_str() <= m && m <= to.as_str())
    };
    let rows = |name: &str| -> Vec<&Value> {
        kpis.get(name)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter(in_window).collect())
            .unwrap_or_default()
    };
    let text = |row: &Value, key: &str| row.get(key).and_then(Value::as_str).map(str::to_string);
    let count = |row: &Value| row.get("tickets").and_then(Value::as_u64).unwrap_or(0);
    // (group, school) tickets by org, in the order of the query's `order by org`
    let mut by_org: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let (mut kept, mut forwarded) = (0u64, 0u64);
    for row in rows("group_service_volume") {
        let Some(org) = text(row, "org") else {
            continue;
        };
        by_org.entry(org).or_default().0 += count(row);
        match row.get("path").and_then(Value::as_str) {
            Some("kept_at_school") => kept += count(row),
            Some("forwarded") => forwarded += count(row),
            _ => {}
        }
    }
    for row in rows("volume") {
        if row.get("service_scope").and_then(Value::as_str) != Some("school") {
            continue;
        }
        let Some(org) = text(row, "org") else {
            continue;
        };
        by_org.entry(org).or_default().1 += count(row);
    }
    let volumes: Vec<Value> = by_org
        .into_iter()
        .map(|(org, (g, s))| json!({"org": org, "group_tickets": g, "school_tickets": s}))
        .collect();
    // the query's sums over no row are null, and so is r without a kept or forwarded ticket
    let paths = kept + forwarded;
    let r = if paths == 0 {
        json!({"kept": null, "forwarded": null, "r": null})
    } else {
        json!({"kept": kept, "forwarded": forwarded, "r": kept as f64 / paths as f64})
    };
    let mut known = serde_json::Map::new();
    known.insert("volumes".to_string(), Value::Array(volumes));
    known.insert("r".to_string(), Value::Array(vec![r]));
    known
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month(s: &str) -> Month {
        Month::parse(s).expect("a month")
    }

    #[test]
    fn volumes_and_r_are_added_up_from_the_kpis_rows_of_the_window() {
        let gsv = |m: &str, org: &str, path: &str, n: u64| json!({"month": m, "org": org, "service": "erp", "path": path, "tickets": n});
        let volume = |m: &str, org: &str, scope: &str, n: u64| {
            json!({"month": m, "org": org, "desk": "school", "service": "wifi",
                "service_scope": scope, "kind": "incident", "channel": "portal", "tickets": n})
        };
        let kpis = json!({
            "group_service_volume": [
                gsv("2026-01", "LYON", "direct", 100), // before the window
                gsv("2026-02", "LYON", "direct", 2),
                gsv("2026-02", "LYON", "kept_at_school", 3),
                gsv("2026-03", "LYON", "forwarded", 1),
                gsv("2026-03", "RENNES", "kept_at_school", 4),
            ],
            "volume": [
                volume("2026-01", "STRASBOURG", "school", 100), // before the window
                volume("2026-02", "LYON", "school", 5),
                volume("2026-03", "LYON", "school", 6),
                // group-service tickets are counted from group_service_volume (these
                // include the forwarded school tickets, counted once there)
                volume("2026-03", "LYON", "group", 50),
                volume("2026-03", "TOULOUSE", "school", 7),
            ],
        });
        let window = Period::new(month("2026-02"), month("2026-03")).unwrap();
        let known = from_kpis(&kpis, window);
        // LYON: group 2 + 3 + 1 = 6, school 5 + 6 = 11; RENNES: group 4; TOULOUSE: school 7;
        // STRASBOURG has nothing in the window
        assert_eq!(
            known["volumes"],
            json!([
                {"org": "LYON", "group_tickets": 6, "school_tickets": 11},
                {"org": "RENNES", "group_tickets": 4, "school_tickets": 0},
                {"org": "TOULOUSE", "group_tickets": 0, "school_tickets": 7},
            ])
        );
        // kept 3 + 4, forwarded 1: r = 7 / 8
        assert_eq!(known["r"], json!([{"kept": 7, "forwarded": 1, "r": 0.875}]));
        // a window without group-service tickets: r is null, as the query's sums are
        let quiet = Period::new(month("2025-06"), month("2025-07")).unwrap();
        let known = from_kpis(&kpis, quiet);
        assert_eq!(known["volumes"], json!([]));
        assert_eq!(
            known["r"],
            json!([{"kept": null, "forwarded": null, "r": null}])
        );
    }
}
