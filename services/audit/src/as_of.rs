//! Reading an "as of" instant from a user: an RFC 3339 instant, or a date meaning the end of that
//! day in Beijing time.

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};

/// The instant an audit read stands at. Events recorded at or before it are included
/// (`recorded_at <= as_of`).
///
/// - An RFC 3339 instant is taken as is: `2026-10-05T18:00:00+08:00`.
/// - A date `YYYY-MM-DD` means "as it stood on that day": every event recorded that day in
///   Beijing time is included, so it is the last microsecond of the day (event times are kept
///   to the microsecond): `2026-10-05` → `2026-10-05T15:59:59.999999Z`.
pub fn parse_as_of(v: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| format!("{v:?} is neither an RFC 3339 instant nor a date (YYYY-MM-DD)"))?;
    let next_midnight = date
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .ok_or("the date is out of range")?;
    // Midnight exists on every day in Asia/Shanghai (no daylight saving since 1991).
    linkage_domain::calendar::TZ
        .from_local_datetime(&next_midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc) - TimeDelta::microseconds(1))
        .ok_or_else(|| "the date has no midnight in Beijing time".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_is_the_end_of_that_day_in_beijing() {
        assert_eq!(
            parse_as_of("2026-10-05").unwrap(),
            "2026-10-05T15:59:59.999999Z"
                .parse::<DateTime<Utc>>()
                .unwrap()
        );
    }

    #[test]
    fn an_instant_is_taken_as_is() {
        assert_eq!(
            parse_as_of("2026-10-05T18:00:00+08:00").unwrap(),
            "2026-10-05T10:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert!(parse_as_of("yesterday").is_err());
        assert!(parse_as_of("2026-13-01").is_err());
    }
}
