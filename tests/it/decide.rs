//! `decide`: the measured inputs on the hand-built lake (worked out by hand), the JSON
//! contract, and the decision moving between the low and high group-volume fixtures.

use std::process::Command;

use serde_json::Value;
use ticketlake::config::Config;
use ticketlake::engine::localtime::{LocalDays, Month};
use ticketlake::kpi::{self, Period};

use super::common::*;

fn decide(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(bin())
        .arg("decide")
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_measured_inputs_of_the_hand_built_lake() {
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &super::kpi_hand::sources()).await;
    let config = Config::default();
    let ctx = ticketlake::engine::session(&lake, &config).await.unwrap();
    let days = LocalDays::new(chrono_tz::Europe::Paris);
    let april = Month::parse("2026-04").unwrap();
    let rows = kpi::decision_inputs(&ctx, &days, Period::new(april, april).unwrap())
        .await
        .unwrap();
    // volumes, created in April (T6 forwarded as T5 counts once, as T5):
    // LYON group T5 T7, school T1 T2 T9 T11 T12 T15; RENNES group T4; STRASBOURG school
    // T3; GROUP group T10
    let v = |org: &str| {
        rows["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["org"] == org)
            .unwrap_or_else(|| panic!("no {org}"))
            .clone()
    };
    assert_eq!(num(&v("LYON"), "group_tickets"), 2.0);
    assert_eq!(num(&v("LYON"), "school_tickets"), 6.0);
    assert_eq!(num(&v("RENNES"), "group_tickets"), 1.0);
    assert_eq!(num(&v("STRASBOURG"), "school_tickets"), 1.0);
    assert_eq!(num(&v("GROUP"), "group_tickets"), 1.0);

    let m = ticketlake::decision::inputs::measured(
        &rows,
        1,
        &config.orgs.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
        &config.decision.fallback,
    );
    // r: kept T7 ÷ (kept T7 + forwarded T5)
    assert_close(m.r.value, 0.5, "r");
    assert_eq!(m.r.source, "data");
    // effort of tickets resolved in April: group scope T4 120, T5 45, T6 10, T7 50;
    // school scope T1 30, T2 90, T11 20 (T3, T12, T15 record none)
    assert_close(m.aht_g.value, 56.25, "aht_g");
    assert_close(m.aht_s.value, 140.0 / 3.0, "aht_s");
    // T6 created Tue 14 Apr 09:00, forwarded as T5 at 10:00: one business hour
    assert_close(m.hop_bh.value, 1.0, "hop_bh");
    // 11 April tickets have a history (all but T15), one of them (T11) was transferred
    assert_close(m.m.value, 1.0 / 11.0, "m");
    // every school of the config, the group's own staff apart
    assert_eq!(m.per_school.len(), 7);
    assert!(m.per_school.iter().all(|s| s.org != "GROUP"));
    assert_eq!(m.group_org.as_ref().unwrap().g, 1.0);
    let model = m.model();
    assert_eq!((model.g(), model.s()), (3.0, 7.0));

    // April 2026 has 22 weekdays, Easter Monday off: 21 × 10 business hours
    let (code, d, err) = decide(&[
        "--lake",
        dir.path().to_str().unwrap(),
        "--from",
        "2026-04",
        "--to",
        "2026-04",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_close(
        d["assumptions"]["business_hours_per_month"]
            .as_f64()
            .unwrap(),
        210.0,
        "business hours",
    );
    // n_plus_1's group desk is back office: W((1 − r)·G·aht_g) = 0.5 × 3 × 56.25 minutes
    let fte_h = 1607.0 * 0.8 / 12.0;
    let n1 = &d["options"][1];
    assert_eq!(n1["option"], "n_plus_1");
    assert_close(
        n1["fte_group"].as_f64().unwrap(),
        0.5 * 3.0 * 56.25 / 60.0 / (fte_h * 0.8),
        "n_plus_1 group FTE",
    );
    assert_close(n1["added_delay_bh"].as_f64().unwrap(), 1.0, "hop");
    // direct's group desk is user-facing: 3 tickets a month still need one person present
    let direct = &d["options"][0];
    assert_close(
        direct["fte_group"].as_f64().unwrap(),
        210.0 / fte_h,
        "direct group FTE: the queue floor",
    );
    // setup spread over 36 months
    assert_close(
        d["options"][2]["fte_setup"].as_f64().unwrap(),
        1.0,
        "central setup",
    );
}

#[test]
fn the_json_contract_and_the_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let l = lake.to_str().unwrap();
    let out = Command::new(bin())
        .args([
            "fixtures",
            "--lake",
            l,
            "--tickets",
            "4000",
            "--start",
            "2025-09",
            "--months",
            "12",
            "-q",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (code, d, err) = decide(&[
        "--lake",
        l,
        "--set",
        "occupancy=0.85",
        "--set",
        "setup_fte_months.central=24",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(d["window"]["from"], "2025-09");
    assert_eq!(d["window"]["to"], "2026-08");
    assert_eq!(d["window"]["months"], 12);
    for input in ["r", "aht_g", "aht_s", "hop_bh", "m"] {
        assert!(d["measured"][input]["value"].is_number(), "{input}");
        assert_eq!(d["measured"][input]["source"], "data", "{input}");
    }
    assert_eq!(d["measured"]["per_school"].as_array().unwrap().len(), 7);
    assert_eq!(d["measured"]["group_org"]["org"], "GROUP");
    assert_eq!(d["assumptions"]["occupancy"], 0.85);
    assert_eq!(d["assumptions"]["setup_fte_months"]["central"], 24.0);
    let options: Vec<&str> = d["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["option"].as_str().unwrap())
        .collect();
    assert_eq!(options, ["direct", "n_plus_1", "central"]);
    for o in d["options"].as_array().unwrap() {
        let total = o["fte_group"].as_f64().unwrap()
            + o["fte_schools"].as_f64().unwrap()
            + o["fte_setup"].as_f64().unwrap();
        assert_close(
            o["fte_total"].as_f64().unwrap(),
            total,
            "total = group + schools + setup",
        );
    }
    assert_close(
        d["options"][2]["fte_setup"].as_f64().unwrap(),
        24.0 / 36.0,
        "--set",
    );
    assert_eq!(d["sensitivity"].as_array().unwrap().len(), 7);

    // a bad override names itself, and nothing is printed on stdout
    let (code, d, err) = decide(&["--lake", l, "--set", "occupancy=lots"]);
    assert_eq!((code, d), (2, Value::Null));
    assert!(err.contains("'lots' is not a number"), "{err}");
    let (code, _, err) = decide(&["--lake", l, "--set", "speed=2"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("'speed' is not a setting of [decision]"),
        "{err}"
    );
    let (code, _, err) = decide(&["--lake", l, "--set", "occupancy=1.5"]);
    assert_eq!(code, 2);
    assert!(err.contains("occupancy = 1.5 is not a share"), "{err}");
}

#[test]
fn the_decision_moves_from_n_plus_1_to_direct_as_group_volume_grows() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Vec::new();
    let mut crossings = Vec::new();
    for volume in ["low", "high"] {
        let lake = dir.path().join(volume);
        let l = lake.to_str().unwrap();
        let out = Command::new(bin())
            .args([
                "fixtures",
                "--lake",
                l,
                "--tickets",
                "50000",
                "--start",
                "2025-09",
                "--months",
                "12",
            ])
            .args(["--group-volume", volume, "-q"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let (code, d, err) = decide(&["--lake", l]);
        assert_eq!(code, 0, "{err}");
        let cheapest = cheapest(&d)["option"].as_str().unwrap().to_string();
        let group: f64 = d["measured"]["per_school"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["G"].as_f64().unwrap())
            .sum();
        if volume == "low" {
            assert_eq!(cheapest, "n_plus_1", "{d:#}");
        } else {
            assert!(cheapest == "direct" || cheapest == "central", "{d:#}");
        }
        g.push(group);
        for c in d["crossovers"].as_array().unwrap() {
            crossings.push(c["group_volume"].as_f64().unwrap());
        }
    }
    assert!(
        g[1] > 8.0 * g[0],
        "high has far more group-service tickets: {g:?}"
    );
    assert!(!crossings.is_empty());
    for c in crossings {
        assert!(c > g[0] && c < g[1], "crossover at {c} outside {g:?}");
    }
}
