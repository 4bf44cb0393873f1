//! `ticketlake pull`: every configured source (or one) into the lake, under the lake's
//! lock. Per source: read its watermark, ask the source for what changed since then
//! (minus the overlap), normalise, merge by key into the lake, and move the watermark
//! last. A re-pull of the same window changes nothing; a crash leaves the lake valid
//! and the next pull converges.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};

use super::config::{SourceConfig, SourceKind};
use super::normalize::{Normalizer, Pulled};
use super::{files, glpi, itop};
use crate::config::Config;
use crate::engine::localtime::LocalDays;
use crate::lake::Lake;
use crate::lake::lock::LakeLock;
use crate::lake::write::{LakeWriter, SourceCounts};
use crate::model::Table;
use crate::pseudonym::Pseudonymizer;

/// What to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Only this source.
    pub source: Option<String>,
    /// Everything, whatever the watermark.
    pub full: bool,
    /// Start here instead of the watermark.
    pub since: Option<DateTime<Utc>>,
    /// The time stamped in state files (`run --now`; default: the clock).
    pub now: Option<DateTime<Utc>>,
}

/// How one source's pull went.
#[derive(Debug, Clone)]
pub struct SourceReport {
    pub source: String,
    pub counts: SourceCounts,
    pub tickets_read: u64,
    pub events_read: u64,
    pub duration: Duration,
    /// Why history could not be read, if so.
    pub history_unavailable: Option<String>,
}

/// Progress of the sources being pulled (a bar on a terminal, log lines otherwise).
pub trait Progress: Sync {
    fn start(&self, source: &str);
    fn tickets(&self, source: &str, done: u64, total: u64);
    fn stage(&self, source: &str, what: &str);
    fn done(&self, report: &SourceReport);
}

/// No progress output.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: &str) {}
    fn tickets(&self, _: &str, _: u64, _: u64) {}
    fn stage(&self, _: &str, _: &str) {}
    fn done(&self, _: &SourceReport) {}
}

/// The pseudonym secret of a real pull: required, never a built-in default.
pub fn secret(config: &Config) -> Result<Vec<u8>> {
    match std::env::var(&config.pseudonym_secret_env) {
        Ok(s) if !s.is_empty() => Ok(s.into_bytes()),
        _ => bail!(
            "the pseudonym secret is not set: put it in the environment variable {} (named by `pseudonym_secret_env`); it keys the pseudonyms of requesters, agents and actors, so keep it and keep it secret",
            config.pseudonym_secret_env
        ),
    }
}

