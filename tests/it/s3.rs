//! Lakes on S3: the commands against a real S3-compatible server on loopback (moto's
//! server mode, from PyPI, which `.ci/run` installs), compared with the same lake in a
//! directory; the lock's conditional put between two writers.

use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use object_store::ObjectStoreExt;
use ticketlake::lake::Lake;
use ticketlake::lake::lock::LakeLock;

use super::common::bin;

pub(super) const BUCKET: &str = "ticketlake";

/// A moto S3 server on a free loopback port, with one bucket; stopped on drop.
pub(super) struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    pub(super) fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (pip install 'moto[server]', as .ci/run does)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let moto = Moto { child, endpoint };
        let started = Instant::now();
        loop {
            // creating the bucket is the readiness probe
            match put(&moto.endpoint, BUCKET) {
                Ok(200) => break,
                _ if started.elapsed() > Duration::from_secs(30) => {
                    panic!("moto_server did not start on {}", moto.endpoint)
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        moto
    }

    pub(super) fn env(&self, cmd: &mut Command) {
        for (k, v) in self.vars() {
            cmd.env(k, v);
        }
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `PUT <endpoint>/<path>` with an empty body (moto takes unsigned requests): the status.
fn put(endpoint: &str, path: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let host = endpoint.strip_prefix("http://").unwrap();
    let mut s = std::net::TcpStream::connect(host)?;
    write!(
        s,
        "PUT /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0))
}

pub(super) fn ticketlake(moto: &Moto, args: &[&str]) -> Output {
    ticketlake_with(moto, args, &[])
}

/// [`ticketlake`] with more environment variables.
fn ticketlake_with(moto: &Moto, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args).envs(env.iter().copied());
    moto.env(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "ticketlake {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_commands_give_the_same_figures_on_s3_as_in_a_directory() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("lake");
    let local = local.to_str().unwrap();
    let s3 = format!("s3://{BUCKET}/federation/lake");
    let make = ["--tickets", "3000", "--start", "2025-01", "--months", "6"];
    for lake in [local, s3.as_str()] {
        let mut args = vec!["fixtures", "--lake", lake];
        args.extend(make);
        // on S3 the writer holds 1 MiB of rows: it spills them to runs and writes six of
        // the partitions from them, in uploads (the KPIs below are the directory's)
        let bound: &[(&str, &str)] = match lake == local {
            true => &[],
            false => &[("TICKETLAKE_WRITE_MEMORY_MIB", "1")],
        };
        ticketlake_with(&moto, &args, bound);
    }
    let period = ["--from", "2025-01", "--to", "2025-06", "--format", "json"];
    let kpis = |lake: &str| {
        let mut args = vec!["kpi", "--lake", lake];
        args.extend(period);
        ticketlake(&moto, &args).stdout
    };
    let (a, b) = (kpis(local), kpis(&s3));
    assert!(a.len() > 1000, "{}", String::from_utf8_lossy(&a));
    assert!(a == b, "the KPIs differ between the directory and S3");
    let sql = "select source, count(*) as n, sum(case when status = 'closed' then 1 else 0 end) as closed from tickets group by source order by source";
    let rows =
        |lake: &str| ticketlake(&moto, &["sql", "--lake", lake, "--format", "csv", sql]).stdout;
    let (a, b) = (rows(local), rows(&s3));
    assert_eq!(String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
    assert_eq!(
        String::from_utf8_lossy(&a).lines().count(),
        9,
        "8 sources and a header"
    );
    let decide = |lake: &str| {
        let args = [
            "decide", "--lake", lake, "--from", "2025-01", "--to", "2025-06", "--format", "json",
        ];
        ticketlake(&moto, &args).stdout
    };
    assert!(decide(local) == decide(&s3), "decide differs");
    // the report reads the lake's state files on S3 too
    let out = dir.path().join("reports");
    let out_s = out.to_str().unwrap();
    ticketlake(
        &moto,
        &[
            "report", "--lake", &s3, "--month", "2025-06", "--out", out_s,
        ],
    );
    let html = std::fs::read_to_string(out.join("ticketlake-2025-06.fr.html")).unwrap();
    assert!(
        html.contains("s3:&#x2f;&#x2f;ticketlake&#x2f;federation&#x2f;lake"),
        "the page names the lake"
    );
    assert!(out.join("ticketlake-2025-06.fr.pdf").exists());
    // and the audit finds nothing there
    ticketlake(&moto, &["audit", "--lake", &s3]);
}

impl Moto {
    /// The lake at `s3://ticketlake/<prefix>`, opened in this process (the settings are
    /// passed, not set in this process's environment, which other tests share).
    fn lake(&self, prefix: &str) -> Lake {
        let vars = self.vars();
        let options: Vec<(&str, &str)> = vars
            .iter()
            .map(|(k, v)| (OPTION_OF[k], v.as_str()))
            .collect();
        Lake::open_s3_with(&format!("s3://{BUCKET}/{prefix}"), &options).unwrap()
    }
}

/// The object_store setting of each variable.
static OPTION_OF: std::sync::LazyLock<std::collections::HashMap<&str, &str>> =
    std::sync::LazyLock::new(|| {
        std::collections::HashMap::from([
            ("AWS_ENDPOINT", "aws_endpoint"),
            ("AWS_ALLOW_HTTP", "aws_allow_http"),
            ("AWS_ACCESS_KEY_ID", "aws_access_key_id"),
            ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
            ("AWS_REGION", "aws_region"),
        ])
    });

fn lock() -> object_store::path::Path {
    object_store::path::Path::from("_lock")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_on_s3_lets_one_writer_in_and_takes_over_an_expired_one() {
    let moto = Moto::start();
    let lake = moto.lake("locks");
    let first = LakeLock::acquire(&lake, "ticketlake pull").await.unwrap();
    let second = LakeLock::acquire(&lake, "ticketlake run")
        .await
        .unwrap_err();
    let said = format!("{second:#}");
    assert!(
        said.contains("is already being written by 'ticketlake pull'"),
        "{said}"
    );
    first.release().await.unwrap();
    let again = LakeLock::acquire(&lake, "ticketlake run").await.unwrap();
    drop(again); // as a killed process would: the lock stays
    // a lock left by a process of another machine, expired: taken over (If-Match)
    let stale = serde_json::json!({
        "pid": 4242, "host": "another-machine", "command": "ticketlake pull",
        "started_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-01T06:00:00Z"
    });
    lake.store
        .put(&lock(), serde_json::to_vec(&stale).unwrap().into())
        .await
        .unwrap();
    let taken = LakeLock::acquire(&lake, "ticketlake pull").await.unwrap();
    let held: serde_json::Value = serde_json::from_slice(
        &lake
            .store
            .get(&lock())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(held["pid"], std::process::id());
    taken.release().await.unwrap();
    assert!(lake.store.get(&lock()).await.is_err(), "released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pulls_at_once_on_one_s3_lake_one_runs_the_other_says_so() {
    use super::connectors::servers;
    use super::pull_cli::{config_file, pull_cmd, run};
    use ticketlake::sources::fixtures::server::Faults;
    let moto = Moto::start();
    // every answer 40 ms late: the first pull holds the lock for seconds. Started at the
    // same instant, the second process was once late enough (a loaded machine) to find
    // the lock released and run too; it now starts once the first holds the lock
    let slow = Faults {
        slow_every: Some((1, Duration::from_millis(40))),
        ..Faults::default()
    };
    let lb = servers(800, 2, 33, slow).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&lb, dir.path());
    let s3 = format!("s3://{BUCKET}/twice");
    let lake = moto.lake("twice");
    let mut first = pull_cmd(&cfg, &s3, &["--quiet"]);
    moto.env(&mut first);
    let first = tokio::spawn(run(first));
    let waited = Instant::now();
    while lake.store.head(&lock()).await.is_err() {
        assert!(
            !first.is_finished() && waited.elapsed() < Duration::from_secs(60),
            "the first pull never took the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut second = pull_cmd(&cfg, &s3, &["--quiet"]);
    moto.env(&mut second);
    let refused = run(second).await;
    let ran = first.await.unwrap();
    assert_eq!(
        [ran.status.code(), refused.status.code()],
        [Some(0), Some(2)],
        "the first pull ran, the second was refused (the second exiting 0: the lock let it \
         in, or the first pull was over before the second started)"
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("is already being written by 'ticketlake pull'"),
        "{err}"
    );
    assert!(lake.store.get(&lock()).await.is_err(), "released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_to_s3_killed_at_ten_points_converges_on_the_clean_lake() {
    use super::common::kpis;
    use super::connectors::servers;
    use super::pull_cli::{
        Kills, assert_no_key_twice, config_file, lake_text, pull_cmd, run, slowed,
    };
    let moto = Moto::start();
    let lb = servers(1200, 3, 34, slowed()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(&lb, dir.path());
    let (clean_s3, crash_s3) = (
        format!("s3://{BUCKET}/clean"),
        format!("s3://{BUCKET}/crash"),
    );
    let pull = |lake: &str, extra: &[&str]| {
        let mut c = pull_cmd(&cfg, lake, extra);
        moto.env(&mut c);
        c
    };
    let started = Instant::now();
    let out = run(pull(&clean_s3, &["--quiet"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clean_time = started.elapsed();
    let crash = moto.lake("crash");
    let mut killed = 0;
    let mut kills = Kills::new(clean_time);
    for i in 1..=10u32 {
        let mut c = pull(&crash_s3, &["--quiet", "--full"]);
        c.stderr(Stdio::null()); // each run says it takes over the killed one's lock
        killed += u32::from(kills.at(c, i, 11).await);
        // whatever the moment, a reader finds whole objects and no key twice
        assert_no_key_twice(&crash, &format!("after kill {i}")).await;
    }
    assert!(
        killed >= 7,
        "only {killed} of the 10 runs were killed before they finished"
    );
    let out = run(pull(&crash_s3, &[])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clean = moto.lake("clean");
    assert_eq!(
        kpis(&crash, "2025-01", "2025-03").await,
        kpis(&clean, "2025-01", "2025-03").await
    );
    // the same rows (in whatever order the objects are listed)
    let rows = |text: String| {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    let (a, b) = (rows(lake_text(&crash).await), rows(lake_text(&clean).await));
    assert_eq!(a.len(), b.len());
    if let Some((x, y)) = a.iter().zip(&b).find(|(x, y)| x != y) {
        panic!("the lakes differ:\n  after kills: {x}\n  clean:       {y}");
    }
    assert!(crash.store.get(&lock()).await.is_err(), "no lock left");
}
