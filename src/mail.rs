//! E-mail delivery of the monthly report: the PDF attached, the self-contained HTML page
//! as the body (with a short plain-text alternative), sent over SMTP with TLS (STARTTLS
//! on the submission port, or TLS from the first byte), never in clear.
//!
//! `ticketlake run` sends the report once per month and content: a marker file beside the
//! report (`ticketlake-YYYY-MM.mail.json`) records the recipients and a digest of the
//! month's KPIs, so a second run of the same month sends nothing, and a run whose figures
//! changed (late data) sends the corrected report, saying so in the subject.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::engine::localtime::Month;
use crate::report::{Lang, filters};

/// `[mail]` in `ticketlake.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// The SMTP server's host name (checked against its certificate).
    pub host: String,
    /// 587 (submission, STARTTLS) unless said otherwise; 465 for `tls = "wrapper"`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (upgrade the connection, refuse to go on without it) or `wrapper`
    /// (TLS from the first byte). There is no clear-text mode.
    #[serde(default)]
    pub tls: TlsMode,
    /// Name of the environment variable holding the SMTP login (absent: no login).
    #[serde(default)]
    pub user_env: Option<String>,
    /// Name of the environment variable holding the SMTP password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// The sender, `Name <address>` or `address`.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Copies.
    #[serde(default)]
    pub cc: Vec<String>,
    /// The language of the message and of the attached report (default: the first of
    /// `run --lang`).
    #[serde(default)]
    pub lang: Option<String>,
    /// A PEM file of certificate authorities to trust besides the public ones (a
    /// private CA of the organisation).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Seconds to wait for each answer of the server.
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
}

fn default_timeout() -> u64 {
    60
}

/// How the connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    #[default]
    Starttls,
    Wrapper,
}

impl MailConfig {
    /// Checks the addresses, the port and the credential names.
    pub fn validate(&self) -> Result<()> {
        let mailbox = |what: &str, a: &str| -> Result<Mailbox> {
            a.parse::<Mailbox>()
                .with_context(|| format!("[mail] {what} '{a}' is not an e-mail address"))
        };
        mailbox("from", &self.from)?;
        if self.to.is_empty() {
            bail!("[mail] to: at least one recipient");
        }
        for a in &self.to {
            mailbox("to", a)?;
        }
        for a in &self.cc {
            mailbox("cc", a)?;
        }
        if self.host.trim().is_empty() {
            bail!("[mail] host is empty");
        }
        if self.port == Some(0) {
            bail!("[mail] port 0");
        }
        if self.user_env.is_some() != self.password_env.is_some() {
            bail!("[mail] user_env and password_env go together");
        }
        if let Some(l) = &self.lang {
            Lang::parse(l).context("[mail] lang")?;
        }
        if self.timeout_s == 0 {
            bail!("[mail] timeout_s must be above 0");
        }
        Ok(())
    }

