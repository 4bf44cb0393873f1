//! The connectors against loopback servers that speak the iTop and GLPI protocols:
//! the compliance test (a pull gives the KPIs of the same data written directly),
//! incremental pulls, faults, quarantine, credentials.

use ticketlake::config::Config;
use ticketlake::engine::localtime::Month;
use ticketlake::lake::Lake;
use ticketlake::sources::fixtures::loopback::{self, Loopback};
use ticketlake::sources::fixtures::server::{Accounts, Faults};
use ticketlake::sources::fixtures::{self, FixtureOptions, write_lake as write_fixtures};
use ticketlake::sources::pull::{self, PullOptions, Silent};

use ticketlake::sources::glpi::{LOG_CREATE_ITEM, LOG_FIELD, SO_STATUS};

use super::common::*;

pub const USER: &str = "rest-reader";
pub const PASSWORD: &str = "s3cr3t-Pa55-w0rd-xyzzy";
pub const TOKEN: &str = "tok-0123456789abcdef-secret";

pub fn accounts() -> Accounts {
    Accounts {
        user: USER.into(),
        password: PASSWORD.into(),
        token: Some(TOKEN.into()),
        app_token: None,
    }
}

pub fn small(seed: u64) -> FixtureOptions {
    FixtureOptions {
        tickets: 2500,
        seed,
        start: Month::parse("2025-01").unwrap(),
        months: 4,
        ..FixtureOptions::default()
    }
}

/// The default config with the loopback servers as its sources.
pub fn with_sources(lb: &Loopback) -> Config {
    Config {
        sources: lb.sources.clone(),
        ..Config::default()
    }
}

fn secret(seed: u64) -> Vec<u8> {
    fixtures::secret(&Config::default(), seed)
}

/// Loopback servers over `tickets` generated tickets.
pub async fn servers(tickets: u64, months: u32, seed: u64, faults: Faults) -> Loopback {
    let opts = FixtureOptions {
        tickets,
        months,
        ..small(seed)
    };
    loopback::start(&Config::default(), opts, b"x", accounts(), faults)
        .await
        .unwrap()
}

