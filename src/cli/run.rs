//! `ticketlake run`: the unattended monthly run, for cron and systemd timers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::Args;

use super::{EngineArg, LakeArgs};
use crate::engine::localtime::{LocalDays, Month};
use crate::lake::Lake;
use crate::mail;
use crate::report::{self, Format, Lang};
use crate::sources::pull::{self, PullOptions};

/// Pull every source, then write the KPIs and the report (HTML and PDF) of the last
/// complete month: the command for cron and systemd timers.
///
/// Quiet on success: one summary line (nothing with --quiet). On failure, what failed,
/// for which source, and what to do. Exit codes: 0 done; 1 done, but a check failed
/// (more quarantined records than --max-quarantine, or a source without news for more
/// than --stale-days); 2 an error (the lake keeps what earlier steps wrote whole).
/// Running it again for the same month gives the same report; with --now, the same bytes.
/// With a [mail] section, the report goes to its recipients once per month and figures
/// (a marker beside the report records it): a run whose figures changed sends the
/// corrected report, --resend sends it again, --no-mail never sends.
///
/// Examples:
///   ticketlake run --config /etc/ticketlake/ticketlake.toml --out /srv/reports
///   ticketlake run --month 2026-10 --quiet
///   ticketlake run --log-format json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(flatten)]
    pub engine: EngineArg,
    /// The month to report, YYYY-MM (default: the last complete month, local time).
    #[arg(long, value_parser = Month::parse)]
    pub month: Option<Month>,
    /// Where to write the report and the KPIs.
    #[arg(long, default_value = "./reports")]
    pub out: PathBuf,
    /// Report languages.
    #[arg(long, value_delimiter = ',', default_value = "fr,en", value_parser = Lang::parse)]
    pub lang: Vec<Lang>,
    /// More quarantined records than this (over all sources) fails the run's checks.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_quarantine: u64,
    /// A source whose newest update is older than this many days fails the checks.
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub stale_days: i64,
    /// The run's clock (RFC 3339): the default month and the times in state files.
    #[arg(long, value_name = "T")]
    pub now: Option<DateTime<Utc>>,
    /// Skip the pull (report on the lake as it is).
    #[arg(long)]
    pub no_pull: bool,
    /// Do not send the report, even with a [mail] section.
    #[arg(long)]
    pub no_mail: bool,
    /// Send the report again, even if the same figures already went out.
    #[arg(long, conflicts_with = "no_mail")]
    pub resend: bool,
    /// Print nothing on success.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The month before the one `now` falls in (local time).
pub fn last_complete_month(days: &LocalDays, now: DateTime<Utc>) -> Result<Month> {
    Ok(Month::parse(&days.month_of(now.timestamp_micros()))?.plus(-1))
}

