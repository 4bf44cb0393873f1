//! iTop: a page of tickets and the two history answers (`CMDBChangeOpCreate`,
//! `CMDBChangeOpSetAttributeScalar`), NUL-separated, decoded as `pull` decodes them.

#![no_main]

mod common;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ticketlake::sources::config::SourceConfig;
use ticketlake::sources::itop::{self, Itop};
use ticketlake::sources::normalize::Pulled;

/// The client, made once: building its HTTP client loads the system's root
/// certificates, which would take most of each run.
fn itop() -> &'static (&'static SourceConfig, Itop<'static>) {
    static ITOP: OnceLock<(&'static SourceConfig, Itop<'static>)> = OnceLock::new();
    ITOP.get_or_init(|| {
        let mut source = common::source(
            r#"id = "itop-fuzz"
kind = "itop"
org = "GROUP"
desk = "group"
url = "http://127.0.0.1:9/"
token_env = "UNUSED"
fields = { origin = "forwarded_from", effort_minutes = "effort_min" }
teams = { "Support groupe N2" = { level = 2 } }
"#,
        );
        source.token_env = None; // decoding needs no credentials
        let source: &'static SourceConfig = Box::leak(Box::new(source));
        (
            source,
            Itop::new(source, common::pseudo()).expect("a client"),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let [tickets, creates, changes] = common::parts::<3>(data);
    let (source, itop) = itop();
    let mut pulled = Pulled::default();
    let mut ids = Vec::new();
    let mut seen = Default::default();
    if let Ok((Some(page), _)) = itop.decode_tickets(
        "UserRequest",
        "core/get",
        &bytes::Bytes::copy_from_slice(tickets),
        &mut seen,
        &mut pulled,
    ) {
        assert!(page.ids.len() <= page.objects);
        ids = page.ids;
    }
    let refs = ids.iter().map(|(i, r)| (*i, r.as_str())).collect();
    let teams = [("7".to_string(), "Support groupe N2".to_string())]
        .into_iter()
        .collect();
    for (op_class, body) in [
        ("CMDBChangeOpCreate", creates),
        ("CMDBChangeOpSetAttributeScalar", changes),
    ] {
        let _ = itop.decode_history(op_class, "core/get", body, &refs, &teams, &mut pulled);
    }
    common::check(
        source,
        itop::DEFAULTS,
        Some(itop::HISTORY_DATE_FORMAT),
        pulled,
    );
});
