//! The working-day calendar used for every statutory deadline.
//!
//! All calendar computations happen on *local dates in Asia/Shanghai* ([`TZ`]); instants are
//! always taken and returned in UTC.
//!
//! Two calendars are provided:
//!
//! * [`WeekdayCalendar`] — Monday–Friday, every year (tests, and before official data exists);
//! * [`OfficialCalendar`] — the official PRC calendar: weekdays, overridden per date by public
//!   holidays (`off`) and adjusted working weekends (`work`, 调休) as published in the State
//!   Council's annual holiday notices. It covers an explicit range of years and answers
//!   [`CalendarError::YearNotCovered`] for any date outside it — it never guesses.
//!
//! Counting follows Chinese administrative practice: the day on which a period starts is not
//! counted, and a period of N working days ends at 24:00 (local) of the N-th working day after it.
//!
//! Everything here is pure: the official data is embedded at compile time
//! (`data/cn-calendar.csv`) and parsed once ([`official`]).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::sync::OnceLock;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveTime, Offset, TimeDelta, TimeZone, Utc,
    Weekday,
};

/// The time zone of every calendar computation.
pub const TZ: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

/// The most calendar days that working-day arithmetic will scan (about ten years).
///
/// [`add_working_days`] gives up with [`CalendarError::BeyondHorizon`] if the N-th working day
/// is not found within this many days, and [`working_days_between`] refuses spans longer than
/// this. Real deadlines are a few hundred days at most; the bound only guarantees termination.
pub const MAX_SPAN_DAYS: u32 = 3_653;

/// The embedded official data: 2020–2026.
const EMBEDDED_CSV: &str = include_str!("../data/cn-calendar.csv");

/// The header every calendar CSV must start with (after comment lines).
const CSV_HEADER: &str = "date,kind,festival";

/// Errors of the working-day calendar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// A date in this year was needed but the calendar has no data for it.
    #[error("the working-day calendar does not cover the year {0}")]
    YearNotCovered(i32),
    /// Calendar data could not be parsed. `line` is 1-based and counts comment lines; problems
    /// with the file as a whole (no header, no rows, a missing year) name its last line.
    #[error("calendar data line {line}: {reason}")]
    BadData { line: usize, reason: String },
    /// The arithmetic would scan more than [`MAX_SPAN_DAYS`] calendar days (or leave the range
    /// of representable dates).
    #[error("working-day arithmetic is limited to {MAX_SPAN_DAYS} calendar days")]
    BeyondHorizon,
}

/// A working-day calendar. Implementations must be pure (no I/O at call time).
pub trait WorkingCalendar: Send + Sync + std::fmt::Debug {
    /// Whether `date` (a local date in Asia/Shanghai) is a working day.
    fn is_working_day(&self, date: NaiveDate) -> Result<bool, CalendarError>;
    /// A short version label recorded with every deadline, e.g. "cn-official-2020-2026" or
    /// "weekdays".
    fn version(&self) -> &str;
}

pub fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Monday–Friday, every year (used in tests and before official data exists).
#[derive(Debug, Clone, Default)]
pub struct WeekdayCalendar;

impl WorkingCalendar for WeekdayCalendar {
    fn is_working_day(&self, date: NaiveDate) -> Result<bool, CalendarError> {
        Ok(!is_weekend(date))
    }

    fn version(&self) -> &str {
        "weekdays"
    }
}

/// Official PRC calendar: weekdays overridden per date by holidays (`off`) and adjusted working
/// weekends (`work`). Covers an explicit, contiguous range of years; any date outside them is
/// [`CalendarError::YearNotCovered`], never a guess.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OfficialCalendar {
    /// The years whose official data is known (not necessarily contiguous once published by
    /// event: a year is covered exactly when its data was published).
    years: BTreeSet<i32>,
    /// Per-date overrides: `true` = adjusted working day, `false` = public holiday.
    overrides: BTreeMap<NaiveDate, bool>,
    version: String,
}

impl OfficialCalendar {
    /// The embedded official data (2020–2026), version `"cn-official-2020-2026"`.
    ///
    /// This parses the data on every call; prefer [`official`], which parses it once.
    pub fn embedded() -> Result<Self, CalendarError> {
        let mut calendar = Self::from_csv(EMBEDDED_CSV, "")?;
        let years = calendar.covered_years().unwrap_or(0..=0);
        calendar.version = format!("cn-official-{}-{}", years.start(), years.end());
        Ok(calendar)
    }

