//! The derived rows stored beside `events` (`_derived/ticket_history`, which the view
//! `pending_periods` reads too): equal to the views' rows, used only while they match
//! the events, brought up to date by every writer.

use object_store::ObjectStoreExt;
use ticketlake::config::Config;
use ticketlake::engine::localtime::LocalDays;
use ticketlake::lake::Lake;
use ticketlake::lake::derived;
use ticketlake::lake::write::LakeWriter;
use ticketlake::model::Table;
use ticketlake::sources::batch::{EventFields, EventsBuilder, TicketFields, TicketsBuilder};

use super::common::*;

/// `pending_periods` as (source, ticket_id, event_id, from_at, to_at) in local time, and
/// whether the plan read the stored rows.
async fn pending(lake: &Lake) -> (Vec<String>, bool) {
    let ctx = ticketlake::engine::session(lake, &Config::default())
        .await
        .unwrap();
    let sql = "select source, ticket_id, event_id, arrow_cast(from_at, 'Int64') as f, \
               coalesce(arrow_cast(arrow_cast(to_at, 'Int64'), 'Utf8'), '-') as t \
               from pending_periods order by source, ticket_id, event_id";
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    let rows = text
        .lines()
        .filter(|l| l.starts_with("| ") && !l.contains("ticket_id"))
        .map(|l| {
            l.split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let plan = ctx
        .sql(&format!("explain {sql}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let plan = arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    (rows, plan.contains("_derived/ticket_history"))
}

/// Two sources: `a` with periods ending, still open and tied on `at`; `b` with one.
fn sources() -> Vec<SourceData> {
    let mut a = Vec::new();
    history(
        &mut a,
        "A1",
        &[
            ("2026-04-01 09:00", Some("new"), "assigned"),
            ("2026-04-01 10:00", Some("assigned"), "pending"),
            ("2026-04-02 12:00", Some("pending"), "assigned"),
            ("2026-04-03 14:00", Some("assigned"), "pending"),
        ],
    );
    // a pending event and another status event at the same instant: the later id ends it
    history(
        &mut a,
        "A2",
        &[
            ("2026-04-07 10:00", Some("new"), "pending"),
            ("2026-04-07 10:00", Some("pending"), "assigned"),
            ("2026-05-04 16:30", Some("assigned"), "resolved"),
        ],
    );
    // an assignment event does not end a pending period
    a.push((
        "A1".into(),
        "000099".into(),
        paris("2026-04-03 15:00"),
        "assign".into(),
        None,
        Some("lyon-n2".into()),
    ));
    // a transfer between desks, beside A1's status history
    a.push((
        "A1".into(),
        "000098".into(),
        paris("2026-04-02 09:00"),
        "transfer".into(),
        Some("school".into()),
        Some("group".into()),
    ));
    let mut b = Vec::new();
    history(
        &mut b,
        "B1",
        &[
            ("2026-03-30 08:00", Some("new"), "pending"),
            ("2026-04-01 08:00", Some("pending"), "resolved"),
        ],
    );
    // B2 has events but no status event: a transfer and an assignment
    for (id, at, kind, to) in [
        ("000097", "2026-04-02 10:00", "transfer", "group"),
        ("000096", "2026-04-02 11:00", "assign", "group-n1"),
    ] {
        b.push((
            "B2".into(),
            id.into(),
            paris(at),
            kind.into(),
            None,
            Some(to.into()),
        ));
    }
    vec![
        SourceData {
            id: "a",
            tickets: vec![
                ticket("A1", "2026-04-01 08:00"),
                ticket("A2", "2026-04-07 09:00"),
            ],
            events: a,
        },
        SourceData {
            id: "b",
            // B3 has no event at all
            tickets: vec![
                ticket("B1", "2026-03-30 07:00"),
                ticket("B2", "2026-04-02 08:00"),
                ticket("B3", "2026-04-03 08:00"),
            ],
            events: b,
        },
    ]
}

/// A row of `pending` from local times.
fn row(source_ticket_event: &str, from: &str, to: Option<&str>) -> String {
    format!(
        "{source_ticket_event} {} {}",
        paris(from),
        to.map_or("-".to_string(), |t| paris(t).to_string())
    )
}

fn expected() -> Vec<String> {
    vec![
        row("a A1 000002", "2026-04-01 10:00", Some("2026-04-02 12:00")),
        row("a A1 000004", "2026-04-03 14:00", None),
        row("a A2 000005", "2026-04-07 10:00", Some("2026-04-07 10:00")),
        row("b B1 000001", "2026-03-30 08:00", Some("2026-04-01 08:00")),
    ]
}

/// The sources whose stored rows do not match their events.
async fn stale(lake: &Lake) -> Vec<String> {
    derived::status(lake, "ticket_history").await.unwrap().stale
}

/// A writer with nothing to write: it only brings the derived rows up to date.
async fn empty_write(lake: &Lake) {
    LakeWriter::new(lake.clone(), LocalDays::new(chrono_tz::Europe::Paris))
        .finish()
        .await
        .unwrap();
}

async fn stored_objects(lake: &Lake) -> Vec<String> {
    lake.list(&object_store::path::Path::from(derived::folder(
        "ticket_history",
    )))
    .await
    .unwrap()
    .into_iter()
    .map(|m| m.location.to_string())
    .collect()
}

/// `ticket_history` as (source, ticket_id, first_status_at, first_resolved_at, reopened,
/// transferred), `-` for null.
async fn histories(lake: &Lake) -> Vec<String> {
    let ctx = ticketlake::engine::session(lake, &Config::default())
        .await
        .unwrap();
    let sql = "select source || ' ' || ticket_id || ' ' \
               || coalesce(arrow_cast(arrow_cast(first_status_at, 'Int64'), 'Utf8'), '-') || ' ' \
               || coalesce(arrow_cast(arrow_cast(first_resolved_at, 'Int64'), 'Utf8'), '-') \
               || ' ' || coalesce(arrow_cast(reopened, 'Utf8'), '-') \
               || ' ' || arrow_cast(transferred, 'Utf8') as h \
               from ticket_history order by source, ticket_id";
    strings(&ctx, sql).await
}

/// The first column of a query's rows, as strings.
async fn strings(ctx: &datafusion::prelude::SessionContext, sql: &str) -> Vec<String> {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    batches
        .iter()
        .flat_map(|b| {
            let c = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8).unwrap();
            let c = arrow::array::AsArray::as_string::<i32>(&c).clone();
            (0..arrow::array::Array::len(&c)).map(move |i| c.value(i).to_string())
        })
        .collect()
}

#[tokio::test]
async fn stored_ticket_history_is_the_views_rows() {
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &sources()).await;
    let expected = vec![
        format!("a A1 {} - false true", paris("2026-04-01 09:00")),
        format!(
            "a A2 {} {} false false",
            paris("2026-04-07 10:00"),
            paris("2026-05-04 16:30")
        ),
        format!(
            "b B1 {} {} false false",
            paris("2026-03-30 08:00"),
            paris("2026-04-01 08:00")
        ),
        "b B2 - - - true".to_string(),
        "b B3 - - - false".to_string(),
    ];
    // (B1's `pending → resolved` is its first resolution: the first *transition to*
    // resolved, whatever it came from; B2 has a row for its events, without a status
    // history, and B3 one for itself)
    assert!(stale(&lake).await.is_empty());
    assert_eq!(histories(&lake).await, expected);

    // a reopen (resolved → pending) and a transition to closed that is not one
    let mut writer = LakeWriter::new(lake.clone(), LocalDays::new(chrono_tz::Europe::Paris));
    let mut eb = EventsBuilder::default();
    for (id, at, from, to) in [
        ("000010", "2026-05-05 09:00", "resolved", "pending"),
        ("000011", "2026-05-06 09:00", "pending", "resolved"),
        ("000012", "2026-05-07 09:00", "resolved", "closed"),
    ] {
        eb.append(&EventFields {
            ticket_id: "A2",
            event_id: id,
            at: paris(at),
            kind: "status",
            from_value: Some(from),
            to_value: Some(to),
            actor: None,
        });
    }
    writer.stage(Table::Events, "a", &eb.finish()).unwrap();
    writer.flush(None).await.unwrap();
    let mut reopened = expected.clone();
    reopened[1] = reopened[1].replacen("false", "true", 1);
    // read from the events (a's stored rows are stale), then from the stored rows
    assert_eq!(stale(&lake).await, vec!["a".to_string()]);
    assert_eq!(histories(&lake).await, reopened);
    drop(writer);
    empty_write(&lake).await;
    assert!(stale(&lake).await.is_empty());
    assert_eq!(histories(&lake).await, reopened);
    // and the view over events and tickets alone, for both sources
    for object in stored_objects(&lake).await {
        lake.store.delete(&object.as_str().into()).await.unwrap();
    }
    assert_eq!(stale(&lake).await, ["a".to_string(), "b".to_string()]);
    assert_eq!(histories(&lake).await, reopened);
}

#[tokio::test]
async fn stored_pending_periods_are_the_views_rows() {
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &sources()).await;
    let stored = stored_objects(&lake).await;
    assert_eq!(stored.len(), 2, "one object per source: {stored:?}");
    assert!(
        stored[0].starts_with("_derived/ticket_history/source=a/")
            && stored[0].ends_with("/part-0.parquet"),
        "{stored:?}"
    );
    let status = derived::status(&lake, "ticket_history").await.unwrap();
    assert!(status.stale.is_empty(), "{status:?}");

    let (rows, read_stored) = pending(&lake).await;
    assert_eq!(rows, expected());
    assert!(read_stored, "the plan reads the stored rows");

    // without them, the view over events gives the same rows
    for o in &stored {
        lake.store.delete(&o.as_str().into()).await.unwrap();
    }
    let (rows, read_stored) = pending(&lake).await;
    assert_eq!(rows, expected());
    assert!(!read_stored);
}

#[tokio::test]
async fn rows_that_no_longer_match_the_events_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &sources()).await;
    let before = stored_objects(&lake).await;

    // a writer that wrote a partition of `a` and died before bringing the derived rows
    // up to date (flush without finish)
    let mut writer = LakeWriter::new(lake.clone(), LocalDays::new(chrono_tz::Europe::Paris));
    let mut eb = EventsBuilder::default();
    eb.append(&EventFields {
        ticket_id: "A2",
        event_id: "000010",
        at: paris("2026-05-05 09:00"),
        kind: "status",
        from_value: Some("resolved"),
        to_value: Some("pending"),
        actor: None,
    });
    writer.stage(Table::Events, "a", &eb.finish()).unwrap();
    writer.flush(None).await.unwrap();
    drop(writer);

    assert_eq!(stored_objects(&lake).await, before, "nothing derived moved");
    let status = derived::status(&lake, "ticket_history").await.unwrap();
    assert_eq!(status.stale, vec!["a".to_string()]);
    assert_eq!(status.fresh.len(), 1);
    let mut expected = expected();
    expected.insert(3, row("a A2 000010", "2026-05-05 09:00", None));
    let (rows, read_stored) = pending(&lake).await;
    assert_eq!(rows, expected, "a's rows come from its events");
    assert!(read_stored, "b's still come from the stored rows");

    // the next writer, even with nothing to write, brings them up to date
    empty_write(&lake).await;
    assert!(stale(&lake).await.is_empty());
    let after = stored_objects(&lake).await;
    assert_eq!(
        after.len(),
        3,
        "a's previous object stays one refresh: {after:?}"
    );
    let (rows, read_stored) = pending(&lake).await;
    assert_eq!(rows, expected);
    assert!(read_stored);

    // the next writer removes the replaced object (a reader had the time to finish)
    empty_write(&lake).await;
    let current = stored_objects(&lake).await;
    assert_eq!(current.len(), 2, "{current:?}");
    assert!(
        current
            .iter()
            .all(|o| after.contains(o) && !before[..1].contains(o))
    );
    assert_eq!(pending(&lake).await, (expected.clone(), true));

    let mut writer = LakeWriter::new(lake.clone(), LocalDays::new(chrono_tz::Europe::Paris));
    let mut eb = EventsBuilder::default();
    eb.append(&EventFields {
        ticket_id: "A2",
        event_id: "000011",
        at: paris("2026-05-06 09:00"),
        kind: "status",
        from_value: Some("pending"),
        to_value: Some("resolved"),
        actor: None,
    });
    writer.stage(Table::Events, "a", &eb.finish()).unwrap();
    writer.finish().await.unwrap();
    let last = stored_objects(&lake).await;
    assert_eq!(last.len(), 3, "{last:?}");
    assert!(
        last.contains(&current[0]),
        "the replaced one stays: {last:?}"
    );
    expected[3] = row("a A2 000010", "2026-05-05 09:00", Some("2026-05-06 09:00"));
    assert_eq!(pending(&lake).await, (expected, true));
}

