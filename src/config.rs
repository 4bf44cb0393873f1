//! `ticketlake.toml`: lake URL, calendars, organisations, service catalogue, SLA targets
//! and the name of the pseudonym secret. Parsing and validation only; no I/O beyond
//! reading the file.
//!
//! The built-in default (the INSA group) is the commented example that `ticketlake init`
//! writes, so the two cannot drift apart.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::{NaiveDate, NaiveTime, Weekday};
use serde::{Deserialize, Serialize};

/// The commented example configuration, also the built-in default.
pub const EXAMPLE_TOML: &str = include_str!("ticketlake.example.toml");

/// A whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the lake lives: a directory, `file:///abs/path` or `s3://bucket/prefix`.
    pub lake: String,
    /// Where queries run: `local` (this process, the default) or `df://host:port`, the
    /// scheduler of a Ballista cluster (`ticketlake scheduler` and `ticketlake executor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Time zone of every `month` and `day` in KPI output and reports (IANA name).
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Name of the environment variable holding the pseudonym secret (never the secret).
    #[serde(default = "default_secret_env")]
    pub pseudonym_secret_env: String,
    /// Calendar for an org that names none, or for an org missing from `orgs`.
    #[serde(default = "default_calendar")]
    pub default_calendar: String,
    /// Opening hours and holidays, by name.
    pub calendars: BTreeMap<String, CalendarConfig>,
    /// Requester organisations.
    pub orgs: Vec<OrgConfig>,
    /// The service catalogue.
    pub services: Vec<ServiceConfig>,
    /// SLA targets per priority (business time).
    pub sla: Vec<SlaTarget>,
    /// The decision model: its window, assumptions and the fallbacks of measured inputs.
    #[serde(default)]
    pub decision: DecisionConfig,
    /// The help desks `pull` reads.
    #[serde(default)]
    pub sources: Vec<crate::sources::config::SourceConfig>,
    /// Where `run` sends the report (absent: it is only written).
    #[serde(default)]
    pub mail: Option<crate::mail::MailConfig>,
}

/// `[decision]`: the assumptions of the desk-organisation model (DESIGN.md's defaults),
/// and the values used when the lake cannot measure an input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionConfig {
    /// Complete months measured, ending with the last complete one.
    pub window_months: u32,
    /// Minutes to qualify and forward a ticket (the time to own one).
    pub triage_min: f64,
    /// Share of school-service tickets that need someone on site.
    pub onsite_share: f64,
    /// People each school keeps on site during opening hours under `central`.
    pub onsite_presence: f64,
    /// Extra effort of a central desk on school-service tickets (no local knowledge).
    pub central_aht_factor: f64,
    /// One-off cost of setting each option up, FTE·months.
    pub setup_fte_months: SetupFteMonths,
    /// Months over which the set-up cost is spread.
    pub horizon_months: f64,
    /// Productive hours of one FTE a month (1607 h a year × 0.8 ÷ 12).
    pub fte_hours_per_month: f64,
    /// Share of an agent's time spent on tickets.
    pub occupancy: f64,
    /// Time-to-own target of a user-facing desk, minutes.
    pub tto_target_min: f64,
    /// Share of tickets to own within that target.
    pub service_level: f64,
    /// Opening hours a month; absent: the default calendar's mean over the window.
    pub business_hours_per_month: Option<f64>,
    /// Values of the measured inputs when the lake cannot give them.
    pub fallback: DecisionFallback,
}

/// Set-up effort per option, FTE·months.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupFteMonths {
    pub direct: f64,
    pub n_plus_1: f64,
    pub central: f64,
}