    /// Parses calendar CSV text: `#` comment lines and blank lines are ignored, the first other
    /// line must be the header `date,kind,festival`, then one row per date with `date` as
    /// `YYYY-MM-DD`, `kind` either `off` (public holiday) or `work` (adjusted working weekend) and
    /// a non-empty `festival` name.
    ///
    /// The covered years are those from the minimum to the maximum year seen in the data. The
    /// data is rejected ([`CalendarError::BadData`]) if it has no rows, a malformed row, a date
    /// listed twice, a `work` row on a Monday–Friday (which would be meaningless), or a year
    /// inside the covered range without any row (every real year has at least New Year's Day, so
    /// a missing year means missing data, which must not be silently read as plain weekdays).
    pub fn from_csv(text: &str, version: impl Into<String>) -> Result<Self, CalendarError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut overrides: BTreeMap<NaiveDate, bool> = BTreeMap::new();
        let mut row_lines: BTreeMap<NaiveDate, usize> = BTreeMap::new();
        let mut seen_header = false;
        let mut last_line = 0;

        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            last_line = line;
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let bad = |reason: String| CalendarError::BadData { line, reason };
            if !seen_header {
                if content != CSV_HEADER {
                    return Err(bad(format!(
                        "expected the header `{CSV_HEADER}`, found `{content}`"
                    )));
                }
                seen_header = true;
                continue;
            }

            let fields: Vec<&str> = content.split(',').map(str::trim).collect();
            let [date, kind, festival] = fields[..] else {
                return Err(bad(format!(
                    "expected 3 fields `date,kind,festival`, found {}",
                    fields.len()
                )));
            };
            let date = NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .map_err(|e| bad(format!("invalid date `{date}` ({e}); expected YYYY-MM-DD")))?;
            let working = match kind {
                "off" => false,
                "work" => true,
                other => {
                    return Err(bad(format!(
                        "invalid kind `{other}`; expected `off` or `work`"
                    )));
                }
            };
            if festival.is_empty() {
                return Err(bad("empty festival name".to_owned()));
            }
            if working && !is_weekend(date) {
                return Err(bad(format!(
                    "{date} is a {}; an adjusted working day (`work`) must be a Saturday or Sunday",
                    date.weekday()
                )));
            }
            if let Some(first) = row_lines.insert(date, line) {
                return Err(bad(format!(
                    "{date} is listed twice (first on line {first})"
                )));
            }
            overrides.insert(date, working);
        }

        let at_end = |reason: String| CalendarError::BadData {
            line: last_line,
            reason,
        };
        if !seen_header {
            return Err(at_end(format!("missing the header `{CSV_HEADER}`")));
        }
        let (Some(first), Some(last)) = (overrides.keys().next(), overrides.keys().next_back())
        else {
            return Err(at_end("no data rows".to_owned()));
        };
        let (first_year, last_year) = (first.year(), last.year());
        let years: BTreeSet<i32> = overrides.keys().map(Datelike::year).collect();
        if let Some(missing) = (first_year..=last_year).find(|y| !years.contains(y)) {
            return Err(at_end(format!(
                "no rows for {missing}, inside the covered years {first_year}-{last_year}"
            )));
        }

        Ok(Self {
            years,
            overrides,
            version: version.into(),
        })
    }

    /// A calendar that covers no year yet (every date is [`CalendarError::YearNotCovered`]);
    /// years are added with [`OfficialCalendar::publish_year`].
    pub fn empty(version: impl Into<String>) -> Self {
        Self {
            years: BTreeSet::new(),
            overrides: BTreeMap::new(),
            version: version.into(),
        }
    }

    /// The smallest range holding every covered year (`None` when none is covered yet).
    pub fn covered_years(&self) -> Option<RangeInclusive<i32>> {
        Some(*self.years.first()?..=*self.years.last()?)
    }

    /// Whether the official data of `year` is known.
    pub fn covers(&self, year: i32) -> bool {
        self.years.contains(&year)
    }

    /// Every covered year, ascending.
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.iter().copied()
    }

    /// The per-date overrides of one year: `true` = adjusted working day, `false` = holiday.
    pub fn overrides_in(&self, year: i32) -> impl Iterator<Item = (NaiveDate, bool)> + '_ {
        // A few dozen overrides per year: a filtered scan is simpler than a checked range.
        self.overrides
            .iter()
            .filter(move |(date, _)| date.year() == year)
            .map(|(date, working)| (*date, *working))
    }

    /// Adds a year's official data: `overrides` maps each holiday to `false` and each adjusted
    /// working weekend to `true`; every other date of the year follows Monday–Friday. The caller
    /// (the SLA-rules aggregate) has validated the dates.
    pub fn publish_year(
        &mut self,
        year: i32,
        overrides: impl IntoIterator<Item = (NaiveDate, bool)>,
    ) {
        self.years.insert(year);
        self.overrides
            .extend(overrides.into_iter().filter(|(d, _)| d.year() == year));
    }

    /// Sets one date to working (`true`) or not; a date that then agrees with Monday–Friday
    /// needs no override and is stored without one.
    pub fn correct_date(&mut self, date: NaiveDate, working: bool) {
        if working != is_weekend(date) {
            self.overrides.remove(&date);
        } else {
            self.overrides.insert(date, working);
        }
    }

    pub fn set_version(&mut self, version: impl Into<String>) {
        self.version = version.into();
    }
}

