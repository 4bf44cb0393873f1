//! The `ticketlake` binary as a user runs it: output, exit codes, messages.

use std::process::Command;

use super::common::*;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env_remove("TICKETLAKE_QUERIES")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn schema_documents_every_column() {
    let (code, out, _) = run(&["schema"]);
    assert_eq!(code, 0);
    for column in ticketlake::model::Table::Tickets
        .full_columns()
        .iter()
        .chain(ticketlake::model::Table::Events.full_columns().iter())
    {
        assert!(out.contains(column.name), "schema lacks {}", column.name);
    }
    assert!(out.contains("timestamp(us, UTC)"));
}

#[test]
fn init_writes_the_default_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    let p = path.to_str().unwrap();
    assert_eq!(run(&["init", "--out", p]).0, 0);
    let written = ticketlake::config::Config::load(&path).unwrap();
    assert_eq!(written, ticketlake::config::Config::default());
    let (code, _, err) = run(&["init", "--out", p]);
    assert_eq!(code, 2);
    assert!(err.contains("--force"), "{err}");
}

#[test]
fn fixtures_then_kpi_json_is_the_same_twice() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    let (code, _, err) = run(&[
        "fixtures",
        "--tickets",
        "1500",
        "--seed",
        "3",
        "--start",
        "2026-01",
        "--months",
        "3",
        "--lake",
        l,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("wrote 1500 tickets"), "{err}");
    let (code, first, err) = run(&[
        "kpi", "--lake", l, "--from", "2026-01", "--to", "2026-03", "--format", "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, second, _) = run(&[
        "kpi", "--lake", l, "--from", "2026-01", "--to", "2026-03", "--format", "json",
    ]);
    assert_eq!(first, second);
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    let names: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    for kpi in ticketlake::queries::kpi_names() {
        assert!(names.contains(&kpi), "missing {kpi}");
    }
    let total: f64 = v["volume"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tickets"].as_f64().unwrap())
        .sum();
    assert_eq!(total, 1500.0);

    // csv output of one KPI, and ad-hoc SQL as csv and json
    let (code, csv, _) = run(&[
        "kpi",
        "--lake",
        l,
        "--from",
        "2026-02",
        "--kpi",
        "reopen_rate",
        "--format",
        "csv",
    ]);
    assert_eq!(code, 0);
    assert!(
        csv.starts_with("# reopen_rate\nmonth,first_resolved,reopened,reopen_rate\n2026-02,"),
        "{csv}"
    );
    let (code, out, _) = run(&[
        "sql",
        "--lake",
        l,
        "select count(*) as n from tickets",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::json!([{"n": 1500}])
    );
    let pq = dir.path().join("out.parquet");
    let (code, _, err) = run(&[
        "sql",
        "--lake",
        l,
        "select * from events limit 10",
        "--format",
        "parquet",
        "--out",
        pq.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let reader =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&pq).unwrap())
            .unwrap();
    assert_eq!(
        parquet::file::reader::FileReader::metadata(&reader)
            .file_metadata()
            .num_rows(),
        10
    );
    // text columns come out as plain strings, whatever the engine held them as
    let file = std::fs::File::open(&pq).unwrap();
    let schema = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .schema()
        .clone();
    assert_eq!(
        schema.field_with_name("ticket_id").unwrap().data_type(),
        &arrow::datatypes::DataType::Utf8
    );
}

#[test]
fn errors_are_clear_and_exit_2() {
    let (code, _, err) = run(&["kpi", "--lake", "/nonexistent/lake", "--from", "2026-01"]);
    assert_eq!(code, 2);
    assert!(err.contains("no lake at '/nonexistent/lake'"), "{err}");
    let (code, _, err) = run(&["kpi", "--lake", "/tmp", "--from", "2026-13"]);
    assert_eq!(code, 2);
    assert!(err.contains("'2026-13' is not a month"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(&[
        "sql",
        "--lake",
        dir.path().to_str().unwrap(),
        "drop table tickets",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("refused"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_bad_memory_bound_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().to_str().unwrap();
    let refused = |args: &[&str], var: &str, value: &str| {
        let out = Command::new(bin())
            .args(args)
            .env(var, value)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        let says = format!("{var}=\"{value}\": expected a whole number of MiB");
        assert!(err.contains(&says), "{err}");
    };
    // the history's pieces, and the rows a writer holds (read before anything is written)
    let fixtures = [
        "fixtures",
        "--tickets",
        "200",
        "--start",
        "2026-01",
        "--months",
        "2",
        "--lake",
        lake,
    ];
    refused(&fixtures, "TICKETLAKE_HISTORY_PIECE_MIB", "0.5");
    refused(&fixtures, "TICKETLAKE_WRITE_MEMORY_MIB", "lots");
    // the KPIs' chunks (read when the KPIs start)
    let (code, _, err) = run(&fixtures);
    assert_eq!(code, 0, "{err}");
    let kpi = [
        "kpi", "--lake", lake, "--from", "2026-01", "--to", "2026-02",
    ];
    refused(&kpi, "TICKETLAKE_KPI_CHUNK_MIB", "0");
}

#[test]
fn datafusion_settings_come_from_their_variables() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().to_str().unwrap();
    let (code, _, err) = run(&[
        "fixtures",
        "--tickets",
        "50",
        "--start",
        "2026-01",
        "--months",
        "1",
        "--lake",
        lake,
    ]);
    assert_eq!(code, 0, "{err}");
    let sql = |value: &str| {
        let mut command = Command::new(bin());
        // only the variables of this test, whatever the caller's environment holds
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("DATAFUSION_") {
                command.env_remove(name);
            }
        }
        command
            .args(["sql", "--lake", lake, "--format", "csv"])
            .arg(
                "select name, value from information_schema.df_settings \
                 where name in ('datafusion.execution.batch_size', \
                 'datafusion.execution.parquet.pushdown_filters') order by name",
            )
            .env("DATAFUSION_EXECUTION_BATCH_SIZE", value)
            .env("DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS", "true")
            .output()
            .unwrap()
    };
    let out = sql("1234");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "name,value\n\
         datafusion.execution.batch_size,1234\n\
         datafusion.execution.parquet.pushdown_filters,true\n"
    );
    let out = sql("lots");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "reading DataFusion's settings from DATAFUSION_EXECUTION_BATCH_SIZE, \
             DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS"
        ) && err.contains("Error parsing 'lots' as usize"),
        "{err}"
    );
}

#[test]
fn the_prompt_runs_multi_line_statements() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().to_str().unwrap();
    let (code, _, err) = run(&[
        "fixtures",
        "--tickets",
        "200",
        "--start",
        "2026-01",
        "--months",
        "1",
        "--lake",
        l,
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    let mut child = Command::new(bin())
        .args(["sql", "--lake", l])
        .env("HOME", dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"select count(*)\n  as n from tickets;\ndrop table tickets;\nselect 41 + 1 as answer;\n\\q\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("| 200 |"), "{stdout}");
    assert!(stdout.contains("| 42     |"), "{stdout}");
    assert!(stderr.contains("refused"), "{stderr}");
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().to_str().unwrap();
    assert_eq!(
        run(&[
            "fixtures",
            "--tickets",
            "300",
            "--start",
            "2026-01",
            "--months",
            "1",
            "--lake",
            l,
            "-q"
        ])
        .0,
        0
    );
    let mut child = Command::new(bin())
        .args([
            "sql",
            "--lake",
            l,
            "select * from events",
            "--format",
            "csv",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once, like `| head -0`
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_file_url_is_the_same_lake_as_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().to_str().unwrap();
    let url = format!("file://{l}");
    assert_eq!(
        run(&[
            "fixtures",
            "--tickets",
            "400",
            "--start",
            "2026-02",
            "--months",
            "1",
            "--lake",
            &url,
            "-q"
        ])
        .0,
        0
    );
    assert!(dir.path().join("tickets").is_dir());
    let (code, by_url, err) = run(&[
        "sql",
        "--lake",
        &url,
        "select count(*) as n from tickets",
        "--format",
        "csv",
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, by_dir, _) = run(&[
        "sql",
        "--lake",
        l,
        "select count(*) as n from tickets",
        "--format",
        "csv",
    ]);
    assert_eq!(by_url, "n\n400\n");
    assert_eq!(by_url, by_dir);
    let (code, _, err) = run(&["sql", "--lake", "ftp://host/lake", "select 1"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown URL scheme"), "{err}");
}

#[test]
fn the_demo_starts_afresh_and_never_empties_a_lake_it_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let d = demo.to_str().unwrap();
    let reports = dir.path().join("reports");
    let r = reports.to_str().unwrap();
    let (code, out, err) = run(&["demo", "--lake", d, "--tickets", "3000", "--out", r]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("KPIs of 2026-08"), "{out}");
    // it ends with the report of its last month, in both languages and formats
    for name in [
        "ticketlake-2026-08.fr.html",
        "ticketlake-2026-08.fr.pdf",
        "ticketlake-2026-08.en.html",
        "ticketlake-2026-08.en.pdf",
    ] {
        let path = reports.join(name);
        assert!(out.contains(path.to_str().unwrap()), "{out}");
        assert!(std::fs::metadata(&path).unwrap().len() > 10_000, "{name}");
    }
    assert!(
        out.contains("group_service_volume") && out.contains("backlog"),
        "{out}"
    );
    // a smaller demo afterwards is a lake of its own size, not a mix of both
    assert_eq!(
        run(&["demo", "--lake", d, "--tickets", "2000", "--out", r]).0,
        0
    );
    let (_, n, _) = run(&[
        "sql",
        "--lake",
        d,
        "select count(*) as n from tickets",
        "--format",
        "csv",
    ]);
    assert_eq!(n, "n\n2000\n");
    // a directory the demo did not make is left alone
    let other = dir.path().join("mine");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "keep me").unwrap();
    let (code, _, err) = run(&[
        "demo",
        "--lake",
        other.to_str().unwrap(),
        "--tickets",
        "100",
        "--out",
        r,
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("not made by `ticketlake demo`"), "{err}");
    assert_eq!(
        std::fs::read_to_string(other.join("notes.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn a_killed_run_leaves_a_lake_the_next_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let (killed, clean) = (dir.path().join("killed"), dir.path().join("clean"));
    let args = |lake: &std::path::Path| {
        [
            "fixtures",
            "--tickets",
            "30000",
            "--seed",
            "9",
            "--start",
            "2025-09",
            "--months",
            "6",
            "-q",
            "--lake",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([lake.to_str().unwrap().to_string()])
        .collect::<Vec<_>>()
    };
    let mut child = Command::new(bin()).args(args(&killed)).spawn().unwrap();
    // wait until some partitions are written, then kill without warning
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !killed.join("events").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        killed.join("_lock").exists(),
        "the killed run should have left its lock"
    );

    // the next run takes the dead process's lock over and converges
    let rerun: Vec<String> = args(&killed);
    let out = Command::new(bin()).args(&rerun).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("taking over the lock"));
    let clean_args: Vec<String> = args(&clean);
    assert!(
        Command::new(bin())
            .args(&clean_args)
            .status()
            .unwrap()
            .success()
    );
    let kpi = |lake: &std::path::Path| {
        run(&[
            "kpi",
            "--lake",
            lake.to_str().unwrap(),
            "--from",
            "2025-09",
            "--to",
            "2026-02",
            "--format",
            "json",
        ])
        .1
    };
    assert_eq!(kpi(&killed), kpi(&clean));
    let count = |lake: &std::path::Path| {
        run(&[
            "sql",
            "--lake",
            lake.to_str().unwrap(),
            "select count(*) as n, count(distinct source || ticket_id) as k from tickets",
            "--format",
            "csv",
        ])
        .1
    };
    assert_eq!(count(&killed), "n,k\n30000,30000\n");
}