/// Every row of `ticket_history`, as text, and how many were reopened.
async fn all_histories(lake: &Lake) -> (String, usize) {
    let ctx = ticketlake::engine::session(lake, &Config::default())
        .await
        .unwrap();
    let batches = ctx
        .sql("select * from ticket_history order by source, ticket_id")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    let reopened = text.matches("| true ").count();
    (text, reopened)
}

/// A generated lake of 3,000 tickets over four months (2025-09 to 2025-12), in `dir`.
async fn generated_lake(dir: &std::path::Path, seed: u64) -> Lake {
    use ticketlake::engine::localtime::Month;
    use ticketlake::sources::fixtures::{FixtureOptions, write_lake as write_fixtures};
    let lake = Lake::open(dir.to_str().unwrap(), true).unwrap();
    let options = FixtureOptions {
        tickets: 3000,
        seed,
        start: Month::parse("2025-09").unwrap(),
        months: 4,
        ..FixtureOptions::default()
    };
    write_fixtures(&lake, &Config::default(), options, |_, _| {})
        .await
        .unwrap();
    lake
}

#[tokio::test]
async fn on_a_generated_lake_the_stored_rows_are_the_views() {
    let dir = tempfile::tempdir().unwrap();
    let lake = generated_lake(dir.path(), 5).await;
    let stored = stored_objects(&lake).await;
    assert_eq!(stored.len(), 8, "one object per source: {stored:?}");
    let (from_stored, reopened) = all_histories(&lake).await;
    for o in &stored {
        lake.store.delete(&o.as_str().into()).await.unwrap();
    }
    let (from_view, _) = all_histories(&lake).await;
    assert!(reopened > 20, "{reopened} reopened tickets");
    assert!(
        from_view.matches("| [").count() > 3000,
        "lists were written"
    );
    assert!(
        from_stored == from_view,
        "the stored rows differ from the view's"
    );
}

