//! `[[sources]]` in `ticketlake.toml`: where each help desk is, how to log in (the
//! *names* of environment variables, never the secrets), and how its values map onto
//! the canonical model. Every mapping table has a default per source kind (documented in
//! the connector's module); a table in the config adds to it or overrides entries.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The kinds of source ticketlake can pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// iTop REST/JSON (`webservices/rest.php`).
    Itop,
    /// GLPI legacy REST (`apirest.php`).
    Glpi,
    /// CSV or JSON-lines exports.
    Files,
}

/// One `[[sources]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The source's id in the lake (`itop-group`, `glpi-lyon`): letters, digits, `-`, `_`.
    pub id: String,
    pub kind: SourceKind,
    /// The org of its requesters when a record names none (or names one not mapped).
    pub org: String,
    /// `group` or `school`: which desk this system is.
    pub desk: String,
    /// The base URL: iTop's root (`https://itop.example/`) or GLPI's `…/apirest.php`.
    #[serde(default)]
    pub url: Option<String>,
    /// Environment variable holding the login (iTop `auth_user`, GLPI Basic login).
    #[serde(default)]
    pub user_env: Option<String>,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Environment variable holding a token (iTop `auth_token`, GLPI `user_token`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// Environment variable holding GLPI's `App-Token`, when API clients are configured.
    #[serde(default)]
    pub app_token_env: Option<String>,
    /// iTop: send the login as HTTP Basic instead of form fields.
    #[serde(default)]
    pub basic_auth: bool,
    /// iTop REST version (`1.3` or `1.4`).
    #[serde(default = "default_itop_version")]
    pub api_version: String,
    /// The source's time zone: its dates are local wall-clock times without an offset.
    #[serde(default = "default_source_tz")]
    pub timezone: String,
    /// How the source writes dates (chrono format): iTop's `date_and_time_format`.
    #[serde(default = "default_date_format")]
    pub date_format: String,
    /// iTop: the ticket classes to read.
    #[serde(default = "default_classes")]
    pub classes: Vec<String>,
    /// GLPI: the entity to read (with its sub-entities); absent: the profile's default.
    #[serde(default)]
    pub entity: Option<u64>,
    /// Records per page.
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// Requests in flight at once (GLPI per-ticket history).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Minutes re-read before the watermark, to catch late updates.
    #[serde(default = "default_overlap")]
    pub overlap_minutes: i64,
    /// Seconds before a request is abandoned (and retried).
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    /// Retries of a request on timeouts, 429 and 5xx.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First wait before a retry, milliseconds; doubled at each retry, plus jitter.
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
    /// Source attribute codes of canonical fields the stock model lacks (custom fields):
    /// `origin`, `effort_minutes`, `requester_profile`, `satisfaction`.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Mapping tables: `status`, `priority`, `impact`, `urgency`, `kind`, `channel`,
    /// `service`, `org`, `satisfaction`, `profile`; each source value → canonical value.
    #[serde(default)]
    pub map: BTreeMap<String, BTreeMap<String, String>>,
    /// Teams: their support level and whether handing a ticket to them is a transfer to
    /// another desk. Unlisted teams: a name ending in `n1`/`n2`/`n3` gives that level, a
    /// catalogue owner team is level 2, any other level 1; a team named after another org
    /// (`lyon-…` seen from the group desk) belongs to that org's desk.
    #[serde(default)]
    pub teams: BTreeMap<String, TeamConfig>,
    /// Files: the exports to read.
    #[serde(default)]
    pub files: Option<FilesConfig>,
    /// Credentials handed over in memory (the demo's own loopback servers); never read
    /// from or written to a file.
    #[serde(skip)]
    pub inline_credentials: Option<InlineCredentials>,
}

/// In-memory credentials of a loopback fixture server.
#[derive(Clone, PartialEq, Default)]
pub struct InlineCredentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for InlineCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InlineCredentials(<hidden>)")
    }
}

/// One team of a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    #[serde(default)]
    pub level: Option<u8>,
    /// Handing a ticket to this team moves it to another desk.
    #[serde(default)]
    pub other_desk: Option<bool>,
}

