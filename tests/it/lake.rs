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
    let args = ["--tickets", "4000", "--start", "2025-01", "--months", "6"];
    let lake = fixtures_lake(&lake_dir, &args);
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

/// Every object under `tickets/` and `events/` of a lake, with its bytes.
async fn table_objects(lake: &Lake) -> Vec<(String, bytes::Bytes)> {
    use object_store::ObjectStoreExt;
    let mut out = Vec::new();
    for table in ["tickets", "events"] {
        let prefix = object_store::path::Path::from(table);
        for meta in lake.list(&prefix).await.unwrap() {
            let bytes = lake.store.get(&meta.location).await.unwrap().bytes().await;
            out.push((meta.location.to_string(), bytes.unwrap()));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn rows_spilled_beyond_the_memory_bound_are_stored_as_when_held() {
    use ticketlake::sources::fixtures::Generator;
    let config = Config::default();
    let opts = FixtureOptions {
        tickets: 6000,
        seed: 5,
        start: Month::parse("2025-09").unwrap(),
        months: 2,
        ..FixtureOptions::default()
    };
    let mut generator = Generator::new(&config, opts, b"spill").unwrap();
    let months: Vec<_> = (0..2).map(|k| generator.month(k)).collect();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let held = Lake::open(a.path().to_str().unwrap(), true).unwrap();
    let spilled = Lake::open(b.path().to_str().unwrap(), true).unwrap();
    let days = LocalDays::new(chrono_tz::Europe::Paris);
    let mut whole = LakeWriter::new(held.clone(), days.clone());
    // a bound of one byte: every batch staged is sorted and spilled to a run of its own
    let mut bounded = LakeWriter::new(spilled.clone(), days).staging_at_most(1);
    let mut batches = 0;
    for month in &months {
        for (source, tickets, events) in &month.sources {
            for (table, batch) in [(Table::Tickets, tickets), (Table::Events, events)] {
                for offset in (0..batch.num_rows()).step_by(700) {
                    let part = batch.slice(offset, 700.min(batch.num_rows() - offset));
                    whole.stage(table, source, &part).unwrap();
                    bounded.stage(table, source, &part).unwrap();
                    batches += 1;
                }
            }
        }
    }
    assert_eq!(whole.spilled(), 0);
    // a batch of events spans months: it is staged in a partition of each
    assert!(bounded.spilled() >= batches, "{} runs", bounded.spilled());
    let (sw, sb) = (
        whole.finish().await.unwrap(),
        bounded.finish().await.unwrap(),
    );
    assert_eq!(sw, sb);
    // 8 sources, 2 tables, 2 months (the events after the span have not happened yet)
    assert_eq!((sw.tickets, sw.partitions), (6000, 32), "{sw:?}");
    let (ow, ob) = (table_objects(&held).await, table_objects(&spilled).await);
    assert_eq!(ow.len(), sw.partitions as usize);
    let names = |o: &[(String, bytes::Bytes)]| o.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ow), names(&ob));
    for ((name, w), (_, b)) in ow.iter().zip(&ob) {
        assert!(
            w == b,
            "{name}: {} bytes whole, {} spilled",
            w.len(),
            b.len()
        );
    }
}

#[tokio::test]
async fn a_key_in_two_runs_or_in_the_lake_is_merged_as_when_held() {
    use arrow::array::AsArray;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let held = Lake::open(a.path().to_str().unwrap(), true).unwrap();
    let spilled = Lake::open(b.path().to_str().unwrap(), true).unwrap();
    let days = LocalDays::new(chrono_tz::Europe::Paris);
    let batch = |rows: &[(&'static str, &str, &'static str)]| {
        let mut tb = TicketsBuilder::default();
        for &(id, updated, status) in rows {
            tb.append(&ticketlake::sources::batch::TicketFields {
                status,
                updated_at: Some(paris(updated)),
                ..ticket(id, "2026-04-02 09:00")
            });
        }
        tb.finish()
    };
    // T1 staged twice, in two runs: the newer row (updated later, staged first) wins; T5
    // twice in one run (of another source: a partition of its own), the newer last
    let stages = [
        batch(&[
            ("T1", "2026-04-03 10:00", "resolved"),
            ("T2", "2026-04-02 09:00", "new"),
        ]),
        batch(&[("T3", "2026-04-02 09:00", "new")]),
        batch(&[("T1", "2026-04-02 11:00", "assigned")]),
        batch(&[
            ("T5", "2026-04-02 09:00", "new"),
            ("T5", "2026-04-06 09:00", "resolved"),
        ]),
    ];
    let mut whole = LakeWriter::new(held.clone(), days.clone());
    let mut bounded = LakeWriter::new(spilled.clone(), days.clone()).staging_at_most(1);
    for (i, s) in stages.iter().enumerate() {
        let source = if i == 3 { "b" } else { "a" };
        whole.stage(Table::Tickets, source, s).unwrap();
        bounded.stage(Table::Tickets, source, s).unwrap();
    }
    assert_eq!(bounded.spilled(), 4);
    let (sw, sb) = (
        whole.finish().await.unwrap(),
        bounded.finish().await.unwrap(),
    );
    assert_eq!((sw.tickets, sb.tickets), (4, 4));
    assert_eq!(table_objects(&held).await, table_objects(&spilled).await);
    assert_eq!(
        count(
            &spilled,
            "select count(*) from tickets where ticket_id = 'T1' and status = 'resolved'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &spilled,
            "select count(*) from tickets where ticket_id = 'T5' and status = 'resolved'"
        )
        .await,
        1
    );

    // onto the partition both lakes hold: T2 changes, T4 is new, T3 comes again as it is
    let again = [
        batch(&[
            ("T2", "2026-04-04 09:00", "resolved"),
            ("T4", "2026-04-05 09:00", "new"),
        ]),
        batch(&[("T3", "2026-04-02 09:00", "new")]),
    ];
    let mut whole = LakeWriter::new(held.clone(), days.clone());
    let mut bounded = LakeWriter::new(spilled.clone(), days).staging_at_most(1);
    for s in &again {
        whole.stage(Table::Tickets, "a", s).unwrap();
        bounded.stage(Table::Tickets, "a", s).unwrap();
    }
    assert_eq!(bounded.spilled(), 2);
    whole.flush(None).await.unwrap();
    bounded.flush(None).await.unwrap();
    let (cw, cb) = (whole.counts("a"), bounded.counts("a"));
    assert_eq!(cw, cb);
    assert_eq!(
        (cb.tickets_new, cb.tickets_updated, cb.unchanged),
        (1, 1, 1)
    );
    whole.finish().await.unwrap();
    bounded.finish().await.unwrap();
    let objects = table_objects(&spilled).await;
    assert_eq!(table_objects(&held).await, objects);
    let objects: Vec<_> = objects
        .into_iter()
        .filter(|(name, _)| name.contains("source=a/"))
        .collect();
    assert_eq!(objects.len(), 1);
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        objects[0].1.clone(),
    )
    .unwrap()
    .build()
    .unwrap();
    let mut rows = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let (id, status) = (
            b.column(0).as_string::<i32>(),
            b.column_by_name("status").unwrap(),
        );
        for r in 0..b.num_rows() {
            rows.push(format!(
                "{}:{}",
                id.value(r),
                status.as_string::<i32>().value(r)
            ));
        }
    }
    // none has a resolution instant and all were created together: in key order
    assert_eq!(rows, ["T1:resolved", "T2:resolved", "T3:new", "T4:new"]);
}