impl WorkingCalendar for OfficialCalendar {
    fn is_working_day(&self, date: NaiveDate) -> Result<bool, CalendarError> {
        if !self.covers(date.year()) {
            return Err(CalendarError::YearNotCovered(date.year()));
        }
        Ok(match self.overrides.get(&date) {
            Some(&working) => working,
            None => !is_weekend(date),
        })
    }

    fn version(&self) -> &str {
        &self.version
    }
}

/// The embedded official calendar (2020–2026), parsed once on first use.
///
/// The embedded data is compiled into the binary and verified by the unit test
/// `embedded_data_parses_and_covers_2020_to_2026`, so parsing it cannot fail at run time.
pub fn official() -> &'static OfficialCalendar {
    static OFFICIAL: OnceLock<OfficialCalendar> = OnceLock::new();
    OFFICIAL.get_or_init(|| OfficialCalendar::embedded().expect("embedded calendar data is valid"))
}

/// The local (Asia/Shanghai) date of an instant ([`CalendarError::BeyondHorizon`] only at the
/// very end of the representable range).
fn local_date(t: DateTime<Utc>) -> Result<NaiveDate, CalendarError> {
    let utc = t.naive_utc();
    let offset = TZ.offset_from_utc_datetime(&utc).fix();
    utc.checked_add_offset(offset)
        .map(|local| local.date())
        .ok_or(CalendarError::BeyondHorizon)
}

/// The first instant of local (Asia/Shanghai) `date`, in UTC: 00:00 local.
fn local_midnight(date: NaiveDate) -> Result<DateTime<Utc>, CalendarError> {
    let naive = date.and_time(NaiveTime::MIN);
    match TZ.from_local_datetime(&naive) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Ok(t.with_timezone(&Utc)),
        // Local midnight was skipped by a DST change only in 1919–1949 (checked by a test); the
        // day then starts at the change, i.e. midnight read with the offset in effect before it.
        LocalResult::None => {
            let before = naive
                .checked_sub_signed(TimeDelta::days(1))
                .ok_or(CalendarError::BeyondHorizon)?;
            let offset = TZ.offset_from_utc_datetime(&before).fix();
            naive
                .checked_sub_offset(offset)
                .map(|utc| utc.and_utc())
                .ok_or(CalendarError::BeyondHorizon)
        }
    }
}

/// 24:00 local at the end of `date` (= 00:00 local of the next day), in UTC.
fn end_of_local_day(date: NaiveDate) -> Result<DateTime<Utc>, CalendarError> {
    local_midnight(date.succ_opt().ok_or(CalendarError::BeyondHorizon)?)
}

/// "N working days from instant `from`", counted the Chinese administrative way: the day the
/// period starts (the local date of `from` in Asia/Shanghai) is not counted, whether or not it is
/// a working day, and the period ends at 24:00 local of the N-th working day after it, i.e. at
/// 00:00 local of the following day, returned in UTC.
///
/// `n == 0` returns the end (24:00 local) of `from`'s own local day.
///
/// Only the dates after `from`'s local date are consulted, so starting on an uncovered date is
/// fine as long as the days counted are covered; reaching a date in an uncovered year gives
/// [`CalendarError::YearNotCovered`] for that year. If the N-th working day is not found within
/// [`MAX_SPAN_DAYS`] days, the result is [`CalendarError::BeyondHorizon`].
pub fn add_working_days(
    cal: &dyn WorkingCalendar,
    from: DateTime<Utc>,
    n: u32,
) -> Result<DateTime<Utc>, CalendarError> {
    if n > MAX_SPAN_DAYS {
        return Err(CalendarError::BeyondHorizon);
    }
    let mut date = local_date(from)?;
    let mut found = 0;
    let mut scanned = 0;
    while found < n {
        if scanned == MAX_SPAN_DAYS {
            return Err(CalendarError::BeyondHorizon);
        }
        date = date.succ_opt().ok_or(CalendarError::BeyondHorizon)?;
        scanned += 1;
        if cal.is_working_day(date)? {
            found += 1;
        }
    }
    end_of_local_day(date)
}

