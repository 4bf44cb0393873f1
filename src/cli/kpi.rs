//! `ticketlake kpi`: the KPIs of `queries/kpi/` for whole local months.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::{EngineArg, LakeArgs};
use crate::engine::localtime::Month;
use crate::kpi::{self, KpiResult, Period};
use crate::output;

/// Compute the KPIs for the local months FROM..TO (inclusive).
///
/// JSON output is one object whose keys are the KPI names and whose values are arrays of
/// row objects; CSV output has one section per KPI, each opened by a `# name` line.
///
/// Examples:
///   ticketlake kpi --lake ./lake --from 2026-03
///   ticketlake kpi --lake ./lake --from 2025-09 --to 2026-08 --format json
///   ticketlake kpi --lake ./lake --from 2026-03 --kpi backlog --kpi reopen_rate
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct KpiArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(flatten)]
    pub engine: EngineArg,
    /// First month, YYYY-MM (local time).
    #[arg(long, value_parser = Month::parse)]
    pub from: Month,
    /// Last month, YYYY-MM (default: FROM).
    #[arg(long, value_parser = Month::parse)]
    pub to: Option<Month>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: KpiFormat,
    /// Only these KPIs (repeatable; default: all).
    #[arg(long = "kpi", value_name = "NAME")]
    pub kpis: Vec<String>,
}

/// The formats of KPI output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KpiFormat {
    Table,
    Csv,
    Json,
}

pub async fn run(args: KpiArgs) -> Result<ExitCode> {
    let (config, lake, days) = args.lake.with_engine(&args.engine).open()?;
    let period = Period::new(args.from, args.to.unwrap_or(args.from))?;
    let ctx = crate::engine::session(&lake, &config).await?;
    let results = kpi::run(&ctx, &lake, &days, &args.kpis, period).await?;
    let mut out = std::io::stdout().lock();
    print(&mut out, &results, args.format)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Writes KPI results in a format.
pub fn print(out: &mut dyn Write, results: &[KpiResult], format: KpiFormat) -> Result<()> {
    match format {
        KpiFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &kpi::to_json(results)?)?;
            writeln!(out)?;
        }
        KpiFormat::Csv => {
            for r in results {
                writeln!(out, "# {}", r.name)?;
                output::csv(out, &r.batches)?;
                writeln!(out)?;
            }
        }
        KpiFormat::Table => {
            for r in results {
                writeln!(out, "{}", r.name)?;
                write!(out, "{}", output::table(&r.schema, &r.batches)?)?;
                writeln!(out)?;
            }
        }
    }
    Ok(())
}