pub async fn run(args: RunArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let (config, location) = args.lake.with_engine(&args.engine).resolve()?;
    let days = LocalDays::new(config.tz()?);
    let now = args.now.unwrap_or_else(Utc::now);
    let month = match args.month {
        Some(m) => m,
        None => last_complete_month(&days, now)?,
    };
    let lake = Lake::open(&location, true)?;
    let mut problems: Vec<(&str, String)> = Vec::new();
    let mut pulled = String::from("no pull");
    if !args.no_pull && !config.sources.is_empty() {
        let secret = pull::secret(&config)?;
        let opts = PullOptions {
            now: Some(now),
            ..PullOptions::default()
        };
        let (reports, over) = super::pull::pull_and_report(
            &lake,
            &config,
            &secret,
            &opts,
            Some(args.max_quarantine),
            true,
        )
        .await
        .context("the pull failed; the lake keeps every partition written whole and each finished source's watermark: fix the cause and run again")?;
        let (mut new, mut updated, mut quarantined) = (0, 0, 0);
        for r in &reports {
            new += r.counts.tickets_new;
            updated += r.counts.tickets_updated;
            quarantined += r.counts.quarantined;
            if let Some(why) = &r.history_unavailable {
                tracing::warn!(source = %r.source, "history unavailable: {why}");
            }
        }
        if over {
            problems.push(("quarantine", format!(
                "{quarantined} records went to the quarantine (more than {}): read _quarantine/<source>/ in the lake, fix the sources or the mappings",
                args.max_quarantine
            )));
        }
        pulled = format!(
            "{} sources pulled ({new} new tickets, {updated} updated, {quarantined} quarantined)",
            reports.len()
        );
    }
    // a source without news for too long
    for source in &config.sources {
        let state = lake.state(&source.id).await?;
        let newest = state.and_then(|s| s.watermark);
        let limit = now - chrono::Duration::days(args.stale_days);
        match newest {
            Some(w) if w < limit => problems.push(("stale", format!(
                "source '{}' has had no update since {} (more than {} days): check that it is still in use and that its account can read it (`ticketlake check --source {}`)",
                source.id,
                w.format("%Y-%m-%d %H:%M UTC"),
                args.stale_days,
                source.id
            ))),
            None => problems.push(("stale", format!(
                "source '{}' has never been pulled: run `ticketlake check --source {}`",
                source.id, source.id
            ))),
            _ => {}
        }
    }
    // the KPIs and the report of the month
    let inputs = report::gather(&lake, &config, &days, month)
        .await
        .with_context(|| format!("computing the KPIs of {month}"))?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let kpi_path = args.out.join(format!("ticketlake-{month}.kpi.json"));
    let kpi_text = serde_json::to_string_pretty(&inputs.current)?;
    let tmp = kpi_path.with_extension("json.tmp");
    std::fs::write(&tmp, &kpi_text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &kpi_path)?;
    let mut written = vec![kpi_path];
    for lang in &args.lang {
        written.extend(report::write(
            &inputs,
            *lang,
            &[Format::Html, Format::Pdf],
            &args.out,
        )?);
    }
    tracing::info!(%month, files = written.len(), out = %args.out.display(), "report written");
    // the report by e-mail, once per month and figures
    let mut mailed = String::new();
    let mail_error = match (&config.mail, args.no_mail) {
        (Some(mail), false) => {
            let lang = mail.language(&args.lang);
            let pdf = report::file_name(&args.out, month, lang, "pdf");
            let html_path = report::file_name(&args.out, month, lang, "html");
            let sent = (|| -> Result<mail::Outcome> {
                if !args.lang.contains(&lang) {
                    // [mail] lang is not among --lang: render that language for the message
                    // (never send a file an earlier run left)
                    report::write(&inputs, lang, &[Format::Html, Format::Pdf], &args.out)?;
                }
                let html = std::fs::read_to_string(&html_path)
                    .with_context(|| format!("reading {}", html_path.display()))?;
                let to_send = mail::Report {
                    month,
                    lang,
                    html: &html,
                    pdf: &pdf,
                    kpis: kpi_text.as_bytes(),
                };
                mail::deliver(mail, &to_send, &args.out, now, args.resend)
            })();
            match sent {
                Ok(mail::Outcome::Sent { corrected }) => {
                    tracing::info!(to = %mail.to.join(", "), corrected, "report sent");
                    mailed = format!(
                        "; sent to {}{}",
                        mail.to.join(", "),
                        if corrected { " (corrected)" } else { "" }
                    );
                    None
                }
                Ok(mail::Outcome::AlreadySent) => {
                    mailed = "; already sent".into();
                    None
                }
                Err(e) => Some(e.context(format!(
                    "the report of {month} is written in {} but was not sent; fix the cause and run again (`ticketlake run --no-pull --month {month}` sends it)",
                    args.out.display()
                ))),
            }
        }
        _ => None,
    };
    for (kind, p) in &problems {
        super::report_problem(kind, p);
    }
    if let Some(e) = mail_error {
        return Err(e);
    }
    if !args.quiet || !problems.is_empty() {
        println!(
            "ticketlake run: {month}: {pulled}; {} files in {}{mailed} in {:.1} s{}",
            written.len(),
            args.out.display(),
            started.elapsed().as_secs_f64(),
            if problems.is_empty() {
                String::new()
            } else {
                format!("; {} check(s) failed", problems.len())
            }
        );
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
