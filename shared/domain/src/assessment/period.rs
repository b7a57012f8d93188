//! Assessment periods: a month (`2026-07`), a quarter (`2026-Q3`) or a year (`2026`), each the
//! whole of those days in Beijing time (the district's calendar), never UTC days.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::TZ;
use crate::values::ParseError;

/// A calendar month in Beijing time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Month {
    year: i32,
    /// 1–12.
    month: u32,
}

/// A calendar quarter in Beijing time: Q1 = January–March.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Quarter {
    year: i32,
    /// 1–4.
    quarter: u32,
}

/// The period a ranking or a notice covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Period {
    Month(Month),
    Quarter(Quarter),
    Year(i32),
}

/// Years a period may name: the calendar data's range with room around it, so a typo such as
/// `20266` is refused rather than computed.
const YEARS: std::ops::RangeInclusive<i32> = 2000..=2100;

fn year(s: &str) -> Result<i32, ParseError> {
    let y: i32 = s
        .parse()
        .ok()
        .filter(|_| s.len() == 4 && s.chars().all(|c| c.is_ascii_digit()))
        .ok_or_else(|| ParseError(format!("invalid year {s:?}: expected YYYY")))?;
    if YEARS.contains(&y) {
        Ok(y)
    } else {
        Err(ParseError(format!(
            "year {y} is out of range ({}-{})",
            YEARS.start(),
            YEARS.end()
        )))
    }
}

/// The first instant of a Beijing-time day.
fn beijing_midnight(date: NaiveDate) -> DateTime<Utc> {
    // Asia/Shanghai has had no daylight saving since 1991: every midnight exists once.
    TZ.from_local_datetime(&date.and_time(chrono::NaiveTime::MIN))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN)))
}

impl Month {
    pub fn new(year: i32, month: u32) -> Option<Self> {
        (YEARS.contains(&year) && (1..=12).contains(&month)).then_some(Self { year, month })
    }

    /// The Beijing-time month `at` falls in.
    pub fn of(at: DateTime<Utc>) -> Self {
        let local = at.with_timezone(&TZ);
        Self {
            year: local.year(),
            month: local.month(),
        }
    }

    pub fn year(&self) -> i32 {
        self.year
    }

    pub fn month(&self) -> u32 {
        self.month
    }

    pub fn quarter(&self) -> Quarter {
        Quarter {
            year: self.year,
            quarter: (self.month - 1) / 3 + 1,
        }
    }

    pub fn next(&self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// The month's first instant.
    pub fn start(&self) -> DateTime<Utc> {
        beijing_midnight(NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or_default())
    }

    /// The next month's first instant (exclusive end).
    pub fn end(&self) -> DateTime<Utc> {
        self.next().start()
    }

    fn parse_str(s: &str) -> Result<Self, ParseError> {
        let bad = || ParseError(format!("invalid month {s:?}: expected YYYY-MM"));
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        if m.len() != 2 || !m.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let month: u32 = m.parse().map_err(|_| bad())?;
        Self::new(year(y)?, month).ok_or_else(bad)
    }
}

impl Quarter {
    pub fn new(year: i32, quarter: u32) -> Option<Self> {
        (YEARS.contains(&year) && (1..=4).contains(&quarter)).then_some(Self { year, quarter })
    }

    pub fn of(at: DateTime<Utc>) -> Self {
        Month::of(at).quarter()
    }

    pub fn year(&self) -> i32 {
        self.year
    }

    pub fn quarter(&self) -> u32 {
        self.quarter
    }

    /// Its three months, in order.
    pub fn months(&self) -> [Month; 3] {
        let first = (self.quarter - 1) * 3 + 1;
        [0, 1, 2].map(|i| Month {
            year: self.year,
            month: first + i,
        })
    }

    fn parse_str(s: &str) -> Result<Self, ParseError> {
        let bad = || ParseError(format!("invalid quarter {s:?}: expected YYYY-Qn (n = 1-4)"));
        let (y, q) = s.split_once("-Q").ok_or_else(bad)?;
        let quarter: u32 = q.parse().ok().filter(|_| q.len() == 1).ok_or_else(bad)?;
        Self::new(year(y)?, quarter).ok_or_else(bad)
    }
}

impl Period {
    /// Its months, in order.
    pub fn months(&self) -> Vec<Month> {
        match self {
            Self::Month(m) => vec![*m],
            Self::Quarter(q) => q.months().to_vec(),
            Self::Year(y) => (1..=12).map(|m| Month { year: *y, month: m }).collect(),
        }
    }

