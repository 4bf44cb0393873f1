//! The decision model's measurements: runs `queries/decision/` over a window and hands
//! the rows to the pure model in `decision`. No formula lives here.

use anyhow::{Context, Result};
use datafusion::prelude::SessionContext;

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
    let decision = config.decision.with_overrides(sets)?;
    let to = match to {
        Some(m) => m,
        None => last_complete_month(ctx, days).await?,
    };
    let from = from.unwrap_or_else(|| to.plus(1 - decision.window_months as i32));
    let period = Period::new(from, to)?;
    let months = (0..).take_while(|i| from.plus(*i) <= to).count() as u32;
    let rows = super::decision_inputs(ctx, days, period).await?;
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
