//! Properties: business time over random instants (bounds, additivity, closed days, the
//! length of DST days) and the lake merge over random batches (idempotent, and the latest
//! state whatever the order of the batches).

use chrono::{Datelike, NaiveDate, TimeZone};
use proptest::prelude::*;
use ticketlake::config::Config;
use ticketlake::engine::calendar::BusinessCalendar;
use ticketlake::lake::write::merge_by_key;
use ticketlake::model::Table;
use ticketlake::sources::batch::{TicketFields, TicketsBuilder};

/// Calendars are built once (each precomputes a table of every day from 1990 to 2099).
static FRANCE: std::sync::LazyLock<BusinessCalendar> = std::sync::LazyLock::new(|| {
    BusinessCalendar::new(&Config::default().calendars["france"].spec().unwrap())
});

/// A calendar open every day from 00:00 to 23:59, without holidays.
static ALWAYS_OPEN: std::sync::LazyLock<BusinessCalendar> = std::sync::LazyLock::new(|| {
    let mut spec = Config::default().calendars["france"].spec().unwrap();
    spec.days = [true; 7];
    spec.opens = chrono::NaiveTime::from_hms_opt(0, 0, 0).unwrap();
    spec.closes = chrono::NaiveTime::from_hms_opt(23, 59, 0).unwrap();
    spec.holidays = ticketlake::config::HolidaySet::None;
    BusinessCalendar::new(&spec)
});

fn france() -> &'static BusinessCalendar {
    &FRANCE
}

fn always_open() -> &'static BusinessCalendar {
    &ALWAYS_OPEN
}

fn paris_midnight(d: NaiveDate) -> i64 {
    chrono_tz::Europe::Paris
        .from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap())
        .earliest()
        .unwrap()
        .timestamp_micros()
}

/// Instants from 2015 to 2035, in µs.
fn instant() -> impl Strategy<Value = i64> {
    1_420_070_400_000_000i64..2_051_222_400_000_000i64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn business_time_is_between_zero_and_wall_time(a in instant(), b in instant()) {
        let (a, b) = (a.min(b), a.max(b));
        let bt = france().business_micros(a, b);
        prop_assert!(bt >= 0);
        prop_assert!(bt <= b - a);
    }

    #[test]
    fn business_time_adds_up_over_a_split_point(a in instant(), m in instant(), c in instant()) {
        let mut v = [a, m, c];
        v.sort();
        let cal = france();
        prop_assert_eq!(cal.business_micros(v[0], v[2]), cal.business_micros(v[0], v[1]) + cal.business_micros(v[1], v[2]));
    }

    #[test]
    fn weekends_and_holidays_count_nothing(day in 0i64..7300, from_h in 0i64..24, len_h in 0i64..24) {
        let date = NaiveDate::from_ymd_opt(2015, 1, 1).unwrap() + chrono::Duration::days(day);
        let cal = france();
        let start = paris_midnight(date);
        let end = paris_midnight(date.succ_opt().unwrap());
        let a = (start + from_h * 3_600_000_000).min(end);
        let b = (a + len_h * 3_600_000_000).min(end);
        let holiday = ticketlake::engine::calendar::holidays(date.year(), ticketlake::config::HolidaySet::France).contains(&date);
        if date.weekday().num_days_from_monday() >= 5 || holiday {
            prop_assert_eq!(cal.business_micros(a, b), 0);
        } else {
            prop_assert_eq!(cal.business_micros(start, end), 10 * 3_600_000_000);
        }
    }

    #[test]
    fn days_of_the_time_changes_have_their_length(year in 2015i32..2035) {
        // the last Sundays of March (23 h) and October (25 h), open 00:00–23:59 local
        let cal = always_open();
        let last_sunday = |month: u32| {
            let mut d = NaiveDate::from_ymd_opt(year, month + 1, 1).unwrap().pred_opt().unwrap();
            while d.weekday() != chrono::Weekday::Sun {
                d = d.pred_opt().unwrap();
            }
            d
        };
        let day = |d: NaiveDate| cal.business_micros(paris_midnight(d), paris_midnight(d.succ_opt().unwrap()));
        let minute = 60_000_000;
        prop_assert_eq!(day(last_sunday(3)), 23 * 3_600_000_000 - minute);
        prop_assert_eq!(day(last_sunday(10)), 25 * 3_600_000_000 - minute);
        prop_assert_eq!(day(last_sunday(3).succ_opt().unwrap()), 24 * 3_600_000_000 - minute);
    }
}

/// A ticket row: (key index, updated-at order, status index).
type Row = (u8, u16, u8);

fn batch(rows: &[Row]) -> arrow::array::RecordBatch {
    let ids: Vec<String> = rows.iter().map(|r| format!("T{}", r.0)).collect();
    let statuses = ["new", "assigned", "pending", "resolved", "closed"];
    let mut b = TicketsBuilder::default();
    for (r, id) in rows.iter().zip(&ids) {
        b.append(&TicketFields {
            ticket_id: id,
            org: "LYON",
            desk: "school",
            service: "Messagerie",
            service_scope: "school",
            kind: "incident",
            channel: "email",
            requester: "p_x",
            requester_profile: "staff",
            priority: 3,
            level: 1,
            status: statuses[r.2 as usize % 5],
            // created once per key, updated at a distinct instant per row
            created_at: 1_700_000_000_000_000 + r.0 as i64 * 1_000_000,
            updated_at: Some(1_800_000_000_000_000 + r.1 as i64 * 1_000_000),
            ..Default::default()
        });
    }
    b.finish()
}

/// Rows with distinct update instants (a source never updates one ticket twice at once).
fn rows() -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec((0u8..12, 0u8..5), 0..40).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (k, s))| (k, i as u16, s))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn merging_a_batch_twice_is_merging_it_once(r in rows()) {
        let b = batch(&r);
        let once = merge_by_key(Table::Tickets, std::slice::from_ref(&b)).unwrap();
        let twice = merge_by_key(Table::Tickets, &[b.clone(), b]).unwrap();
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn the_latest_state_does_not_depend_on_the_order_of_batches(r in rows(), cut in 0usize..40) {
        let cut = cut.min(r.len());
        let (x, y) = (batch(&r[..cut]), batch(&r[cut..]));
        let xy = merge_by_key(Table::Tickets, &[x.clone(), y.clone()]).unwrap();
        let yx = merge_by_key(Table::Tickets, &[y, x]).unwrap();
        prop_assert_eq!(&xy, &yx);
        // one row per key, each the last update of its key
        let keys: std::collections::BTreeSet<u8> = r.iter().map(|x| x.0).collect();
        prop_assert_eq!(xy.num_rows(), keys.len());
    }
}
