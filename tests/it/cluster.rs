//! Queries on a Ballista cluster on loopback: one `ticketlake scheduler` and two
//! `ticketlake executor` processes over an S3 lake (moto's server), compared with the
//! local engine on the same lake.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::common::bin;
use super::s3::{BUCKET, Moto, ticketlake};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process whose stderr lines are kept; killed on drop.
struct Node {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Node {
    fn start(moto: &Moto, args: &[&str]) -> Node {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env("TICKETLAKE_LOG", "ballista_executor=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        moto.env(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let keep = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                keep.lock().unwrap().push(line);
            }
        });
        Node { child, lines }
    }

    fn count(&self, needle: &str) -> usize {
        let lines = self.lines.lock().unwrap();
        lines.iter().filter(|l| l.contains(needle)).count()
    }

    fn wait_for(&mut self, needle: &str) {
        let started = Instant::now();
        while self.count(needle) == 0 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{status}: {}", self.lines.lock().unwrap().join("\n"));
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no '{needle}' within 60 s: {}",
                self.lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_loopback_cluster_gives_the_local_engines_figures() {
    let moto = Moto::start();
    let lake = format!("s3://{BUCKET}/cluster/lake");
    ticketlake(
        &moto,
        &[
            "fixtures",
            "--lake",
            &lake,
            "--tickets",
            "3000",
            "--start",
            "2025-01",
            "--months",
            "12",
        ],
    );

    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let mut scheduler = Node::start(&moto, &["scheduler", "--bind", &bind]);
    scheduler.wait_for("ticketlake scheduler listening");
    let started = Instant::now();
    while TcpStream::connect(&bind).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "no scheduler");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut executors: Vec<Node> = (0..2)
        .map(|_| {
            let (flight, grpc) = (free_port().to_string(), free_port().to_string());
            let args = [
                "executor",
                "--scheduler",
                &bind,
                "--port",
                &flight,
                "--grpc-port",
                &grpc,
                "--concurrency",
                "1",
            ];
            Node::start(&moto, &args)
        })
        .collect();
    for e in &mut executors {
        e.wait_for("Executor registration succeed");
    }
    let engine = format!("df://127.0.0.1:{port}");
    let both = |args: &[&str]| {
        let local = ticketlake(&moto, args).stdout;
        let mut on_cluster = args.to_vec();
        on_cluster.extend(["--engine", &engine]);
        let cluster = ticketlake(&moto, &on_cluster).stdout;
        (
            String::from_utf8(local).unwrap(),
            String::from_utf8(cluster).unwrap(),
        )
    };

    // every KPI over twelve months
    let (local, cluster) = both(&[
        "kpi", "--lake", &lake, "--from", "2025-01", "--to", "2025-12", "--format", "json",
    ]);
    let kpis: serde_json::Value = serde_json::from_str(&local).unwrap();
    assert!(kpis.as_object().unwrap().len() >= 10, "{local}");
    assert!(
        local == cluster,
        "the KPIs differ between the local engine and the cluster"
    );

    // ad-hoc SQL: plain aggregates, business time (calendars sent with the plan), the
    // exact quantile, the reference tables
    for sql in [
        "select source, count(*) as n, sum(case when status = 'closed' then 1 else 0 end) as closed from tickets group by source order by source",
        "select org, local_month(created_at) as month, sum(business_micros(org, created_at, resolved_at)) as us from tickets where resolved_at is not null group by 1, 2 order by 1, 2",
        "select t.priority, quantile_cont(extract(epoch from resolved_at - created_at), 0.9) as p90 from tickets t join sla_targets s on s.priority = t.priority where resolved_at is not null group by 1 order by 1",
        "select o.name, count(*) as n from tickets t join orgs o on o.org = t.org group by 1 order by 1",
    ] {
        let (local, cluster) = both(&["sql", "--lake", &lake, "--format", "csv", sql]);
        assert!(local.lines().count() > 4, "{sql}: {local}");
        assert_eq!(local, cluster, "{sql}");
    }

    let (local, cluster) = both(&[
        "decide", "--lake", &lake, "--from", "2025-01", "--to", "2025-12", "--format", "json",
    ]);
    assert!(local == cluster, "decide differs: {local}\n{cluster}");

    // the report's page, from the cluster's figures
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("local"), dir.path().join("cluster"));
    for (out, engine) in [(&a, "local"), (&b, engine.as_str())] {
        ticketlake(
            &moto,
            &[
                "report",
                "--lake",
                &lake,
                "--month",
                "2025-12",
                "--format",
                "html",
                "--out",
                out.to_str().unwrap(),
                "--engine",
                engine,
            ],
        );
    }
    let page = "ticketlake-2025-12.fr.html";
    let local = std::fs::read_to_string(a.join(page)).unwrap();
    assert!(local.contains("<svg"), "a page with its charts");
    assert!(
        local == std::fs::read_to_string(b.join(page)).unwrap(),
        "the report differs"
    );

    // both executors took part
    for (i, e) in executors.iter().enumerate() {
        assert!(e.count("Execute task") > 0, "executor {i} ran no task");
    }
}

#[test]
fn a_scheduler_that_does_not_answer_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake = lake.to_str().unwrap();
    let fixtures = Command::new(bin())
        .args([
            "fixtures",
            "--lake",
            lake,
            "--tickets",
            "200",
            "--months",
            "2",
        ])
        .output()
        .unwrap();
    assert!(fixtures.status.success());
    let port = free_port(); // free: nothing listens there
    let engine = format!("df://127.0.0.1:{port}");
    let out = Command::new(bin())
        .args([
            "kpi", "--lake", lake, "--from", "2025-01", "--engine", &engine,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("no Ballista scheduler answers at {engine}"))
            && said.contains("ticketlake scheduler"),
        "{said}"
    );
    let out = Command::new(bin())
        .args([
            "sql",
            "--lake",
            lake,
            "--engine",
            "ballista://x",
            "select 1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("use \"local\" or \"df://host:port\""),
        "{said}"
    );
}
