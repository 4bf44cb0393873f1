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
