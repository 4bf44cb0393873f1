//! Local days in the reporting time zone: UTC µs → local day number / month, through a
//! precomputed table of local midnights (fast, exact across DST). Pure computation.

use chrono::{Datelike, NaiveDate, TimeZone};
use chrono_tz::Tz;

use super::calendar::{END_YEAR, FIRST_YEAR};

/// Days from 1970-01-01 to a date (the Arrow `Date32` value).
pub fn day_number(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

/// The date of an Arrow `Date32` value.
pub fn date_of(day: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(day as i64)
}

/// Local midnights of a time zone, 1990–2099.
#[derive(Debug, Clone)]
pub struct LocalDays {
    tz: Tz,
    first_day: i32,
    midnights: Vec<i64>,
    /// the month of each day of the table, as `year × 12 + month − 1` (a date's year and
    /// month cost more than the day's lookup: `local_month` reads them for every row)
    months: Vec<i32>,
}

impl LocalDays {
    pub fn new(tz: Tz) -> LocalDays {
        let first = NaiveDate::from_ymd_opt(FIRST_YEAR, 1, 1).unwrap();
        let end = NaiveDate::from_ymd_opt(END_YEAR, 1, 1).unwrap();
        let mut midnights = Vec::with_capacity((end - first).num_days() as usize);
        let mut months = Vec::with_capacity(midnights.capacity());
        let mut d = first;
        while d < end {
            midnights.push(local_midnight_us(&tz, d));
            months.push(d.year() * 12 + d.month() as i32 - 1);
            d = d.succ_opt().unwrap();
        }
        LocalDays {
            tz,
            first_day: day_number(first),
            midnights,
            months,
        }
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The local day number (`Date32`) of a UTC instant in µs.
    pub fn day_of(&self, t_us: i64) -> i32 {
        let i = super::calendar::count_at_or_before(&self.midnights, t_us);
        if i == 0 || i == self.midnights.len() {
            // outside the table: ask chrono-tz
            let dt = self.tz.timestamp_micros(t_us).single();
            return dt.map(|d| day_number(d.date_naive())).unwrap_or(0);
        }
        self.first_day + i as i32 - 1
    }

    /// `YYYY-MM` of a UTC instant in µs.
    pub fn month_of(&self, t_us: i64) -> String {
        let (y, m) = self.year_month_of(t_us);
        format!("{y:04}-{m:02}")
    }

    /// The local year and month of a UTC instant in µs.
    pub fn year_month_of(&self, t_us: i64) -> (i32, u32) {
        let day = self.day_of(t_us);
        match usize::try_from(day - self.first_day)
            .ok()
            .and_then(|i| self.months.get(i))
        {
            Some(&m) => (m.div_euclid(12), m.rem_euclid(12) as u32 + 1),
            None => {
                let d = date_of(day);
                (d.year(), d.month())
            }
        }
    }

    /// The UTC µs of the local midnight starting a date.
    pub fn midnight(&self, d: NaiveDate) -> i64 {
        let i = day_number(d) - self.first_day;
        if i >= 0 && (i as usize) < self.midnights.len() {
            self.midnights[i as usize]
        } else {
            local_midnight_us(&self.tz, d)
        }
    }
}

/// Local midnight (in a zone whose DST gap swallows midnight, the first instant of the day).
fn local_midnight_us(tz: &Tz, d: NaiveDate) -> i64 {
    super::calendar::local_to_utc(tz, d.and_hms_opt(0, 0, 0).unwrap())
}

/// A local month `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    pub fn parse(s: &str) -> anyhow::Result<Month> {
        let err = || anyhow::anyhow!("'{s}' is not a month YYYY-MM");
        let (y, m) = s.split_once('-').ok_or_else(err)?;
        let (year, month) = (y.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
        if y.len() != 4 || m.len() != 2 || !(1..=12).contains(&month) {
            return Err(err());
        }
        Ok(Month { year, month })
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap()
    }

    pub fn next(self) -> Month {
        self.plus(1)
    }

    pub fn plus(self, n: i32) -> Month {
        let idx = self.year * 12 + self.month as i32 - 1 + n;
        Month {
            year: idx.div_euclid(12),
            month: idx.rem_euclid(12) as u32 + 1,
        }
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_months_in_paris() {
        let ld = LocalDays::new(chrono_tz::Europe::Paris);
        // 2026-10-31 23:30 UTC is 2026-11-01 00:30 in Paris (UTC+1 after the change)
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 10, 31, 23, 30, 0)
            .unwrap()
            .timestamp_micros();
        assert_eq!(ld.month_of(t), "2026-11");
        assert_eq!(
            date_of(ld.day_of(t)),
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
        );
        // exactly local midnight belongs to the new day
        let m = ld.midnight(NaiveDate::from_ymd_opt(2026, 7, 1).unwrap());
        assert_eq!(ld.month_of(m), "2026-07");
        assert_eq!(ld.month_of(m - 1), "2026-06");
        assert_eq!(
            m,
            chrono::Utc
                .with_ymd_and_hms(2026, 6, 30, 22, 0, 0)
                .unwrap()
                .timestamp_micros()
        );
    }

    #[test]
    fn a_days_month_is_its_dates_in_and_outside_the_table() {
        let ld = LocalDays::new(chrono_tz::Australia::Lord_Howe);
        // every 7 h 13 min from 1985 (before the table) to 2105 (after it)
        let (from, to) = (
            chrono::Utc.with_ymd_and_hms(1985, 1, 1, 0, 0, 0).unwrap(),
            chrono::Utc.with_ymd_and_hms(2105, 1, 1, 0, 0, 0).unwrap(),
        );
        let step = (7 * 3600 + 13 * 60) * 1_000_000i64;
        let mut t = from.timestamp_micros();
        while t < to.timestamp_micros() {
            let d = date_of(ld.day_of(t));
            assert_eq!(ld.year_month_of(t), (d.year(), d.month()), "at {t}");
            t += step;
        }
    }

    #[test]
    fn months() {
        let m = Month::parse("2025-12").unwrap();
        assert_eq!(m.next().to_string(), "2026-01");
        assert_eq!(m.plus(-12).to_string(), "2024-12");
        assert!(Month::parse("2025-13").is_err());
        assert!(Month::parse("25-01").is_err());
    }
}