/// The number of working days `d` with `local_date(from) < d <= local_date(to)` (local dates in
/// Asia/Shanghai); 0 if `to`'s local date is not after `from`'s.
///
/// This is the inverse of [`add_working_days`]: for `n >= 1`,
/// `working_days_between(t, add_working_days(t, n)? - 1ns) == n`.
///
/// Every date in the span is consulted, so a span reaching into an uncovered year gives
/// [`CalendarError::YearNotCovered`]; a span longer than [`MAX_SPAN_DAYS`] days gives
/// [`CalendarError::BeyondHorizon`].
pub fn working_days_between(
    cal: &dyn WorkingCalendar,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<u32, CalendarError> {
    let (start, end) = (local_date(from)?, local_date(to)?);
    if end <= start {
        return Ok(0);
    }
    if (end - start).num_days() > i64::from(MAX_SPAN_DAYS) {
        return Err(CalendarError::BeyondHorizon);
    }
    let mut count = 0;
    for date in start.iter_days().skip(1).take_while(|d| *d <= end) {
        if cal.is_working_day(date)? {
            count += 1;
        }
    }
    Ok(count)
}

/// Clock hours: `from + n` hours (no calendar involved). Saturates at the latest representable
/// instant instead of overflowing.
pub fn add_hours(from: DateTime<Utc>, n: u32) -> DateTime<Utc> {
    from.checked_add_signed(TimeDelta::hours(i64::from(n)))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    /// An instant given as local (UTC+08:00) wall-clock time.
    fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        FixedOffset::east_opt(8 * 3600)
            .unwrap()
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn embedded_data_parses_and_covers_2020_to_2026() {
        let cal = OfficialCalendar::embedded().expect("embedded data parses");
        assert_eq!(cal.covered_years(), Some(2020..=2026));
        assert_eq!(cal.version(), "cn-official-2020-2026");
        // 256 data rows in the source file.
        assert_eq!(cal.overrides.len(), 256);
        // The memoised calendar is the same data.
        assert_eq!(official().version(), "cn-official-2020-2026");
        assert_eq!(official().overrides, cal.overrides);
    }

    #[test]
    fn embedded_data_has_the_2020_spring_festival() {
        let cal = official();
        // 2020 Spring Festival (extended for COVID-19): off Fri 2020-01-24 through Sun 2020-02-02,
        // with Sun 2020-01-19 an adjusted working day; Mon 2020-02-03 is an ordinary weekday.
        assert_eq!(cal.is_working_day(date(2020, 1, 19)), Ok(true));
        assert_eq!(cal.is_working_day(date(2020, 1, 23)), Ok(true));
        for day in date(2020, 1, 24).iter_days().take(10) {
            assert_eq!(cal.is_working_day(day), Ok(false), "{day}");
        }
        assert_eq!(cal.is_working_day(date(2020, 2, 2)), Ok(false));
        assert_eq!(cal.is_working_day(date(2020, 2, 3)), Ok(true));
        // New Year's Day 2020 (a Wednesday) is off.
        assert_eq!(cal.is_working_day(date(2020, 1, 1)), Ok(false));
    }

    #[test]
    fn national_day_2026() {
        let cal = official();
        // Wed 2026-09-30 10:00 local. Per the data, Oct 1 (Thu) – Oct 7 (Wed) are National Day
        // holidays; Oct 8 (Thu) is not listed, so it is an ordinary working weekday.
        // Sep 30 itself is not counted → the 1st working day is Oct 8, ending at
        // Oct 9 00:00 local = Oct 8 16:00 UTC.
        let start = local(2026, 9, 30, 10, 0);
        assert_eq!(
            add_working_days(cal, start, 1),
            Ok(utc("2026-10-08T16:00:00Z"))
        );
        // 2nd: Fri Oct 9 → Oct 9 16:00 UTC.
        assert_eq!(
            add_working_days(cal, start, 2),
            Ok(utc("2026-10-09T16:00:00Z"))
        );
        // 3rd: Sat Oct 10 is an adjusted working day (`work`) → Oct 10 16:00 UTC.
        assert_eq!(
            add_working_days(cal, start, 3),
            Ok(utc("2026-10-10T16:00:00Z"))
        );
        // 4th: Sun Oct 11 is an ordinary weekend day → Mon Oct 12 → Oct 12 16:00 UTC.
        assert_eq!(
            add_working_days(cal, start, 4),
            Ok(utc("2026-10-12T16:00:00Z"))
        );
        // Under plain weekdays the 1st working day would be Thu Oct 1 instead.
        assert_eq!(
            add_working_days(&WeekdayCalendar, start, 1),
            Ok(utc("2026-10-01T16:00:00Z"))
        );
    }

    #[test]
    fn mid_autumn_2026() {
        // Thu 2026-09-24 09:00 local: Fri Sep 25 – Sun Sep 27 are Mid-autumn holidays, so the 1st
        // working day is Mon Sep 28 → Sep 28 16:00 UTC.
        assert_eq!(
            add_working_days(official(), local(2026, 9, 24, 9, 0), 1),
            Ok(utc("2026-09-28T16:00:00Z"))
        );
    }

    #[test]
    fn adjusted_working_weekend_counts() {
        let cal = official();
        // Sun 2026-09-20 is an adjusted working day (National Day 调休).
        assert_eq!(cal.is_working_day(date(2026, 9, 20)), Ok(true));
        assert_eq!(cal.is_working_day(date(2026, 9, 19)), Ok(false));
        // Fri 2026-09-18 16:00 local + 1: Sat Sep 19 is a weekend day, Sun Sep 20 is worked →
        // ends Sep 21 00:00 local = Sep 20 16:00 UTC.
        assert_eq!(
            add_working_days(cal, local(2026, 9, 18, 16, 0), 1),
            Ok(utc("2026-09-20T16:00:00Z"))
        );
        // Sat 2026-10-10 is an adjusted working day too.
        assert_eq!(cal.is_working_day(date(2026, 10, 10)), Ok(true));
    }

    #[test]
    fn friday_afternoon_plus_one_is_end_of_monday() {
        // Fri 2025-06-13 16:00 local; Sat/Sun are not working and nothing is listed for
        // Jun 13–16, so the 1st working day is Mon Jun 16; 24:00 Monday local = Tue 00:00 local
        // = Mon 16:00 UTC.
        let start = local(2025, 6, 13, 16, 0);
        let expected = utc("2025-06-16T16:00:00Z");
        assert_eq!(add_working_days(official(), start, 1), Ok(expected));
        assert_eq!(add_working_days(&WeekdayCalendar, start, 1), Ok(expected));
    }

    #[test]
    fn the_local_date_is_used_not_the_utc_date() {
        let cal = official();
        // 2026-03-02T17:30Z is Tue 2026-03-03 01:30 local: the start day is Mar 3, so the 1st
        // working day is Wed Mar 4 → Mar 4 16:00 UTC (using the UTC date, Mon Mar 2, would give
        // Mar 3 16:00 UTC).
        assert_eq!(
            add_working_days(cal, utc("2026-03-02T17:30:00Z"), 1),
            Ok(utc("2026-03-04T16:00:00Z"))
        );
        // One second before local midnight it is still Mon Mar 2 locally → 1st is Tue Mar 3.
        assert_eq!(
            add_working_days(cal, utc("2026-03-02T15:59:59Z"), 1),
            Ok(utc("2026-03-03T16:00:00Z"))
        );
        // Exactly local midnight is already Tue Mar 3.
        assert_eq!(
            add_working_days(cal, utc("2026-03-02T16:00:00Z"), 1),
            Ok(utc("2026-03-04T16:00:00Z"))
        );
    }

    #[test]
    fn ten_working_days_across_spring_festival_2026() {
        let cal = official();
        // Start Wed 2026-02-11 09:00 local (not counted). Per the data: Sat Feb 14 is worked,
        // Sun Feb 15 – Mon Feb 23 are off, Sat Feb 28 is worked.
        //   1 Thu Feb 12   2 Fri Feb 13   3 Sat Feb 14 (调休)
        //   (Feb 15–23 off)
        //   4 Tue Feb 24   5 Wed Feb 25   6 Thu Feb 26   7 Fri Feb 27   8 Sat Feb 28 (调休)
        //   (Sun Mar 1 weekend)
        //   9 Mon Mar 2   10 Tue Mar 3
        // → ends Wed Mar 4 00:00 local = Tue Mar 3 16:00 UTC.
        let start = local(2026, 2, 11, 9, 0);
        let end = utc("2026-03-03T16:00:00Z");
        assert_eq!(add_working_days(cal, start, 10), Ok(end));
        assert_eq!(
            working_days_between(cal, start, end - TimeDelta::nanoseconds(1)),
            Ok(10)
        );
        // The 4th working day is the first after the break: Tue Feb 24.
        assert_eq!(
            add_working_days(cal, start, 4),
            Ok(utc("2026-02-24T16:00:00Z"))
        );
        for day in date(2026, 2, 15).iter_days().take(9) {
            assert_eq!(cal.is_working_day(day), Ok(false), "{day}");
        }
    }

    #[test]
    fn zero_working_days_is_end_of_the_local_day() {
        // Wed 2026-09-30 10:00 local → 24:00 Sep 30 local = Sep 30 16:00 UTC, calendar unused.
        let start = local(2026, 9, 30, 10, 0);
        assert_eq!(
            add_working_days(official(), start, 0),
            Ok(utc("2026-09-30T16:00:00Z"))
        );
        // Even on an uncovered date: no date is consulted.
        assert_eq!(
            add_working_days(official(), local(2030, 1, 1, 8, 0), 0),
            Ok(utc("2030-01-01T16:00:00Z"))
        );
        assert_eq!(working_days_between(official(), start, start), Ok(0));
    }

    #[test]
    fn walking_past_the_covered_years_is_an_error() {
        let cal = official();
        // Wed 2026-12-30: Thu Dec 31 is the 1st working day; the 2nd would be in 2027.
        let start = local(2026, 12, 30, 10, 0);
        assert_eq!(
            add_working_days(cal, start, 5),
            Err(CalendarError::YearNotCovered(2027))
        );
        assert_eq!(
            add_working_days(cal, start, 1),
            Ok(utc("2026-12-31T16:00:00Z"))
        );
        assert_eq!(
            working_days_between(cal, start, local(2027, 1, 5, 0, 0)),
            Err(CalendarError::YearNotCovered(2027))
        );
        assert_eq!(
            cal.is_working_day(date(2027, 1, 4)),
            Err(CalendarError::YearNotCovered(2027))
        );
    }

    #[test]
    fn dates_before_the_covered_years_are_an_error() {
        let cal = official();
        assert_eq!(
            cal.is_working_day(date(2019, 12, 31)),
            Err(CalendarError::YearNotCovered(2019))
        );
        // A span including 2019-12-31 consults it.
        assert_eq!(
            working_days_between(cal, local(2019, 12, 30, 9, 0), local(2020, 1, 3, 9, 0)),
            Err(CalendarError::YearNotCovered(2019))
        );
        // Starting on Tue 2019-12-31 is fine: the start day is not counted. Jan 1 2020 is
        // off, Thu Jan 2 is the 1st working day → Jan 2 16:00 UTC.
        assert_eq!(
            add_working_days(cal, local(2019, 12, 31, 9, 0), 1),
            Ok(utc("2020-01-02T16:00:00Z"))
        );
        assert_eq!(
            CalendarError::YearNotCovered(2019).to_string(),
            "the working-day calendar does not cover the year 2019"
        );
    }

    #[test]
    fn weekday_calendar_basics() {
        let cal = WeekdayCalendar;
        assert_eq!(cal.version(), "weekdays");
        assert_eq!(cal.is_working_day(date(2026, 10, 1)), Ok(true)); // Thu (holiday ignored)
        assert_eq!(cal.is_working_day(date(2026, 10, 10)), Ok(false)); // Sat
        assert_eq!(cal.is_working_day(date(2026, 10, 11)), Ok(false)); // Sun
        assert_eq!(cal.is_working_day(date(1900, 1, 1)), Ok(true)); // Mon, any year
        assert_eq!(cal.is_working_day(date(2100, 1, 1)), Ok(true)); // Fri
        // Mon 2025-06-09 09:00 + 5 → Mon Jun 16 (Tue–Fri, then Mon) → Jun 16 16:00 UTC.
        assert_eq!(
            add_working_days(&cal, local(2025, 6, 9, 9, 0), 5),
            Ok(utc("2025-06-16T16:00:00Z"))
        );
        // Sat → Tue local, across a weekend: Mon and Tue → 2.
        assert_eq!(
            working_days_between(&cal, local(2025, 6, 14, 12, 0), local(2025, 6, 17, 12, 0)),
            Ok(2)
        );
        // Reversed spans count 0.
        assert_eq!(
            working_days_between(&cal, local(2025, 6, 17, 12, 0), local(2025, 6, 14, 12, 0)),
            Ok(0)
        );
    }

    #[test]
    fn working_days_between_inverts_add_working_days_over_2025() {
        let calendars: [&dyn WorkingCalendar; 2] = [&WeekdayCalendar, official()];
        for cal in calendars {
            for day in date(2025, 1, 1)
                .iter_days()
                .take_while(|d| d.year() == 2025)
            {
                for (h, m) in [(0, 0), (12, 0), (23, 59)] {
                    let t = TZ
                        .from_local_datetime(&day.and_hms_opt(h, m, 0).unwrap())
                        .single()
                        .unwrap()
                        .with_timezone(&Utc);
                    let mut previous = add_working_days(cal, t, 0).unwrap();
                    for n in 1..=10 {
                        let end = add_working_days(cal, t, n).unwrap();
                        assert!(end > previous, "{} {t} {n}", cal.version());
                        previous = end;
                        let last = end - TimeDelta::nanoseconds(1);
                        assert_eq!(
                            working_days_between(cal, t, last),
                            Ok(n),
                            "{} {t} {n}",
                            cal.version()
                        );
                        // The deadline is local midnight after a working day.
                        let last_day = local_date(last).unwrap();
                        assert_eq!(cal.is_working_day(last_day), Ok(true));
                        assert_eq!(end, local_midnight(last_day.succ_opt().unwrap()).unwrap());
                    }
                }
            }
        }
    }

    #[test]
    fn arithmetic_is_bounded() {
        let t = local(2025, 6, 13, 16, 0);
        assert_eq!(
            add_working_days(&WeekdayCalendar, t, u32::MAX),
            Err(CalendarError::BeyondHorizon)
        );
        // The ends of the representable range are errors, not panics.
        assert_eq!(
            add_working_days(&WeekdayCalendar, DateTime::<Utc>::MAX_UTC, 1),
            Err(CalendarError::BeyondHorizon)
        );
        assert_eq!(
            add_working_days(&WeekdayCalendar, DateTime::<Utc>::MAX_UTC, 0),
            Err(CalendarError::BeyondHorizon)
        );
        assert!(add_working_days(&WeekdayCalendar, DateTime::<Utc>::MIN_UTC, 1).is_ok());
        assert_eq!(
            working_days_between(
                &WeekdayCalendar,
                DateTime::<Utc>::MIN_UTC,
                DateTime::<Utc>::MAX_UTC
            ),
            Err(CalendarError::BeyondHorizon)
        );
        assert_eq!(
            working_days_between(&WeekdayCalendar, t, local(2045, 1, 1, 0, 0)),
            Err(CalendarError::BeyondHorizon)
        );

        /// A broken calendar with no working days at all.
        #[derive(Debug)]
        struct Never;
        impl WorkingCalendar for Never {
            fn is_working_day(&self, _: NaiveDate) -> Result<bool, CalendarError> {
                Ok(false)
            }
            fn version(&self) -> &str {
                "never"
            }
        }
        assert_eq!(
            add_working_days(&Never, t, 1),
            Err(CalendarError::BeyondHorizon)
        );
    }

    #[test]
    fn add_hours_is_clock_time() {
        // 2026-09-30 22:00 local + 4 h = Oct 1 02:00 local, holiday or not.
        assert_eq!(
            add_hours(local(2026, 9, 30, 22, 0), 4),
            local(2026, 10, 1, 2, 0)
        );
        assert_eq!(
            add_hours(local(2026, 9, 30, 22, 0), 0),
            local(2026, 9, 30, 22, 0)
        );
        assert_eq!(
            add_hours(DateTime::<Utc>::MAX_UTC, 1),
            DateTime::<Utc>::MAX_UTC
        );
    }

    #[test]
    fn local_midnight_in_shanghai() {
        // Since 1950 (China's 1986–1991 DST changed at 02:00) every local midnight exists exactly
        // once, so the deadline of any day is simply 00:00 local of the next.
        for day in date(1950, 1, 1)
            .iter_days()
            .take_while(|d| d.year() <= 2100)
        {
            assert!(
                matches!(
                    TZ.from_local_datetime(&day.and_time(NaiveTime::MIN)),
                    LocalResult::Single(_)
                ),
                "{day}"
            );
        }
        // 1949-05-01 began at 01:00 +09:00 (clocks jumped from 24:00 +08:00), so that day starts,
        // and 1949-04-30 ends, at 1949-04-30T16:00Z.
        assert_eq!(
            local_midnight(date(1949, 5, 1)),
            Ok(utc("1949-04-30T16:00:00Z"))
        );
        // With Sat 1949-04-30 worked, Fri 1949-04-29 12:00 local + 1 ends at that instant.
        let cal =
            OfficialCalendar::from_csv("date,kind,festival\n1949-04-30,work,Test\n", "t").unwrap();
        assert_eq!(
            add_working_days(&cal, utc("1949-04-29T04:00:00Z"), 1),
            Ok(utc("1949-04-30T16:00:00Z"))
        );
        // Ordinary days: 00:00 local = 16:00 UTC of the previous date.
        assert_eq!(
            local_midnight(date(2026, 1, 1)),
            Ok(utc("2025-12-31T16:00:00Z"))
        );
    }

    const GOOD: &str = "# comment\n\
                        date,kind,festival\n\
                        2024-01-01,off,New Year's Day\n\
                        2024-02-04,work,Spring Festival\n";

    #[test]
    fn from_csv_parses_custom_data() {
        let cal = OfficialCalendar::from_csv(GOOD, "test-2024").unwrap();
        assert_eq!(cal.covered_years(), Some(2024..=2024));
        assert_eq!(cal.version(), "test-2024");
        assert_eq!(cal.is_working_day(date(2024, 1, 1)), Ok(false)); // Mon, holiday
        assert_eq!(cal.is_working_day(date(2024, 1, 2)), Ok(true)); // Tue
        assert_eq!(cal.is_working_day(date(2024, 2, 4)), Ok(true)); // Sun, adjusted
        assert_eq!(cal.is_working_day(date(2024, 2, 3)), Ok(false)); // Sat
        assert_eq!(
            cal.is_working_day(date(2025, 1, 2)),
            Err(CalendarError::YearNotCovered(2025))
        );
        // CRLF line endings and blank lines are accepted.
        let crlf = GOOD.replace('\n', "\r\n\r\n");
        assert!(OfficialCalendar::from_csv(&crlf, "v").is_ok());
    }

    fn bad_line(text: &str) -> (usize, String) {
        match OfficialCalendar::from_csv(text, "v") {
            Err(CalendarError::BadData { line, reason }) => (line, reason),
            other => panic!("expected BadData, got {other:?}"),
        }
    }

    #[test]
    fn from_csv_rejects_malformed_lines_naming_the_line() {
        let with = |row: &str| format!("{GOOD}{row}\n");
        // Line numbers are 1-based and count the comment line: the appended row is line 5.
        let (line, reason) = bad_line(&with("2024-02-30,off,Nonexistent"));
        assert_eq!(line, 5);
        assert!(reason.contains("invalid date"), "{reason}");
        let (line, reason) = bad_line(&with("2024-05-01,holiday,Labour Day"));
        assert_eq!(line, 5);
        assert!(reason.contains("invalid kind"), "{reason}");
        let (line, reason) = bad_line(&with("2024-05-01,off"));
        assert_eq!(line, 5);
        assert!(reason.contains("3 fields"), "{reason}");
        let (line, _) = bad_line(&with("2024-05-01,off,Labour Day,extra"));
        assert_eq!(line, 5);
        let (line, _) = bad_line(&with("2024-05-01,off,"));
        assert_eq!(line, 5);
        let (line, reason) = bad_line(&with("2024-01-01,off,Again"));
        assert_eq!(line, 5);
        assert!(reason.contains("first on line 3"), "{reason}");
        // Wed 2024-05-08 cannot be an adjusted working day.
        let (line, reason) = bad_line(&with("2024-05-08,work,Labour Day"));
        assert_eq!(line, 5);
        assert!(reason.contains("Saturday or Sunday"), "{reason}");
        // Display names the line.
        let err = OfficialCalendar::from_csv(&with("oops"), "v").unwrap_err();
        assert!(
            err.to_string().starts_with("calendar data line 5: "),
            "{err}"
        );
    }

    #[test]
    fn from_csv_rejects_bad_files() {
        // Wrong header on line 2.
        assert_eq!(bad_line("# c\ndate,type,name\n2024-01-01,off,X\n").0, 2);
        // A data row before any header.
        assert_eq!(bad_line("2024-01-01,off,X\n").0, 1);
        // Nothing at all / only comments.
        assert_eq!(bad_line("").0, 0);
        assert_eq!(bad_line("# only\n# comments\n").0, 2);
        // Header but no rows.
        assert_eq!(bad_line("date,kind,festival\n").0, 1);
        // A gap year inside the range would otherwise be read as plain weekdays.
        let (line, reason) = bad_line("date,kind,festival\n2023-01-02,off,X\n2025-01-01,off,Y\n");
        assert_eq!(line, 3);
        assert!(reason.contains("2024"), "{reason}");
    }

    // --- The SLA engine's acceptance cases (issue "SLA engine"), hand-computed ---------------

    #[test]
    fn ten_working_days_across_national_day_2024() {
        // Fri 2024-09-27 10:00 local. Working days after it: Sun 09-29 (调休), Mon 09-30, then
        // 10-01..10-07 off, Tue 10-08, Wed 10-09, Thu 10-10, Fri 10-11, Sat 10-12 (调休),
        // Mon 10-14, Tue 10-15, Wed 10-16 = the 10th → 2024-10-16 24:00 +08:00.
        let cal = official();
        let due = add_working_days(cal, local(2024, 9, 27, 10, 0), 10).unwrap();
        assert_eq!(due, utc("2024-10-16T16:00:00Z"));
    }

    #[test]
    fn a_two_hour_contact_deadline_across_midnight() {
        // 23:30 local on Mon 2026-03-02 + 2 clock hours = 01:30 local on Tue 03-03.
        assert_eq!(
            add_hours(local(2026, 3, 2, 23, 30), 2),
            utc("2026-03-02T17:30:00Z")
        );
    }

    #[test]
    fn one_working_day_from_spring_festival_eve_2026() {
        // 除夕 is Mon 2026-02-16; 02-15..02-23 are off, so the next working day is Tue 02-24.
        let due = add_working_days(official(), local(2026, 2, 16, 10, 0), 1).unwrap();
        assert_eq!(due, utc("2026-02-24T16:00:00Z"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Adding N working days and counting them back gives N, and the result always ends
            /// a working day (it is local midnight right after one).
            #[test]
            fn add_then_count_gives_n_and_ends_a_working_day(
                minutes in 0i64..(6 * 365 * 24 * 60),
                n in 1u32..=30,
            ) {
                let cal = official();
                let from = utc("2020-01-01T00:00:00Z") + chrono::Duration::minutes(minutes);
                match add_working_days(cal, from, n) {
                    Ok(due) => {
                        prop_assert_eq!(
                            working_days_between(cal, from, due - chrono::Duration::nanoseconds(1)).unwrap(),
                            n
                        );
                        let last = (due - chrono::Duration::seconds(1)).with_timezone(&TZ);
                        prop_assert_eq!(due.with_timezone(&TZ).time(), chrono::NaiveTime::MIN);
                        prop_assert!(cal.is_working_day(last.date_naive()).unwrap());
                    }
                    // Near the end of 2026 the walk may leave the covered years: that must be the error.
                    Err(e) => prop_assert_eq!(e, CalendarError::YearNotCovered(2027)),
                }
            }
        }
    }
}
