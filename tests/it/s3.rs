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

const BUCKET: &str = "ticketlake";

/// A moto S3 server on a free loopback port, with one bucket; stopped on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
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

    fn env(&self, cmd: &mut Command) {
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

fn ticketlake(moto: &Moto, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args);
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
        ticketlake(&moto, &args);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_s3_lake_one_takes_the_lock() {
    let moto = Moto::start();
    for (k, v) in moto.vars() {
        // SAFETY: set before any thread of this test reads the environment; every test
        // sets the same values for these variables.
        unsafe { std::env::set_var(k, v) };
    }
    let lake = Lake::open(&format!("s3://{BUCKET}/locks"), true).unwrap();
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
    // a lock left by a process of another machine, expired: taken over (If-Match)
    let stale = serde_json::json!({
        "pid": 4242, "host": "an-other-machine", "command": "ticketlake pull",
        "started_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-01T06:00:00Z"
    });
    lake.store
        .put(
            &object_store::path::Path::from("_lock"),
            serde_json::to_vec(&stale).unwrap().into(),
        )
        .await
        .unwrap();
    drop(again);
    let taken = LakeLock::acquire(&lake, "ticketlake pull").await.unwrap();
    let held: serde_json::Value = serde_json::from_slice(
        &lake
            .store
            .get(&object_store::path::Path::from("_lock"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(held["pid"], std::process::id());
    taken.release().await.unwrap();
}