/// `ticket_history` as (ticket_id, created_at, resolved_at, settled_at) in local time, in
/// `order`.
async fn own_times(lake: &Lake, order: &str) -> Vec<String> {
    let ctx = ticketlake::engine::session(lake, &Config::default())
        .await
        .unwrap();
    let local = |c: &str| {
        format!(
            "coalesce(to_char(to_local_time(arrow_cast({c}, 'Timestamp(µs, \"Europe/Paris\")')), \
             '%Y-%m-%d %H:%M'), '-')"
        )
    };
    let sql = format!(
        "select ticket_id || ' ' || {} || ' ' || {} || ' ' || {} from ticket_history {order}",
        local("created_at"),
        local("resolved_at"),
        local("settled_at")
    );
    strings(&ctx, &sql).await
}

/// Tickets whose own fields settle them, or not, each with one status event; and events
/// of a ticket `tickets` does not have.
fn settled_source() -> Vec<SourceData> {
    let mut events = Vec::new();
    for (id, day) in [
        ("T1", "2026-04-03"),
        ("T2", "2026-04-01"),
        ("T3", "2026-04-02"),
        ("T4", "2026-04-04"),
        ("T5", "2026-04-05"),
        ("T6", "2026-03-30"),
        ("T7", "2026-03-31"),
        ("X9", "2026-04-01"),
    ] {
        history(
            &mut events,
            id,
            &[(&format!("{day} 09:30"), Some("new"), "assigned")],
        );
    }
    // (id, created, status, resolved_at, closed_at, updated_at)
    let tickets = [
        // closed: the latest of its times
        (
            "T1",
            "2026-04-03 09:00",
            "closed",
            Some("2026-04-05 10:00"),
            Some("2026-04-08 10:00"),
            Some("2026-04-08 11:00"),
        ),
        // resolved without resolved_at or closed_at: it may still be open
        (
            "T2",
            "2026-04-01 09:00",
            "resolved",
            None,
            None,
            Some("2026-04-02 08:00"),
        ),
        // canceled: its updated_at
        (
            "T3",
            "2026-04-02 09:00",
            "canceled",
            None,
            None,
            Some("2026-04-02 12:00"),
        ),
        // not finished
        (
            "T4",
            "2026-04-04 09:00",
            "assigned",
            Some("2026-04-04 18:00"),
            None,
            Some("2026-04-05 08:00"),
        ),
        // closed without updated_at
        (
            "T5",
            "2026-04-05 09:00",
            "closed",
            None,
            Some("2026-04-06 10:00"),
            None,
        ),
        // created in March (another partition of `tickets`), resolved in April
        (
            "T6",
            "2026-03-30 09:00",
            "resolved",
            Some("2026-04-03 12:00"),
            None,
            Some("2026-04-03 12:05"),
        ),
        // created in March, still open
        (
            "T7",
            "2026-03-31 09:00",
            "assigned",
            None,
            None,
            Some("2026-03-31 10:00"),
        ),
    ];
    vec![SourceData {
        id: "a",
        tickets: tickets
            .into_iter()
            .map(|(id, created, status, resolved, closed, updated)| {
                let at = |t: Option<&str>| t.map(paris);
                TicketFields {
                    status,
                    resolved_at: at(resolved),
                    closed_at: at(closed),
                    updated_at: at(updated),
                    ..ticket(id, created)
                }
            })
            .collect(),
        events,
    }]
}

