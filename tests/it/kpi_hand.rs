//! Every KPI on a hand-built lake of 15 tickets, with expected values worked out by hand
//! (the arithmetic is in the comments). Calendar facts used: 2026 Easter is 5 April, so
//! Good Friday is 3 April (a holiday in Alsace-Moselle only) and Easter Monday 6 April (a
//! holiday everywhere); opening hours are Mon–Fri 08:00–18:00 Europe/Paris; summer time
//! ends on Sunday 25 October 2026.

use serde_json::json;
use ticketlake::engine::localtime::Month;
use ticketlake::kpi::{self, Period};
use ticketlake::sources::batch::TicketFields;

use super::common::*;

/// The hand-built lake: three sources (a school desk, the group desk, a school desk that
/// exports no history).
pub(crate) fn sources() -> Vec<SourceData> {
    let mut school: Vec<TicketFields<'static>> = Vec::new();
    let mut school_ev = Vec::new();
    let mut group: Vec<TicketFields<'static>> = Vec::new();
    let mut group_ev = Vec::new();

    // T1: Wed 1 Apr 09:00 → owned 09:30 → resolved 11:00, closed Sat 4 Apr; survey 5.
    // TTR 2 h wall = 2 h business; TTO 0.5 h.
    school.push(TicketFields {
        status: "closed",
        assigned_at: Some(paris("2026-04-01 09:30")),
        resolved_at: Some(paris("2026-04-01 11:00")),
        closed_at: Some(paris("2026-04-04 11:00")),
        satisfaction: Some(5),
        effort_minutes: Some(30.0),
        ..ticket("1", "2026-04-01 09:00")
    });
    history(
        &mut school_ev,
        "1",
        &[
            ("2026-04-01 09:00", None, "new"),
            ("2026-04-01 09:30", Some("new"), "assigned"),
            ("2026-04-01 11:00", Some("assigned"), "resolved"),
            ("2026-04-04 11:00", Some("resolved"), "closed"),
        ],
    );

    // T2 (P2): Thu 2 Apr 16:00 → owned 16:30 → pending Fri 3 Apr 10:00 … Tue 7 Apr 10:00
    // (over the weekend and Easter Monday) → resolved Tue 12:00; survey 3.
    // Wall 4 d 20 h = 116 h. Business: Thu 2 + Fri 10 + Mon 0 (holiday) + Tue 4 = 16 h;
    // pending business: Fri 8 + Tue 2 = 10 h; TTR = 6 h ≤ 8 h target.
    school.push(TicketFields {
        category: Some("boîte"),
        subcategory: Some("envoi"),
        priority: 2,
        impact: Some(2),
        urgency: Some(2),
        level: 2,
        status: "closed",
        assigned_at: Some(paris("2026-04-02 16:30")),
        resolved_at: Some(paris("2026-04-07 12:00")),
        closed_at: Some(paris("2026-04-10 12:00")),
        satisfaction: Some(3),
        effort_minutes: Some(90.0),
        ..ticket("2", "2026-04-02 16:00")
    });
    history(
        &mut school_ev,
        "2",
        &[
            ("2026-04-02 16:00", None, "new"),
            ("2026-04-02 16:30", Some("new"), "assigned"),
            ("2026-04-03 10:00", Some("assigned"), "pending"),
            ("2026-04-07 10:00", Some("pending"), "assigned"),
            ("2026-04-07 12:00", Some("assigned"), "resolved"),
            ("2026-04-10 12:00", Some("resolved"), "closed"),
        ],
    );

    // T3 (STRASBOURG): Thu 2 Apr 17:00 → owned 17:10 → resolved Tue 7 Apr 09:00.
    // Wall 4 d 16 h = 112 h; business in Alsace-Moselle: Thu 1 + Good Friday 0 + Easter
    // Monday 0 + Tue 1 = 2 h. TTO 10 min.
    school.push(TicketFields {
        org: "STRASBOURG",
        service: "Poste de travail",
        category: Some("matériel"),
        subcategory: Some("panne"),
        status: "resolved",
        assigned_at: Some(paris("2026-04-02 17:10")),
        resolved_at: Some(paris("2026-04-07 09:00")),
        ..ticket("3", "2026-04-02 17:00")
    });
    history(
        &mut school_ev,
        "3",
        &[
            ("2026-04-02 17:00", None, "new"),
            ("2026-04-02 17:10", Some("new"), "assigned"),
            ("2026-04-07 09:00", Some("assigned"), "resolved"),
        ],
    );

    // T6 (Moodle at the school desk, forwarded to the group desk as T5): Tue 14 Apr
    // 09:00 → owned 09:20 → resolved 10:00; closed Fri 17 Apr; survey 4. P4, 1 h.
    school.push(TicketFields {
        service: "Moodle",
        service_scope: "group",
        kind: "service_request",
        category: Some("cours"),
        subcategory: Some("inscription"),
        priority: 4,
        status: "closed",
        assigned_at: Some(paris("2026-04-14 09:20")),
        resolved_at: Some(paris("2026-04-14 10:00")),
        closed_at: Some(paris("2026-04-17 10:00")),
        satisfaction: Some(4),
        effort_minutes: Some(10.0),
        ..ticket("6", "2026-04-14 09:00")
    });
    history(
        &mut school_ev,
        "6",
        &[
            ("2026-04-14 09:00", None, "new"),
            ("2026-04-14 09:20", Some("new"), "assigned"),
            ("2026-04-14 10:00", Some("assigned"), "resolved"),
            ("2026-04-17 10:00", Some("resolved"), "closed"),
        ],
    );

    // T7 (Moodle kept at the school desk), reopened: Mon 20 Apr 09:00 → owned 09:10 →
    // resolved 12:00 → reopened Wed 22 Apr 09:00 → resolved 15:00.
    // Wall 54 h; business Mon 9 + Tue 10 + Wed 7 = 26 h > 24 h target.
    school.push(TicketFields {
        service: "Moodle",
        service_scope: "group",
        kind: "assistance",
        category: Some("évaluation"),
        subcategory: Some("quiz"),
        status: "resolved",
        assigned_at: Some(paris("2026-04-20 09:10")),
        resolved_at: Some(paris("2026-04-22 15:00")),
        effort_minutes: Some(50.0),
        ..ticket("7", "2026-04-20 09:00")
    });
    history(
        &mut school_ev,
        "7",
        &[
            ("2026-04-20 09:00", None, "new"),
            ("2026-04-20 09:10", Some("new"), "assigned"),
            ("2026-04-20 12:00", Some("assigned"), "resolved"),
            ("2026-04-22 09:00", Some("resolved"), "assigned"),
            ("2026-04-22 15:00", Some("assigned"), "resolved"),
        ],
    );

    // T8: created Mon 2 Mar, pending since 3 Mar and still pending: in every day's backlog;
    // age on 1 Apr = 30 days (8–30), from 2 Apr 31+ days (31–90), 59 days on 30 Apr.
    school.push(TicketFields {
        service: "Wifi et réseau",
        category: Some("wifi"),
        subcategory: Some("eduroam"),
        status: "pending",
        assigned_at: Some(paris("2026-03-02 10:30")),
        ..ticket("8", "2026-03-02 10:00")
    });
    history(
        &mut school_ev,
        "8",
        &[
            ("2026-03-02 10:00", None, "new"),
            ("2026-03-02 10:30", Some("new"), "assigned"),
            ("2026-03-03 09:00", Some("assigned"), "pending"),
        ],
    );

    // T9: Wed 29 Apr 14:00, still new (never assigned); same org/service as T13 with no
    // category: recurring (T13 was 28 d 23 h earlier).
    school.push(TicketFields {
        service: "Logiciels",
        category: None,
        subcategory: None,
        status: "new",
        team: None,
        agent: None,
        ..ticket("9", "2026-04-29 14:00")
    });
    history(&mut school_ev, "9", &[("2026-04-29 14:00", None, "new")]);

    // T12: Fri 24 Apr 10:00 → 10:05 → resolved 10:35 (35 min); P4; recurring (T1, 23 d before).
    school.push(TicketFields {
        priority: 4,
        impact: Some(4),
        urgency: Some(4),
        status: "resolved",
        assigned_at: Some(paris("2026-04-24 10:05")),
        resolved_at: Some(paris("2026-04-24 10:35")),
        ..ticket("12", "2026-04-24 10:00")
    });
    history(
        &mut school_ev,
        "12",
        &[
            ("2026-04-24 10:00", None, "new"),
            ("2026-04-24 10:05", Some("new"), "assigned"),
            ("2026-04-24 10:35", Some("assigned"), "resolved"),
        ],
    );

    // T13: Tue 31 Mar 15:00 → 17:00, closed Fri 3 Apr (closed in April); survey 2.
    school.push(TicketFields {
        service: "Logiciels",
        category: None,
        subcategory: None,
        status: "closed",
        assigned_at: Some(paris("2026-03-31 15:10")),
        resolved_at: Some(paris("2026-03-31 17:00")),
        closed_at: Some(paris("2026-04-03 17:00")),
        satisfaction: Some(2),
        ..ticket("13", "2026-03-31 15:00")
    });
    history(
        &mut school_ev,
        "13",
        &[
            ("2026-03-31 15:00", None, "new"),
            ("2026-03-31 15:10", Some("new"), "assigned"),
            ("2026-03-31 17:00", Some("assigned"), "resolved"),
            ("2026-04-03 17:00", Some("resolved"), "closed"),
        ],
    );

    // T14: over the end of summer time: Fri 23 Oct 17:00 → Mon 26 Oct 09:00.
    // Wall 2 d 16 h + 1 h = 65 h; business Fri 1 + Mon 1 = 2 h.
    school.push(TicketFields {
        status: "resolved",
        category: Some("liste"),
        subcategory: Some("abonnement"),
        assigned_at: Some(paris("2026-10-23 17:30")),
        resolved_at: Some(paris("2026-10-26 09:00")),
        ..ticket("14", "2026-10-23 17:00")
    });
    history(
        &mut school_ev,
        "14",
        &[
            ("2026-10-23 17:00", None, "new"),
            ("2026-10-23 17:30", Some("new"), "assigned"),
            ("2026-10-26 09:00", Some("assigned"), "resolved"),
        ],
    );

    // Group desk.
    // T4 (RENNES, Moodle, P1, level 3): Mon 13 Apr 10:00 → owned 10:45 (45 min > 30) →
    // resolved 16:00 (6 h > 4 h); closed Thu 16 Apr.
    group.push(TicketFields {
        org: "RENNES",
        desk: "group",
        service: "Moodle",
        service_scope: "group",
        category: Some("cours"),
        subcategory: Some("accès au cours"),
        priority: 1,
        impact: Some(1),
        urgency: Some(1),
        channel: "phone",
        level: 3,
        team: Some("group-n3"),
        status: "closed",
        assigned_at: Some(paris("2026-04-13 10:45")),
        resolved_at: Some(paris("2026-04-13 16:00")),
        closed_at: Some(paris("2026-04-16 16:00")),
        effort_minutes: Some(120.0),
        ..ticket("G-4", "2026-04-13 10:00")
    });
    history(
        &mut group_ev,
        "G-4",
        &[
            ("2026-04-13 10:00", None, "new"),
            ("2026-04-13 10:45", Some("new"), "assigned"),
            ("2026-04-13 16:00", Some("assigned"), "resolved"),
            ("2026-04-16 16:00", Some("resolved"), "closed"),
        ],
    );

    // T5 (forwarded from T6): Tue 14 Apr 10:00 → owned 11:00 → resolved Wed 15 Apr 10:00.
    // Wall 24 h; business Tue 8 + Wed 2 = 10 h ≤ 40 h.
    group.push(TicketFields {
        desk: "group",
        service: "Moodle",
        service_scope: "group",
        kind: "service_request",
        category: Some("cours"),
        subcategory: Some("inscription"),
        priority: 4,
        channel: "other",
        origin: Some("s-school:6"),
        status: "resolved",
        assigned_at: Some(paris("2026-04-14 11:00")),
        resolved_at: Some(paris("2026-04-15 10:00")),
        effort_minutes: Some(45.0),
        ..ticket("G-5", "2026-04-14 10:00")
    });
    history(
        &mut group_ev,
        "G-5",
        &[
            ("2026-04-14 10:00", None, "new"),
            ("2026-04-14 11:00", Some("new"), "assigned"),
            ("2026-04-15 10:00", Some("assigned"), "resolved"),
        ],
    );

    // T10 (GROUP staff, canceled an hour after creation).
    group.push(TicketFields {
        org: "GROUP",
        desk: "group",
        service: "Portail groupe",
        service_scope: "group",
        kind: "service_request",
        category: Some("accès"),
        subcategory: Some("droits"),
        status: "canceled",
        team: None,
        agent: None,
        ..ticket("G-10", "2026-04-07 09:00")
    });
    history(
        &mut group_ev,
        "G-10",
        &[
            ("2026-04-07 09:00", None, "new"),
            ("2026-04-07 10:00", Some("new"), "canceled"),
        ],
    );

    // T11 (misrouted to the group desk, transferred to the school): Thu 23 Apr 09:00 →
    // owned 09:30 → transfer 10:00 → resolved 14:00 (5 h); closed Sun 26 Apr.
    group.push(TicketFields {
        desk: "group",
        service: "Impression",
        category: Some("imprimante"),
        subcategory: Some("toner"),
        status: "closed",
        assigned_at: Some(paris("2026-04-23 09:30")),
        resolved_at: Some(paris("2026-04-23 14:00")),
        closed_at: Some(paris("2026-04-26 14:00")),
        effort_minutes: Some(20.0),
        ..ticket("G-11", "2026-04-23 09:00")
    });
    history(
        &mut group_ev,
        "G-11",
        &[
            ("2026-04-23 09:00", None, "new"),
            ("2026-04-23 09:30", Some("new"), "assigned"),
            ("2026-04-23 14:00", Some("assigned"), "resolved"),
            ("2026-04-26 14:00", Some("resolved"), "closed"),
        ],
    );
    group_ev.push((
        "G-11".into(),
        "900000".into(),
        paris("2026-04-23 10:00"),
        "transfer".into(),
        Some("group-n1".into()),
        Some("lyon-n1".into()),
    ));

    // T15, from a source without history: Fri 10 Apr 09:00 → resolved Thu 16 Apr 12:00,
    // closed Sun 19 Apr; never assigned. Wall 6 d 3 h = 147 h; business Fri 9 + Mon 10 +
    // Tue 10 + Wed 10 + Thu 4 = 43 h > 40 h (P4). Open at the end of 10–15 April.
    let no_history = vec![TicketFields {
        kind: "service_request",
        category: Some("compte"),
        subcategory: Some("création"),
        service: "Comptes et accès",
        priority: 4,
        status: "closed",
        team: None,
        agent: None,
        resolved_at: Some(paris("2026-04-16 12:00")),
        closed_at: Some(paris("2026-04-19 12:00")),
        ..ticket("15", "2026-04-10 09:00")
    }];

    vec![
        SourceData {
            id: "s-school",
            tickets: school,
            events: school_ev,
        },
        SourceData {
            id: "s-group",
            tickets: group,
            events: group_ev,
        },
        SourceData {
            id: "s-nohistory",
            tickets: no_history,
            events: Vec::new(),
        },
    ]
}

