//! `ticketlake pull`: the configured help desks into the lake, incrementally.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::Result;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::LakeArgs;
use crate::config::Config;
use crate::lake::Lake;
use crate::sources::pull::{self, Progress, PullOptions, SourceReport};

/// Pull tickets and their histories from the configured sources into the lake.
///
/// Each source is read from its watermark (minus its overlap window), merged by key into
/// the lake, and its watermark moves last: a pull can be re-run or interrupted at any
/// point. Credentials come from the environment variables the config names, and the
/// pseudonym secret from `pseudonym_secret_env`.
///
/// Exit codes: 0 done; 1 done, but more records than --max-quarantine went to the
/// quarantine; 2 an error (nothing past the last complete source was recorded).
///
/// Examples:
///   ticketlake pull
///   ticketlake pull --source glpi-lyon --since 2026-09-01
///   ticketlake pull --full --max-quarantine 0
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct PullArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Only this source (its `id` in the config).
    #[arg(long, value_name = "ID")]
    pub source: Option<String>,
    /// Re-pull everything, whatever the watermark.
    #[arg(long, conflicts_with = "since")]
    pub full: bool,
    /// Start here instead of the watermark: `YYYY-MM-DD` or an RFC 3339 instant.
    #[arg(long, value_name = "T", value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
    /// More quarantined records than this (over all sources) is a failure (exit 1).
    #[arg(long, value_name = "N")]
    pub max_quarantine: Option<u64>,
    /// Print nothing on success.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Ok(d.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&NaiveDateTime::from(d)));
    }
    Err(format!(
        "'{s}' is neither YYYY-MM-DD nor an RFC 3339 instant"
    ))
}

/// Progress bars on a terminal, a log line per source otherwise.
pub struct Bars {
    multi: Option<MultiProgress>,
    bars: Mutex<Vec<(String, ProgressBar)>>,
    quiet: bool,
}

impl Bars {
    pub fn new(quiet: bool) -> Bars {
        Bars {
            multi: (!quiet && std::io::stderr().is_terminal()).then(MultiProgress::new),
            bars: Mutex::new(Vec::new()),
            quiet,
        }
    }

    fn bar(&self, source: &str) -> Option<ProgressBar> {
        self.bars
            .lock()
            .unwrap()
            .iter()
            .find(|(s, _)| s == source)
            .map(|(_, b)| b.clone())
    }
}

impl Progress for Bars {
    fn start(&self, source: &str) {
        if let Some(m) = &self.multi {
            let bar = m.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template("{prefix:>16} {bar:30} {pos}/{len} tickets {msg}")
                    .expect("a valid template"),
            );
            bar.set_prefix(source.to_string());
            self.bars.lock().unwrap().push((source.to_string(), bar));
        }
    }
    fn tickets(&self, source: &str, done: u64, total: u64) {
        if let Some(b) = self.bar(source) {
            b.set_length(total);
            b.set_position(done);
        }
    }
    fn stage(&self, source: &str, what: &str) {
        if let Some(b) = self.bar(source) {
            b.set_message(what.to_string());
        }
    }
    fn done(&self, r: &SourceReport) {
        if let Some(b) = self.bar(&r.source) {
            b.finish_with_message(format!("done in {:.1} s", r.duration.as_secs_f64()));
        } else if !self.quiet {
            tracing::info!(
                source = %r.source,
                tickets = r.tickets_read,
                events = r.events_read,
                quarantined = r.counts.quarantined,
                "pulled"
            );
        }
    }
}

/// The summary table of a pull.
pub fn summary(reports: &[SourceReport]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    t.set_header([
        "source",
        "tickets new",
        "updated",
        "events new",
        "updated",
        "unchanged",
        "quarantined",
        "seconds",
    ]);
    for r in reports {
        let c = &r.counts;
        t.add_row([
            r.source.clone(),
            c.tickets_new.to_string(),
            c.tickets_updated.to_string(),
            c.events_new.to_string(),
            c.events_updated.to_string(),
            c.unchanged.to_string(),
            c.quarantined.to_string(),
            format!("{:.1}", r.duration.as_secs_f64()),
        ]);
    }
    t.to_string()
}

/// Runs a pull and reports it; shared by `pull` and `run`.
pub async fn pull_and_report(
    lake: &Lake,
    config: &Config,
    secret: &[u8],
    opts: &PullOptions,
    max_quarantine: Option<u64>,
    quiet: bool,
) -> Result<(Vec<SourceReport>, bool)> {
    let bars = Bars::new(quiet);
    let reports = pull::pull(lake, config, secret, opts, &bars).await?;
    let quarantined: u64 = reports.iter().map(|r| r.counts.quarantined).sum();
    let over = max_quarantine.is_some_and(|m| quarantined > m);
    if !quiet {
        eprintln!("{}", summary(&reports));
    }
    if over {
        eprintln!(
            "ticketlake: {quarantined} records went to the quarantine (more than --max-quarantine {}): see _quarantine/<source>/ in lake '{}' for each record and its reason",
            max_quarantine.unwrap_or(0),
            lake.location
        );
    } else if quarantined > 0 && !quiet {
        eprintln!(
            "{quarantined} records went to the quarantine (_quarantine/<source>/ in the lake)"
        );
    }
    Ok((reports, over))
}

pub async fn run(args: PullArgs) -> Result<ExitCode> {
    let (config, location) = args.lake.resolve()?;
    pull::selected(&config, args.source.as_deref())?;
    let secret = pull::secret(&config)?;
    let lake = Lake::open(&location, true)?;
    let opts = PullOptions {
        source: args.source.clone(),
        full: args.full,
        since: args.since,
        now: None,
    };
    let (_, over) = pull_and_report(
        &lake,
        &config,
        &secret,
        &opts,
        args.max_quarantine,
        args.quiet,
    )
    .await?;
    Ok(if over {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
