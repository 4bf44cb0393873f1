//! The lake's write contract: merge by key (idempotent re-runs), deterministic fixtures,
//! the quarantine, the single-writer lock.

use serde_json::json;
use ticketlake::config::Config;
use ticketlake::engine::localtime::{LocalDays, Month};
use ticketlake::lake::Lake;
use ticketlake::lake::lock::LakeLock;
use ticketlake::lake::write::LakeWriter;
use ticketlake::model::Table;
use ticketlake::sources::batch::TicketsBuilder;
use ticketlake::sources::fixtures::{FixtureOptions, write_lake as write_fixtures};

use super::common::*;

fn small_fixtures(seed: u64) -> FixtureOptions {
    FixtureOptions {
        tickets: 3000,
        seed,
        start: Month::parse("2025-09").unwrap(),
        months: 4,
        ..FixtureOptions::default()
    }
}

async fn count(lake: &Lake, sql: &str) -> i64 {
    let ctx = ticketlake::engine::session(lake, &Config::default())
        .await
        .unwrap();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let col = batches[0].column(0);
    arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(col).value(0)
}

#[tokio::test]
async fn fixtures_are_deterministic_and_reruns_change_nothing() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = Config::default();
    let lake_a = Lake::open(a.path().to_str().unwrap(), true).unwrap();
    let lake_b = Lake::open(b.path().to_str().unwrap(), true).unwrap();
    let sa = write_fixtures(&lake_a, &config, small_fixtures(11), |_, _| {})
        .await
        .unwrap();
    write_fixtures(&lake_b, &config, small_fixtures(11), |_, _| {})
        .await
        .unwrap();
    assert_eq!(sa.tickets, 3000);
    let ka = kpis(&lake_a, "2025-09", "2025-12").await;
    let kb = kpis(&lake_b, "2025-09", "2025-12").await;
    assert_eq!(ka, kb, "same seed, same KPIs");
    assert_eq!(count(&lake_a, "select count(*) from tickets").await, 3000);

    // the same command again onto the same lake: merged by key, nothing changes
    write_fixtures(&lake_a, &config, small_fixtures(11), |_, _| {})
        .await
        .unwrap();
    assert_eq!(count(&lake_a, "select count(*) from tickets").await, 3000);
    assert_eq!(
        count(
            &lake_a,
            "select count(*) - count(distinct source || ':' || event_id) from events"
        )
        .await,
        0
    );
    assert_eq!(kpis(&lake_a, "2025-09", "2025-12").await, ka);

    // another seed gives another lake
    let c = tempfile::tempdir().unwrap();
    let lake_c = Lake::open(c.path().to_str().unwrap(), true).unwrap();
    write_fixtures(&lake_c, &config, small_fixtures(12), |_, _| {})
        .await
        .unwrap();
    assert_ne!(kpis(&lake_c, "2025-09", "2025-12").await, ka);

    // one object per partition, and a state file per source
    let sources = lake_a.sources().await.unwrap();
    assert_eq!(sources.len(), 8);
    for s in &sources {
        let state = lake_a.state(s).await.unwrap().expect("state file");
        assert!(state.watermark.is_some());
    }
    let files = lake_a
        .list(&object_store::path::Path::from("tickets"))
        .await
        .unwrap();
    assert!(
        files
            .iter()
            .all(|m| m.location.filename() == Some("part-0.parquet")),
        "{files:?}"
    );
}