#[tokio::test]
async fn every_kpi_on_a_hand_built_lake() {
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &sources()).await;
    let k = kpis(&lake, "2026-04", "2026-04").await;
    let m = json!("2026-04");

    // volume: 12 tickets created in April (T1–T7, T9–T12, T15)
    let total: f64 = k["volume"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| num(r, "tickets"))
        .sum();
    assert_eq!(total, 12.0);
    let messagerie = row(
        &k,
        "volume",
        &[
            ("org", json!("LYON")),
            ("desk", json!("school")),
            ("service", json!("Messagerie")),
            ("kind", json!("incident")),
        ],
    );
    assert_eq!(num(messagerie, "tickets"), 3.0); // T1, T2, T12
    assert_eq!(messagerie["month"], m);

    // group_service_volume: Moodle direct T4, forwarded T5, kept T7 (T6 counted as T5);
    // Portail groupe direct T10
    let gsv = |service: &str, path: &str| {
        num(
            row(
                &k,
                "group_service_volume",
                &[("service", json!(service)), ("path", json!(path))],
            ),
            "tickets",
        )
    };
    assert_eq!(gsv("Moodle", "direct"), 1.0);
    assert_eq!(gsv("Moodle", "forwarded"), 1.0);
    assert_eq!(gsv("Moodle", "kept_at_school"), 1.0);
    assert_eq!(gsv("Portail groupe", "direct"), 1.0);
    assert_eq!(k["group_service_volume"].as_array().unwrap().len(), 4);

    // resolution_time
    let rt = |desk: &str, p: u8| {
        row(
            &k,
            "resolution_time",
            &[("desk", json!(desk)), ("priority", json!(p))],
        )
        .clone()
    };
    let school_p3 = rt("school", 3); // T1 (2 h, 2 bh), T3 (112 h, 2 bh), T7 (54 h, 26 bh)
    assert_eq!(num(&school_p3, "resolved"), 3.0);
    assert_close(num(&school_p3, "mean_h"), 56.0, "school P3 mean_h");
    assert_close(num(&school_p3, "median_h"), 54.0, "school P3 median_h");
    assert_close(
        num(&school_p3, "p90_h"),
        54.0 + 0.8 * 58.0,
        "school P3 p90_h",
    );
    assert_close(num(&school_p3, "mean_bh"), 10.0, "school P3 mean_bh");
    assert_close(num(&school_p3, "median_bh"), 2.0, "school P3 median_bh");
    assert_close(
        num(&school_p3, "p90_bh"),
        2.0 + 0.8 * 24.0,
        "school P3 p90_bh",
    );
    assert_close(num(&school_p3, "sla_ttr_rate"), 2.0 / 3.0, "school P3 sla");
    let school_p2 = rt("school", 2); // T2: pending over the weekend and Easter Monday
    assert_close(num(&school_p2, "mean_h"), 116.0, "T2 wall");
    assert_close(
        num(&school_p2, "mean_bh"),
        6.0,
        "T2 business, pending removed",
    );
    assert_close(num(&school_p2, "sla_ttr_rate"), 1.0, "T2 sla");
    let school_p4 = rt("school", 4); // T6 (1 h), T12 (35 min), T15 (147 h wall, 43 bh)
    assert_eq!(num(&school_p4, "resolved"), 3.0);
    let t12 = 35.0 / 60.0;
    assert_close(
        num(&school_p4, "mean_h"),
        (1.0 + t12 + 147.0) / 3.0,
        "school P4 mean_h",
    );
    assert_close(num(&school_p4, "median_h"), 1.0, "school P4 median_h");
    assert_close(
        num(&school_p4, "p90_h"),
        1.0 + 0.8 * 146.0,
        "school P4 p90_h",
    );
    assert_close(
        num(&school_p4, "mean_bh"),
        (1.0 + t12 + 43.0) / 3.0,
        "school P4 mean_bh",
    );
    assert_close(
        num(&school_p4, "p90_bh"),
        1.0 + 0.8 * 42.0,
        "school P4 p90_bh",
    );
    assert_close(num(&school_p4, "sla_ttr_rate"), 2.0 / 3.0, "school P4 sla");
    let group_p1 = rt("group", 1); // T4: 6 h > 4 h
    assert_close(num(&group_p1, "median_bh"), 6.0, "T4");
    assert_close(num(&group_p1, "sla_ttr_rate"), 0.0, "T4 sla");
    assert_close(num(&rt("group", 4), "mean_bh"), 10.0, "T5 business");
    assert_close(num(&rt("group", 4), "mean_h"), 24.0, "T5 wall");
    assert_close(num(&rt("group", 3), "mean_bh"), 5.0, "T11");
    assert_eq!(k["resolution_time"].as_array().unwrap().len(), 6);

    // time_to_own: school P3 = T1 (30 min), T3 (10 min), T7 (10 min); group P1 = T4 (45 min)
    let tto = row(
        &k,
        "time_to_own",
        &[("desk", json!("school")), ("priority", json!(3))],
    );
    assert_eq!(num(tto, "owned"), 3.0);
    assert_close(num(tto, "median_bh"), 10.0 / 60.0, "school P3 TTO median");
    assert_close(num(tto, "sla_tto_rate"), 1.0, "school P3 TTO rate");
    let tto = row(
        &k,
        "time_to_own",
        &[("desk", json!("group")), ("priority", json!(1))],
    );
    assert_close(num(tto, "median_bh"), 0.75, "T4 TTO");
    assert_close(num(tto, "sla_tto_rate"), 0.0, "T4 TTO rate");
    let owned: f64 = k["time_to_own"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| num(r, "owned"))
        .sum();
    assert_eq!(owned, 9.0); // all April tickets but T9, T10, T15

    // reopen_rate: first resolved in April: T1 T2 T3 T4 T5 T6 T7 T11 T12; reopened T7
    let rr = row(&k, "reopen_rate", &[("month", m.clone())]);
    assert_eq!(num(rr, "first_resolved"), 9.0);
    assert_eq!(num(rr, "reopened"), 1.0);
    assert_close(num(rr, "reopen_rate"), 1.0 / 9.0, "reopen rate");

    // backlog
    let backlog = k["backlog"].as_array().unwrap();
    assert_eq!(backlog.len(), 30);
    let day = |d: &str| {
        backlog
            .iter()
            .find(|r| r["day"] == json!(d))
            .unwrap_or_else(|| panic!("no {d}"))
    };
    let expect = |d: &str, open: f64, b: [f64; 4]| {
        let r = day(d);
        assert_eq!(num(r, "open_tickets"), open, "open on {d}");
        for (name, v) in ["age_0_7", "age_8_30", "age_31_90", "age_over_90"]
            .iter()
            .zip(b)
        {
            assert_eq!(num(r, name), v, "{name} on {d}");
        }
    };
    expect("2026-04-01", 1.0, [0.0, 1.0, 0.0, 0.0]); // T8, 30 days old
    expect("2026-04-02", 3.0, [2.0, 0.0, 1.0, 0.0]); // + T2, T3
    expect("2026-04-06", 3.0, [2.0, 0.0, 1.0, 0.0]);
    expect("2026-04-07", 1.0, [0.0, 0.0, 1.0, 0.0]); // T2 and T3 resolved on the 7th
    expect("2026-04-10", 2.0, [1.0, 0.0, 1.0, 0.0]); // + T15 (no history)
    expect("2026-04-14", 3.0, [2.0, 0.0, 1.0, 0.0]); // + T5
    expect("2026-04-15", 2.0, [1.0, 0.0, 1.0, 0.0]);
    expect("2026-04-16", 1.0, [0.0, 0.0, 1.0, 0.0]); // T15 resolved on the 16th
    expect("2026-04-20", 1.0, [0.0, 0.0, 1.0, 0.0]); // T7 resolved the same day
    expect("2026-04-30", 2.0, [1.0, 0.0, 1.0, 0.0]); // T8 (59 days) and T9 (1 day)

    // recurring_incidents: April incidents T1 T2 T3 T4 T9 T11 T12; recurring T9, T12
    let ri = row(&k, "recurring_incidents", &[("month", m.clone())]);
    assert_eq!(num(ri, "incidents"), 7.0);
    assert_eq!(num(ri, "recurring"), 2.0);

    // satisfaction: closed in April T1(5) T2(3) T4 T6(4) T11 T13(2) T15
    let sat = row(&k, "satisfaction", &[("month", m.clone())]);
    assert_eq!(num(sat, "closed"), 7.0);
    assert_eq!(num(sat, "answered"), 4.0);
    assert_close(num(sat, "answer_rate"), 4.0 / 7.0, "answer rate");
    assert_close(num(sat, "satisfied_rate"), 0.5, "satisfied rate");
    assert_close(num(sat, "mean_score"), 3.5, "mean score");

    // first_level: group T4 (3), T5, T11; school T1, T2 (2), T3, T6, T7, T12, T15
    let fl = row(&k, "first_level", &[("desk", json!("group"))]);
    assert_eq!(num(fl, "resolved"), 3.0);
    assert_close(num(fl, "first_level_rate"), 2.0 / 3.0, "group first level");
    let fl = row(&k, "first_level", &[("desk", json!("school"))]);
    assert_eq!(num(fl, "resolved"), 7.0);
    assert_close(num(fl, "first_level_rate"), 6.0 / 7.0, "school first level");

    // requalification: 12 created, T11 transferred
    let rq = row(&k, "requalification", &[("month", m.clone())]);
    assert_eq!(num(rq, "tickets"), 12.0);
    assert_eq!(num(rq, "transferred"), 1.0);
    assert_close(num(rq, "rate"), 1.0 / 12.0, "requalification rate");

    // effort
    let ef = |desk: &str, scope: &str| {
        row(
            &k,
            "effort",
            &[("desk", json!(desk)), ("service_scope", json!(scope))],
        )
        .clone()
    };
    let g = ef("group", "group"); // T4 120, T5 45
    assert_close(num(&g, "effort_min"), 165.0, "group/group effort");
    assert_close(num(&g, "mean_effort_min"), 82.5, "group/group mean");
    let s = ef("school", "school"); // T1 30, T2 90, T3 T12 T15 unrecorded
    assert_eq!(num(&s, "resolved"), 5.0);
    assert_eq!(num(&s, "with_effort"), 2.0);
    assert_close(num(&s, "effort_min"), 120.0, "school/school effort");
    assert_close(num(&s, "mean_effort_min"), 60.0, "school/school mean");
    assert_close(
        num(&ef("school", "group"), "mean_effort_min"),
        30.0,
        "T6 10, T7 50",
    );
    assert_close(num(&ef("group", "school"), "effort_min"), 20.0, "T11");
}