/// Pulls every loopback source into `lake`.
async fn pull_all(lake: &Lake, lb: &Loopback, seed: u64) -> Vec<pull::SourceReport> {
    pull::pull(
        lake,
        &with_sources(lb),
        &secret(seed),
        &PullOptions::default(),
        &Silent,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_pull_from_the_servers_gives_the_kpis_of_the_fixtures_written_directly() {
    let config = Config::default();
    let opts = small(3);
    let direct_dir = tempfile::tempdir().unwrap();
    let direct = Lake::open(direct_dir.path().to_str().unwrap(), true).unwrap();
    write_fixtures(&direct, &config, opts, |_, _| {})
        .await
        .unwrap();

    let lb = loopback::start(&config, opts, &secret(3), accounts(), Faults::default())
        .await
        .unwrap();
    assert_eq!((lb.itop.len(), lb.glpi.len()), (4, 4));
    let pulled_dir = tempfile::tempdir().unwrap();
    let pulled = Lake::open(pulled_dir.path().to_str().unwrap(), true).unwrap();
    let reports = pull_all(&pulled, &lb, 3).await;
    assert_eq!(reports.len(), 8);
    let read: u64 = reports.iter().map(|r| r.tickets_read).sum();
    assert_eq!(read, 2500, "every ticket read once");
    assert_eq!(reports.iter().map(|r| r.counts.quarantined).sum::<u64>(), 0);

    let a = kpis(&direct, "2025-01", "2025-04").await;
    let b = kpis(&pulled, "2025-01", "2025-04").await;
    for (name, rows) in a.as_object().unwrap() {
        assert_eq!(
            rows, &b[name],
            "KPI {name} differs between the direct lake and the pulled one"
        );
    }

    // the same pull again: nothing new, nothing rewritten
    let again = pull_all(&pulled, &lb, 3).await;
    for r in &again {
        assert_eq!(
            (
                r.counts.tickets_new,
                r.counts.tickets_updated,
                r.counts.events_new,
                r.counts.partitions_written
            ),
            (0, 0, 0, 0),
            "{}: {:?}",
            r.source,
            r.counts
        );
    }
    assert_eq!(kpis(&pulled, "2025-01", "2025-04").await, b);
}

/// Sources with small pages, short timeouts and quick retries (for fault tests).
fn tight(lb: &Loopback, page_size: usize) -> Config {
    let mut config = with_sources(lb);
    for s in &mut config.sources {
        s.page_size = page_size;
        s.timeout_s = 1.0;
        s.retries = 6;
        s.backoff_ms = 5;
    }
    config
}

async fn scalar(lake: &Lake, sql: &str) -> i64 {
    let ctx = ticketlake::engine::session(lake, &Config::default())
        .await
        .unwrap();
    let b = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(b[0].column(0)).value(0)
}

#[tokio::test]
async fn pulls_survive_500s_timeouts_and_pages_that_shift() {
    let config = Config::default();
    let opts = small(4);
    let faults = Faults {
        fail_every: Some(5),
        throttle_every: Some(211),
        slow_every: Some((97, std::time::Duration::from_millis(2500))),
        insert_after_first_page: true,
        history_denied: false,
    };
    let lb = loopback::start(&config, opts, &secret(4), accounts(), faults)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), true).unwrap();
    pull::pull(
        &lake,
        &tight(&lb, 40),
        &secret(4),
        &PullOptions::default(),
        &Silent,
    )
    .await
    .unwrap();
    // every ticket the servers hold, the ones created during the pull included, once
    let mut held = 0;
    for (_, srv) in &lb.itop {
        held += srv.with_data(|d| {
            d.objects
                .iter()
                .filter(|o| o.class == "UserRequest" || o.class == "Incident")
                .count()
        });
    }
    for (_, srv) in &lb.glpi {
        held += srv.with_data(|d| d.tickets.len());
    }
    assert_eq!(held, 2500 + 4, "each iTop got one ticket during the pull");
    // paging by id, not by page number: the shift neither hid nor repeated a ticket
    assert_eq!(scalar(&lake, "select count(*) from tickets").await, 2500);
    // the tickets created during the pull come with the next one
    pull::pull(
        &lake,
        &tight(&lb, 40),
        &secret(4),
        &PullOptions::default(),
        &Silent,
    )
    .await
    .unwrap();
    assert_eq!(
        scalar(&lake, "select count(*) from tickets").await,
        held as i64
    );
    assert_eq!(
        scalar(
            &lake,
            "select count(*) - count(distinct source || ':' || ticket_id) from tickets"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &lake,
            "select count(*) - count(distinct source || ':' || event_id) from events"
        )
        .await,
        0
    );
    // and the fifth request of each server failed at least once
    assert!(lb.itop.iter().all(|(_, s)| s.requests() >= 5));
    // every GLPI session was closed
    for (_, srv) in &lb.glpi {
        let sessions = srv.sessions();
        assert!(
            !sessions.is_empty() && sessions.iter().all(|closed| *closed),
            "{sessions:?}"
        );
    }
}

#[tokio::test]
async fn bad_credentials_fail_fast_with_a_clear_message_that_never_shows_them() {
    let config = Config::default();
    let opts = FixtureOptions {
        tickets: 300,
        months: 1,
        ..small(5)
    };
    let mut acc = accounts();
    acc.app_token = Some("app-token-right".into());
    let lb = loopback::start(&config, opts, &secret(5), acc, Faults::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), true).unwrap();
    let wrong = "wrong-Pa55-qwerty";
    let attempt = |id: &str, edit: &dyn Fn(&mut ticketlake::sources::config::SourceConfig)| {
        let mut c = with_sources(&lb);
        c.sources.retain(|s| s.id == id);
        edit(&mut c.sources[0]);
        c
    };
    // iTop: HTTP 200 with code 1
    let c = attempt("itop-rennes", &|s| {
        s.inline_credentials.as_mut().unwrap().password = wrong.into()
    });
    let before = lb.itop[1].1.requests();
    let err = format!(
        "{:#}",
        pull::pull(&lake, &c, &secret(5), &PullOptions::default(), &Silent)
            .await
            .unwrap_err()
    );
    assert!(
        err.contains("itop-rennes")
            && err.contains("Invalid login")
            && err.contains("password_env"),
        "{err}"
    );
    assert!(!err.contains(wrong) && !err.contains(PASSWORD), "{err}");
    assert!(
        lb.itop[1].1.requests() - before <= 2,
        "no retries on a refused login"
    );
    // GLPI: 401 on initSession, and the app token checked first
    let c = attempt("glpi-lyon", &|s| {
        s.inline_credentials.as_mut().unwrap().password = wrong.into()
    });
    let err = format!(
        "{:#}",
        pull::pull(&lake, &c, &secret(5), &PullOptions::default(), &Silent)
            .await
            .unwrap_err()
    );
    assert!(
        err.contains("glpi-lyon") && !err.contains("App-Token"),
        "{err}"
    );
    assert!(err.contains("ERROR_WRONG_APP_TOKEN_PARAMETER"), "{err}");
    // with the app token from its environment variable name… which is not set
    let c = attempt("glpi-lyon", &|s| {
        s.app_token_env = Some("TICKETLAKE_TEST_UNSET_APP_TOKEN".into())
    });
    let mut c2 = c.clone();
    c2.sources[0].inline_credentials = None;
    c2.sources[0].user_env = Some("TICKETLAKE_TEST_UNSET_USER".into());
    let err = format!(
        "{:#}",
        pull::pull(&lake, &c2, &secret(5), &PullOptions::default(), &Silent)
            .await
            .unwrap_err()
    );
    assert!(
        err.contains("TICKETLAKE_TEST_UNSET_USER") && err.contains("is not set"),
        "{err}"
    );
    // nothing was written: no state, no data
    assert!(lake.state("itop-rennes").await.unwrap().is_none());
    assert!(lake.sources().await.unwrap().is_empty());
}

