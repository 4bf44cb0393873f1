//! Another organisation's configuration: calendars, SLA targets and orgs come from the
//! file, not from the built-in INSA default.

use chrono::TimeZone;
use ticketlake::config::Config;
use ticketlake::engine::udf::Calendars;

fn fixture() -> Config {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/other-university.toml");
    Config::load(&path).unwrap()
}

#[test]
fn another_organisation_uses_its_own_calendars() {
    let config = fixture();
    assert_eq!(config.sla_for(4).unwrap().ttr_h, 72.0);
    let cals = Calendars::from_config(&config).unwrap();
    let paris = |y, m, d, h, min| {
        chrono_tz::Europe::Paris
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .unwrap()
            .timestamp_micros()
    };
    // Saturday 2026-11-21 07:00 → 12:00 in Paris: open from 07:30, so 4.5 h
    let nord = cals.of("CAMPUS-NORD");
    assert_eq!(
        nord.business_seconds(paris(2026, 11, 21, 7, 0), paris(2026, 11, 21, 12, 0)),
        4.5 * 3600.0
    );
    // the closure week between Christmas and New Year counts nothing
    assert_eq!(
        nord.business_seconds(paris(2026, 12, 28, 0, 0), paris(2027, 1, 1, 0, 0)),
        0.0
    );
    // Cayenne is UTC−3 all year: Monday 2026-11-23 08:00–17:00 there is 11:00–20:00 UTC
    let guyane = cals.of("CAMPUS-GUYANE");
    let utc = |h| {
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 23, h, 0, 0)
            .unwrap()
            .timestamp_micros()
    };
    assert_eq!(guyane.business_seconds(utc(0), utc(23)), 9.0 * 3600.0);
    assert_eq!(guyane.business_seconds(utc(12), utc(13)), 3600.0);
    // 11 November is a holiday in France, not in the "none" calendar
    let nov11 = |h| {
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 11, h, 0, 0)
            .unwrap()
            .timestamp_micros()
    };
    assert_eq!(nord.business_seconds(nov11(0), nov11(23)), 0.0);
    assert_eq!(guyane.business_seconds(nov11(0), nov11(23)), 9.0 * 3600.0);
}

#[test]
fn the_commented_source_examples_of_the_example_config_are_valid() {
    let text = ticketlake::config::EXAMPLE_TOML;
    let start = text.find("# [[sources]]").unwrap();
    // the commented settings (`# key = …`, `# [table]`), not the prose around them
    let setting = regex::Regex::new(r#"^(\[|"[^"]*"\s*=|[\w.-]+\s*=)"#).unwrap();
    let uncommented: String = text[start..]
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if setting.is_match(rest) => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = Config::parse(&format!("{text}\n{uncommented}\n"), "uncommented example").unwrap();
    let ids: Vec<&str> = config.sources.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["itop-group", "glpi-lyon", "rouen-export"]);
    assert_eq!(config.sources[0].fields["origin"], "forwarded_from");
    assert_eq!(config.sources[1].entity, Some(0));
    let files = config.sources[2].files.as_ref().unwrap();
    assert_eq!(files.columns["status"], "incident_state");
    assert_eq!(config.sources[2].map["status"]["On Hold"], "pending");
    let mail = config.mail.as_ref().unwrap();
    assert_eq!(mail.port(), 587);
    assert_eq!(mail.to, ["comite-gouvernance@insa.example"]);
    assert_eq!(
        mail.password_env.as_deref(),
        Some("TICKETLAKE_SMTP_PASSWORD")
    );
    // a source without credentials is refused, naming what to give
    let bad = format!(
        "{text}\n[[sources]]\nid = \"x\"\nkind = \"glpi\"\norg = \"LYON\"\ndesk = \"school\"\nurl = \"http://g/apirest.php\"\n"
    );
    let err = format!("{:#}", Config::parse(&bad, "t.toml").unwrap_err());
    assert!(
        err.contains("source 'x'") && err.contains("token_env"),
        "{err}"
    );
}