/// Fallbacks of the measured inputs of the decision model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionFallback {
    /// Share of group-service tickets at school desks kept there (not forwarded).
    pub r: f64,
    /// Mean effort minutes of a group-service ticket.
    pub aht_g: f64,
    /// Mean effort minutes of a school-service ticket.
    pub aht_s: f64,
    /// Median business hours from a school ticket to the group ticket forwarded from it.
    pub hop_bh: f64,
    /// Share of tickets transferred between desks.
    pub m: f64,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        DecisionConfig {
            window_months: 12,
            triage_min: 10.0,
            onsite_share: 0.3,
            onsite_presence: 1.0,
            central_aht_factor: 1.25,
            setup_fte_months: SetupFteMonths {
                direct: 6.0,
                n_plus_1: 3.0,
                central: 36.0,
            },
            horizon_months: 36.0,
            fte_hours_per_month: 1607.0 * 0.8 / 12.0,
            occupancy: 0.8,
            tto_target_min: 60.0,
            service_level: 0.8,
            business_hours_per_month: None,
            fallback: DecisionFallback::default(),
        }
    }
}

impl Default for DecisionFallback {
    fn default() -> Self {
        DecisionFallback {
            r: 0.6,
            aht_g: 30.0,
            aht_s: 25.0,
            hop_bh: 4.0,
            m: 0.05,
        }
    }
}

impl DecisionConfig {
    /// Applies `key=value` overrides (`occupancy=0.85`, `setup_fte_months.central=24`,
    /// `fallback.r=0.5`); an unknown key or a bad value is an error naming it.
    pub fn with_overrides(&self, sets: &[String]) -> Result<DecisionConfig> {
        let mut value = toml::Value::try_from(self)?;
        for set in sets {
            let (key, raw) = set
                .split_once('=')
                .with_context(|| format!("--set '{set}': expected KEY=VALUE"))?;
            let parsed: toml::Value = raw
                .trim()
                .parse::<f64>()
                .map(toml::Value::Float)
                .with_context(|| format!("--set '{set}': '{raw}' is not a number"))?;
            let mut slot = &mut value;
            let parts: Vec<&str> = key.trim().split('.').collect();
            for (i, part) in parts.iter().enumerate() {
                let table = slot.as_table_mut().with_context(|| {
                    format!("--set '{set}': '{key}' is not a setting of [decision]")
                })?;
                if i + 1 == parts.len() {
                    anyhow::ensure!(
                        table.contains_key(*part) || *part == "business_hours_per_month",
                        "--set '{set}': '{key}' is not a setting of [decision]"
                    );
                    let parsed = if *part == "window_months" {
                        toml::Value::Integer(parsed.as_float().unwrap_or_default() as i64)
                    } else {
                        parsed.clone()
                    };
                    table.insert(part.to_string(), parsed);
                    break;
                }
                slot = table.get_mut(*part).with_context(|| {
                    format!("--set '{set}': '{key}' is not a setting of [decision]")
                })?;
            }
        }
        let out: DecisionConfig = value
            .try_into()
            .with_context(|| format!("applying --set {}", sets.join(" ")))?;
        out.validate()?;
        Ok(out)
    }

    fn validate(&self) -> Result<()> {
        let share = |name: &str, v: f64| {
            anyhow::ensure!(
                (0.0..=1.0).contains(&v),
                "[decision] {name} = {v} is not a share between 0 and 1"
            );
            Ok(())
        };
        share("onsite_share", self.onsite_share)?;
        share("occupancy", self.occupancy)?;
        share("service_level", self.service_level)?;
        share("fallback.r", self.fallback.r)?;
        share("fallback.m", self.fallback.m)?;
        anyhow::ensure!(self.occupancy > 0.0, "[decision] occupancy must be above 0");
        anyhow::ensure!(
            self.service_level < 1.0,
            "[decision] service_level must be below 1 (no finite staffing reaches 100 %)"
        );
        anyhow::ensure!(
            self.window_months >= 1,
            "[decision] window_months must be at least 1"
        );
        for (name, v) in [
            ("triage_min", self.triage_min),
            ("horizon_months", self.horizon_months),
            ("fte_hours_per_month", self.fte_hours_per_month),
            ("tto_target_min", self.tto_target_min),
        ] {
            anyhow::ensure!(v > 0.0, "[decision] {name} = {v} must be above 0");
        }
        Ok(())
    }
}

