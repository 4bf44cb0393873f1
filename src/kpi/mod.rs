//! The KPI registry: runs the `queries/kpi/*.sql` files for a period with `$start` and
//! `$end` bound by DataFusion, and renders the results (table, CSV, JSON). No SQL text
//! is assembled here.

pub mod decision;

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::prelude::{DataFrame, SessionContext};

use crate::engine::localtime::{LocalDays, Month};
use crate::lake::Lake;
use crate::model::Table;
use crate::{engine, queries};

/// A period of whole local months, [from, to] inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: Month,
    pub to: Month,
}

impl Period {
    pub fn new(from: Month, to: Month) -> Result<Period> {
        anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
        Ok(Period { from, to })
    }

    /// `$start` and `$end`: UTC instants of the local midnights opening `from` and the
    /// month after `to`.
    pub fn bounds(&self, days: &LocalDays) -> (i64, i64) {
        (
            days.midnight(self.from.first_day()),
            days.midnight(self.to.next().first_day()),
        )
    }
}

fn ts(us: i64) -> ScalarValue {
    ScalarValue::TimestampMicrosecond(Some(us), Some("UTC".into()))
}

/// One KPI's result.
#[derive(Debug, Clone)]
pub struct KpiResult {
    pub name: String,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// Runs one KPI over a period.
pub async fn run_one(
    ctx: &SessionContext,
    days: &LocalDays,
    name: &str,
    period: Period,
) -> Result<KpiResult> {
    run_sql(ctx, days, name, &queries::kpi(name)?, period).await
}

/// Runs one parameterised query (`$start`, `$end`) of `queries/` over a period.
pub async fn run_sql(
    ctx: &SessionContext,
    days: &LocalDays,
    name: &str,
    sql: &str,
    period: Period,
) -> Result<KpiResult> {
    let (start, end) = period.bounds(days);
    let params = ParamValues::from(vec![("start", ts(start)), ("end", ts(end))]);
    let df = ctx
        .sql_with_options(sql, engine::read_only())
        .await
        .and_then(|df| df.with_param_values(params))
        .with_context(|| format!("planning KPI {name}"))?;
    collect(name.to_string(), df, "computing KPI").await
}

/// The rows of `df`, as the result `name`; an error says `doing` and the name.
async fn collect(name: String, df: DataFrame, doing: &str) -> Result<KpiResult> {
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df
        .collect()
        .await
        .with_context(|| format!("{doing} {name}"))?;
    Ok(KpiResult {
        name,
        schema,
        batches,
    })
}

/// Runs the named KPIs (all when `names` is empty), in registry order.
pub async fn run(
    ctx: &SessionContext,
    lake: &Lake,
    days: &LocalDays,
    names: &[String],
    period: Period,
) -> Result<Vec<KpiResult>> {
    for n in names {
        queries::kpi(n)?; // an unknown name is an error, before any work
    }
    let chosen: Vec<&str> = queries::kpi_names()
        .into_iter()
        .filter(|n| names.is_empty() || names.iter().any(|x| x == n))
        .collect();
    side_by_side(ctx, lake, days, chosen.into_iter().map(|n| (n, period))).await
}

/// Runs KPI queries, each over its period, [`CONCURRENT_KPIS`] at a time (as `kpi` and the
/// report do); the results come in the order of `jobs`, and the first error in that order
/// is returned. Each query has serial phases (planning, a final aggregation or sort) that
/// leave a core idle. The next query starts as soon as either is done: taken in order,
/// one long query held the next ones back while its neighbour's slot stood idle.
///
/// A KPI whose SQL says `-- Split: month` is computed over [`chunks`] of its period (a
/// few months, or one, of about [`CHUNK_BYTES`] of tickets each), and its rows are put
/// one after the other, or together by its query of `queries/combine/`. Those are the
/// KPIs that hold what they aggregate (the exact quantiles hold every value, the
/// recurrences every instant): over a long period of a large lake, they held all its
/// months at once. The others count rows by group, and their chunks would only read
/// again what each skipped (12 months at 10 million tickets took 3.95–4.08 s with those
/// five split, 4.18–4.20 s with all that can be). The queries run with large blocks
/// mapped on their own ([`map_large_blocks`]): glibc otherwise kept what each chunk
/// freed, and the process grew from one query to the next.
///
/// [`map_large_blocks`]: crate::lake::write::map_large_blocks
pub async fn side_by_side<'a>(
    ctx: &SessionContext,
    lake: &Lake,
    days: &LocalDays,
    jobs: impl IntoIterator<Item = (&'a str, Period)>,
) -> Result<Vec<KpiResult>> {
    let bytes = crate::lake::mib_from_env("TICKETLAKE_KPI_CHUNK_MIB")?.unwrap_or(CHUNK_BYTES);
    side_by_side_in(ctx, lake, days, jobs, bytes).await
}

/// [`side_by_side`] with chunks of about `chunk_bytes` of tickets.
pub async fn side_by_side_in<'a>(
    ctx: &SessionContext,
    lake: &Lake,
    days: &LocalDays,
    jobs: impl IntoIterator<Item = (&'a str, Period)>,
    chunk_bytes: u64,
) -> Result<Vec<KpiResult>> {
    use futures::StreamExt;
    crate::lake::write::map_large_blocks();
    let mut sizes = None;
    let mut pieces = Vec::new();
    for (job, (name, period)) in jobs.into_iter().enumerate() {
        let split = period.from < period.to && splits_by_month(&queries::kpi(name)?);
        if !split {
            pieces.push((job, name, period));
            continue;
        }
        if sizes.is_none() {
            sizes = Some(lake.month_bytes(Table::Tickets).await?);
        }
        let sizes = sizes.as_ref().expect("listed above");
        for chunk in chunks(period, sizes, chunk_bytes) {
            pieces.push((job, name, chunk));
        }
    }
    let mut done =
        futures::stream::iter(pieces.into_iter().enumerate())
            .map(|(i, (job, name, period))| async move {
                (i, job, run_one(ctx, days, name, period).await)
            })
            .buffer_unordered(CONCURRENT_KPIS)
            .collect::<Vec<_>>()
            .await;
    done.sort_by_key(|(i, _, _)| *i);
    let mut results: Vec<(KpiResult, usize)> = Vec::new();
    let mut last_job = None;
    for (_, job, result) in done {
        let result = result?;
        if last_job == Some(job) {
            let (whole, chunks) = results.last_mut().expect("a chunk before");
            whole.batches.extend(result.batches);
            *chunks += 1;
        } else {
            results.push((result, 1));
            last_job = Some(job);
        }
    }
    let mut out = Vec::with_capacity(results.len());
    for (result, chunks) in results {
        out.push(match queries::combine(&result.name)? {
            Some(sql) if chunks > 1 => combine(result, &sql).await?,
            _ => result,
        });
    }
    Ok(out)
}

/// The rows of a KPI computed over chunks of its period put together by `sql`, a query
/// over the table `chunks` that holds them (`queries/combine/`), in a session of its own.
async fn combine(chunks: KpiResult, sql: &str) -> Result<KpiResult> {
    let name = chunks.name;
    let ctx = SessionContext::new();
    let table = MemTable::try_new(chunks.schema, vec![chunks.batches])?;
    ctx.register_table("chunks", Arc::new(table))?;
    let df = ctx
        .sql_with_options(sql, engine::read_only())
        .await
        .with_context(|| format!("planning how the chunks of KPI {name} are put together"))?;
    collect(name, df, "putting together the chunks of KPI").await
}

/// Whether a KPI's rows over a period are its rows over each month of it, in month order
/// (its SQL has the line `-- Split: month`).
fn splits_by_month(sql: &str) -> bool {
    sql.lines().any(|l| l.starts_with("-- Split: month"))
}

/// About how many bytes of `tickets` a chunk of a split KPI's period reads (see
/// [`side_by_side`]): 2 to 4 months of the 10-million-ticket test lake (about 20 MiB of
/// `tickets` a month), the whole year of a lake of 3 million (74 MiB).
/// `TICKETLAKE_KPI_CHUNK_MIB` sets another size.
pub const CHUNK_BYTES: u64 = 96 << 20;

/// `period` cut into runs of whole months, in order: as many as `bytes` of tickets in
/// each asks for (`sizes`: the bytes of each month, as listed by [`Lake::month_bytes`]),
/// of about the same size. A chunk ends before the month that would take it past an
/// even share of the period; a month larger than that is a chunk of its own.
pub fn chunks(period: Period, sizes: &BTreeMap<String, u64>, bytes: u64) -> Vec<Period> {
    let mut months = vec![period.from];
    while *months.last().expect("one month") < period.to {
        months.push(months.last().expect("one month").next());
    }
    let size = |m: &Month| sizes.get(&m.to_string()).copied().unwrap_or(0);
    let total: u64 = months.iter().map(size).sum();
    let count = total.div_ceil(bytes.max(1)).clamp(1, months.len() as u64);
    let share = total.div_ceil(count);
    let mut out = Vec::new();
    let (mut from, mut held) = (period.from, 0);
    for m in &months {
        if held > 0 && held + size(m) > share {
            out.push(Period {
                from,
                to: m.plus(-1),
            });
            (from, held) = (*m, 0);
        }
        held += size(m);
    }
    out.push(Period {
        from,
        to: period.to,
    });
    out
}

/// How many KPI queries run at once. Two fill the cores as well as four (each query is
/// itself parallel; the 12-month set at 10M tickets took 44 s either way) with a third less
/// memory (1.85 GiB instead of 2.7: each query holds its joins' hash tables).
pub const CONCURRENT_KPIS: usize = 2;

/// The rows of every decision input (`queries/decision/`) over a period, as
/// `{"input name": [rows…], …}`.
pub async fn decision_inputs(
    ctx: &SessionContext,
    days: &LocalDays,
    period: Period,
) -> Result<serde_json::Value> {
    decision_inputs_besides(ctx, days, period, serde_json::Map::new()).await
}

/// [`decision_inputs`], the rows of the inputs in `known` taken as they are (their queries
/// are not run).
pub async fn decision_inputs_besides(
    ctx: &SessionContext,
    days: &LocalDays,
    period: Period,
    mut known: serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Value> {
    let mut results = Vec::new();
    for name in queries::decision_names() {
        if !known.contains_key(name) {
            results.push(run_sql(ctx, days, name, &queries::decision(name)?, period).await?);
        }
    }
    if let serde_json::Value::Object(measured) = to_json(&results)? {
        known.extend(measured);
    }
    Ok(serde_json::Value::Object(known))
}

/// `{"kpi name": [rows…], …}`.
pub fn to_json(results: &[KpiResult]) -> Result<serde_json::Value> {
    let mut map = serde_json::Map::new();
    for r in results {
        map.insert(
            r.name.clone(),
            serde_json::Value::Array(crate::output::json_rows(&r.batches)?),
        );
    }
    Ok(serde_json::Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month(s: &str) -> Month {
        Month::parse(s).expect("a month")
    }

    fn period(from: &str, to: &str) -> Period {
        Period::new(month(from), month(to)).expect("a period")
    }

    #[test]
    fn a_period_is_cut_into_runs_of_months_of_about_the_same_size() {
        // January to June: 10 10 10 40 5 5 bytes, 80 in all
        let sizes: BTreeMap<String, u64> = [
            ("2026-01", 10),
            ("2026-02", 10),
            ("2026-03", 10),
            ("2026-04", 40),
            ("2026-05", 5),
            ("2026-06", 5),
            ("2026-07", 1000), // after the period: not counted
        ]
        .into_iter()
        .map(|(m, b)| (m.to_string(), b))
        .collect();
        let half = period("2026-01", "2026-06");
        // 30 bytes a chunk: 3 chunks, a share of 27 (80 / 3 rounded up). January and
        // February (20) take March to 30: a chunk ends; March and April (50) too; April
        // and May (45) too; May and June (10) end the period. April alone is past the share
        assert_eq!(
            chunks(half, &sizes, 30),
            vec![
                period("2026-01", "2026-02"),
                period("2026-03", "2026-03"),
                period("2026-04", "2026-04"),
                period("2026-05", "2026-06"),
            ]
        );
        // 40 bytes: a share of 40. January to March (30); April alone (April and May are
        // 45); May and June
        assert_eq!(
            chunks(half, &sizes, 40),
            vec![
                period("2026-01", "2026-03"),
                period("2026-04", "2026-04"),
                period("2026-05", "2026-06"),
            ]
        );
        // the whole period fits: one chunk; one byte: as many as months allow (6, a share
        // of 14), so each month alone but May and June (10)
        assert_eq!(chunks(half, &sizes, 80), vec![half]);
        assert_eq!(chunks(half, &sizes, 1).len(), 5);
        // months the lake does not hold weigh nothing: they join a chunk that has some
        let empty = BTreeMap::new();
        assert_eq!(chunks(half, &empty, 1), vec![half]);
        assert_eq!(
            chunks(period("2025-11", "2026-02"), &sizes, 10),
            vec![period("2025-11", "2026-01"), period("2026-02", "2026-02")]
        );
    }

    #[test]
    fn a_kpi_says_whether_it_is_split() {
        assert!(splits_by_month(&queries::kpi("resolution_time").unwrap()));
        assert!(splits_by_month(&queries::kpi("recurring_pairs").unwrap()));
        assert!(queries::combine("recurring_pairs").unwrap().is_some());
        // the others count rows by group: what they hold does not grow with the tickets
        for name in [
            "volume",
            "backlog",
            "breaches_in_flight",
            "group_service_volume",
        ] {
            assert!(!splits_by_month(&queries::kpi(name).unwrap()), "{name}");
        }
    }
}
