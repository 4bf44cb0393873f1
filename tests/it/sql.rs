//! Ad-hoc SQL is read-only: every kind of write or escape is refused with a clear message.

use ticketlake::config::Config;
use ticketlake::engine::query::run_read_only;

use super::common::*;

/// A session over a lake of one source with one ticket.
async fn one_ticket_session(dir: &std::path::Path) -> datafusion::prelude::SessionContext {
    let lake = write_lake(
        dir,
        &[SourceData {
            id: "s",
            tickets: vec![ticket("1", "2026-04-01 09:00")],
            events: vec![],
        }],
    )
    .await;
    ticketlake::engine::session(&lake, &Config::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn writes_and_escapes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = one_ticket_session(dir.path()).await;
    let refused = [
        "create table x as select 1",
        "create view v as select 1",
        "drop table tickets",
        "insert into tickets select * from tickets",
        "delete from tickets",
        "update tickets set org = 'x'",
        "copy (select 1) to '/tmp/ticketlake-copy.csv'",
        "set datafusion.execution.batch_size = 1",
        "create external table t stored as csv location '/etc/passwd'",
        "select 1; drop table tickets",
    ];
    for sql in refused {
        let err = format!("{:#}", run_read_only(&ctx, sql).await.unwrap_err());
        assert!(err.contains("refused"), "{sql}: {err}");
    }
    // no file or URL outside the lake can be read as a table, nor through a function
    for sql in [
        "select * from '/etc/passwd'",
        "select * from 'file:///etc/passwd'",
        "select * from 's3://bucket/tickets.parquet'",
        "select * from 'https://example.org/x.csv'",
        "select * from read_parquet('/etc/passwd')",
        "select * from read_csv('/etc/passwd')",
        "select * from '../../etc/passwd'",
    ] {
        let err = format!("{:#}", run_read_only(&ctx, sql).await.unwrap_err());
        assert!(
            err.starts_with("SQL error") || err.contains("refused"),
            "{sql}: {err}"
        );
        assert!(!err.contains("root:"), "{sql} read the file: {err}");
    }
    for sql in [
        "create function f(int) returns int return $1",
        "create schema s",
        "drop view status_intervals",
        "prepare q as select 1",
        "truncate table tickets",
    ] {
        let err = format!("{:#}", run_read_only(&ctx, sql).await.unwrap_err());
        assert!(
            err.contains("refused") || err.starts_with("SQL error"),
            "{sql}: {err}"
        );
    }
    assert!(!std::path::Path::new("/tmp/ticketlake-copy.csv").exists());

    // queries run, several statements too
    let out = run_read_only(
        &ctx,
        "select count(*) as n from tickets; select org from tickets",
    )
    .await
    .unwrap();
    assert_eq!(out.len(), 2);
    let n =
        arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(out[0].1[0].column(0))
            .value(0);
    assert_eq!(n, 1);
    // a syntax error is an SQL error, not a panic
    let err = format!("{:#}", run_read_only(&ctx, "selec 1").await.unwrap_err());
    assert!(err.starts_with("SQL error"), "{err}");
}

/// `pending_business_micros` sums a ticket's intervals, each clipped to the window, in
/// the org's calendar (france: Monday to Friday, 08:00-18:00 Paris time).
#[tokio::test]
async fn pending_business_micros_clips_each_interval_to_the_window() {
    use arrow::array::Array;
    let dir = tempfile::tempdir().unwrap();
    let ctx = one_ticket_session(dir.path()).await;
    // window: Wednesday 2026-04-08 09:00 to Thursday 10:00 (Paris, UTC+2). Intervals:
    // 07:00-09:30 counts from 09:00 (0.5 h); 17:00 to no end runs to the window's end
    // (17:00-18:00 and 08:00-10:00 the next day: 3 h); Thursday 11:00-12:00 is after the
    // window (0). Total 3.5 h.
    let ts = |s: &str| format!("arrow_cast('{s}', 'Timestamp(Microsecond, Some(\"UTC\"))')");
    let starts = format!(
        "make_array({}, {}, {})",
        ts("2026-04-08T05:00:00Z"),
        ts("2026-04-08T15:00:00Z"),
        ts("2026-04-09T09:00:00Z")
    );
    let ends = format!(
        "make_array({}, null, {})",
        ts("2026-04-08T07:30:00Z"),
        ts("2026-04-09T10:00:00Z")
    );
    let (from, to) = (ts("2026-04-08T07:00:00Z"), ts("2026-04-09T08:00:00Z"));
    let sql = format!(
        "select pending_business_micros('LYON', {starts}, {ends}, {from}, {to}) as a, \
         pending_business_micros('LYON', null, null, {from}, {to}) as b, \
         pending_business_micros(null, {starts}, {ends}, {from}, {to}) as c, \
         pending_business_micros('LYON', {starts}, {ends}, {to}, {from}) as d"
    );
    let out = run_read_only(&ctx, &sql).await.unwrap();
    let batch = &out[0].1[0];
    let col = |i: usize| {
        arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(batch.column(i)).clone()
    };
    assert_eq!(col(0).value(0), 3 * 3_600_000_000 + 1_800_000_000);
    assert_eq!(col(1).value(0), 0, "no pending list: no pending time");
    assert!(col(2).is_null(0), "a null org gives null");
    assert_eq!(col(3).value(0), 0, "an empty window counts nothing");
}

/// The calendar functions take the org as it comes: a string, a large string, a string
/// view (as text is read from the lake), or a value of another type cast to a string.
/// Wednesday 2026-04-08 09:00 to Thursday 10:00, Paris (france: 08:00-18:00 on weekdays):
/// 9 h on Wednesday and 2 h on Thursday.
#[tokio::test]
async fn business_micros_reads_the_org_as_any_kind_of_text() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = one_ticket_session(dir.path()).await;
    let ts = |s: &str| format!("arrow_cast('{s}', 'Timestamp(Microsecond, Some(\"UTC\"))')");
    let (from, to) = (ts("2026-04-08T07:00:00Z"), ts("2026-04-09T08:00:00Z"));
    let orgs = [
        "'LYON'",
        "arrow_cast('LYON', 'LargeUtf8')",
        "arrow_cast('LYON', 'Utf8View')",
        "arrow_cast(null, 'Utf8View')",
        "42",
    ];
    let columns: Vec<String> = orgs
        .iter()
        .map(|org| format!("business_micros({org}, {from}, {to})"))
        .collect();
    let sql = format!(
        "select {}, pending_business_micros(arrow_cast('LYON', 'Utf8View'), \
         make_array({from}), make_array({to}), {from}, {to})",
        columns.join(", ")
    );
    let out = run_read_only(&ctx, &sql).await.unwrap();
    let batch = &out[0].1[0];
    let value = |i: usize| {
        let col =
            arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(batch.column(i));
        arrow::array::Array::is_valid(col, 0).then(|| col.value(0))
    };
    let eleven_hours = Some(11 * 3_600_000_000);
    assert_eq!(value(0), eleven_hours);
    assert_eq!(value(1), eleven_hours);
    assert_eq!(value(2), eleven_hours);
    assert_eq!(value(3), None, "a null org gives null");
    // an org no config names has the default calendar (france)
    assert_eq!(value(4), eleven_hours);
    assert_eq!(
        value(5),
        eleven_hours,
        "the pending period is the whole window"
    );
}