fn default_timezone() -> String {
    "Europe/Paris".into()
}
fn default_secret_env() -> String {
    "TICKETLAKE_PSEUDONYM_SECRET".into()
}
fn default_calendar() -> String {
    "france".into()
}

/// Opening hours and public holidays of one calendar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    /// IANA time zone of the opening hours.
    pub timezone: String,
    /// Working days: `mon` … `sun`.
    pub days: Vec<String>,
    /// Opening time, `HH:MM` local.
    pub opens: String,
    /// Closing time, `HH:MM` local (after `opens`).
    pub closes: String,
    /// Public-holiday set: `france`, `alsace-moselle` or `none`.
    pub holidays: String,
    /// Further closed days, `YYYY-MM-DD`.
    #[serde(default)]
    pub closed: Vec<String>,
}

/// One requester organisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgConfig {
    /// Short id used in the lake (`LYON`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Calendar name (a key of `calendars`).
    pub calendar: String,
    /// Number of users, for volumes per 1,000 users.
    #[serde(default)]
    pub headcount: Option<u32>,
}

/// One catalogue entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub name: String,
    /// `group` or `school`.
    pub scope: String,
    pub owner_team: String,
}

/// SLA targets of one priority, in business time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaTarget {
    pub priority: u8,
    /// Time to own, minutes.
    pub tto_min: f64,
    /// Time to resolve, hours.
    pub ttr_h: f64,
}

/// A calendar with its strings parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct CalendarSpec {
    pub timezone: chrono_tz::Tz,
    pub days: [bool; 7],
    pub opens: NaiveTime,
    pub closes: NaiveTime,
    pub holidays: HolidaySet,
    pub closed: Vec<NaiveDate>,
}

/// Which public holidays a calendar observes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolidaySet {
    None,
    France,
    AlsaceMoselle,
}

impl Default for Config {
    fn default() -> Self {
        Config::parse(EXAMPLE_TOML, "built-in default").expect("the built-in config is valid")
    }
}