/// The sources `opts` selects.
pub fn selected<'a>(config: &'a Config, only: Option<&str>) -> Result<Vec<&'a SourceConfig>> {
    if config.sources.is_empty() {
        bail!("the config has no [[sources]]: add one per help desk (see `ticketlake init`)");
    }
    match only {
        None => Ok(config.sources.iter().collect()),
        Some(id) => match config.sources.iter().find(|s| s.id == id) {
            Some(s) => Ok(vec![s]),
            None => bail!(
                "no source '{id}' in the config (sources: {})",
                config
                    .sources
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    }
}

/// Pulls the selected sources into the lake.
pub async fn pull(
    lake: &Lake,
    config: &Config,
    secret: &[u8],
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<Vec<SourceReport>> {
    let sources = selected(config, opts.source.as_deref())?;
    let lock = LakeLock::acquire(lake, "ticketlake pull").await?;
    let swept = lake.sweep_staging()?;
    if swept > 0 {
        tracing::info!(swept, "removed staging files left by an interrupted writer");
    }
    let result = pull_locked(lake, config, secret, opts, progress, &sources).await;
    lock.release().await?;
    result
}

async fn pull_locked(
    lake: &Lake,
    config: &Config,
    secret: &[u8],
    opts: &PullOptions,
    progress: &dyn Progress,
    sources: &[&SourceConfig],
) -> Result<Vec<SourceReport>> {
    let pseudo = Pseudonymizer::new(secret);
    let days = LocalDays::new(config.tz()?);
    let mut reports = Vec::new();
    for source in sources {
        let started = Instant::now();
        progress.start(&source.id);
        let since = if opts.full {
            None
        } else if let Some(s) = opts.since {
            Some(s.timestamp_micros())
        } else {
            lake.state(&source.id)
                .await?
                .and_then(|s| s.watermark)
                .map(|w| w.timestamp_micros() - source.overlap_minutes * 60_000_000)
        };
        let on_tickets = |done: u64, total: u64| progress.tickets(&source.id, done, total);
        let (pulled, defaults, history_format): (Pulled, _, _) = match source.kind {
            SourceKind::Itop => {
                let c = itop::Itop::new(source, &pseudo)?;
                (
                    c.pull(since, &on_tickets).await?,
                    itop::DEFAULTS,
                    Some(itop::HISTORY_DATE_FORMAT),
                )
            }
            SourceKind::Glpi => {
                let c = glpi::Glpi::new(source, &pseudo)?;
                (c.pull(since, &on_tickets).await?, glpi::DEFAULTS, None)
            }
            SourceKind::Files => (
                files::read(source, &pseudo, since, &on_tickets)?,
                files::DEFAULTS,
                None,
            ),
        };
        progress.stage(&source.id, "writing");
        if let Some(why) = &pulled.history_unavailable {
            eprintln!(
                "ticketlake: source '{}': its history cannot be read ({why}); pulling tickets without events, and every history-based figure of this source (reopens, pending time, backlog by status) will be reported as unavailable",
                source.id
            );
        }
        let tickets_read = pulled.tickets.len() as u64;
        let events_read = pulled.events.len() as u64;
        let history_unavailable = pulled.history_unavailable.clone();
        let mut normalizer = Normalizer::new(source, config, defaults, &pseudo)?;
        if let Some(f) = history_format {
            normalizer = normalizer.with_history_format(f);
        }
        let has_history = history_unavailable.is_none();
        let decode_time = pulled.decode_time;
        let normalizing = super::normalize::thread_cpu_ns();
        let normalized = normalizer.normalize(pulled, has_history);
        let normalize_time =
            Duration::from_nanos(super::normalize::thread_cpu_ns().saturating_sub(normalizing));
        // the connector's own cost in CPU time, apart from waiting for answers
        // (BENCHMARKS.md, target 6)
        tracing::debug!(
            source = %source.id,
            tickets = tickets_read,
            events = events_read,
            decode_s = decode_time.as_secs_f64(),
            normalize_s = normalize_time.as_secs_f64(),
            tickets_per_s = tickets_read as f64 / (decode_time + normalize_time).as_secs_f64().max(1e-9),
            "decoded and normalised"
        );
        let mut writer = LakeWriter::new(lake.clone(), days.clone())
            .staging_at_most(crate::lake::write::staging_bound()?)
            .clearing_quarantine()
            .at(opts.now);
        let mut by_table: std::collections::BTreeMap<Table, Vec<_>> = Default::default();
        for (table, r) in normalized.rejected {
            by_table.entry(table).or_default().push(r);
        }
        for (table, rejected) in by_table {
            writer.quarantine(&source.id, table, rejected);
        }
        writer.stage(Table::Tickets, &source.id, &normalized.tickets)?;
        writer.stage(Table::Events, &source.id, &normalized.events)?;
        writer.set_history(&source.id, history_unavailable.clone());
        writer.flush(None).await?;
        let counts = writer.counts(&source.id);
        writer.finish().await?;
        let report = SourceReport {
            source: source.id.clone(),
            counts,
            tickets_read,
            events_read,
            duration: started.elapsed(),
            history_unavailable,
        };
        progress.done(&report);
        reports.push(report);
    }
    Ok(reports)
}