    /// The port in use.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::Starttls => 587,
            TlsMode::Wrapper => 465,
        })
    }

    /// The message's language: `lang`, or the first language of the run.
    pub fn language(&self, run_langs: &[Lang]) -> Lang {
        self.lang
            .as_deref()
            .and_then(|l| Lang::parse(l).ok())
            .or_else(|| run_langs.first().copied())
            .unwrap_or(Lang::Fr)
    }

    /// The login, read from the environment variables the config names.
    fn credentials(&self) -> Result<Option<Credentials>> {
        let (Some(user), Some(password)) = (&self.user_env, &self.password_env) else {
            return Ok(None);
        };
        let read = |name: &str| {
            std::env::var(name).map_err(|_| {
                anyhow::anyhow!(
                    "[mail] the environment variable {name} is not set (it holds the SMTP login or password)"
                )
            })
        };
        Ok(Some(Credentials::new(read(user)?, read(password)?)))
    }

    /// The transport, with TLS required and the extra CA if any.
    fn transport(&self) -> Result<SmtpTransport> {
        let mut params = TlsParameters::builder(self.host.clone());
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("[mail] reading ca_file {}", path.display()))?;
            let cert = Certificate::from_pem(&pem).with_context(|| {
                format!("[mail] ca_file {} is not a PEM certificate", path.display())
            })?;
            params = params.add_root_certificate(cert);
        }
        let params = params.build_rustls().context("[mail] TLS parameters")?;
        let tls = match self.tls {
            TlsMode::Starttls => Tls::Required(params),
            TlsMode::Wrapper => Tls::Wrapper(params),
        };
        let mut builder = SmtpTransport::builder_dangerous(&self.host)
            .port(self.port())
            .tls(tls)
            .timeout(Some(Duration::from_secs(self.timeout_s)));
        if let Some(c) = self.credentials()? {
            builder = builder.credentials(c);
        }
        Ok(builder.build())
    }

    /// Connects, secures the connection and logs in, without sending anything
    /// (`ticketlake check`).
    pub fn test_connection(&self) -> Result<()> {
        let ok = self
            .transport()?
            .test_connection()
            .map_err(|e| self.error(e))?;
        anyhow::ensure!(
            ok,
            "[mail] {}: the server did not answer NOOP",
            self.server()
        );
        Ok(())
    }

    fn server(&self) -> String {
        format!("{}:{}", self.host, self.port())
    }

    /// An SMTP error with what to do about it.
    fn error(&self, e: lettre::transport::smtp::Error) -> anyhow::Error {
        let mut why = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            let more = s.to_string();
            if !why.contains(&more) {
                why.push_str(": ");
                why.push_str(&more);
            }
            source = s.source();
        }
        let hint = if why.contains("535") || why.contains("uthentication") {
            format!(
                "check the login in {} / {}",
                self.user_env.as_deref().unwrap_or("-"),
                self.password_env.as_deref().unwrap_or("-")
            )
        } else if why.to_lowercase().contains("certificate") {
            "the server's certificate is not trusted: give its CA in [mail] ca_file".into()
        } else if why.contains("STARTTLS") || why.contains("tls") {
            "the server must offer STARTTLS (or set tls = \"wrapper\" for port 465)".into()
        } else {
            "check [mail] host and port, and that this machine may reach the server".into()
        };
        anyhow::anyhow!("[mail] {}: {why} ({hint})", self.server())
    }
}

/// A report ready to be sent.
pub struct Report<'a> {
    pub month: Month,
    pub lang: Lang,
    /// The self-contained HTML page.
    pub html: &'a str,
    /// The PDF file.
    pub pdf: &'a Path,
    /// The KPI JSON of the month: what decides whether the report changed.
    pub kpis: &'a [u8],
}

/// What was sent for a month: `ticketlake-YYYY-MM.mail.json` beside the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    pub month: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// SHA-256 of the month's KPI JSON.
    pub kpis_sha256: String,
    pub sent_at: String,
    /// The server's answer (usually a queue id).
    pub answer: String,
}

/// The marker file of a month.
pub fn marker(out: &Path, month: Month) -> PathBuf {
    out.join(format!("ticketlake-{month}.mail.json"))
}

/// What `deliver` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Sent { corrected: bool },
    AlreadySent,
}

/// Sends the report unless the same figures already went to the same recipients
/// (`force` sends anyway). The marker is written after the server accepted the message.
pub fn deliver(
    config: &MailConfig,
    report: &Report,
    out: &Path,
    now: chrono::DateTime<chrono::Utc>,
    force: bool,
) -> Result<Outcome> {
    let digest = hex(&Sha256::digest(report.kpis));
    let path = marker(out, report.month);
    let previous: Option<Sent> = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).ok(),
        Err(_) => None,
    };
    if let Some(p) = &previous
        && !force
        && p.kpis_sha256 == digest
        && p.to == config.to
        && p.cc == config.cc
    {
        return Ok(Outcome::AlreadySent);
    }
    let corrected = previous.is_some_and(|p| p.kpis_sha256 != digest);
    let message = compose(config, report, corrected)?;
    let answer = config
        .transport()?
        .send(&message)
        .map_err(|e| config.error(e))?;
    let sent = Sent {
        month: report.month.to_string(),
        to: config.to.clone(),
        cc: config.cc.clone(),
        kpis_sha256: digest,
        sent_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        answer: answer.message().collect::<Vec<_>>().join(" "),
    };
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&sent)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(Outcome::Sent { corrected })
}