    /// The quarters whose style evaluations (作风评议) count for it: a month takes its quarter's,
    /// a year all four.
    pub fn quarters(&self) -> Vec<Quarter> {
        match self {
            Self::Month(m) => vec![m.quarter()],
            Self::Quarter(q) => vec![*q],
            Self::Year(y) => (1..=4)
                .map(|q| Quarter {
                    year: *y,
                    quarter: q,
                })
                .collect(),
        }
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.months()[0].start()
    }

    /// Exclusive end: the first instant after the period.
    pub fn end(&self) -> DateTime<Utc> {
        self.months()
            .last()
            .map_or_else(|| self.start(), Month::end)
    }

    /// Whether `at` falls inside the period.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start() <= at && at < self.end()
    }

    fn parse_str(s: &str) -> Result<Self, ParseError> {
        if s.contains("-Q") {
            Quarter::parse_str(s).map(Self::Quarter)
        } else if s.contains('-') {
            Month::parse_str(s).map(Self::Month)
        } else {
            year(s).map(Self::Year).map_err(|_| {
                ParseError(format!(
                    "invalid period {s:?}: expected a month (YYYY-MM), a quarter (YYYY-Qn) or a year (YYYY)"
                ))
            })
        }
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl fmt::Display for Quarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-Q{}", self.year, self.quarter)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Month(m) => m.fmt(f),
            Self::Quarter(q) => q.fmt(f),
            Self::Year(y) => write!(f, "{y:04}"),
        }
    }
}

macro_rules! string_round_trip {
    ($ty:ty) => {
        impl FromStr for $ty {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::parse_str(s)
            }
        }
        impl TryFrom<String> for $ty {
            type Error = ParseError;
            fn try_from(s: String) -> Result<Self, ParseError> {
                Self::parse_str(&s)
            }
        }
        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.to_string()
            }
        }
    };
}
string_round_trip!(Month);
string_round_trip!(Quarter);
string_round_trip!(Period);

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn months_are_beijing_months() {
        // 2026-06-30 16:00 UTC is 2026-07-01 00:00 in Beijing.
        assert_eq!(Month::of(t("2026-06-30T15:59:59Z")).to_string(), "2026-06");
        assert_eq!(Month::of(t("2026-06-30T16:00:00Z")).to_string(), "2026-07");
        let july: Month = "2026-07".parse().unwrap();
        assert_eq!(july.start(), t("2026-06-30T16:00:00Z"));
        assert_eq!(july.end(), t("2026-07-31T16:00:00Z"));
        assert_eq!(july.quarter().to_string(), "2026-Q3");
        let dec: Month = "2026-12".parse().unwrap();
        assert_eq!(dec.next().to_string(), "2027-01");
    }

    #[test]
    fn periods_parse_and_span() {
        let q: Period = "2026-Q3".parse().unwrap();
        assert_eq!(
            q.months()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["2026-07", "2026-08", "2026-09"]
        );
        assert_eq!(q.start(), t("2026-06-30T16:00:00Z"));
        assert_eq!(q.end(), t("2026-09-30T16:00:00Z"));
        assert!(q.contains(t("2026-09-30T15:59:59Z")));
        assert!(!q.contains(t("2026-09-30T16:00:00Z")));
        let y: Period = "2026".parse().unwrap();
        assert_eq!(y.months().len(), 12);
        assert_eq!(y.quarters().len(), 4);
        let m: Period = "2026-08".parse().unwrap();
        assert_eq!(m.quarters()[0].to_string(), "2026-Q3");
        assert_eq!(serde_json::to_string(&q).unwrap(), "\"2026-Q3\"");
        for bad in [
            "2026-13", "2026-Q5", "2026-Q0", "26-07", "2026-7", "20266", "", "2026-Q", "1999",
        ] {
            assert!(bad.parse::<Period>().is_err(), "{bad:?}");
        }
    }
}
