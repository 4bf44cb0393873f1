//! `ticketlake fixtures`: a deterministic synthetic INSA lake.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::LakeArgs;
use crate::engine::localtime::Month;
use crate::lake::Lake;
use crate::sources::fixtures::{FixtureOptions, write_lake};

/// Write a deterministic synthetic INSA lake (7 school desks and the group desk).
///
/// The same options give the same lake on any day; running it again on the same lake
/// changes nothing (records are merged by key). Other options onto an existing lake are
/// merged with what it holds: use a new directory for a different lake.
///
/// Examples:
///   ticketlake fixtures --lake ./lake
///   ticketlake fixtures --tickets 1000000 --seed 7 --lake ./big-lake
///   ticketlake fixtures --start 2025-09 --months 12 --lake ./one-year
///   ticketlake fixtures --group-volume high --lake ./busy-group-services
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct FixturesArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Number of tickets over the whole span.
    #[arg(long, default_value_t = 100_000)]
    pub tickets: u64,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First month of the span.
    #[arg(long, default_value = "2024-09", value_parser = Month::parse)]
    pub start: Month,
    /// Number of months.
    #[arg(long, default_value_t = 24)]
    pub months: u32,
    /// Group-service volume: low, medium or high. Low and high keep the school-service
    /// tickets of medium and have a quarter or four times its group-service tickets (so
    /// --tickets counts the medium situation), to see the desk decision move.
    #[arg(long, default_value = "medium", value_parser = ["low", "medium", "high"])]
    pub group_volume: String,
    /// Print nothing on success.
    #[arg(long, short)]
    pub quiet: bool,
}

impl FixturesArgs {
    pub fn options(&self) -> FixtureOptions {
        FixtureOptions {
            tickets: self.tickets,
            seed: self.seed,
            start: self.start,
            months: self.months,
            ..FixtureOptions::default()
        }
        .with_group_volume(&self.group_volume)
    }
}

pub async fn run(args: FixturesArgs) -> Result<ExitCode> {
    let (config, location) = args.lake.resolve()?;
    let lake = Lake::open(&location, true)?;
    let started = std::time::Instant::now();
    let summary = write_lake(&lake, &config, args.options(), |_, _| {}).await?;
    if !args.quiet {
        eprintln!(
            "wrote {} tickets and {} events into {} partitions of lake '{}' in {:.1} s",
            summary.tickets,
            summary.events,
            summary.partitions,
            location,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}
