//! E-mail delivery: `ticketlake run` sends the report to a real SMTP server on loopback
//! (aiosmtpd, tests/smtp/server.py) that requires STARTTLS and a login; the test reads the
//! message the server received and checks the PDF attachment and the HTML body against
//! the files written.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use mail_parser::{MessageParser, MimeHeaders};
use ticketlake::config::EXAMPLE_TOML;

use super::common::*;

const USER: &str = "ticketlake-mailer";
const PASSWORD: &str = "smtp-Secret-4711";

/// The loopback SMTP server, stopped on drop.
struct Smtp {
    child: Child,
    port: u16,
    spool: tempfile::TempDir,
}

impl Smtp {
    fn start(tls: bool) -> Smtp {
        let spool = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/server.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script).arg("--spool").arg(spool.path()).args([
            "--user",
            USER,
            "--password",
            PASSWORD,
        ]);
        if !tls {
            cmd.arg("--no-tls");
        }
        // its log (handshakes the tests break on purpose) goes beside the messages
        let log = std::fs::File::create(spool.path().join("server.log")).unwrap();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("python3 (with aiosmtpd: pip install aiosmtpd, as .ci/run does)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("port ")
            .unwrap_or_else(|| {
                panic!("the SMTP server did not start (aiosmtpd missing?): {line:?}")
            })
            .parse()
            .unwrap();
        Smtp { child, port, spool }
    }

    /// The messages received: (envelope JSON, raw bytes), in order.
    fn messages(&self) -> Vec<(serde_json::Value, Vec<u8>)> {
        (1..)
            .map(|n| self.spool.path().join(format!("msg-{n}")))
            .take_while(|base| base.with_extension("json").exists())
            .map(|base| {
                let envelope =
                    serde_json::from_slice(&std::fs::read(base.with_extension("json")).unwrap())
                        .unwrap();
                (envelope, std::fs::read(base.with_extension("eml")).unwrap())
            })
            .collect()
    }

    fn ca(&self) -> PathBuf {
        self.spool.path().join("ca.pem")
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example configuration with a [mail] section for `smtp`.
fn config(dir: &Path, smtp: &Smtp, ca: Option<&Path>) -> PathBuf {
    let ca = ca
        .map(|p| format!("ca_file = {:?}\n", p.to_str().unwrap()))
        .unwrap_or_default();
    let text = format!(
        "{EXAMPLE_TOML}\n[mail]\nhost = \"127.0.0.1\"\nport = {}\nuser_env = \"TL_SMTP_USER\"\npassword_env = \"TL_SMTP_PASSWORD\"\nfrom = \"ticketlake <ticketlake@insa.example>\"\nto = [\"comite@insa.example\", \"Direction DSI <dsi@insa.example>\"]\ncc = [\"archives@insa.example\"]\ntimeout_s = 10\n{ca}",
        smtp.port
    );
    let path = dir.join(format!("ticketlake-{}.toml", smtp.port));
    std::fs::write(&path, text).unwrap();
    path
}

fn run(config: &Path, lake: &Path, out: &Path, password: &str, extra: &[&str]) -> Output {
    Command::new(bin())
        .arg("run")
        .arg("--config")
        .arg(config)
        .arg("--lake")
        .arg(lake)
        .arg("--out")
        .arg(out)
        .args(["--month", "2026-04", "--now", "2026-05-04T06:00:00Z"])
        .args(extra)
        .env("TL_SMTP_USER", USER)
        .env("TL_SMTP_PASSWORD", password)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_sends_the_report_once_over_starttls_with_the_pdf_attached() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    write_lake(&lake, &super::kpi_hand::sources()).await;
    let out = dir.path().join("out");
    let smtp = Smtp::start(true);
    let cfg = config(dir.path(), &smtp, Some(&smtp.ca()));

    // `check` logs in over TLS without sending anything
    let check = Command::new(bin())
        .args(["check", "--config"])
        .arg(&cfg)
        .env("TL_SMTP_USER", USER)
        .env("TL_SMTP_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    assert!(
        text(&check).contains(&format!("127.0.0.1:{}", smtp.port))
            && text(&check).contains("ok: TLS and login accepted"),
        "{}",
        text(&check)
    );
    assert!(smtp.messages().is_empty());

    let first = run(&cfg, &lake, &out, PASSWORD, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    // cron mails whatever a job prints: on success, one line and no warning
    assert!(first.stderr.is_empty(), "{}", text(&first));
    assert_eq!(String::from_utf8_lossy(&first.stdout).lines().count(), 1);
    assert!(
        text(&first).contains("sent to comite@insa.example, Direction DSI <dsi@insa.example>"),
        "{}",
        text(&first)
    );
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let (envelope, raw) = &messages[0];
    assert_eq!(
        envelope["tls"], true,
        "the message travelled under STARTTLS"
    );
    assert_eq!(envelope["login"], USER);
    assert_eq!(envelope["mail_from"], "ticketlake@insa.example");
    assert_eq!(
        envelope["rcpt_tos"],
        serde_json::json!([
            "comite@insa.example",
            "dsi@insa.example",
            "archives@insa.example"
        ])
    );

    // the message, as a mail reader sees it
    let message = MessageParser::default().parse(raw).unwrap();
    assert_eq!(
        message.subject(),
        Some("Rapport mensuel du support — avril 2026")
    );
    let pdf_path = out.join("ticketlake-2026-04.fr.pdf");
    let html_path = out.join("ticketlake-2026-04.fr.html");
    assert_eq!(message.attachment_count(), 1);
    let attachment = message.attachment(0).unwrap();
    assert_eq!(
        attachment.attachment_name(),
        Some("ticketlake-2026-04.fr.pdf")
    );
    let ct = attachment.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("application", Some("pdf")));
    let pdf = std::fs::read(&pdf_path).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    assert_eq!(
        attachment.contents(),
        &pdf[..],
        "the attachment is the PDF written"
    );
    let html = std::fs::read_to_string(&html_path).unwrap();
    // the body is the page written (SMTP carries lines ended by CR LF)
    let body = message.body_html(0).unwrap().replace("\r\n", "\n");
    assert!(
        body == html,
        "the body differs from the page written ({} and {} bytes)",
        body.len(),
        html.len()
    );
    let plain = message.body_text(0).unwrap();
    assert!(
        plain.contains("avril 2026") && plain.contains("ticketlake-2026-04.fr.pdf"),
        "{plain}"
    );
    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("ticketlake-2026-04.mail.json")).unwrap())
            .unwrap();
    assert_eq!(marker["answer"], "OK queued as q1");

