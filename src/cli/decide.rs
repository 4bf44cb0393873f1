//! `ticketlake decide`: the three desk organisations side by side, from measured data.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use super::{EngineArg, LakeArgs};
use crate::decision::inputs::Decision;
use crate::engine::localtime::Month;
use crate::kpi;

/// Compare the three organisations of the group help desk (direct access, N+1 behind
/// the school desks, central desk) from the volumes measured in the lake: staffing (FTE)
/// of each, the share of tickets owned in time, the added delay, the volumes at which
/// the ranking changes, and a sensitivity table. Every assumption is in `[decision]` of
/// the config and can be changed for one run with `--set KEY=VALUE`.
///
/// Examples:
///   ticketlake decide --lake ./lake
///   ticketlake decide --lake ./lake --from 2025-09 --to 2026-08 --format json
///   ticketlake decide --lake ./lake --set occupancy=0.85 --set setup_fte_months.central=24
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct DecideArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(flatten)]
    pub engine: EngineArg,
    /// First month of the window (default: `window_months` before --to).
    #[arg(long, value_parser = Month::parse)]
    pub from: Option<Month>,
    /// Last month of the window (default: the last complete month with data).
    #[arg(long, value_parser = Month::parse)]
    pub to: Option<Month>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: DecideFormat,
    /// Override an assumption of `[decision]` for this run (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

/// The formats of `decide`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DecideFormat {
    Table,
    Json,
}

pub async fn run(args: DecideArgs) -> Result<ExitCode> {
    let (config, lake, days) = args.lake.with_engine(&args.engine).open()?;
    let ctx = crate::engine::session(&lake, &config).await?;
    let d = kpi::decision::compute(&ctx, &config, &days, args.from, args.to, &args.sets).await?;
    let mut out = std::io::stdout().lock();
    match args.format {
        DecideFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &d)?;
            writeln!(out)?;
        }
        DecideFormat::Table => print_tables(&mut out, &d)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn f2(v: f64) -> String {
    format!("{v:.2}")
}

/// The comparison as tables, for people.
pub fn print_tables(out: &mut dyn Write, d: &Decision) -> Result<()> {
    let m = &d.measured;
    writeln!(
        out,
        "Window: {} to {} ({} months)\n",
        d.window.from, d.window.to, d.window.months
    )?;
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["measured input", "value", "source"]);
    for (name, p) in [
        ("r", m.r),
        ("aht_g (min)", m.aht_g),
        ("aht_s (min)", m.aht_s),
        ("hop_bh", m.hop_bh),
        ("m", m.m),
    ] {
        t.add_row([
            name.to_string(),
            format!("{:.4}", p.value),
            p.source.to_string(),
        ]);
    }
    let model = m.model();
    t.add_row([
        "G (group-service tickets a month)".to_string(),
        f2(model.g()),
        "data".into(),
    ]);
    t.add_row([
        "S (school-service tickets a month)".to_string(),
        f2(model.s()),
        "data".into(),
    ]);
    if let Some(g) = &m.group_org {
        t.add_row([
            format!("{} staff, left out (G, S)", g.org),
            format!("{:.2}, {:.2}", g.g, g.s),
            "data".into(),
        ]);
    }
    writeln!(out, "{t}\n")?;
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["", "direct", "n_plus_1", "central"]);
    let row = |name: &str, f: &dyn Fn(&crate::decision::Outcome) -> String| {
        let mut r = vec![name.to_string()];
        r.extend(d.options.iter().map(f));
        r
    };
    t.add_row(row("tickets reaching the group desk a month", &|o| {
        f2(o.group_tickets_per_month)
    }));
    t.add_row(row("group desk FTE: workload", &|o| {
        f2(o.fte_group_workload)
    }));
    t.add_row(row("group desk FTE: queue", &|o| f2(o.fte_group_queue)));
    t.add_row(row("group desk FTE", &|o| f2(o.fte_group)));
    t.add_row(row("school desks FTE", &|o| f2(o.fte_schools)));
    t.add_row(row("set-up FTE", &|o| f2(o.fte_setup)));
    t.add_row(row("total FTE", &|o| f2(o.fte_total)));
    t.add_row(row("owned within the TTO target", &|o| {
        format!("{:.1}%", o.tto_service_level * 100.0)
    }));
    t.add_row(row("added delay (business hours)", &|o| {
        f2(o.added_delay_bh)
    }));
    writeln!(out, "{t}\n")?;
    if d.crossovers.is_empty() {
        writeln!(
            out,
            "No crossover: the ranking is the same for volumes × 0.25 to × 4.\n"
        )?;
    }
    for c in &d.crossovers {
        let names = |r: &[crate::decision::Choice]| {
            r.iter().map(|c| c.name()).collect::<Vec<_>>().join(" < ")
        };
        writeln!(
            out,
            "Crossover at volumes × {:.4} ({:.0} group-service tickets a month): {} becomes {}",
            c.k,
            c.group_volume,
            names(&c.ranking_below),
            names(&c.ranking_above)
        )?;
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "volume ×",
        "G a month",
        "direct",
        "n_plus_1",
        "central",
        "cheapest",
    ]);
    for s in &d.sensitivity {
        t.add_row([
            format!("{}", s.k),
            format!("{:.0}", s.group_volume),
            f2(s.fte_direct),
            f2(s.fte_n_plus_1),
            f2(s.fte_central),
            s.cheapest.name().to_string(),
        ]);
    }
    writeln!(out, "\n{t}")?;
    Ok(())
}