#[tokio::test]
async fn stored_rows_carry_the_tickets_own_times_by_month_then_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &settled_source()).await;
    let expected = vec![
        "T6 2026-03-30 09:00 2026-04-03 12:00 2026-04-03 12:05",
        "T7 2026-03-31 09:00 - -",
        "T2 2026-04-01 09:00 - -",
        "T3 2026-04-02 09:00 - 2026-04-02 12:00",
        "T1 2026-04-03 09:00 2026-04-05 10:00 2026-04-08 11:00",
        "T4 2026-04-04 09:00 2026-04-04 18:00 -",
        "T5 2026-04-05 09:00 - -",
        "X9 - - -",
    ];
    assert!(stale(&lake).await.is_empty());
    // the stored object holds its rows by the ticket's `tickets` partition (March, then
    // April, then a ticket only events name), one row group each; within a partition
    // the resolved ones by resolved_at (T4 is resolved but open again), then the others
    // by settled_at, those without last (by created_at)
    let stored = stored_objects(&lake).await;
    assert_eq!(stored.len(), 1);
    let bytes = lake
        .store
        .get(&stored[0].as_str().into())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    let groups: Vec<i64> = builder
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect();
    assert_eq!(groups, [2, 5, 1]);
    // in LZ4, as `tickets`: every KPI reads it
    let mut codecs: Vec<_> = builder
        .metadata()
        .row_groups()
        .iter()
        .flat_map(|g| g.columns().iter().map(|c| c.compression()))
        .collect();
    codecs.dedup();
    assert_eq!(codecs, [parquet::basic::Compression::LZ4_RAW]);
    let reader = builder.build().unwrap();
    let ids: Vec<String> = reader
        .flat_map(|b| {
            let b = b.unwrap();
            let c = arrow::array::AsArray::as_string::<i32>(b.column_by_name("ticket_id").unwrap())
                .clone();
            (0..arrow::array::Array::len(&c))
                .map(|i| c.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(ids, ["T6", "T7", "T4", "T1", "T3", "T2", "T5", "X9"]);
    let by_creation = "order by created_at, ticket_id";
    assert_eq!(own_times(&lake, by_creation).await, expected);
    // the view over events and tickets gives the same
    lake.store.delete(&stored[0].as_str().into()).await.unwrap();
    assert_eq!(stale(&lake).await, vec!["a".to_string()]);
    assert_eq!(own_times(&lake, by_creation).await, expected);
}

#[tokio::test]
async fn a_ticket_rewritten_without_new_events_makes_the_stored_rows_stale() {
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &settled_source()).await;
    assert!(stale(&lake).await.is_empty());

    // T4 is resolved and closed: only `tickets` changes, and the writer dies before
    // bringing the derived rows up to date
    let mut writer = LakeWriter::new(lake.clone(), LocalDays::new(chrono_tz::Europe::Paris));
    let mut tb = TicketsBuilder::default();
    tb.append(&TicketFields {
        status: "closed",
        resolved_at: Some(paris("2026-04-06 10:00")),
        closed_at: Some(paris("2026-04-07 10:00")),
        updated_at: Some(paris("2026-04-07 10:05")),
        ..ticket("T4", "2026-04-04 09:00")
    });
    writer.stage(Table::Tickets, "a", &tb.finish()).unwrap();
    writer.flush(None).await.unwrap();
    drop(writer);
    assert_eq!(stale(&lake).await, vec!["a".to_string()]);
    let t4 = "T4 2026-04-04 09:00 2026-04-06 10:00 2026-04-07 10:05";
    let rows = own_times(&lake, "where ticket_id = 'T4'").await;
    assert_eq!(rows, [t4], "from the view over the new tickets");
    empty_write(&lake).await;
    assert!(stale(&lake).await.is_empty());
    assert_eq!(own_times(&lake, "where ticket_id = 'T4'").await, [t4]);
}

#[tokio::test]
async fn tickets_without_a_status_event_or_without_any_event_are_not_in_the_history_coverage() {
    use ticketlake::engine::localtime::Month;
    use ticketlake::kpi::{self, Period};
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &sources()).await;
    // created in April: A1 and A2 (source a), B2 and B3 (source b; B1 was created in
    // March). A1 and B2 have a transfer; B2 has no status event, only a transfer and an
    // assignment; B3 has no event.
    for from_stored_rows in [true, false] {
        if !from_stored_rows {
            for object in stored_objects(&lake).await {
                lake.store.delete(&object.as_str().into()).await.unwrap();
            }
            assert_eq!(stale(&lake).await, ["a".to_string(), "b".to_string()]);
        }
        let k = kpis(&lake, "2026-04", "2026-04").await;
        let requalification = k["requalification"].as_array().unwrap();
        assert_eq!(requalification.len(), 1);
        let r = &requalification[0];
        assert_eq!(r["month"], "2026-04");
        assert_eq!(r["tickets"], 4);
        assert_eq!(r["transferred"], 2);
        assert_close(num(r, "rate"), 0.5, "requalification rate");
        let coverage: Vec<(String, i64, i64, i64, f64)> = k["history_coverage"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["source"].as_str().unwrap().to_string(),
                    r["tickets"].as_i64().unwrap(),
                    r["with_history"].as_i64().unwrap(),
                    r["without_history"].as_i64().unwrap(),
                    num(r, "history_rate"),
                )
            })
            .collect();
        assert_eq!(
            coverage,
            [
                ("a".to_string(), 2, 2, 0, 1.0),
                ("b".to_string(), 2, 0, 2, 0.0)
            ]
        );
        // the decision's m: of the tickets with events (all but B3), those transferred
        let ctx = ticketlake::engine::session(&lake, &Config::default())
            .await
            .unwrap();
        let april = Month::parse("2026-04").unwrap();
        let days = LocalDays::new(chrono_tz::Europe::Paris);
        let inputs = kpi::decision_inputs(&ctx, &days, Period::new(april, april).unwrap())
            .await
            .unwrap();
        let m = &inputs["m"][0];
        assert_eq!(m["tickets_with_history"], 3);
        assert_eq!(m["transferred"], 2);
        assert_close(num(m, "m"), 2.0 / 3.0, "m");
    }
}

