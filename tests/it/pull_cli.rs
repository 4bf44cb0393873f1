//! `ticketlake pull` and `check` as child processes against the loopback servers: exit
//! codes, the lock, credentials that never leak, and SIGKILL at twenty points.

use std::path::Path;
use std::process::{Command, Output};

use ticketlake::config::Config;
use ticketlake::lake::Lake;
use ticketlake::sources::fixtures::loopback::Loopback;
use ticketlake::sources::fixtures::server::Faults;

use super::common::*;
use super::connectors::{PASSWORD, TOKEN, USER, servers, with_sources};

const SECRET: &str = "pseudonym-secret-for-the-cli-tests";

/// Writes the config of the loopback sources (credentials by variable name only). Two
/// sources log in with a token, one with HTTP Basic on API 1.3.
pub(super) fn config_file(lb: &Loopback, dir: &Path) -> std::path::PathBuf {
    let mut config = with_sources(lb);
    for s in &mut config.sources {
        match s.id.as_str() {
            "itop-rennes" | "glpi-toulouse" => {
                s.user_env = None;
                s.password_env = None;
                s.token_env = Some("TICKETLAKE_FIXTURE_TOKEN".into());
            }
            "itop-rouen" => {
                s.basic_auth = true;
                s.api_version = "1.3".into();
            }
            _ => {}
        }
    }
    let text = toml::to_string(&config).unwrap();
    assert!(!text.contains(PASSWORD), "the config file holds no secret");
    let path = dir.join("ticketlake.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Every fourth answer 15 ms late: a pull long enough to be killed in the middle.
pub(super) fn slowed() -> Faults {
    Faults {
        slow_every: Some((4, std::time::Duration::from_millis(15))),
        ..Faults::default()
    }
}

pub(super) fn pull_cmd(
    config: &Path,
    lake: impl AsRef<std::ffi::OsStr>,
    extra: &[&str],
) -> Command {
    let mut c = Command::new(bin());
    c.arg("pull")
        .arg("--config")
        .arg(config)
        .arg("--lake")
        .arg(lake)
        .args(extra)
        .env("TICKETLAKE_FIXTURE_USER", USER)
        .env("TICKETLAKE_FIXTURE_PASSWORD", PASSWORD)
        .env("TICKETLAKE_FIXTURE_TOKEN", TOKEN)
        .env("TICKETLAKE_PSEUDONYM_SECRET", SECRET);
    c
}

pub(super) async fn run(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

/// Every row of both tables as CSV text.
pub(super) async fn lake_text(lake: &Lake) -> String {
    let ctx = ticketlake::engine::session(lake, &Config::default())
        .await
        .unwrap();
    let mut out = Vec::new();
    for t in ["tickets", "events"] {
        let batches = ctx
            .sql(&format!("select * from {t}"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut w = arrow::csv::Writer::new(&mut out);
        for b in &batches {
            w.write(b).unwrap();
        }
    }
    String::from_utf8(out).unwrap()
}

/// Kills (SIGKILL) runs at evenly spread points of a clean run's duration.
pub(super) struct Kills {
    span: std::time::Duration,
}

impl Kills {
    pub(super) fn new(clean_run: std::time::Duration) -> Kills {
        Kills { span: clean_run }
    }

    /// Starts `c` and kills it at point `i` of `n` (a fraction `i / n` of the span);
    /// whether it was still running. A run that finished first went faster than the
    /// clean one (a warm cache, a machine less busy): the next points come sooner.
    pub(super) async fn at(&mut self, mut c: Command, i: u32, n: u32) -> bool {
        let mut child = c.spawn().unwrap();
        tokio::time::sleep(self.span * i / n).await;
        let running = child.try_wait().unwrap().is_none();
        if running {
            child.kill().unwrap();
        } else {
            self.span = self.span.mul_f64(0.8);
        }
        child.wait().unwrap();
        running
    }
}

/// No (source, key) twice in either table, as a reader of the lake sees it now.
pub(super) async fn assert_no_key_twice(lake: &Lake, when: &str) {
    let ctx = ticketlake::engine::session(lake, &Config::default())
        .await
        .unwrap();
    for (t, key) in [("tickets", "ticket_id"), ("events", "event_id")] {
        let sql = format!("select count(*) - count(distinct source || ':' || {key}) from {t}");
        let Ok(df) = ctx.sql(&sql).await else {
            continue; // nothing written yet
        };
        let b = df.collect().await.unwrap();
        let dup =
            arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(b[0].column(0))
                .value(0);
        assert_eq!(dup, 0, "{t}: duplicate keys {when}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_identities_never_reach_the_output_or_the_lake() {
    let lb = servers(500, 2, 21, Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&lb, dir.path());
    let lake_dir = dir.path().join("lake");
    let mut c = pull_cmd(&cfg, &lake_dir, &[]);
    c.env("TICKETLAKE_LOG", "debug");
    let out = run(c).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("itop-group") && printed.contains("quarantined"),
        "{printed}"
    );
    // every source answered, whichever way it logs in
    let lake = Lake::open(lake_dir.to_str().unwrap(), false).unwrap();
    assert_eq!(lake.sources().await.unwrap().len(), 8);
    let rows = lake_text(&lake).await;
    assert!(rows.len() > 10_000);
    // every file under them (the quarantine is `_quarantine/<source>/<table>.jsonl`)
    fn read_all(dir: &Path, into: &mut String) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                read_all(&e.path(), into);
            } else {
                into.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    let mut files = String::new();
    read_all(&lake_dir.join("_state"), &mut files);
    read_all(&lake_dir.join("_quarantine"), &mut files);
    for (what, text) in [
        ("output", &printed),
        ("lake rows", &rows),
        ("state and quarantine", &files),
    ] {
        for secret in [PASSWORD, SECRET, TOKEN] {
            assert!(!text.contains(secret), "{what} holds a secret");
        }
        for identity in ["lyon-user-", "group-user-", "agent-group-n1-"] {
            assert!(
                !text.contains(identity),
                "{what} holds a raw identity ({identity})"
            );
        }
    }
    // the audit finds nothing on a pulled lake…
    let audit = |lake: &Path| {
        let mut c = Command::new(bin());
        c.args(["audit", "--lake"]).arg(lake);
        c
    };
    let out = run(audit(&lake_dir)).await;
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("no e-mail address, no login"), "{said}");
    // …and finds what was planted: an address and a login in the quarantine, a raw
    // requester in the tickets
    let planted = dir.path().join("planted");
    let lake_p = Lake::open(planted.to_str().unwrap(), true).unwrap();
    let mut t = ticket("1", "2025-01-06 09:00");
    t.requester = "jean.dupont";
    write_into(
        lake_p,
        &[SourceData {
            id: "glpi-lyon",
            tickets: vec![t],
            events: vec![],
        }],
    )
    .await;
    std::fs::create_dir_all(planted.join("_quarantine/glpi-lyon")).unwrap();
    std::fs::write(
        planted.join("_quarantine/glpi-lyon/tickets.jsonl"),
        "{\"key\":\"9\",\"reason\":\"x\",\"record\":{\"4\":\"jdupont (42)\",\"mail\":\"jean.dupont@insa-lyon.fr\"}}\n",
    )
    .unwrap();
    let out = run(audit(&planted)).await;
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("tickets.requester (source glpi-lyon): 1 × identity that is not a pseudonym (e.g. je…nt)"), "{said}");
    assert!(
        said.contains("_quarantine/glpi-lyon/tickets.jsonl: 1 × e-mail address"),
        "{said}"
    );
    assert!(
        said.contains("_quarantine/glpi-lyon/tickets.jsonl: 1 × login reference"),
        "{said}"
    );
    assert!(
        !said.contains("jean.dupont@"),
        "the audit masks what it finds: {said}"
    );
    // a wrong password: exit 2, the source named, the password not shown
    let mut c = pull_cmd(&cfg, &lake_dir, &["--source", "glpi-lyon"]);
    c.env("TICKETLAKE_FIXTURE_PASSWORD", "the-wrong-one-42");
    let out = run(c).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("glpi-lyon") && err.contains("ERROR_GLPI_LOGIN"),
        "{err}"
    );
    assert!(
        !err.contains("the-wrong-one-42") && !err.contains(PASSWORD),
        "{err}"
    );
    // no pseudonym secret: refused before anything is read
    let mut c = pull_cmd(&cfg, &lake_dir, &[]);
    c.env_remove("TICKETLAKE_PSEUDONYM_SECRET");
    let out = run(c).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("TICKETLAKE_PSEUDONYM_SECRET") && err.contains("not set"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_what_each_source_lets_us_read() {
    let lb = servers(300, 1, 22, Faults::default()).await;
    lb.itop[1].1.set_faults(Faults {
        history_denied: true,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&lb, dir.path());
    let mut c = Command::new(bin());
    c.args(["check", "--config"])
        .arg(&cfg)
        .env("TICKETLAKE_FIXTURE_USER", USER)
        .env("TICKETLAKE_FIXTURE_PASSWORD", PASSWORD)
        .env("TICKETLAKE_FIXTURE_TOKEN", TOKEN);
    let out = run(c).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = |src: &str, what: &str| {
        text.lines()
            .find(|l| l.starts_with(src) && l.contains(what))
            .unwrap_or_else(|| panic!("no {src} {what} line in {text}"))
            .to_string()
    };
    assert!(line("itop-group", "history").contains("ok: readable"));
    assert!(
        line("itop-rennes", "history")
            .contains("MISSING: The current user does not have enough permissions")
    );
    assert!(line("itop-rennes", "satisfaction").contains("MISSING"));
    assert!(line("glpi-lyon", "tickets").contains("ok"));
    assert!(line("glpi-lyon", "history").contains("ok: readable"));
    assert!(line("glpi-lyon", "satisfaction").contains("ok: readable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_pull_on_a_locked_lake_says_it_is_already_running() {
    let lb = servers(200, 1, 23, Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&lb, dir.path());
    let lake_dir = dir.path().join("lake");
    let lake = Lake::open(lake_dir.to_str().unwrap(), true).unwrap();
    let lock = ticketlake::lake::lock::LakeLock::acquire(&lake, "ticketlake pull")
        .await
        .unwrap();
    let out = run(pull_cmd(&cfg, &lake_dir, &["--quiet"])).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("is already being written by 'ticketlake pull'"),
        "{err}"
    );
    lock.release().await.unwrap();
    let out = run(pull_cmd(&cfg, &lake_dir, &["--quiet"])).await;
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "quiet on success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_quarantined_records_than_allowed_is_exit_1() {
    let lb = servers(200, 1, 24, Faults::default()).await;
    lb.glpi[0].1.with_data(|d| {
        for (row, _) in d.tickets.values_mut().take(3) {
            row["12"] = serde_json::json!(42);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&lb, dir.path());
    let lake_dir = dir.path().join("lake");
    let out = run(pull_cmd(
        &cfg,
        &lake_dir,
        &["--max-quarantine", "2", "--quiet"],
    ))
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // three tickets, and the history rows that go with them
    let n: usize = ["tickets", "events"]
        .iter()
        .map(|t| {
            std::fs::read_to_string(lake_dir.join(format!("_quarantine/glpi-lyon/{t}.jsonl")))
                .map(|q| q.lines().count())
                .unwrap_or(0)
        })
        .sum();
    assert!(n > 3);
    assert!(
        err.contains(&format!(
            "{n} records went to the quarantine (more than --max-quarantine 2)"
        )),
        "{err}"
    );
    let out = run(pull_cmd(
        &cfg,
        &lake_dir,
        &["--full", "--max-quarantine", &n.to_string(), "--quiet"],
    ))
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_twenty_points_the_pull_still_converges_on_the_clean_lake() {
    let lb = servers(1500, 3, 25, slowed()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&lb, dir.path());
    let clean_dir = dir.path().join("clean");
    let started = std::time::Instant::now();
    let out = run(pull_cmd(&cfg, &clean_dir, &["--quiet"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clean_time = started.elapsed();
    let clean = Lake::open(clean_dir.to_str().unwrap(), false).unwrap();

    let crash_dir = dir.path().join("crash");
    let mut killed = 0;
    let mut kills = Kills::new(clean_time);
    for i in 1..=20u32 {
        // --full: every run pages and writes everything again, so the kills land
        // anywhere in the paging and the lake writes of every source
        let mut c = pull_cmd(&cfg, &crash_dir, &["--quiet", "--full"]);
        // (each run says it takes over the lock the killed one left)
        c.stderr(std::process::Stdio::null());
        killed += u32::from(kills.at(c, i, 21).await);
        // whatever the moment, a reader sees a valid lake without a key twice
        if crash_dir.join("tickets").exists() {
            let lake = Lake::open(crash_dir.to_str().unwrap(), false).unwrap();
            assert_no_key_twice(&lake, &format!("after kill {i}")).await;
        }
    }
    assert!(
        killed >= 15,
        "only {killed} of the 20 runs were killed before they finished"
    );
    let out = run(pull_cmd(&cfg, &crash_dir, &[])).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let crash = Lake::open(crash_dir.to_str().unwrap(), false).unwrap();
    assert_eq!(
        kpis(&crash, "2025-01", "2025-03").await,
        kpis(&clean, "2025-01", "2025-03").await
    );
    assert_eq!(lake_text(&crash).await.len(), lake_text(&clean).await.len());
    // no leftover: no lock, no staging file
    assert!(!crash_dir.join("_lock").exists());
    let mut stack = vec![crash_dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                assert!(
                    !p.to_string_lossy().contains('#'),
                    "staging file left: {}",
                    p.display()
                );
            }
        }
    }
}

fn run_cmd(config: &Path, lake: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg("run")
        .arg("--config")
        .arg(config)
        .arg("--lake")
        .arg(lake)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env("TICKETLAKE_FIXTURE_USER", USER)
        .env("TICKETLAKE_FIXTURE_PASSWORD", PASSWORD)
        .env("TICKETLAKE_FIXTURE_TOKEN", TOKEN)
        .env("TICKETLAKE_PSEUDONYM_SECRET", SECRET);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_twice_for_a_month_gives_the_same_report_and_says_one_line() {
    let lb = servers(800, 4, 26, Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&lb, dir.path());
    let lake_dir = dir.path().join("lake");
    let (out_a, out_b) = (dir.path().join("a"), dir.path().join("b"));
    let now = ["--now", "2025-05-03T06:00:00Z"];
    let first = run(run_cmd(&cfg, &lake_dir, &out_a, &now)).await;
    let said = String::from_utf8_lossy(&first.stdout).to_string();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{said}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // one line, naming the month: the last complete one before --now
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.starts_with("ticketlake run: 2025-04: 8 sources pulled (800 new tickets"),
        "{said}"
    );
    let second = run(run_cmd(&cfg, &lake_dir, &out_b, &now)).await;
    assert_eq!(second.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&second.stdout)
            .contains("(0 new tickets, 0 updated, 0 quarantined)")
    );
    for name in [
        "ticketlake-2025-04.fr.html",
        "ticketlake-2025-04.fr.pdf",
        "ticketlake-2025-04.en.html",
        "ticketlake-2025-04.en.pdf",
        "ticketlake-2025-04.kpi.json",
    ] {
        let (a, b) = (
            std::fs::read(out_a.join(name)).unwrap(),
            std::fs::read(out_b.join(name)).unwrap(),
        );
        assert!(a.len() > 1000, "{name}");
        assert!(a == b, "{name} differs between two runs of the same month");
    }
    // --quiet: nothing at all on success
    let quiet = run(run_cmd(
        &cfg,
        &lake_dir,
        &out_b,
        &["--quiet", "--now", "2025-05-03T06:00:00Z"],
    ))
    .await;
    assert_eq!(quiet.status.code(), Some(0));
    assert!(quiet.stdout.is_empty() && quiet.stderr.is_empty());
    // a check that fails: exit 1, the source named, what to do
    let stale_args = [
        "--quiet",
        "--stale-days",
        "1",
        "--now",
        "2025-06-15T06:00:00Z",
        "--month",
        "2025-04",
    ];
    let out = run(run_cmd(&cfg, &lake_dir, &out_b, &stale_args)).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("check failed: source 'itop-group' has had no update since 2025-04-30"),
        "{err}"
    );
    assert!(
        err.contains("ticketlake check --source itop-group"),
        "{err}"
    );
    // the same as JSON log lines, one per problem, nothing else on stderr
    let mut json = run_cmd(&cfg, &lake_dir, &out_b, &stale_args);
    json.args(["--log-format", "json"])
        .env("TICKETLAKE_LOG", "info");
    let out = run(json).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let stale: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["level"] == "ERROR" && l["fields"]["check"] == "stale")
        .collect();
    assert_eq!(stale.len(), 8, "{err}");
    // an unreachable source: exit 2, and what to do
    drop(lb);
    let out = run(run_cmd(
        &cfg,
        &lake_dir,
        &out_b,
        &["--now", "2025-05-03T06:00:00Z"],
    ))
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the pull failed") && err.contains("run again") && err.contains("itop-group"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_killed_at_twenty_points_then_run_again_gives_the_uninterrupted_result() {
    let lb = servers(700, 3, 27, slowed()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&lb, dir.path());
    let now = ["--now", "2025-04-02T06:00:00Z", "--quiet"];
    // the same paths for both series (the report's appendix names the lake)
    let (lake, out_dir) = (dir.path().join("lake"), dir.path().join("out"));
    let started = std::time::Instant::now();
    let out = run(run_cmd(&cfg, &lake, &out_dir, &now)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clean_time = started.elapsed();
    let (clean_lake, clean_out) = (dir.path().join("clean-lake"), dir.path().join("clean-out"));
    std::fs::rename(&lake, &clean_lake).unwrap();
    std::fs::rename(&out_dir, &clean_out).unwrap();
    let mut killed = 0;
    let mut kills = Kills::new(clean_time);
    for i in 1..=20u32 {
        // the lake is cleared between kills so each run does the whole work again
        let mut c = run_cmd(&cfg, &lake, &out_dir, &now);
        c.stderr(std::process::Stdio::null());
        killed += u32::from(kills.at(c, i, 21).await);
        if i % 2 == 0 {
            // every other time, start again from whatever the kill left in the lake and
            // also drop the state files, so the next run pulls everything again
            let _ = std::fs::remove_dir_all(lake.join("_state"));
        }
        // a report a reader can see is always whole
        if let Ok(entries) = std::fs::read_dir(&out_dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.ends_with(".pdf") {
                    let bytes = std::fs::read(e.path()).unwrap();
                    assert!(
                        bytes.starts_with(b"%PDF") && bytes.trim_ascii_end().ends_with(b"%%EOF"),
                        "{name} is cut"
                    );
                }
            }
        }
    }
    assert!(
        killed >= 12,
        "only {killed} runs were killed before they finished"
    );
    let out = run(run_cmd(&cfg, &lake, &out_dir, &now)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (a, b) = (
        Lake::open(clean_lake.to_str().unwrap(), false).unwrap(),
        Lake::open(lake.to_str().unwrap(), false).unwrap(),
    );
    assert_eq!(
        kpis(&a, "2025-01", "2025-03").await,
        kpis(&b, "2025-01", "2025-03").await
    );
    for name in [
        "ticketlake-2025-03.fr.html",
        "ticketlake-2025-03.en.pdf",
        "ticketlake-2025-03.kpi.json",
    ] {
        let (x, y) = (
            std::fs::read(clean_out.join(name)).unwrap(),
            std::fs::read(out_dir.join(name)).unwrap(),
        );
        if x != y {
            std::fs::write(format!("/tmp/ticketlake-clean-{name}"), &x).unwrap();
            std::fs::write(format!("/tmp/ticketlake-crash-{name}"), &y).unwrap();
        }
        assert!(
            x == y,
            "{name} differs from the uninterrupted run's (both kept in /tmp)"
        );
    }
}