/// What a files source reads and how its columns map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// Files or glob-free directory paths (every `*.csv` / `*.jsonl` inside).
    pub paths: Vec<String>,
    /// `csv` or `jsonl`.
    #[serde(default = "default_files_format")]
    pub format: String,
    /// `events` (one row per state change of a ticket) or `tickets` (one row per ticket).
    pub layout: String,
    /// CSV field delimiter.
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// chrono format of the timestamps; `rfc3339` for instants with an offset.
    #[serde(default = "default_date_format")]
    pub timestamp_format: String,
    /// Canonical field → column name. Tickets: `ticket_id`, `created_at`, `status`…;
    /// events layout: `ticket_id`, `event_id` (or a sequence column), `at`, `status`, plus
    /// any ticket attribute (its last non-empty value per ticket wins).
    pub columns: BTreeMap<String, String>,
    /// Canonical field → one value for every record (`service = "Helpdesk"`).
    #[serde(default)]
    pub constants: BTreeMap<String, String>,
}

fn default_itop_version() -> String {
    "1.4".into()
}
fn default_source_tz() -> String {
    "Europe/Paris".into()
}
fn default_date_format() -> String {
    "%Y-%m-%d %H:%M:%S".into()
}
fn default_classes() -> Vec<String> {
    vec!["UserRequest".into(), "Incident".into()]
}
fn default_page_size() -> usize {
    500
}
fn default_concurrency() -> usize {
    8
}
fn default_overlap() -> i64 {
    120
}
fn default_timeout() -> f64 {
    30.0
}
fn default_retries() -> u32 {
    4
}
fn default_backoff() -> u64 {
    500
}
fn default_files_format() -> String {
    "csv".into()
}
fn default_delimiter() -> String {
    ",".into()
}

impl SourceConfig {
    pub fn validate(&self) -> Result<()> {
        let ctx = || format!("source '{}'", self.id);
        if self.id.is_empty()
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!(
                "source id '{}' may hold only letters, digits, '-' and '_'",
                self.id
            );
        }
        if !crate::model::values::DESKS.contains(&self.desk.as_str()) {
            bail!(
                "{}: desk must be group or school, not '{}'",
                ctx(),
                self.desk
            );
        }
        self.tz().with_context(ctx)?;
        match self.kind {
            SourceKind::Itop | SourceKind::Glpi => {
                if self.url.is_none() {
                    bail!("{}: `url` is required for a {:?} source", ctx(), self.kind);
                }
                let has_login = self.user_env.is_some() && self.password_env.is_some();
                if !has_login && self.token_env.is_none() && self.inline_credentials.is_none() {
                    bail!(
                        "{}: give `user_env` and `password_env`, or `token_env` (names of environment variables)",
                        ctx()
                    );
                }
                if self.kind == SourceKind::Itop
                    && !["1.3", "1.4"].contains(&self.api_version.as_str())
                {
                    bail!("{}: api_version must be 1.3 or 1.4", ctx());
                }
            }
            SourceKind::Files => {
                let files = self
                    .files
                    .as_ref()
                    .with_context(|| format!("{}: a files source needs [sources.files]", ctx()))?;
                if !["csv", "jsonl"].contains(&files.format.as_str()) {
                    bail!("{}: files.format must be csv or jsonl", ctx());
                }
                if !["events", "tickets"].contains(&files.layout.as_str()) {
                    bail!("{}: files.layout must be events or tickets", ctx());
                }
                let needed: &[&str] = if files.layout == "events" {
                    &["ticket_id", "at", "status"]
                } else {
                    &["ticket_id", "created_at", "status"]
                };
                for n in needed {
                    if !files.columns.contains_key(*n) {
                        bail!("{}: files.columns needs `{n}`", ctx());
                    }
                }
            }
        }
        if self.page_size == 0 || self.concurrency == 0 {
            bail!("{}: page_size and concurrency must be at least 1", ctx());
        }
        Ok(())
    }

    pub fn tz(&self) -> Result<chrono_tz::Tz> {
        self.timezone
            .parse()
            .map_err(|_| anyhow::anyhow!("unknown time zone '{}'", self.timezone))
    }

    /// A mapping table: the kind's defaults, then the config's entries.
    pub fn table(&self, name: &str, defaults: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut t: BTreeMap<String, String> = defaults
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(own) = self.map.get(name) {
            t.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        t
    }

    /// Reads an environment variable named in the config; the error names the variable,
    /// never its value.
    pub fn secret(&self, var: &Option<String>, what: &str) -> Result<Option<String>> {
        if let Some(c) = &self.inline_credentials {
            return Ok(match what {
                w if w.ends_with("login") => Some(c.user.clone()),
                w if w.ends_with("password") => Some(c.password.clone()),
                _ => None,
            });
        }
        match var {
            None => Ok(None),
            Some(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(Some(v)),
                _ => bail!(
                    "source '{}': the environment variable {name} ({what}) is not set",
                    self.id
                ),
            },
        }
    }
}
