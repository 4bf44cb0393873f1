//! Business time: opening hours, French public holidays, DST. Pure computation over
//! instants; no SQL, no I/O.
//!
//! A [`BusinessCalendar`] precomputes, for every local day from 1990 to 2099, the UTC
//! instants at which that day's opening window starts and ends, and the cumulative number
//! of business seconds before it. `business_seconds(a, b)` is then two binary searches
//! and a subtraction: O(log days), no allocation, exact across DST changes (windows are
//! converted from local time day by day).

use std::collections::HashSet;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

use crate::config::{CalendarSpec, HolidaySet};

/// First and last (exclusive) local years covered by the precomputed table.
pub const FIRST_YEAR: i32 = 1990;
pub const END_YEAR: i32 = 2100;

/// Easter Sunday (Gregorian), by the anonymous algorithm of Meeus/Jones/Butcher.
pub fn easter(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).expect("valid Easter date")
}

/// The public holidays of a year for a holiday set.
pub fn holidays(year: i32, set: HolidaySet) -> Vec<NaiveDate> {
    if set == HolidaySet::None {
        return Vec::new();
    }
    let ymd = |m, d| NaiveDate::from_ymd_opt(year, m, d).expect("valid date");
    let e = easter(year);
    let mut days = vec![
        ymd(1, 1),              // Jour de l'an
        e + Duration::days(1),  // Lundi de Pâques
        ymd(5, 1),              // Fête du travail
        ymd(5, 8),              // Victoire 1945
        e + Duration::days(39), // Ascension
        e + Duration::days(50), // Lundi de Pentecôte
        ymd(7, 14),             // Fête nationale
        ymd(8, 15),             // Assomption
        ymd(11, 1),             // Toussaint
        ymd(11, 11),            // Armistice
        ymd(12, 25),            // Noël
    ];
    if set == HolidaySet::AlsaceMoselle {
        days.push(e - Duration::days(2)); // Vendredi saint
        days.push(ymd(12, 26)); // Saint-Étienne
    }
    days.sort();
    days
}

/// How many values of `daily` (increasing, about one a day) are at or before `t`: the
/// same as `daily.partition_point(|&v| v <= t)`, found from the day count since the first
/// value and a step or two either way instead of a binary search (business time and local
/// days are computed for every row of most KPIs).
pub(crate) fn count_at_or_before(daily: &[i64], t: i64) -> usize {
    const DAY_US: i64 = 86_400_000_000;
    let Some(&first) = daily.first() else {
        return 0;
    };
    if t < first {
        return 0;
    }
    let guess = usize::try_from((t - first) / DAY_US)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let mut i = guess.min(daily.len());
    while i < daily.len() && daily[i] <= t {
        i += 1;
    }
    while i > 0 && daily[i - 1] > t {
        i -= 1;
    }
    i
}

/// A calendar's opening windows, precomputed as UTC microseconds.
#[derive(Debug, Clone)]
pub struct BusinessCalendar {
    first_day: NaiveDate,
    /// UTC µs at which each local day's window opens (for a closed day: its local midnight).
    open: Vec<i64>,
    /// Length of each day's window in µs (0 when closed).
    len: Vec<i64>,
    /// Business µs before each day.
    cum: Vec<i64>,
}

/// The UTC instant of a local date-time; inside a DST gap, the first valid instant after.
pub(crate) fn local_to_utc(tz: &Tz, local: NaiveDateTime) -> i64 {
    let mut t = local;
    for _ in 0..4 {
        if let Some(dt) = tz.from_local_datetime(&t).earliest() {
            return dt.timestamp_micros();
        }
        t += Duration::minutes(30);
    }
    tz.from_utc_datetime(&local).timestamp_micros()
}

impl BusinessCalendar {
    pub fn new(spec: &CalendarSpec) -> BusinessCalendar {
        let first_day = NaiveDate::from_ymd_opt(FIRST_YEAR, 1, 1).unwrap();
        let end_day = NaiveDate::from_ymd_opt(END_YEAR, 1, 1).unwrap();
        let mut closed: HashSet<NaiveDate> = spec.closed.iter().copied().collect();
        for y in FIRST_YEAR..END_YEAR {
            closed.extend(holidays(y, spec.holidays));
        }
        let n = (end_day - first_day).num_days() as usize;
        let (mut open, mut len, mut cum) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut total = 0i64;
        let mut day = first_day;
        while day < end_day {
            let working =
                spec.days[day.weekday().num_days_from_monday() as usize] && !closed.contains(&day);
            cum.push(total);
            if working {
                let o = local_to_utc(&spec.timezone, day.and_time(spec.opens));
                let c = local_to_utc(&spec.timezone, day.and_time(spec.closes));
                open.push(o);
                len.push((c - o).max(0));
                total += (c - o).max(0);
            } else {
                open.push(local_to_utc(
                    &spec.timezone,
                    day.and_hms_opt(0, 0, 0).unwrap(),
                ));
                len.push(0);
            }
            day = day.succ_opt().unwrap();
        }
        BusinessCalendar {
            first_day,
            open,
            len,
            cum,
        }
    }