    // the same month again: the same figures are not sent twice
    let second = run(&cfg, &lake, &out, PASSWORD, &[]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert!(text(&second).contains("already sent"), "{}", text(&second));
    assert_eq!(smtp.messages().len(), 1);

    // --resend with a wrong password: refused login, exit 2, the report kept, no secret
    // printed, and the reason and the variables to fix named
    let refused = run(&cfg, &lake, &out, "wrong-password", &["--resend"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    let said = text(&refused);
    assert!(said.contains("was not sent"), "{said}");
    assert!(said.contains("535"), "{said}");
    assert!(said.contains("TL_SMTP_PASSWORD"), "{said}");
    assert!(
        !said.contains("wrong-password") && !said.contains(PASSWORD),
        "{said}"
    );
    assert!(pdf_path.exists());
    assert_eq!(smtp.messages().len(), 1);

    // late data: a new ticket in April changes the figures, the corrected report goes out
    let late = dir.path().join("late");
    let mut sources = super::kpi_hand::sources();
    sources[0]
        .tickets
        .push(ticket("LATE-1", "2026-04-20 10:00"));
    write_lake(&late, &sources).await;
    let third = run(&cfg, &late, &out, PASSWORD, &[]);
    assert_eq!(third.status.code(), Some(0), "{}", text(&third));
    assert!(text(&third).contains("(corrected)"), "{}", text(&third));
    let messages = smtp.messages();
    assert_eq!(messages.len(), 2);
    let corrected = MessageParser::default().parse(&messages[1].1).unwrap();
    assert!(
        corrected.subject().unwrap().contains("rectifié"),
        "{:?}",
        corrected.subject()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_leaves_without_tls_or_to_an_untrusted_server() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    write_lake(&lake, &super::kpi_hand::sources()).await;

    // a certificate signed by a CA the config does not name
    let smtp = Smtp::start(true);
    let cfg = config(dir.path(), &smtp, None);
    let o = run(&cfg, &lake, &dir.path().join("a"), PASSWORD, &["--quiet"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("ca_file"), "{}", text(&o));
    assert!(smtp.messages().is_empty());
    assert!(dir.path().join("a/ticketlake-2026-04.fr.pdf").exists());
    assert!(!dir.path().join("a/ticketlake-2026-04.mail.json").exists());

    // a server without STARTTLS: nothing is sent in clear, not even the login
    let clear = Smtp::start(false);
    let cfg = config(dir.path(), &clear, None);
    let o = run(&cfg, &lake, &dir.path().join("b"), PASSWORD, &["--quiet"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("STARTTLS"), "{}", text(&o));
    assert!(clear.messages().is_empty());

    // --no-mail writes the report and sends nothing
    let o = run(&cfg, &lake, &dir.path().join("c"), PASSWORD, &["--no-mail"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains("sent"), "{}", text(&o));
}