#[tokio::test]
async fn generated_lake_has_the_shape_of_the_insa_group() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default();
    let lake = Lake::open(dir.path().to_str().unwrap(), true).unwrap();
    write_fixtures(&lake, &config, small_fixtures(5), |_, _| {})
        .await
        .unwrap();
    // every school reaches the group desk, and group staff appear as requesters
    let orgs_at_group = count(
        &lake,
        "select count(distinct org) from tickets where desk = 'group'",
    )
    .await;
    assert_eq!(orgs_at_group, 8);
    // forwarded tickets point at an existing school ticket
    let dangling = count(
        &lake,
        "select count(*) from tickets g left join tickets s on g.origin = s.source || ':' || s.ticket_id \
         where g.origin is not null and s.ticket_id is null",
    )
    .await;
    assert_eq!(dangling, 0);
    assert!(
        count(
            &lake,
            "select count(*) from tickets where origin is not null"
        )
        .await
            > 50
    );
    // September (the rentrée) is busier than December
    let sep = count(
        &lake,
        "select count(*) from tickets where local_month(created_at) = '2025-09'",
    )
    .await;
    let dec = count(
        &lake,
        "select count(*) from tickets where local_month(created_at) = '2025-12'",
    )
    .await;
    assert!(sep > dec, "september {sep} vs december {dec}");
    // every ticket has a history starting with `new` at its creation
    let without = count(
        &lake,
        "select count(*) from tickets t left join events e on e.source = t.source and e.ticket_id = t.ticket_id \
         and e.kind = 'status' and e.to_value = 'new' and e.at = t.created_at where e.event_id is null",
    )
    .await;
    assert_eq!(without, 0);
}

#[tokio::test]
async fn bad_records_go_to_the_quarantine_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), true).unwrap();
    let mut writer = LakeWriter::new(lake.clone(), LocalDays::new(chrono_tz::Europe::Paris));
    let mut b = TicketsBuilder::default();
    b.append(&ticket("ok", "2026-04-01 09:00"));
    b.append(&ticket_with_status("bad", "solved"));
    writer.stage(Table::Tickets, "s", &b.finish()).unwrap();
    let summary = writer.finish().await.unwrap();
    assert_eq!(summary.quarantined, 1);
    assert_eq!(summary.tickets, 1);
    let files = lake
        .list(&object_store::path::Path::from("_quarantine/s"))
        .await
        .unwrap();
    assert_eq!(files.len(), 1);
    let text = String::from_utf8(
        object_store::ObjectStoreExt::get(lake.store.as_ref(), &files[0].location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["record"]["ticket_id"], json!("bad"));
    assert!(
        line["reason"].as_str().unwrap().contains("status 'solved'"),
        "{line}"
    );
    assert_eq!(lake.state("s").await.unwrap().unwrap().quarantined, 1);
}

fn ticket_with_status(
    id: &'static str,
    status: &'static str,
) -> ticketlake::sources::batch::TicketFields<'static> {
    ticketlake::sources::batch::TicketFields {
        status,
        ..ticket(id, "2026-04-01 10:00")
    }
}

#[tokio::test]
async fn one_writer_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), true).unwrap();
    let held = LakeLock::acquire(&lake, "first").await.unwrap();
    let err = LakeLock::acquire(&lake, "second")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already being written by 'first'"), "{err}");
    held.release().await.unwrap();
    LakeLock::acquire(&lake, "third")
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_lock_left_by_a_dead_process_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), true).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let stale = json!({"pid": 999_999_999u32, "host": host, "command": "killed",
        "started_at": "2026-01-01T00:00:00Z", "expires_at": "2099-01-01T00:00:00Z"});
    std::fs::write(dir.path().join("_lock"), stale.to_string()).unwrap();
    LakeLock::acquire(&lake, "next")
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
}