    /// Business µs from the start of the table to `t` (clamped to the table's range).
    fn cumulative(&self, t: i64) -> i64 {
        // index of the last day whose window opens at or before t
        let i = count_at_or_before(&self.open, t);
        if i == 0 {
            return 0;
        }
        let i = i - 1;
        self.cum[i] + (t - self.open[i]).clamp(0, self.len[i])
    }

    /// Business µs between two UTC instants in µs (0 when `to <= from`).
    pub fn business_micros(&self, from_us: i64, to_us: i64) -> i64 {
        if to_us <= from_us {
            return 0;
        }
        self.cumulative(to_us) - self.cumulative(from_us)
    }

    /// Business seconds between two UTC instants in µs (0 when `to <= from`).
    pub fn business_seconds(&self, from_us: i64, to_us: i64) -> f64 {
        self.business_micros(from_us, to_us) as f64 / 1e6
    }

    /// The instant `secs` business seconds after `from_us` (for a zero or tiny duration
    /// outside opening hours: the next opening). Clamped to the end of the table.
    pub fn add_business_seconds(&self, from_us: i64, secs: f64) -> i64 {
        let target = self.cumulative(from_us) + (secs.max(0.0) * 1e6) as i64;
        // the first day whose window ends after the target (a day's window ends where the
        // next day's cumulative count begins)
        let j = self.cum[1..].partition_point(|&c| c <= target);
        let end_of_table = self.cum[j] + self.len[j];
        if target >= end_of_table {
            return self.open[j] + self.len[j];
        }
        (self.open[j] + (target - self.cum[j])).max(from_us)
    }

    /// Is this local date a working day?
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        let i = (date - self.first_day).num_days();
        i >= 0 && (i as usize) < self.len.len() && self.len[i as usize] > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn count_at_or_before_is_a_partition_point() {
        let c = cal("france");
        let first = c.open[0];
        // around every window's opening, across DST changes, and outside the table
        let mut probes = vec![i64::MIN, first - 1, first, i64::MAX];
        for &o in c
            .open
            .iter()
            .step_by(7)
            .chain(c.open.iter().skip(30_000).take(400))
        {
            probes.extend([o - 3_600_000_001, o - 1, o, o + 1, o + 43_200_000_000]);
        }
        for t in probes {
            assert_eq!(
                count_at_or_before(&c.open, t),
                c.open.partition_point(|&o| o <= t),
                "t = {t}"
            );
        }
        assert_eq!(count_at_or_before(&[], 5), 0);
        // irregular values still give the exact count
        let odd = [0, 10, 20, 86_400_000_000 * 5, 86_400_000_000 * 5 + 1];
        for t in [-1, 0, 5, 10, 86_400_000_000, 86_400_000_000 * 5, i64::MAX] {
            assert_eq!(
                count_at_or_before(&odd, t),
                odd.partition_point(|&o| o <= t),
                "t = {t}"
            );
        }
    }

    fn cal(name: &str) -> BusinessCalendar {
        BusinessCalendar::new(&Config::default().calendars[name].spec().unwrap())
    }

    fn paris(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
        chrono_tz::Europe::Paris
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .unwrap()
            .timestamp_micros()
    }

    #[test]
    fn easter_dates() {
        assert_eq!(easter(2024), NaiveDate::from_ymd_opt(2024, 3, 31).unwrap());
        assert_eq!(easter(2025), NaiveDate::from_ymd_opt(2025, 4, 20).unwrap());
        assert_eq!(easter(2026), NaiveDate::from_ymd_opt(2026, 4, 5).unwrap());
        assert_eq!(easter(2038), NaiveDate::from_ymd_opt(2038, 4, 25).unwrap());
    }

