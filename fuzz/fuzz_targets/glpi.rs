//! GLPI: a `search/Ticket` page, a page of the trash, the first ticket's `Log` rows and a
//! `TicketSatisfaction` list, NUL-separated, decoded as `pull` decodes them.

#![no_main]

mod common;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ticketlake::sources::config::SourceConfig;
use ticketlake::sources::glpi::{self, Glpi};
use ticketlake::sources::normalize::Pulled;

/// The client, made once: building its HTTP client loads the system's root
/// certificates, which would take most of each run.
fn glpi() -> &'static (&'static SourceConfig, Glpi<'static>) {
    static GLPI: OnceLock<(&'static SourceConfig, Glpi<'static>)> = OnceLock::new();
    GLPI.get_or_init(|| {
        let mut source = common::source(
            r#"id = "glpi-fuzz"
kind = "glpi"
org = "LYON"
desk = "school"
url = "http://127.0.0.1:9/apirest.php"
token_env = "UNUSED"
teams = { "Support N2" = { level = 2 }, "Support groupe" = { other_desk = true } }
"#,
        );
        source.token_env = None; // decoding needs no credentials
        let source: &'static SourceConfig = Box::leak(Box::new(source));
        (
            source,
            Glpi::new(source, common::pseudo()).expect("a client"),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let [search, trash, logs, surveys] = common::parts::<4>(data);
    let (source, g) = glpi();
    let mut pulled = Pulled::default();
    let mut seen = Default::default();
    for (body, deleted) in [(search, false), (trash, true)] {
        let body = bytes::Bytes::copy_from_slice(body);
        let _ = g.take_rows(&body, deleted, &mut seen, &mut pulled);
    }
    let ids = pulled
        .tickets
        .iter()
        .map(|t| t.ticket_id.as_str())
        .collect();
    let mut satisfaction = Default::default();
    let _ = g.take_surveys(surveys, &ids, &mut satisfaction);
    drop(ids);
    for t in &mut pulled.tickets {
        t.satisfaction = satisfaction.remove(t.ticket_id.as_str());
    }
    if let Some(first) = pulled.tickets.first().map(|t| t.ticket_id.clone()) {
        let _ = g.events(&first, &[logs], &mut pulled);
    }
    common::check(source, glpi::DEFAULTS, None, pulled);
});