/// The message: multipart/mixed of (text, HTML) alternatives and the PDF.
pub fn compose(config: &MailConfig, report: &Report, corrected: bool) -> Result<Message> {
    let words = crate::report::catalogue(report.lang)?;
    let word = |key: &str| -> Result<String> {
        words["mail"][key]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("catalogue key mail.{key}"))
    };
    let month = filters::month(report.lang, &report.month.to_string(), false);
    let file_name = report
        .pdf
        .file_name()
        .and_then(|n| n.to_str())
        .context("the PDF's file name")?
        .to_string();
    let mut subject = word("subject")?.replace("{month}", &month);
    if corrected {
        subject = format!("{subject} {}", word("corrected")?);
    }
    let text = word("text")?
        .replace("{month}", &month)
        .replace("{file}", &file_name);
    let pdf =
        std::fs::read(report.pdf).with_context(|| format!("reading {}", report.pdf.display()))?;
    let mut builder = Message::builder()
        .from(config.from.parse()?)
        .subject(subject);
    for a in &config.to {
        builder = builder.to(a.parse()?);
    }
    for a in &config.cc {
        builder = builder.cc(a.parse()?);
    }
    let body = MultiPart::mixed()
        .multipart(MultiPart::alternative_plain_html(
            text,
            report.html.to_string(),
        ))
        .singlepart(Attachment::new(file_name).body(pdf, ContentType::parse("application/pdf")?));
    builder.multipart(body).context("composing the message")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MailConfig {
        toml::from_str(
            r#"
host = "smtp.example.org"
from = "ticketlake <ticketlake@example.org>"
to = ["comite@example.org", "DSI <dsi@example.org>"]
"#,
        )
        .unwrap()
    }

    #[test]
    fn defaults_are_starttls_on_587() {
        let c = config();
        c.validate().unwrap();
        assert_eq!(c.tls, TlsMode::Starttls);
        assert_eq!(c.port(), 587);
        let w = MailConfig {
            tls: TlsMode::Wrapper,
            ..config()
        };
        assert_eq!(w.port(), 465);
    }

    #[test]
    fn bad_settings_are_named() {
        let bad = MailConfig {
            to: vec!["not an address".into()],
            ..config()
        };
        let e = format!("{:#}", bad.validate().unwrap_err());
        assert!(e.contains("[mail] to 'not an address'"), "{e}");
        let half = MailConfig {
            user_env: Some("SMTP_USER".into()),
            ..config()
        };
        assert!(format!("{:#}", half.validate().unwrap_err()).contains("go together"));
        let clear: Result<MailConfig, _> =
            toml::from_str("host='h'\nfrom='a@b.c'\nto=['a@b.c']\ntls='none'\n");
        assert!(clear.is_err(), "no clear-text mode");
    }

    #[test]
    fn the_message_has_the_pdf_and_the_page() {
        let dir = tempfile::tempdir().unwrap();
        let pdf = dir.path().join("ticketlake-2026-10.fr.pdf");
        std::fs::write(&pdf, b"%PDF-1.7 tiny").unwrap();
        let report = Report {
            month: Month::parse("2026-10").unwrap(),
            lang: Lang::Fr,
            html: "<html><body>rapport</body></html>",
            pdf: &pdf,
            kpis: b"{}",
        };
        let m = compose(&config(), &report, true).unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("Content-Type: application/pdf"), "{raw}");
        assert!(
            raw.contains("filename=\"ticketlake-2026-10.fr.pdf\""),
            "{raw}"
        );
        assert!(raw.contains("Content-Type: text/html"), "{raw}");
        assert!(
            raw.contains("To: comite@example.org, DSI <dsi@example.org>"),
            "{raw}"
        );
        // the subject is encoded (accents): decoded, it names the month and the correction
        let subject = m.headers().get_raw("Subject").unwrap().to_string();
        assert!(subject.contains("octobre 2026"), "{subject}");
        assert!(subject.contains("rectifié"), "{subject}");
    }
}