    #[test]
    fn holiday_sets() {
        assert_eq!(holidays(2026, HolidaySet::France).len(), 11);
        let am = holidays(2026, HolidaySet::AlsaceMoselle);
        assert_eq!(am.len(), 13);
        assert!(am.contains(&NaiveDate::from_ymd_opt(2026, 4, 3).unwrap())); // Good Friday
        assert!(am.contains(&NaiveDate::from_ymd_opt(2026, 12, 26).unwrap()));
        // Ascension 2026 is Thursday 14 May, Whit Monday 25 May
        let fr = holidays(2026, HolidaySet::France);
        assert!(fr.contains(&NaiveDate::from_ymd_opt(2026, 5, 14).unwrap()));
        assert!(fr.contains(&NaiveDate::from_ymd_opt(2026, 5, 25).unwrap()));
    }

    #[test]
    fn within_one_day_and_over_a_weekend() {
        let c = cal("france");
        // Tue 2026-03-10 09:00 → 11:30 = 2.5 h
        assert_eq!(
            c.business_seconds(paris(2026, 3, 10, 9, 0), paris(2026, 3, 10, 11, 30)),
            9000.0
        );
        // Fri 2026-03-13 17:00 → Mon 16 09:00 = 1 h + 1 h
        assert_eq!(
            c.business_seconds(paris(2026, 3, 13, 17, 0), paris(2026, 3, 16, 9, 0)),
            7200.0
        );
        // before opening to after closing on one day: the whole 10 h
        assert_eq!(
            c.business_seconds(paris(2026, 3, 10, 6, 0), paris(2026, 3, 10, 21, 0)),
            36000.0
        );
        // reversed interval
        assert_eq!(
            c.business_seconds(paris(2026, 3, 10, 11, 0), paris(2026, 3, 10, 9, 0)),
            0.0
        );
    }

    #[test]
    fn good_friday_only_in_alsace_moselle() {
        // Thu 2026-04-02 17:00 → Tue 2026-04-07 09:00: Good Friday 3 April, Easter Monday 6 April
        let (a, b) = (paris(2026, 4, 2, 17, 0), paris(2026, 4, 7, 9, 0));
        assert_eq!(
            cal("france").business_seconds(a, b),
            (1.0 + 10.0 + 1.0) * 3600.0
        );
        assert_eq!(cal("alsace-moselle").business_seconds(a, b), 2.0 * 3600.0);
    }

    #[test]
    fn dst_days_keep_ten_hours() {
        let c = cal("france");
        // Fri 2026-10-23 08:00 → Mon 2026-10-26 18:00 spans the change of Sun 25 October
        let (a, b) = (paris(2026, 10, 23, 8, 0), paris(2026, 10, 26, 18, 0));
        assert_eq!(b - a, (3 * 24 + 10 + 1) * 3_600_000_000i64); // 83 h wall-clock
        assert_eq!(c.business_seconds(a, b), 20.0 * 3600.0);
        // the spring change, Sun 29 March 2026
        let (a, b) = (paris(2026, 3, 27, 8, 0), paris(2026, 3, 30, 18, 0));
        assert_eq!(b - a, (3 * 24 + 10 - 1) * 3_600_000_000i64);
        assert_eq!(c.business_seconds(a, b), 20.0 * 3600.0);
    }

    #[test]
    fn adding_business_time_inverts_counting_it() {
        let c = cal("france");
        // Fri 2026-03-13 17:00 + 2 h = Mon 16 09:00
        assert_eq!(
            c.add_business_seconds(paris(2026, 3, 13, 17, 0), 7200.0),
            paris(2026, 3, 16, 9, 0)
        );
        // from Saturday, zero business seconds is Monday's opening
        assert_eq!(
            c.add_business_seconds(paris(2026, 3, 14, 12, 0), 0.0),
            paris(2026, 3, 16, 8, 0)
        );
        let a = paris(2025, 12, 19, 10, 7);
        let b = c.add_business_seconds(a, 123_456.0);
        assert_eq!(c.business_seconds(a, b), 123_456.0);
    }

    #[test]
    fn additive_over_a_split_point() {
        let c = cal("france");
        let (a, m, b) = (
            paris(2025, 12, 19, 10, 7),
            paris(2025, 12, 29, 13, 0),
            paris(2026, 1, 9, 8, 30),
        );
        let whole = c.business_seconds(a, b);
        assert_eq!(whole, c.business_seconds(a, m) + c.business_seconds(m, b));
        // 19 Dec 10:07 → 18:00 = 7 h 53; 22, 23, 24, 26 Dec = 4 days; 29, 30, 31 Dec = 3 days;
        // 2, 5, 6, 7, 8 Jan = 5 days; 9 Jan 08:00 → 08:30 = 30 min (25 Dec and 1 Jan are holidays)
        assert_eq!(
            whole,
            (7.0 * 3600.0 + 53.0 * 60.0) + 12.0 * 36000.0 + 1800.0
        );
    }
}