#[tokio::test]
async fn without_the_right_to_read_history_the_pull_goes_on_and_says_so() {
    let config = Config::default();
    let lb = servers(400, 2, 6, Faults::default()).await;
    lb.itop[0].1.set_faults(Faults {
        history_denied: true,
        ..Faults::default()
    });
    lb.glpi[0].1.set_faults(Faults {
        history_denied: true,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), true).unwrap();
    let reports = pull_all(&lake, &lb, 6).await;
    for id in ["itop-group", "glpi-lyon"] {
        let r = reports.iter().find(|r| r.source == id).unwrap();
        let why = r.history_unavailable.as_deref().unwrap_or_default();
        assert!(why.contains("permission"), "{id}: {why}");
        assert!(
            r.counts.tickets_new > 0 && r.counts.events_new == 0,
            "{id}: {:?}",
            r.counts
        );
        let state = lake.state(id).await.unwrap().unwrap();
        assert!(state.history_unavailable.is_some());
    }
    let other = reports.iter().find(|r| r.source == "itop-rennes").unwrap();
    assert!(other.history_unavailable.is_none() && other.counts.events_new > 0);
    // the history figures leave those sources out rather than counting zeros
    let k = kpis(&lake, "2025-01", "2025-02").await;
    let cov = row(
        &k,
        "history_coverage",
        &[("source", serde_json::json!("itop-group"))],
    );
    assert_eq!(num(cov, "with_history"), 0.0);
    assert!(num(cov, "tickets") > 0.0);
    // and the report says why, in both languages
    let days = ticketlake::engine::localtime::LocalDays::new(chrono_tz::Europe::Paris);
    let inputs =
        ticketlake::report::gather(&lake, &config, &days, Month::parse("2025-02").unwrap())
            .await
            .unwrap();
    let out = tempfile::tempdir().unwrap();
    let paths = ticketlake::report::write(
        &inputs,
        ticketlake::report::Lang::En,
        &[ticketlake::report::Format::Html],
        out.path(),
    )
    .unwrap();
    let html = std::fs::read_to_string(&paths[0]).unwrap();
    assert!(
        html.contains("itop-group does not let ticketlake read its status history"),
        "note missing"
    );
    assert!(
        html.contains("does not have enough permissions for reading data of class CMDBChangeOpSetAttributeScalar"),
        "{}",
        html.lines().filter(|l| l.contains("class=\"note\"")).collect::<Vec<_>>().join("\n")
    );
}

