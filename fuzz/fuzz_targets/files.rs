//! File exports: the first byte chooses CSV or JSON lines and the `events` or `tickets`
//! layout; the rest is the file, read by the files connector as `pull` reads it.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use ticketlake::sources::files;

/// The source for one format and layout, reading `path`.
fn source(format: &str, layout: &str, path: &str) -> ticketlake::sources::config::SourceConfig {
    common::source(&format!(
        r#"id = "files-fuzz"
kind = "files"
org = "ROUEN"
desk = "school"
timezone = "Europe/Paris"
[files]
paths = ["{path}"]
format = "{format}"
layout = "{layout}"
timestamp_format = "%Y-%m-%d %H:%M:%S"
columns = {{ ticket_id = "number", at = "updated", created_at = "opened", status = "state", service = "service", team = "team", priority = "priority", requester = "caller", org = "org", resolved_at = "resolved", satisfaction = "score" }}
constants = {{ kind = "incident" }}
[map.status]
"New" = "new"
"In Progress" = "assigned"
"On Hold" = "pending"
"Resolved" = "resolved"
"Closed" = "closed"
"#
    ))
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, file)) = data.split_first() else {
        return;
    };
    let format = if choice & 1 == 0 { "csv" } else { "jsonl" };
    let layout = if choice & 2 == 0 { "events" } else { "tickets" };
    let dir = std::env::temp_dir();
    let path = dir.join(format!("ticketlake-fuzz-{}.{format}", std::process::id()));
    std::fs::write(&path, file).expect("a temporary file");
    let source = source(format, layout, path.to_str().expect("a UTF-8 path"));
    // an unreadable file is an error naming it, never a crash
    if let Ok(pulled) = files::read(&source, common::pseudo(), None, &|_, _| {}) {
        common::check(&source, files::DEFAULTS, None, pulled);
    }
});
