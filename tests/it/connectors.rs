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
    write_fixtures(&direct, &config, opts, |_, _| {}).await.unwrap();

    let lb = loopback::start(&config, opts, &secret(3), accounts(), Faults::default())
        .await
        .unwrap();
    assert_eq!((lb.itop.len(), lb.glpi.len()), (4, 4));
    let pulled_dir = tempfile::tempdir().unwrap();
    let pulled = Lake::open(pulled_dir.path().to_str().unwrap(), true).unwrap();
    let reports = pull::pull(&pulled, &with_sources(&lb), &secret(3), &PullOptions::default(), &Silent)
        .await
        .unwrap();
    assert_eq!(reports.len(), 8);
    let read: u64 = reports.iter().map(|r| r.tickets_read).sum();
    assert_eq!(read, 2500, "every ticket read once");
    assert_eq!(reports.iter().map(|r| r.counts.quarantined).sum::<u64>(), 0);

    let a = kpis(&direct, "2025-01", "2025-04").await;
    let b = kpis(&pulled, "2025-01", "2025-04").await;
    for (name, rows) in a.as_object().unwrap() {
        assert_eq!(rows, &b[name], "KPI {name} differs between the direct lake and the pulled one");
    }

    // the same pull again: nothing new, nothing rewritten
    let again = pull::pull(&pulled, &with_sources(&lb), &secret(3), &PullOptions::default(), &Silent)
        .await
        .unwrap();
    for r in &again {
        assert_eq!(
            (r.counts.tickets_new, r.counts.tickets_updated, r.counts.events_new, r.counts.partitions_written),
            (0, 0, 0, 0),
            "{}: {:?}",
            r.source,
            r.counts
        );
    }
    assert_eq!(kpis(&pulled, "2025-01", "2025-04").await, b);
}
