//! Query-string parsing: every parameter is known, given at most once and valid, or the request
//! is refused with a 422 naming it.

use std::collections::HashMap;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use linkage_http::error::ApiError;

/// The query string as name → value, refusing unknown and repeated names.
#[derive(Debug)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(
        query: Result<Query<Vec<(String, String)>>, QueryRejection>,
        allowed: &[&str],
    ) -> Result<Self, ApiError> {
        let Query(pairs) = query
            .map_err(|e| ApiError::Malformed(format!("the query string: {}", e.body_text())))?;
        let mut map = HashMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::invalid(
                    name.clone(),
                    format!(
                        "unknown query parameter {name:?}; expected one of: {}",
                        allowed.join(", ")
                    ),
                ));
            }
            if map.contains_key(&name) {
                return Err(ApiError::invalid(
                    name.clone(),
                    format!("the query parameter {name:?} is given more than once"),
                ));
            }
            map.insert(name, value);
        }
        Ok(Self(map))
    }

    /// The raw value of `name`, if given (an empty value counts as given).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `name` parsed by `parse`, whose error message is shown to the caller.
    pub fn get<T, E: std::fmt::Display>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, ApiError> {
        self.raw(name)
            .map(|v| parse(v).map_err(|e| ApiError::invalid(name, format!("{name}: {e}"))))
            .transpose()
    }

    /// `name` through its `FromStr` (domain value types say what they expect).
    pub fn parsed<T>(&self, name: &str) -> Result<Option<T>, ApiError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        self.get(name, str::parse::<T>)
    }

    /// A start instant: RFC 3339, or a date meaning its first instant in Beijing time.
    pub fn instant_from(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.get(name, |v| parse_instant(v, false))
    }

    /// An end instant (exclusive): RFC 3339, or a date meaning the whole of that day in Beijing
    /// time (up to the next day's first instant).
    pub fn instant_to(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.get(name, |v| parse_instant(v, true))
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.get(name, |v| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("expected true or false"),
        })
    }
}

fn parse_instant(v: &str, end_of_day: bool) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| format!("{v:?} is neither an RFC 3339 instant nor a date (YYYY-MM-DD)"))?;
    let date = if end_of_day {
        date.succ_opt().ok_or("the date is out of range")?
    } else {
        date
    };
    let midnight = date
        .and_hms_opt(0, 0, 0)
        .ok_or("the date is out of range")?;
    // Midnight exists on every day in Asia/Shanghai (no daylight saving since 1991).
    linkage_domain::calendar::TZ
        .from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| "the date has no midnight in Beijing time".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_beijing_days() {
        assert_eq!(
            parse_instant("2026-03-02", false).unwrap(),
            "2026-03-01T16:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            parse_instant("2026-03-02", true).unwrap(),
            "2026-03-02T16:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            parse_instant("2026-03-02T08:00:00+08:00", true).unwrap(),
            "2026-03-02T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert!(parse_instant("yesterday", false).is_err());
        assert!(parse_instant("2026-02-30", false).is_err());
    }
}