#[tokio::test]
async fn a_ticket_over_the_october_time_change() {
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &sources()).await;
    let k = kpis(&lake, "2026-10", "2026-10").await;
    let r = row(
        &k,
        "resolution_time",
        &[("desk", json!("school")), ("priority", json!(3))],
    );
    assert_eq!(num(r, "resolved"), 1.0);
    assert_close(
        num(r, "mean_h"),
        65.0,
        "T14 wall-clock hours over the change",
    );
    assert_close(num(r, "mean_bh"), 2.0, "T14 business hours");
    assert_eq!(k["backlog"].as_array().unwrap().len(), 31);
    // T8 (pending since March) and T9 (new since 29 April) are still open on 31 October,
    // 243 and 185 days old
    let last = k["backlog"].as_array().unwrap().last().unwrap();
    assert_eq!(last["day"], json!("2026-10-31"));
    assert_eq!(num(last, "open_tickets"), 2.0);
    assert_eq!(num(last, "age_over_90"), 2.0);
}

#[tokio::test]
async fn a_period_of_two_months_keeps_months_apart() {
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &sources()).await;
    let k = kpis(&lake, "2026-03", "2026-04").await;
    let months: Vec<&str> = k["reopen_rate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["month"].as_str().unwrap())
        .collect();
    assert_eq!(months, vec!["2026-03", "2026-04"]); // T13 first resolved in March
    assert_eq!(k["backlog"].as_array().unwrap().len(), 31 + 30);
    // T8 created 2 March at 10:00: open at the end of 2 March, age 0
    let r = row(&k, "backlog", &[("day", json!("2026-03-02"))]);
    assert_eq!(num(r, "open_tickets"), 1.0);
    assert_eq!(num(r, "age_0_7"), 1.0);
}