/// Moves 1 % of an iTop's tickets on: reopens resolved ones, creates new ones. Returns
/// (reopened, created).
fn itop_moves_on(
    srv: &ticketlake::sources::fixtures::server::FixtureServer<
        ticketlake::sources::fixtures::native::ItopData,
    >,
    at: &str,
) -> (usize, usize) {
    use serde_json::json;
    use ticketlake::sources::fixtures::native::ItopObject;
    srv.with_data(|d| {
        let tickets: Vec<usize> = (0..d.objects.len())
            .filter(|&i| matches!(d.objects[i].class.as_str(), "UserRequest" | "Incident"))
            .collect();
        let n = (tickets.len() / 100).max(1);
        let resolved: Vec<usize> = tickets
            .iter()
            .copied()
            .filter(|&i| d.objects[i].fields["status"] == "resolved")
            .take(n / 2 + 1)
            .collect();
        for &i in &resolved {
            let (class, id) = (d.objects[i].class.clone(), d.objects[i].id);
            d.objects[i]
                .fields
                .insert("status".into(), json!("assigned"));
            d.objects[i].fields.insert("last_update".into(), json!(at));
            d.add_op(
                &class,
                id,
                at,
                "lyon-user-1",
                Some(("status", "resolved", "assigned")),
            );
        }
        let newest = tickets.iter().map(|&i| d.objects[i].id).max().unwrap_or(0);
        let template = d.objects[tickets[0]].clone();
        let created = n - resolved.len().min(n) + 1;
        for k in 0..created {
            let id = newest + 1 + k as u64;
            let mut f = template.fields.clone();
            let prefix = if template.class == "Incident" {
                "I"
            } else {
                "R"
            };
            for (key, v) in [
                ("id", json!(id.to_string())),
                ("ref", json!(format!("{prefix}-{id:06}"))),
                ("status", json!("new")),
                ("start_date", json!(at)),
                ("last_update", json!(at)),
                ("assignment_date", json!("")),
                ("resolution_date", json!("")),
                ("close_date", json!("")),
                ("team_id_friendlyname", json!("")),
                ("agent_id_friendlyname", json!("")),
            ] {
                f.insert(key.into(), v);
            }
            d.objects.push(ItopObject {
                class: template.class.clone(),
                id,
                fields: f,
            });
            d.add_op(&template.class, id, at, "lyon-user-2", None);
        }
        (resolved.len(), created)
    })
}

/// The same for a GLPI: reopens solved tickets (GLPI empties `solvedate`), creates new ones.
fn glpi_moves_on(
    srv: &ticketlake::sources::fixtures::server::FixtureServer<
        ticketlake::sources::fixtures::native::GlpiData,
    >,
    at: &str,
) -> (usize, usize) {
    use serde_json::json;
    srv.with_data(|d| {
        let n = (d.tickets.len() / 100).max(1);
        let solved: Vec<u64> = d
            .tickets
            .iter()
            .filter(|(_, (row, del))| !del && row["12"] == 5)
            .map(|(id, _)| *id)
            .take(n / 2 + 1)
            .collect();
        for id in &solved {
            let row = &mut d.tickets.get_mut(id).unwrap().0;
            row["12"] = json!(2);
            row["17"] = serde_json::Value::Null;
            row["19"] = json!(at);
            d.add_log(
                *id,
                LOG_FIELD,
                SO_STATUS,
                "",
                "5",
                "2",
                "lyon-user-3 (9)",
                at,
            );
        }
        let newest = *d.tickets.keys().max().unwrap();
        let template = d.tickets.values().next().unwrap().0.clone();
        let created = n - solved.len().min(n) + 1;
        for k in 0..created {
            let id = newest + 1 + k as u64;
            let mut row = template.clone();
            row["2"] = json!(id);
            row["12"] = json!(1);
            row["15"] = json!(at);
            row["19"] = json!(at);
            for c in ["16", "17", "5", "8", "45"] {
                row[c] = serde_json::Value::Null;
            }
            d.tickets.insert(id, (row, false));
            d.add_log(id, LOG_CREATE_ITEM, 0, "", "", "", "lyon-user-4 (10)", at);
        }
        (solved.len(), created)
    })
}