/// Each source's stored `ticket_history` object that matches its events, by source.
async fn stored_bytes(lake: &Lake) -> Vec<(String, bytes::Bytes)> {
    let status = derived::status(lake, "ticket_history").await.unwrap();
    assert!(status.stale.is_empty(), "{:?}", status.stale);
    let mut out = Vec::new();
    for (source, path) in status.fresh {
        let bytes = lake.store.get(&path).await.unwrap().bytes().await.unwrap();
        out.push((source, bytes));
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_source_computed_a_piece_at_a_time_stores_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let lake = generated_lake(dir.path(), 9).await;
    // a ticket only events name, with status events in the first and the last month:
    // its row comes from the last piece, whichever objects its events are in
    let mut writer = LakeWriter::new(lake.clone(), LocalDays::new(chrono_tz::Europe::Paris));
    let mut eb = EventsBuilder::default();
    for (id, at, from, to) in [
        ("E-1", "2025-09-03 09:00", None, "assigned"),
        ("E-2", "2025-12-05 09:00", Some("assigned"), "resolved"),
    ] {
        eb.append(&EventFields {
            ticket_id: "orphan",
            event_id: id,
            at: paris(at),
            kind: "status",
            from_value: from,
            to_value: Some(to),
            actor: None,
        });
    }
    writer
        .stage(Table::Events, "glpi-lyon", &eb.finish())
        .unwrap();
    writer.finish().await.unwrap();
    the_same_rows_in_pieces(&lake, "orphan", "2025-09-03T07:00:00").await;
}

/// Checks that the rows stored (each source whole) hold one row of `ticket`, created at
/// `created` (UTC), then computes them again with each source's 4 tickets objects in 4
/// pieces (at most one byte each): the same bytes, the same rows.
async fn the_same_rows_in_pieces(lake: &Lake, ticket: &str, created: &str) {
    let whole = stored_bytes(lake).await;
    assert_eq!(whole.len(), 8);
    let (rows, _) = all_histories(lake).await;
    let own = format!(" {ticket} ");
    let found: Vec<&str> = rows.lines().filter(|l| l.contains(&own)).collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains(created), "{}", found[0]);
    for object in stored_objects(lake).await {
        lake.store.delete(&object.as_str().into()).await.unwrap();
    }
    let refreshed = derived::refresh_in_pieces(lake, 1).await.unwrap();
    assert_eq!(refreshed.len(), 8);
    let pieces = stored_bytes(lake).await;
    for ((source, a), (_, b)) in whole.iter().zip(&pieces) {
        assert!(a == b, "{source}: the rows stored in pieces differ");
    }
    assert_eq!(all_histories(lake).await.0, rows);
}

