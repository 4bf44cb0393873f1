//! `ticketlake demo`: the whole path offline on generated data.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::LakeArgs;
use super::kpi::KpiFormat;
use crate::engine::localtime::{LocalDays, Month};
use crate::kpi::{self, Period};
use crate::lake::Lake;
use crate::report::{Format, Lang};
use crate::sources::fixtures::server::{Accounts, Faults};
use crate::sources::fixtures::{FixtureOptions, loopback};
use crate::sources::pull::PullOptions;

/// Generate two academic years of the INSA group, serve each help desk's data from a
/// loopback iTop or GLPI server, pull it through the real connectors into a lake, show
/// the last complete month's KPIs and write its report (HTML and PDF, French and English).
///
/// The demo starts from an empty lake: it empties a lake that an earlier demo made, and
/// refuses any other non-empty directory.
///
/// Examples:
///   ticketlake demo
///   ticketlake demo --lake /tmp/demo --tickets 20000
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct DemoArgs {
    /// Where to write the demo lake.
    #[arg(long, default_value = "./demo-lake")]
    pub lake: String,
    /// Number of tickets over the two years.
    #[arg(long, default_value_t = 60_000)]
    pub tickets: u64,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write the report of the last complete month (HTML and PDF, both languages).
    #[arg(long, default_value = "./demo-report")]
    pub out: std::path::PathBuf,
}

/// The mark of a lake that `demo` made (and may therefore empty).
const DEMO_MARK: &str = "_demo.json";

/// Empties a lake that an earlier demo made, refuses any other non-empty one, and marks
/// the lake as the demo's.
async fn start_afresh(lake: &Lake, opts: &FixtureOptions) -> Result<()> {
    let mark = object_store::path::Path::from(DEMO_MARK);
    let existing = lake.list(&object_store::path::Path::from("")).await?;
    if existing.iter().any(|m| m.location == mark) {
        lake.clear().await?;
    } else if !existing.is_empty() {
        anyhow::bail!(
            "'{}' is not empty and was not made by `ticketlake demo`; give another --lake (the demo starts from an empty lake)",
            lake.location
        );
    }
    let text = serde_json::json!({"tickets": opts.tickets, "seed": opts.seed, "start": opts.start.to_string(), "months": opts.months});
    object_store::ObjectStoreExt::put(
        lake.store.as_ref(),
        &mark,
        text.to_string().into_bytes().into(),
    )
    .await?;
    Ok(())
}

/// How many rows of a long KPI the demo shows.
const DEMO_ROWS: usize = 15;

pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let lake_args = LakeArgs {
        lake: Some(args.lake.clone()),
        config: None,
        engine: None,
    };
    let (config, location) = lake_args.resolve()?;
    let lake = Lake::open(&location, true)?;
    let opts = FixtureOptions {
        tickets: args.tickets,
        seed: args.seed,
        ..FixtureOptions::default()
    };
    start_afresh(&lake, &opts).await?;
    let started = std::time::Instant::now();
    eprintln!(
        "generating {} tickets of the INSA group ({} to {}) and serving them from 4 iTop and 4 GLPI servers on 127.0.0.1…",
        opts.tickets,
        opts.start,
        opts.start.plus(opts.months as i32 - 1),
    );
    let secret = crate::sources::fixtures::secret(&config, opts.seed);
    // a fresh password per run, handed to the connectors in memory only
    let password = format!("demo-{:x}", {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    });
    let accounts = Accounts {
        user: "ticketlake-demo".into(),
        password,
        token: None,
        app_token: None,
    };
    let servers = loopback::start(&config, opts, &secret, accounts, Faults::default()).await?;
    let mut config = config;
    config.sources = servers.sources.clone();
    let (reports, _) = super::pull::pull_and_report(
        &lake,
        &config,
        &secret,
        &PullOptions::default(),
        None,
        false,
    )
    .await?;
    drop(servers);
    let tickets: u64 = reports.iter().map(|r| r.tickets_read).sum();
    let events: u64 = reports.iter().map(|r| r.events_read).sum();
    eprintln!(
        "pulled {tickets} tickets and {events} history rows from the 8 sources into {location} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let last: Month = opts.start.plus(opts.months as i32 - 1);
    let days = LocalDays::new(config.tz()?);
    let ctx = crate::engine::session(&lake, &config).await?;
    let mut results = kpi::run(&ctx, &lake, &days, &[], Period::new(last, last)?).await?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "KPIs of {last}, the last complete month of the demo lake\n"
    )?;
    for r in &mut results {
        let rows: usize = r.batches.iter().map(|b| b.num_rows()).sum();
        if rows > DEMO_ROWS {
            let mut all = arrow::compute::concat_batches(&r.schema, &r.batches)?;
            if let Some(tickets) = all.column_by_name("tickets") {
                // the largest rows first
                let order = arrow::compute::sort_to_indices(
                    tickets,
                    Some(arrow::compute::SortOptions {
                        descending: true,
                        nulls_first: false,
                    }),
                    None,
                )?;
                all = arrow::compute::take_record_batch(&all, &order)?;
            }
            r.batches = vec![all.slice(0, DEMO_ROWS)];
            super::kpi::print(&mut out, std::slice::from_ref(r), KpiFormat::Table)?;
            writeln!(
                out,
                "… and {} more rows: ticketlake kpi --lake {location} --from {last} --kpi {}\n",
                rows - DEMO_ROWS,
                r.name
            )?;
        } else {
            super::kpi::print(&mut out, std::slice::from_ref(r), KpiFormat::Table)?;
        }
    }
    let decision =
        crate::kpi::decision::compute(&ctx, &config, &days, None, Some(last), &[]).await?;
    writeln!(
        out,
        "The desk organisations compared (ticketlake decide --lake {location}):\n"
    )?;
    super::decide::print_tables(&mut out, &decision)?;
    writeln!(out)?;
    let inputs = crate::report::gather(&lake, &config, &days, last).await?;
    writeln!(out, "The monthly report of {last}:")?;
    for lang in [Lang::Fr, Lang::En] {
        for path in crate::report::write(&inputs, lang, &[Format::Html, Format::Pdf], &args.out)? {
            writeln!(out, "  {}", path.display())?;
        }
    }
    writeln!(
        out,
        "Explore further: ticketlake sql --lake {location} \"select service, count(*) from tickets group by service order by 2 desc\""
    )?;
    Ok(ExitCode::SUCCESS)
}
