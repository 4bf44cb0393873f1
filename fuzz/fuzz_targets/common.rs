//! What the targets share: the configuration, the pseudonymiser, and the check that runs
//! on everything a connector decoded — normalisation, then the lake's validation, with
//! the accounting invariant that no ticket is dropped silently.

use std::sync::OnceLock;

use ticketlake::config::Config;
use ticketlake::lake::validate;
use ticketlake::model::Table;
use ticketlake::pseudonym::Pseudonymizer;
use ticketlake::sources::config::SourceConfig;
use ticketlake::sources::normalize::{Defaults, Normalizer, Pulled};

/// The built-in configuration (the INSA group's catalogue and calendars).
pub fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(Config::default)
}

pub fn pseudo() -> &'static Pseudonymizer {
    static PSEUDO: OnceLock<Pseudonymizer> = OnceLock::new();
    PSEUDO.get_or_init(|| Pseudonymizer::new(b"fuzz"))
}

/// A source from its TOML, checked as `ticketlake.toml` would be.
pub fn source(text: &str) -> SourceConfig {
    let source: SourceConfig = toml::from_str(text).expect("a valid source");
    source.validate().expect("a valid source");
    source
}

/// Normalises `pulled` and validates the batches as the lake writer does. Every ticket
/// decoded ends up either as a row or in the quarantine, and validation accounts for
/// every row.
pub fn check(
    source: &SourceConfig,
    defaults: Defaults,
    history_format: Option<&str>,
    pulled: Pulled,
) {
    let mut normalizer =
        Normalizer::new(source, config(), defaults, pseudo()).expect("a normaliser");
    if let Some(f) = history_format {
        normalizer = normalizer.with_history_format(f);
    }
    let decoded = pulled.tickets.len();
    let rejected_before = count(&pulled.rejected, Table::Tickets);
    let out = normalizer.normalize(pulled, true);
    let rejected = count(&out.rejected, Table::Tickets) - rejected_before;
    assert_eq!(
        out.tickets.num_rows() + rejected,
        decoded,
        "a decoded ticket is neither a row nor in the quarantine"
    );
    for (table, batch) in [(Table::Tickets, &out.tickets), (Table::Events, &out.events)] {
        let (good, bad) = validate::split(table, batch).expect("validation runs");
        assert_eq!(good.num_rows() + bad.len(), batch.num_rows());
    }
    for (_, r) in &out.rejected {
        assert!(
            !r.reason.is_empty(),
            "a quarantined record without a reason"
        );
    }
}

fn count(rejected: &[(Table, validate::Rejected)], table: Table) -> usize {
    rejected.iter().filter(|(t, _)| *t == table).count()
}

/// `data` cut at NUL bytes into `N` parts (missing ones empty).
#[allow(dead_code)] // each target compiles this module; `files` has one part
pub fn parts<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&data[..0]; N];
    for (slot, part) in out.iter_mut().zip(data.splitn(N, |b| *b == 0)) {
        *slot = part;
    }
    out
}