#[tokio::test]
async fn a_period_computed_a_month_at_a_time_gives_the_same_figures() {
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &sources()).await;
    // one byte a chunk: March and April apart (the lake holds tickets of both)
    let sizes = lake
        .month_bytes(ticketlake::model::Table::Tickets)
        .await
        .unwrap();
    let period = Period::new(
        Month::parse("2026-03").unwrap(),
        Month::parse("2026-04").unwrap(),
    )
    .unwrap();
    assert_eq!(kpi::chunks(period, &sizes, 1).len(), 2);
    let whole = kpis(&lake, "2026-03", "2026-04").await;
    assert_eq!(
        kpis_in_chunks(&lake, "2026-03", "2026-04", Some(1)).await,
        whole
    );
    assert_eq!(whole["backlog"].as_array().unwrap().len(), 31 + 30);
}

#[tokio::test]
async fn the_same_figures_from_an_object_store_that_is_not_a_disk() {
    let store = std::sync::Arc::new(object_store::memory::InMemory::new());
    let lake = write_into(
        ticketlake::lake::Lake::with_store(store, "memory://test"),
        &sources(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let on_disk = write_lake(dir.path(), &sources()).await;
    let k = kpis(&lake, "2026-04", "2026-04").await;
    assert_eq!(k, kpis(&on_disk, "2026-04", "2026-04").await);
    let total: f64 = k["volume"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| num(r, "tickets"))
        .sum();
    assert_eq!(total, 12.0);
}

#[tokio::test]
async fn the_report_kpis_on_the_hand_built_lake() {
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(dir.path(), &sources()).await;
    let k = kpis(&lake, "2026-04", "2026-04").await;

    // service_level. Resolved in April, business TTR (target): T12 35 min (40), T6 1 (40),
    // T1 2 (24), T3 2 (24), T11 5 (24), T2 6 (8), T4 6 (4 ✗), T5 10 (40), T7 26 (24 ✗),
    // T15 43 (40 ✗). Median of 10 = (5 + 6) / 2; p90 at rank 8.1 = 26 + 0.1 × 17.
    let sl = row(&k, "service_level", &[("month", json!("2026-04"))]);
    assert_eq!(num(sl, "resolved"), 10.0);
    assert_close(num(sl, "median_bh"), 5.5, "overall median TTR");
    assert_close(num(sl, "p90_bh"), 27.7, "overall p90 TTR");
    assert_close(num(sl, "sla_ttr_rate"), 0.7, "overall TTR compliance");
    // Owned (TTO, target): T12 5 min (480), T3 10 (240), T7 10 (240), T6 20 (480),
    // T1 30 (240), T2 30 (60), T11 30 (240), T4 45 (30 ✗), T5 60 (480): median 30 min.
    assert_eq!(num(sl, "owned"), 9.0);
    assert_close(num(sl, "tto_median_bh"), 0.5, "overall median TTO");
    assert_close(num(sl, "sla_tto_rate"), 8.0 / 9.0, "overall TTO compliance");
    assert_eq!(k["service_level"].as_array().unwrap().len(), 1);

    // breaches_in_flight at 1 May 00:00: T8 (P3, owned, pending since 3 March: 9 business
    // hours before that, under 24) and T9 (P3, never owned, 29 Apr 14:00 → 14 business
    // hours: past the 4 h TTO target, not the 24 h TTR one).
    let b = k["breaches_in_flight"].as_array().unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0]["desk"], json!("school"));
    assert_eq!(b[0]["priority"], json!(3));
    assert_eq!(num(&b[0], "open_tickets"), 2.0);
    assert_eq!(num(&b[0], "unowned"), 1.0);
    assert_eq!(num(&b[0], "past_tto"), 1.0);
    assert_eq!(num(&b[0], "past_ttr"), 0.0);
    // At the end of October T9 is months old: past both targets; T8 still is not
    // (pending time is not counted against it).
    let oct = kpis(&lake, "2026-10", "2026-10").await;
    let b = &oct["breaches_in_flight"][0];
    assert_eq!(num(b, "open_tickets"), 2.0);
    assert_eq!(num(b, "past_tto"), 1.0);
    assert_eq!(num(b, "past_ttr"), 1.0);

    // recurring_pairs: Messagerie/boîte has T1, T2, T12 (T12 recurs after T1); Logiciels
    // without category has T9 (recurs after T13); one incident each elsewhere.
    let rp = k["recurring_pairs"].as_array().unwrap();
    assert_eq!(rp.len(), 5);
    assert_eq!(rp[0]["service"], json!("Messagerie"));
    assert_eq!(rp[0]["category"], json!("boîte"));
    assert_eq!(num(&rp[0], "incidents"), 3.0);
    assert_eq!(num(&rp[0], "recurring"), 1.0);
    assert_eq!(rp[1]["service"], json!("Logiciels"));
    assert_eq!(rp[1]["category"], json!(null));
    assert_eq!(num(&rp[1], "recurring"), 1.0);
    let recurring: f64 = rp.iter().map(|r| num(r, "recurring")).sum();
    assert_eq!(recurring, 2.0); // = recurring_incidents for the month

    // history_coverage: April tickets per source: s-group G-4 G-5 G-10 G-11, s-nohistory
    // T15 (no events), s-school T1 T2 T3 T6 T7 T9 T12.
    let hc = |s: &str| row(&k, "history_coverage", &[("source", json!(s))]).clone();
    assert_eq!(num(&hc("s-group"), "tickets"), 4.0);
    assert_eq!(num(&hc("s-group"), "without_history"), 0.0);
    assert_eq!(num(&hc("s-nohistory"), "tickets"), 1.0);
    assert_eq!(num(&hc("s-nohistory"), "without_history"), 1.0);
    assert_close(num(&hc("s-nohistory"), "history_rate"), 0.0, "no history");
    assert_eq!(num(&hc("s-school"), "with_history"), 7.0);
}

