//! GLPI: a `search/Ticket` page, a page of the trash, the first ticket's `Log` rows and a
//! `TicketSatisfaction` list, NUL-separated, decoded as `pull` decodes them.

#![no_main]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use ticketlake::sources::config::SourceConfig;
use ticketlake::sources::glpi::{self, Glpi};
use ticketlake::sources::itop::str_of;
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
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    for (body, deleted) in [(search, false), (trash, true)] {
        if let Ok(v) = serde_json::from_slice::<Value>(body) {
            glpi::take_rows(&v, deleted, &mut seen, &mut rows);
        }
    }
    let ids: HashSet<String> = rows.iter().filter_map(|(r, _)| str_of(&r["2"])).collect();
    let mut satisfaction = HashMap::new();
    if let Ok(v) = serde_json::from_slice::<Value>(surveys) {
        glpi::take_satisfaction(&v, &ids, &mut satisfaction);
    }
    let mut pulled = Pulled::default();
    for (row, deleted) in &rows {
        pulled.tickets.push(g.ticket(row, *deleted, &satisfaction));
    }
    if let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(logs)
        && let Some(first) = pulled.tickets.first().map(|t| t.ticket_id.clone())
    {
        g.events(&first, items, &mut pulled);
    }
    common::check(source, glpi::DEFAULTS, None, pulled);
});