impl Config {
    /// Parses and validates a configuration; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config> {
        let config: Config = toml::from_str(text).with_context(|| format!("parsing {origin}"))?;
        config.validate().with_context(|| format!("in {origin}"))?;
        Ok(config)
    }

    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        Config::parse(&text, &path.display().to_string())
    }

    /// `--config` if given, else `./ticketlake.toml` if present, else the built-in default.
    pub fn resolve(path: Option<&Path>) -> Result<Config> {
        match path {
            Some(p) => Config::load(p),
            None if Path::new("ticketlake.toml").exists() => {
                Config::load(Path::new("ticketlake.toml"))
            }
            None => Ok(Config::default()),
        }
    }

    fn validate(&self) -> Result<()> {
        self.decision.validate()?;
        if let Some(engine) = &self.engine {
            crate::engine::cluster::Engine::parse(engine)?;
        }
        let mut ids = std::collections::HashSet::new();
        for s in &self.sources {
            s.validate()?;
            if !ids.insert(&s.id) {
                bail!("source '{}' is listed twice", s.id);
            }
        }
        if let Some(mail) = &self.mail {
            mail.validate()?;
        }
        self.tz()?;
        for (name, cal) in &self.calendars {
            cal.spec().with_context(|| format!("calendar '{name}'"))?;
        }
        if !self.calendars.contains_key(&self.default_calendar) {
            bail!(
                "default_calendar '{}' is not a calendar",
                self.default_calendar
            );
        }
        for org in &self.orgs {
            if !self.calendars.contains_key(&org.calendar) {
                bail!("org '{}': unknown calendar '{}'", org.id, org.calendar);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.services {
            if !crate::model::values::SCOPES.contains(&s.scope.as_str()) {
                bail!(
                    "service '{}': scope must be group or school, not '{}'",
                    s.name,
                    s.scope
                );
            }
            if !seen.insert(&s.name) {
                bail!("service '{}' is listed twice", s.name);
            }
        }
        for p in 1..=4u8 {
            if !self.sla.iter().any(|t| t.priority == p) {
                bail!("sla: no target for priority {p}");
            }
        }
        for t in &self.sla {
            if !(1..=4).contains(&t.priority) || t.tto_min <= 0.0 || t.ttr_h <= 0.0 {
                bail!(
                    "sla: priority {} needs 1..4 and positive targets",
                    t.priority
                );
            }
        }
        Ok(())
    }

    /// The reporting time zone.
    pub fn tz(&self) -> Result<chrono_tz::Tz> {
        self.timezone
            .parse()
            .map_err(|_| anyhow::anyhow!("unknown time zone '{}'", self.timezone))
    }

    /// The calendar name of an org (the default calendar for an unknown org).
    pub fn calendar_of(&self, org: &str) -> &str {
        self.orgs
            .iter()
            .find(|o| o.id == org)
            .map(|o| o.calendar.as_str())
            .unwrap_or(&self.default_calendar)
    }

    /// The SLA target of a priority.
    pub fn sla_for(&self, priority: u8) -> Option<&SlaTarget> {
        self.sla.iter().find(|t| t.priority == priority)
    }
}

impl CalendarConfig {
    /// Parses the strings of a calendar.
    pub fn spec(&self) -> Result<CalendarSpec> {
        let timezone: chrono_tz::Tz = self
            .timezone
            .parse()
            .map_err(|_| anyhow::anyhow!("unknown time zone '{}'", self.timezone))?;
        let mut days = [false; 7];
        for d in &self.days {
            let wd: Weekday = d
                .parse()
                .map_err(|_| anyhow::anyhow!("unknown day '{d}' (mon … sun)"))?;
            days[wd.num_days_from_monday() as usize] = true;
        }
        let time = |s: &str| {
            NaiveTime::parse_from_str(s, "%H:%M")
                .with_context(|| format!("'{s}' is not a time HH:MM"))
        };
        let opens = time(&self.opens)?;
        let closes = time(&self.closes)?;
        if closes <= opens {
            bail!(
                "closes ({}) must be after opens ({})",
                self.closes,
                self.opens
            );
        }
        let holidays = match self.holidays.as_str() {
            "france" => HolidaySet::France,
            "alsace-moselle" => HolidaySet::AlsaceMoselle,
            "none" => HolidaySet::None,
            other => bail!("unknown holiday set '{other}' (france, alsace-moselle, none)"),
        };
        let closed = self
            .closed
            .iter()
            .map(|d| {
                NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .with_context(|| format!("closed day '{d}' is not YYYY-MM-DD"))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CalendarSpec {
            timezone,
            days,
            opens,
            closes,
            holidays,
            closed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_insa_group() {
        let c = Config::default();
        assert_eq!(c.orgs.len(), 8);
        assert_eq!(c.calendar_of("STRASBOURG"), "alsace-moselle");
        assert_eq!(c.calendar_of("LYON"), "france");
        assert_eq!(c.calendar_of("NOWHERE"), "france");
        assert_eq!(c.services.iter().filter(|s| s.scope == "group").count(), 7);
        assert_eq!(c.sla_for(3).unwrap().ttr_h, 24.0);
        assert_eq!(c.sla_for(1).unwrap().tto_min, 30.0);
    }

    #[test]
    fn bad_values_are_named() {
        let text = EXAMPLE_TOML.replace("opens = \"08:00\"", "opens = \"8h\"");
        let err = format!("{:#}", Config::parse(&text, "t.toml").unwrap_err());
        assert!(err.contains("'8h' is not a time"), "{err}");
        let text = EXAMPLE_TOML.replace("scope = \"group\"", "scope = \"galaxy\"");
        let err = format!("{:#}", Config::parse(&text, "t.toml").unwrap_err());
        assert!(err.contains("galaxy"), "{err}");
        let text = format!("{EXAMPLE_TOML}\nlakes = 3\n");
        assert!(Config::parse(&text, "t.toml").is_err());
    }
}