#[tokio::test]
async fn incidents_at_the_same_instant_recur_together_or_not_at_all() {
    // May 2026 (summer time throughout, so 30 days are 30 × 24 h of local time too).
    // - A1 on 20 April, then A2 and A3 at the same instant on 12 May: both recur (22 days);
    // - B1 and B2 at the same instant on 5 May, nothing earlier: neither recurs (neither
    //   is strictly earlier than the other);
    // - D1 on 5 April 10:00, D2 on 5 May 10:00: exactly 30 days, recurs;
    // - E1 on 5 April 10:00, E2 on 5 May 10:01: 30 days and a minute, does not.
    // May: 6 incidents (A2 A3 B1 B2 D2 E2), 3 recurring (A2 A3 D2).
    let a = |id, at| TicketFields {
        subcategory: Some("quota"),
        ..ticket(id, at)
    };
    let b = |id, at| TicketFields {
        subcategory: Some("envoi"),
        ..ticket(id, at)
    };
    let d = |id, at| TicketFields {
        subcategory: None,
        ..ticket(id, at)
    };
    let e = |id, at| TicketFields {
        service: "Logiciels",
        category: None,
        subcategory: None,
        ..ticket(id, at)
    };
    let tickets = vec![
        a("A1", "2026-04-20 10:00"),
        a("A2", "2026-05-12 10:00"),
        a("A3", "2026-05-12 10:00"),
        b("B1", "2026-05-05 09:00"),
        b("B2", "2026-05-05 09:00"),
        d("D1", "2026-04-05 10:00"),
        d("D2", "2026-05-05 10:00"),
        e("E1", "2026-04-05 10:00"),
        e("E2", "2026-05-05 10:01"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let lake = write_lake(
        dir.path(),
        &[SourceData {
            id: "s-one",
            tickets,
            events: Vec::new(),
        }],
    )
    .await;
    let k = kpis(&lake, "2026-05", "2026-05").await;
    let ri = row(&k, "recurring_incidents", &[("month", json!("2026-05"))]);
    assert_eq!(num(ri, "incidents"), 6.0);
    assert_eq!(num(ri, "recurring"), 3.0);
    assert_close(num(ri, "recurring_rate"), 0.5, "3 of 6");
    // by service and category: Messagerie/boîte has A2 A3 B1 B2 D2 (A2 A3 D2 recur),
    // Logiciels without category E2
    let rp = k["recurring_pairs"].as_array().unwrap();
    assert_eq!(rp.len(), 2);
    assert_eq!(rp[0]["service"], json!("Messagerie"));
    assert_eq!(num(&rp[0], "incidents"), 5.0);
    assert_eq!(num(&rp[0], "recurring"), 3.0);
    assert_eq!(rp[1]["service"], json!("Logiciels"));
    assert_eq!(rp[1]["category"], json!(null));
    assert_eq!(num(&rp[1], "incidents"), 1.0);
    assert_eq!(num(&rp[1], "recurring"), 0.0);

    // April and May computed apart (chunks of one byte), then put together. April: A1 D1
    // E1, none recurs (nothing earlier). May's chunk looks back into April: A2 A3 recur
    // after A1, D2 after D1 (as above)
    let k = kpis_in_chunks(&lake, "2026-04", "2026-05", Some(1)).await;
    let ri = k["recurring_incidents"].as_array().unwrap();
    assert_eq!(ri.len(), 2);
    assert_eq!(
        (num(&ri[0], "incidents"), num(&ri[0], "recurring")),
        (3.0, 0.0)
    );
    assert_eq!(
        (num(&ri[1], "incidents"), num(&ri[1], "recurring")),
        (6.0, 3.0)
    );
    // one row per service and category over both months: Messagerie/boîte A1 A2 A3 B1 B2
    // D1 D2 (3 recur: 3/7), Logiciels E1 E2 (none)
    let rp = k["recurring_pairs"].as_array().unwrap();
    assert_eq!(rp.len(), 2);
    assert_eq!(rp[0]["service"], json!("Messagerie"));
    assert_eq!(num(&rp[0], "incidents"), 7.0);
    assert_eq!(num(&rp[0], "recurring"), 3.0);
    assert_close(num(&rp[0], "recurring_rate"), 3.0 / 7.0, "3 of 7");
    assert_eq!(rp[1]["service"], json!("Logiciels"));
    assert_eq!(num(&rp[1], "incidents"), 2.0);
    assert_eq!(num(&rp[1], "recurring"), 0.0);
    assert_eq!(k, kpis(&lake, "2026-04", "2026-05").await);
}