/// The lake is plain Hive-partitioned Parquet: DuckDB (the Python package, when present;
/// `.ci/run` installs it) reads it with nothing but the file layout and finds the volume
/// KPI's figures, row for row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_reads_the_lake_and_finds_the_same_volume() {
    let has_duckdb = std::process::Command::new("python3")
        .args(["-c", "import duckdb"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_duckdb {
        eprintln!("duckdb (PyPI) is not installed: not compared");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let made = std::process::Command::new(bin())
        .args(["fixtures", "--lake", lake_dir.to_str().unwrap()])
        .args(["--tickets", "4000", "--start", "2025-01", "--months", "6"])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let lake = Lake::open(lake_dir.to_str().unwrap(), false).unwrap();
    let ours = kpis(&lake, "2025-01", "2025-06").await["volume"].clone();
    let script = format!(
        r#"
import duckdb, json
con = duckdb.connect()
con.execute("set threads = 2")
rows = con.execute("""
    select month, org, desk, service, service_scope, kind, channel, count(*) as tickets
    from read_parquet('{}/tickets/*/*/*.parquet', hive_partitioning = true)
    where month between '2025-01' and '2025-06'
    group by all order by all""").fetchall()
cols = ["month", "org", "desk", "service", "service_scope", "kind", "channel", "tickets"]
print(json.dumps([dict(zip(cols, r)) for r in rows]))
"#,
        lake_dir.display()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = |r: &serde_json::Value| r.to_string();
    let mut a: Vec<String> = ours.as_array().unwrap().iter().map(key).collect();
    let mut b: Vec<String> = theirs.as_array().unwrap().iter().map(key).collect();
    a.sort();
    b.sort();
    assert!(a.len() > 100, "{} volume rows", a.len());
    assert_eq!(a, b, "DuckDB's volume differs from ticketlake's");
}

/// A month's tickets are stored in resolution order (never resolved last, then by
/// creation, then id), in data pages of at most 4,096 rows: the page index lets a KPI
/// skip the tickets resolved before its period.
#[tokio::test]
async fn tickets_are_stored_in_resolution_order_in_small_pages() {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::TimestampMicrosecondType;
    use object_store::ObjectStoreExt;
    use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), true).unwrap();
    let mut tb = TicketsBuilder::default();
    let ids: Vec<String> = (0..10_000).map(|n| format!("T{n:05}")).collect();
    for (n, id) in ids.iter().enumerate() {
        // created one minute apart from 1 April; every third one never resolved, the
        // others resolved in the reverse order of their creation
        let created = paris("2026-04-01 08:00") + n as i64 * 60_000_000;
        let resolved = (n % 3 != 0).then(|| paris("2026-04-30 08:00") - n as i64 * 60_000_000);
        tb.append(&ticketlake::sources::batch::TicketFields {
            status: if resolved.is_some() {
                "resolved"
            } else {
                "assigned"
            },
            resolved_at: resolved,
            created_at: created,
            ticket_id: id,
            ..ticket("-", "2026-04-01 08:00")
        });
    }
    let mut writer = LakeWriter::new(lake.clone(), LocalDays::new(chrono_tz::Europe::Paris));
    writer.stage(Table::Tickets, "a", &tb.finish()).unwrap();
    writer.finish().await.unwrap();

    let path = Lake::partition_file(Table::Tickets, "a", "2026-04");
    let bytes = lake.store.get(&path).await.unwrap().bytes().await.unwrap();
    let meta = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Required)
        .parse_and_finish(&bytes)
        .unwrap();
    let pages = meta.offset_index().unwrap()[0][0].page_locations();
    assert!(pages.len() >= 3, "{} pages for 10,000 rows", pages.len());
    let firsts: Vec<i64> = pages.iter().map(|p| p.first_row_index).collect();
    assert!(
        firsts.windows(2).all(|w| w[1] - w[0] <= 4096) && 10_000 - firsts[firsts.len() - 1] <= 4096,
        "pages start at {firsts:?}"
    );

    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap();
    let mut order = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let id = b
            .column_by_name("ticket_id")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let res = b
            .column_by_name("resolved_at")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>()
            .clone();
        for r in 0..b.num_rows() {
            order.push((
                res.is_valid(r).then(|| res.value(r)),
                id.value(r).to_string(),
            ));
        }
    }
    // the resolved ones, latest created first (they were resolved first), then the 3,334
    // never resolved, in creation order
    let mut expected: Vec<usize> = (0..10_000).rev().filter(|n| n % 3 != 0).collect();
    expected.extend((0..10_000).filter(|n| n % 3 == 0));
    let got: Vec<&str> = order.iter().map(|(_, id)| id.as_str()).collect();
    let want: Vec<&str> = expected.iter().map(|&n| ids[n].as_str()).collect();
    assert_eq!(got, want);
    assert_eq!(order.iter().filter(|(r, _)| r.is_none()).count(), 3334);
}