#[tokio::test]
async fn an_incremental_pull_rewrites_only_what_changed_and_matches_a_full_pull() {
    let config = Config::default();
    let opts = small(7);
    let lb = loopback::start(&config, opts, &secret(7), accounts(), Faults::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), true).unwrap();
    let c = with_sources(&lb);
    pull::pull(&lake, &c, &secret(7), &PullOptions::default(), &Silent)
        .await
        .unwrap();
    let files_before = parquet_files(dir.path());

    // the world moves on, a few days after the span (Paris time, as the servers keep it)
    let at = "2025-05-05 10:30:00";
    let (re_i, new_i) = itop_moves_on(&lb.itop[0].1, at);
    let (re_g, new_g) = glpi_moves_on(&lb.glpi[0].1, at);
    assert!(re_i > 0 && new_i > 0 && re_g > 0 && new_g > 0);

    let reports = pull::pull(&lake, &c, &secret(7), &PullOptions::default(), &Silent)
        .await
        .unwrap();
    let by = |id: &str| reports.iter().find(|r| r.source == id).unwrap().counts;
    let (gi, gg) = (by("itop-group"), by("glpi-lyon"));
    assert_eq!(
        (gi.tickets_new, gi.tickets_updated),
        (new_i as u64, re_i as u64),
        "{gi:?}"
    );
    assert_eq!(
        (gg.tickets_new, gg.tickets_updated),
        (new_g as u64, re_g as u64),
        "{gg:?}"
    );
    // iTop: one status op per reopen, a creation per new ticket; GLPI likewise
    assert_eq!(gi.events_new, (re_i + new_i) as u64, "{gi:?}");
    assert_eq!(gg.events_new, (re_g + new_g) as u64, "{gg:?}");
    for r in &reports {
        if r.source != "itop-group" && r.source != "glpi-lyon" {
            assert_eq!(
                r.counts.partitions_written, 0,
                "{}: {:?}",
                r.source, r.counts
            );
        }
    }
    // only the changed partitions were rewritten: the others are the same files
    let files_after = parquet_files(dir.path());
    let rewritten: Vec<_> = files_after
        .iter()
        .filter(|(p, m)| files_before.iter().all(|(q, n)| q != p || n != m))
        .map(|(p, _)| p.clone())
        .collect();
    let written = gi.partitions_written + gg.partitions_written;
    assert_eq!(rewritten.len() as u64, written, "{rewritten:#?}");
    assert!(
        rewritten
            .iter()
            .all(|p| p.contains("itop-group") || p.contains("glpi-lyon"))
    );
    assert!(
        written < files_before.len() as u64 / 4,
        "{written} of {}",
        files_before.len()
    );

    // and the lake equals a full pull of the servers as they are now
    let full_dir = tempfile::tempdir().unwrap();
    let full = Lake::open(full_dir.path().to_str().unwrap(), true).unwrap();
    pull::pull(&full, &c, &secret(7), &PullOptions::default(), &Silent)
        .await
        .unwrap();
    assert_eq!(
        kpis(&lake, "2025-01", "2025-05").await,
        kpis(&full, "2025-01", "2025-05").await
    );
}

