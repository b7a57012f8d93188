//! The "2110" deadlines (seed 001: contact within 2 hours, initial feedback within 1 working day,
//! resolution within 10 working days) and the limits on extensions and rework.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::{CalendarError, WorkingCalendar, add_hours, add_working_days};
use crate::values::DeadlineKind;

/// How long each step may take. Defaults are the seeds' "2110".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaPolicy {
    /// Clock hours from assignment to first contact (2).
    pub contact_hours: u32,
    /// Working days from assignment to initial feedback (1).
    pub feedback_working_days: u32,
    /// Working days from assignment to resolution (10).
    pub resolution_working_days: u32,
    /// Working days a reworked appeal gets to be resolved again.
    pub rework_working_days: u32,
    /// How many extensions one appeal may be granted in all.
    pub max_extensions: u32,
    /// The longest single extension, in working days.
    pub max_extension_working_days: u32,
    /// Working days a supervision (督办) gives by default.
    pub supervision_working_days: u32,
}

impl Default for SlaPolicy {
    fn default() -> Self {
        Self {
            contact_hours: 2,
            feedback_working_days: 1,
            resolution_working_days: 10,
            rework_working_days: 5,
            max_extensions: 2,
            max_extension_working_days: 10,
            supervision_working_days: 3,
        }
    }
}

/// The deadlines in force for an assignment, computed once and stored in the event that set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadlines {
    pub contact_due: DateTime<Utc>,
    pub feedback_due: DateTime<Utc>,
    pub resolution_due: DateTime<Utc>,
}

impl Deadlines {
    /// The deadlines of an assignment made at `at`.
    pub fn for_assignment(
        policy: &SlaPolicy,
        calendar: &dyn WorkingCalendar,
        at: DateTime<Utc>,
    ) -> Result<Self, CalendarError> {
        Ok(Self {
            contact_due: add_hours(at, policy.contact_hours),
            feedback_due: add_working_days(calendar, at, policy.feedback_working_days)?,
            resolution_due: add_working_days(calendar, at, policy.resolution_working_days)?,
        })
    }

    pub fn due(&self, which: DeadlineKind) -> DateTime<Utc> {
        match which {
            DeadlineKind::Contact => self.contact_due,
            DeadlineKind::Feedback => self.feedback_due,
            DeadlineKind::Resolution => self.resolution_due,
        }
    }
}

/// A working-day deadline pushed back by `n` more working days. Deadlines end at 24:00 local, so
/// counting starts from the last working day they include (one second before they end).
pub fn extend_deadline(
    calendar: &dyn WorkingCalendar,
    due: DateTime<Utc>,
    n: u32,
) -> Result<DateTime<Utc>, CalendarError> {
    add_working_days(calendar, due - Duration::seconds(1), n)
}

/// 红绿灯: how close an open deadline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrafficLight {
    /// More than the warning share of the allowed time is left.
    Green,
    /// Within the last `yellow_share` of the allowed time.
    Yellow,
    /// The deadline has passed.
    Red,
}

impl TrafficLight {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Green => "green",
            Self::Yellow => "yellow",
            Self::Red => "red",
        }
    }

    /// The light of a deadline that runs from `start` to `due`, seen at `now`. Red at and after
    /// `due` (deadlines are exclusive ends); yellow when at most `yellow_share` (0–1) of the
    /// allowed time is left; green before that.
    pub fn at(
        start: DateTime<Utc>,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
        yellow_share: f64,
    ) -> Self {
        if now >= due {
            return Self::Red;
        }
        let allowed = (due - start).num_seconds().max(1) as f64;
        let left = (due - now).num_seconds() as f64;
        if left <= allowed * yellow_share.clamp(0.0, 1.0) {
            Self::Yellow
        } else {
            Self::Green
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn traffic_lights_follow_the_share_of_time_left() {
        // Contact: assigned 01:00Z, due 03:00Z (2 h allowed; the last 25% is the last 30 min).
        let (start, due) = (t("2026-03-02T01:00:00Z"), t("2026-03-02T03:00:00Z"));
        assert_eq!(
            TrafficLight::at(start, due, t("2026-03-02T01:00:00Z"), 0.25),
            TrafficLight::Green
        );
        assert_eq!(
            TrafficLight::at(start, due, t("2026-03-02T02:29:59Z"), 0.25),
            TrafficLight::Green
        );
        assert_eq!(
            TrafficLight::at(start, due, t("2026-03-02T02:30:00Z"), 0.25),
            TrafficLight::Yellow
        );
        assert_eq!(
            TrafficLight::at(start, due, t("2026-03-02T02:59:59Z"), 0.25),
            TrafficLight::Yellow
        );
        assert_eq!(
            TrafficLight::at(start, due, t("2026-03-02T03:00:00Z"), 0.25),
            TrafficLight::Red
        );
        assert_eq!(
            TrafficLight::at(start, due, t("2026-03-09T00:00:00Z"), 0.25),
            TrafficLight::Red
        );
        // A zero share never warns; a full share always does.
        assert_eq!(
            TrafficLight::at(start, due, t("2026-03-02T02:59:00Z"), 0.0),
            TrafficLight::Green
        );
        assert_eq!(
            TrafficLight::at(start, due, start, 1.0),
            TrafficLight::Yellow
        );
    }
}