#[tokio::test]
async fn a_ticket_in_two_months_makes_the_source_computed_whole() {
    // against the write contract, `glpi-lyon` holds the ticket `twice` in its September
    // and its December objects (two writes with another created_at): its row is that of
    // the first, which only the whole source tells, so pieces are not used for it
    let dir = tempfile::tempdir().unwrap();
    let lake = generated_lake(dir.path(), 11).await;
    for created in ["2025-09-10 09:00", "2025-12-10 09:00"] {
        let mut writer = LakeWriter::new(lake.clone(), LocalDays::new(chrono_tz::Europe::Paris));
        let mut tb = TicketsBuilder::default();
        tb.append(&TicketFields {
            status: "assigned",
            ..ticket("twice", created)
        });
        writer
            .stage(Table::Tickets, "glpi-lyon", &tb.finish())
            .unwrap();
        writer.finish().await.unwrap();
    }
    the_same_rows_in_pieces(&lake, "twice", "2025-09-10T07:00:00").await;
}

#[tokio::test]
async fn a_pending_event_read_after_a_month_without_status_events_keeps_its_id() {
    // c's events objects are read one after the other: March (C1's status events),
    // April (a transfer only: no status event), May (C3's). A status event's id is found
    // from its position among those read; the April batch starts where May's does
    let mut events = Vec::new();
    history(
        &mut events,
        "C1",
        &[
            ("2026-03-02 09:00", Some("new"), "pending"),
            ("2026-03-03 09:00", Some("pending"), "assigned"),
        ],
    );
    events.push((
        "C2".into(),
        "000003".into(),
        paris("2026-04-01 10:00"),
        "transfer".into(),
        Some("school".into()),
        Some("group".into()),
    ));
    history(
        &mut events,
        "C3",
        &[
            ("2026-05-04 09:00", Some("new"), "pending"),
            ("2026-05-05 10:00", Some("pending"), "resolved"),
        ],
    );
    let source = SourceData {
        id: "c",
        tickets: vec![
            ticket("C1", "2026-03-02 08:00"),
            ticket("C2", "2026-04-01 08:00"),
            ticket("C3", "2026-05-04 08:00"),
        ],
        events,
    };
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &[source]).await;
    let expected = vec![
        row("c C1 000001", "2026-03-02 09:00", Some("2026-03-03 09:00")),
        row("c C3 000004", "2026-05-04 09:00", Some("2026-05-05 10:00")),
    ];
    assert_eq!(pending(&lake).await, (expected.clone(), true));
    for o in stored_objects(&lake).await {
        lake.store.delete(&o.as_str().into()).await.unwrap();
    }
    assert_eq!(pending(&lake).await, (expected, false));
}