/// Every Parquet file of a lake directory's partitions (not the rows derived from them,
/// `_derived/`) with its modification time.
fn parquet_files(dir: &std::path::Path) -> Vec<(String, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("_derived") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let m = std::fs::metadata(&p).unwrap().modified().unwrap();
                out.push((p.display().to_string(), m));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn bad_records_go_to_the_quarantine_with_their_reason_and_nothing_else_is_lost() {
    use serde_json::json;
    let lb = servers(600, 2, 8, Faults::default()).await;
    let srv = &lb.glpi[0].1;
    let (total, bad_ids) = srv.with_data(|d| {
        let ids: Vec<u64> = d.tickets.keys().copied().take(7).collect();
        fn row<'a>(d: &'a mut ticketlake::sources::fixtures::native::GlpiData, ids: &[u64], i: usize) -> &'a mut serde_json::Value {
            &mut d.tickets.get_mut(&ids[i]).unwrap().0
        }
        row(d, &ids, 0)["12"] = json!(9); // a status GLPI does not have
        row(d, &ids, 1)["15"] = json!("31/02/2025 10:00"); // not a date
        row(d, &ids, 2)["16"] = json!("2024-01-01 00:00:00"); // closed before it was opened
        row(d, &ids, 3)["7"] = json!("Cafétéria > boissons > café"); // not in the catalogue
        d.satisfactions.push(json!({"id": 999, "tickets_id": ids[4], "date_answered": "2025-02-01 10:00:00",
            "satisfaction": 9, "satisfaction_scaled_to_5": 9}));
        // a history row with a broken date: the row goes, its ticket stays
        d.logs.entry(ids[5]).or_default().push(json!({"id": 99999, "itemtype": "Ticket", "items_id": ids[5],
            "itemtype_link": "", "linked_action": 0, "user_name": "lyon-user-7 (3)", "date_mod": "yesterday",
            "id_search_option": 12, "old_value": "2", "new_value": "4"}));
        (d.tickets.len(), ids)
    });
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), true).unwrap();
    let mut c = with_sources(&lb);
    c.sources.retain(|s| s.id == "glpi-lyon");
    let reports = pull::pull(&lake, &c, &secret(8), &PullOptions::default(), &Silent)
        .await
        .unwrap();
    let q =
        std::fs::read_to_string(dir.path().join("_quarantine/glpi-lyon/tickets.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = q
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reason_of = |id: u64| {
        lines
            .iter()
            .find(|l| l["key"].as_str() == Some(id.to_string().as_str()))
            .map(|l| l["reason"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("ticket {id} is not in the quarantine: {q}"))
    };
    assert_eq!(reason_of(bad_ids[0]), "unknown status '9'");
    assert!(
        reason_of(bad_ids[1])
            .starts_with("unparseable created_at: '31/02/2025 10:00' does not match")
    );
    assert_eq!(reason_of(bad_ids[2]), "closed_at is before created_at");
    assert!(reason_of(bad_ids[3]).starts_with("service 'Cafétéria' is not in the catalogue"));
    assert_eq!(
        reason_of(bad_ids[4]),
        "satisfaction '9' is not on a 1..5 scale"
    );
    assert_eq!(lines.len(), 5, "{q}");
    let ev =
        std::fs::read_to_string(dir.path().join("_quarantine/glpi-lyon/events.jsonl")).unwrap();
    assert!(
        ev.contains("\"key\":\"99999\"") && ev.contains("'yesterday' does not match"),
        "{ev}"
    );
    // identities are pseudonymised in the quarantine too, and the records are kept
    assert!(
        !q.contains("lyon-user-") && !ev.contains("lyon-user-") && !q.contains("agent-"),
        "{q}"
    );
    // the four the normaliser rejected keep GLPI's search row (the fifth, rejected by
    // the lake's checks, its canonical row)
    let source_rows: Vec<_> = lines
        .iter()
        .filter(|l| l["record"]["2"].is_number())
        .collect();
    assert_eq!(source_rows.len(), 4, "{q}");
    assert!(
        source_rows.iter().all(|l| l["record"]["4"]
            .as_str()
            .is_some_and(|r| r.starts_with("p_"))),
        "{q}"
    );
    // counted, and everything else landed
    assert_eq!(reports[0].counts.quarantined, 5 + ev.lines().count() as u64);
    let good = scalar(&lake, "select count(*) from tickets").await;
    assert_eq!(good, total as i64 - 5);
    assert_eq!(
        scalar(
            &lake,
            &format!(
                "select count(*) from tickets where ticket_id = '{}'",
                bad_ids[5]
            )
        )
        .await,
        1
    );

    // the source fixes a record: it leaves the quarantine on the next pull
    srv.with_data(|d| {
        let row = &mut d.tickets.get_mut(&bad_ids[0]).unwrap().0;
        row["12"] = json!(2);
        row["19"] = json!("2025-03-10 09:00:00");
    });
    pull::pull(&lake, &c, &secret(8), &PullOptions::default(), &Silent)
        .await
        .unwrap();
    let q =
        std::fs::read_to_string(dir.path().join("_quarantine/glpi-lyon/tickets.jsonl")).unwrap();
    assert_eq!(q.lines().count(), 4, "{q}");
    assert!(!q.contains(&format!("\"key\":\"{}\"", bad_ids[0])));
    assert_eq!(
        scalar(&lake, "select count(*) from tickets").await,
        total as i64 - 4
    );
}

#[tokio::test]
async fn an_itop_ticket_that_cannot_be_read_is_quarantined_with_its_record_pseudonymised() {
    use serde_json::json;
    let lb = servers(400, 2, 9, Faults::default()).await;
    let (_, srv) = lb.itop.iter().find(|(id, _)| id == "itop-group").unwrap();
    let (bad, caller) = srv.with_data(|d| {
        let t = d
            .objects
            .iter_mut()
            .find(|o| o.class == "UserRequest" && o.fields["caller_id_friendlyname"] != "")
            .unwrap();
        t.fields.insert("status".into(), json!("bogus"));
        (
            t.fields["ref"].as_str().unwrap().to_string(),
            t.fields["caller_id_friendlyname"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), true).unwrap();
    let mut c = with_sources(&lb);
    c.sources.retain(|s| s.id == "itop-group");
    let reports = pull::pull(&lake, &c, &secret(9), &PullOptions::default(), &Silent)
        .await
        .unwrap();
    let q =
        std::fs::read_to_string(dir.path().join("_quarantine/itop-group/tickets.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = q
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{q}");
    assert_eq!(lines[0]["key"], bad.as_str());
    assert_eq!(lines[0]["reason"], "unknown status 'bogus'");
    // the fields as iTop sent them, the identities as pseudonyms
    let record = &lines[0]["record"];
    assert_eq!(record["ref"], bad.as_str());
    assert_eq!(record["status"], "bogus");
    let pseudo = ticketlake::pseudonym::Pseudonymizer::new(&secret(9));
    assert_eq!(
        record["caller_id_friendlyname"],
        pseudo.pseudonym(&caller).as_str()
    );
    assert!(!q.contains(&caller), "{q}");
    // its history goes with it; the rest landed
    assert_eq!(
        reports[0].counts.quarantined,
        1 + std::fs::read_to_string(dir.path().join("_quarantine/itop-group/events.jsonl"))
            .map(|e| e.lines().count() as u64)
            .unwrap_or(0)
    );
    assert_eq!(
        scalar(&lake, "select count(*) from tickets").await,
        reports[0].tickets_read as i64 - 1
    );
}

/// A file of the shared datasets: `$TICKETLAKE_DATASETS`, else `../shared/datasets` beside
/// the project (where the datasets live), else `/work/shared/datasets`.
fn dataset(name: &str) -> std::path::PathBuf {
    let candidates = [
        std::env::var("TICKETLAKE_DATASETS")
            .ok()
            .map(std::path::PathBuf::from),
        Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets")),
        Some(std::path::PathBuf::from("/work/shared/datasets")),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "dataset {name} not found: set TICKETLAKE_DATASETS to the shared datasets folder"
            )
        })
}

/// The 4TU help-desk event log (one row per activity) as a files source.
fn helpdesk_config() -> Config {
    let path = dataset("helpdesk-4tu/helpdesk.csv");
    let text = format!(
        r#"{}
[[sources]]
id = "helpdesk-4tu"
kind = "files"
org = "LYON"
desk = "school"
timezone = "UTC"
[sources.files]
paths = ["{}"]
layout = "events"
timestamp_format = "%Y/%m/%d %H:%M:%S%.3f"
columns = {{ ticket_id = "Case ID", at = "Complete Timestamp", status = "Activity", actor = "Resource", priority = "seriousness_2", subcategory = "product" }}
constants = {{ service = "Logiciels", kind = "incident" }}
[sources.map.status]
"Assign seriousness" = "new"
"Insert ticket" = "new"
"Take in charge ticket" = "assigned"
"Require upgrade" = "assigned"
"Create SW anomaly" = "assigned"
"Resolve SW anomaly" = "assigned"
"Schedule intervention" = "assigned"
"Wait" = "pending"
"Resolve ticket" = "resolved"
"RESOLVED" = "resolved"
"VERIFIED" = "resolved"
"Closed" = "closed"
"INVALID" = "canceled"
"DUPLICATE" = "canceled"
[sources.map.priority]
"Value 1" = "4"
"Value 2" = "3"
"Value 3" = "2"
"Value 4" = "1"
"#,
        ticketlake::config::EXAMPLE_TOML,
        path.display()
    );
    Config::parse(&text, "helpdesk test config").unwrap()
}

#[tokio::test]
async fn an_event_log_export_gives_the_reference_figures_of_the_4tu_help_desk() {
    let config = helpdesk_config();
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), true).unwrap();
    let r = pull::pull(
        &lake,
        &config,
        b"test secret",
        &PullOptions::default(),
        &Silent,
    )
    .await
    .unwrap();
    assert_eq!(r[0].counts.quarantined, 0);
    // reference.md: 4580 distinct tickets
    assert_eq!(scalar(&lake, "select count(*) from tickets").await, 4580);
    // reference.md, tickets per seriousness_2: Value 1 2616, Value 2 1759, Value 3 1, Value 4 204
    assert_eq!(
        scalar(&lake, "select count(*) from tickets where priority = 4").await,
        2616
    );
    assert_eq!(
        scalar(&lake, "select count(*) from tickets where priority = 1").await,
        204
    );
    // reference.md, backlog: tickets whose latest event up to the cut-off is not 'Closed'
    for (cutoff, expected) in [
        ("2010-12-31T23:59:59Z", 147),
        ("2011-12-31T23:59:59Z", 200),
        ("2012-12-31T23:59:59Z", 49),
        ("2013-12-31T23:59:59Z", 40),
        ("2014-01-03T13:20:58Z", 23),
    ] {
        let sql = format!(
            "select count(*) from (
               select ticket_id, last_value(to_value) over (partition by ticket_id order by at, event_id
                 rows between unbounded preceding and unbounded following) as last_status,
                 row_number() over (partition by ticket_id order by at) as n
               from events where kind = 'status' and at <= timestamp '{cutoff}')
             where n = 1 and last_status <> 'closed'"
        );
        assert_eq!(scalar(&lake, &sql).await, expected, "backlog at {cutoff}");
    }
    // opened → closed for tickets whose last event is 'Closed': 4557 tickets. Closure is
    // the first row of the final run of 'Closed' rows (a status that does not change is no
    // event), so the mean is 980.1556 h where reference.md's 980.2714 takes the last row.
    let sql = "select count(*), avg(extract(epoch from closed_at - created_at) / 3600.0) from tickets where status = 'closed'";
    let ctx = ticketlake::engine::session(&lake, &Config::default())
        .await
        .unwrap();
    let b = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    use arrow::array::AsArray;
    assert_eq!(
        b[0].column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        4557
    );
    let mean = b[0]
        .column(1)
        .as_primitive::<arrow::datatypes::Float64Type>()
        .value(0);
    assert!((mean - 980.1556).abs() < 1e-3, "{mean}");
    // the resources are pseudonymised
    assert_eq!(
        scalar(
            &lake,
            "select count(*) from events where actor like 'Value%'"
        )
        .await,
        0
    );
    // a second read of the same export changes nothing
    let again = pull::pull(
        &lake,
        &config,
        b"test secret",
        &PullOptions::default(),
        &Silent,
    )
    .await
    .unwrap();
    assert_eq!(
        again[0].counts.partitions_written, 0,
        "{:?}",
        again[0].counts
    );
}

#[tokio::test]
async fn a_json_lines_export_with_one_row_per_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("tickets.jsonl");
    std::fs::write(
        &export,
        concat!(
            r#"{"id":"A1","opened":"2025-03-03T09:00:00+01:00","state":"Closed","svc":"Mail","prio":2,"done":"2025-03-04T10:00:00+01:00","closed":"2025-03-07T10:00:00+01:00","user":"alice@school.example","score":4}"#, "\n",
            r#"{"id":"A2","opened":"2025-03-05T14:30:00+01:00","state":"Open","svc":"Mail","prio":4,"user":"bob@school.example"}"#, "\n",
            r#"{"id":"A3","opened":"2025-03-06T08:00:00+01:00","state":"Limbo","svc":"Mail","prio":3,"user":"carol@school.example"}"#, "\n",
        ),
    )
    .unwrap();
    let text = format!(
        r#"{}
[[sources]]
id = "zammad-rouen"
kind = "files"
org = "ROUEN"
desk = "school"
[sources.files]
paths = ["{}"]
format = "jsonl"
layout = "tickets"
timestamp_format = "rfc3339"
columns = {{ ticket_id = "id", created_at = "opened", status = "state", service = "svc", priority = "prio", resolved_at = "done", closed_at = "closed", requester = "user", satisfaction = "score" }}
constants = {{ kind = "service_request", channel = "email" }}
[sources.map.status]
"Closed" = "closed"
"Open" = "new"
[sources.map.service]
"Mail" = "Messagerie"
"#,
        ticketlake::config::EXAMPLE_TOML,
        export.display()
    );
    let config = Config::parse(&text, "jsonl test config").unwrap();
    let lake_dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(lake_dir.path().to_str().unwrap(), true).unwrap();
    let r = pull::pull(&lake, &config, b"k", &PullOptions::default(), &Silent)
        .await
        .unwrap();
    assert_eq!((r[0].counts.tickets_new, r[0].counts.quarantined), (2, 1));
    let q = std::fs::read_to_string(
        lake_dir
            .path()
            .join("_quarantine/zammad-rouen/tickets.jsonl"),
    )
    .unwrap();
    assert!(
        q.contains("\"key\":\"A3\"") && q.contains("unknown status 'Limbo'"),
        "{q}"
    );
    assert!(
        !q.contains("carol@"),
        "pseudonymised in the quarantine too: {q}"
    );
    let k = kpis(&lake, "2025-03", "2025-03").await;
    // A1: resolved 2025-03-04 10:00 after 2025-03-03 09:00, 25 h; P2; answered 4 (satisfied)
    let rt = row(
        &k,
        "resolution_time",
        &[
            ("desk", serde_json::json!("school")),
            ("priority", serde_json::json!(2)),
        ],
    );
    assert_close(num(rt, "median_h"), 25.0, "A1 wall-clock hours");
    let sat = row(
        &k,
        "satisfaction",
        &[("month", serde_json::json!("2025-03"))],
    );
    assert_eq!(
        (
            num(sat, "closed"),
            num(sat, "answered"),
            num(sat, "satisfied_rate")
        ),
        (1.0, 1.0, 1.0)
    );
    assert_eq!(
        scalar(
            &lake,
            "select count(*) from tickets where requester like '%@%'"
        )
        .await,
        0
    );
}
