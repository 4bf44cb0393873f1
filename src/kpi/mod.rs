//! The KPI registry: runs the `queries/kpi/*.sql` files for a period with `$start` and
//! `$end` bound by DataFusion, and renders the results (table, CSV, JSON). No SQL text
//! is assembled here.

pub mod decision;

use anyhow::{Context, Result};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::prelude::SessionContext;

use crate::engine::localtime::{LocalDays, Month};
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
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df
        .collect()
        .await
        .with_context(|| format!("computing KPI {name}"))?;
    Ok(KpiResult {
        name: name.to_string(),
        schema,
        batches,
    })
}

/// Runs the named KPIs (all when `names` is empty), in registry order.
pub async fn run(
    ctx: &SessionContext,
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
    side_by_side(ctx, days, chosen.into_iter().map(|n| (n, period))).await
}

/// Runs KPI queries, each over its period, [`CONCURRENT_KPIS`] at a time (as `kpi` and the
/// report do); the results come in the order of `jobs`, and the first error in that order
/// is returned. Each query has serial phases (planning, a final aggregation or sort) that
/// leave a core idle. The next query starts as soon as either is done: taken in order,
/// one long query held the next ones back while its neighbour's slot stood idle.
pub async fn side_by_side<'a>(
    ctx: &SessionContext,
    days: &LocalDays,
    jobs: impl IntoIterator<Item = (&'a str, Period)>,
) -> Result<Vec<KpiResult>> {
    use futures::StreamExt;
    let mut done = futures::stream::iter(jobs.into_iter().enumerate())
        .map(|(i, (name, period))| async move { (i, run_one(ctx, days, name, period).await) })
        .buffer_unordered(CONCURRENT_KPIS)
        .collect::<Vec<_>>()
        .await;
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, result)| result).collect()
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
    let mut results = Vec::new();
    for name in queries::decision_names() {
        results.push(run_sql(ctx, days, name, &queries::decision(name)?, period).await?);
    }
    to_json(&results)
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
