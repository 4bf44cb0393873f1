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

use super::common::*;

pub const USER: &str = "rest-reader";
pub const PASSWORD: &str = "s3cr3t-Pa55-w0rd-xyzzy";

pub fn accounts() -> Accounts {
    Accounts {
        user: USER.into(),
        password: PASSWORD.into(),
        token: Some("tok-0123456789abcdef-secret".into()),
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
    let mut config = Config::default();
    config.sources = lb.sources.clone();
    config
}

fn secret(seed: u64) -> Vec<u8> {
    fixtures::secret(&Config::default(), seed)
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
    let reports = pull::pull(
        &pulled,
        &with_sources(&lb),
        &secret(3),
        &PullOptions::default(),
        &Silent,
    )
    .await
    .unwrap();
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
    let again = pull::pull(
        &pulled,
        &with_sources(&lb),
        &secret(3),
        &PullOptions::default(),
        &Silent,
    )
    .await
    .unwrap();
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
        err.contains("glpi-lyon") && err.contains("App-Token") == false,
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
    let opts = FixtureOptions {
        tickets: 400,
        months: 2,
        ..small(6)
    };
    let lb = loopback::start(&config, opts, &secret(6), accounts(), Faults::default())
        .await
        .unwrap();
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
    let reports = pull::pull(
        &lake,
        &with_sources(&lb),
        &secret(6),
        &PullOptions::default(),
        &Silent,
    )
    .await
    .unwrap();
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
