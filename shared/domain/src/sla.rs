//! The "2110" deadlines (seed 001: contact within 2 hours, initial feedback within 1 working day,
//! resolution within 10 working days) and the limits on extensions and rework.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::{CalendarError, WorkingCalendar, add_working_days};
use crate::values::{Category, Channel, DeadlineKind};

/// How long each step may take. Defaults are the seeds' "2110". Also the body of the admin's
/// "set SLA policy" command, so unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicy {
    /// Clock minutes from assignment to first contact (120 = the seeds' 2 hours). Minutes, not
    /// hours, so a district (or a test) can set a shorter contact window.
    pub contact_minutes: u32,
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
            contact_minutes: 120,
            feedback_working_days: 1,
            resolution_working_days: 10,
            rework_working_days: 5,
            max_extensions: 2,
            max_extension_working_days: 10,
            supervision_working_days: 3,
        }
    }
}

impl SlaPolicy {
    /// The limits an admin may set: every period at least 1 and at most a working year, so a
    /// typo cannot make deadlines meaningless.
    pub fn validate(&self) -> Result<(), String> {
        let checks: [(&str, u32, u32, u32); 7] = [
            ("contact_minutes", self.contact_minutes, 1, 7 * 24 * 60),
            ("feedback_working_days", self.feedback_working_days, 1, 250),
            (
                "resolution_working_days",
                self.resolution_working_days,
                1,
                250,
            ),
            ("rework_working_days", self.rework_working_days, 1, 250),
            ("max_extensions", self.max_extensions, 0, 10),
            (
                "max_extension_working_days",
                self.max_extension_working_days,
                1,
                250,
            ),
            (
                "supervision_working_days",
                self.supervision_working_days,
                1,
                250,
            ),
        ];
        for (field, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(format!(
                    "{field} must be between {min} and {max}, got {value}"
                ));
            }
        }
        if self.feedback_working_days > self.resolution_working_days {
            return Err("feedback_working_days must not exceed resolution_working_days".into());
        }
        Ok(())
    }
}

/// Which appeals a policy applies to: a channel, a category, both, or neither (the district
/// default). The most specific scope wins: channel+category, then channel, then category, then
/// the default.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(deny_unknown_fields)]
pub struct PolicyScope {
    #[serde(default)]
    pub channel: Option<Channel>,
    #[serde(default)]
    pub category: Option<Category>,
}

impl std::fmt::Display for PolicyScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let channel = self.channel.map_or("*", |c| c.as_str());
        let category = self.category.map_or("*", |c| c.as_str());
        write!(f, "channel={channel},category={category}")
    }
}

/// The SLA policies in force: the default plus any scoped ones, each with the rules version
/// that set it (0 = the built-in "2110" default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<PolicyEntry>", into = "Vec<PolicyEntry>")]
pub struct PolicyTable {
    scoped: std::collections::BTreeMap<PolicyScope, (SlaPolicy, u64)>,
}

/// One scoped policy with the rules version that set it (the serialized form of the table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyEntry {
    pub scope: PolicyScope,
    pub policy: SlaPolicy,
    pub version: u64,
}

impl From<Vec<PolicyEntry>> for PolicyTable {
    fn from(entries: Vec<PolicyEntry>) -> Self {
        let mut table = Self::default();
        for e in entries {
            table.set(e.scope, e.policy, e.version);
        }
        table
    }
}

impl From<PolicyTable> for Vec<PolicyEntry> {
    fn from(table: PolicyTable) -> Self {
        table
            .scoped
            .into_iter()
            .map(|(scope, (policy, version))| PolicyEntry {
                scope,
                policy,
                version,
            })
            .collect()
    }
}

impl PolicyTable {
    pub fn set(&mut self, scope: PolicyScope, policy: SlaPolicy, version: u64) {
        self.scoped.insert(scope, (policy, version));
    }

    /// The policy for an appeal of `channel` and `category`, and a label naming the scope and
    /// version it came from (recorded in deadline events), e.g. `channel=110,category=*@v9`.
    pub fn resolve(&self, channel: Channel, category: Category) -> (SlaPolicy, String) {
        let candidates = [
            PolicyScope {
                channel: Some(channel),
                category: Some(category),
            },
            PolicyScope {
                channel: Some(channel),
                category: None,
            },
            PolicyScope {
                channel: None,
                category: Some(category),
            },
            PolicyScope::default(),
        ];
        for scope in candidates {
            if let Some((policy, version)) = self.scoped.get(&scope) {
                return (policy.clone(), format!("{scope}@v{version}"));
            }
        }
        (
            SlaPolicy::default(),
            format!("{}@default", PolicyScope::default()),
        )
    }

    /// Every scoped policy, most general first.
    pub fn entries(&self) -> impl Iterator<Item = (&PolicyScope, &SlaPolicy, u64)> {
        self.scoped.iter().map(|(s, (p, v))| (s, p, *v))
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
            contact_due: at
                .checked_add_signed(Duration::minutes(i64::from(policy.contact_minutes)))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
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

/// When each step a deadline asks for was done (for the current assignment).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepsDone {
    pub contacted_at: Option<DateTime<Utc>>,
    pub feedback_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl StepsDone {
    /// Whether the `which` deadline, due at `due`, was met: its step was done before it (a
    /// deadline is an exclusive end, so a step at the due instant is late). A resolution is the
    /// fullest feedback: it meets the feedback deadline too.
    pub fn met(&self, which: DeadlineKind, due: DateTime<Utc>) -> bool {
        let done_at = match which {
            DeadlineKind::Contact => self.contacted_at,
            DeadlineKind::Feedback => match (self.feedback_at, self.resolved_at) {
                (Some(f), Some(r)) => Some(f.min(r)),
                (f, r) => f.or(r),
            },
            DeadlineKind::Resolution => self.resolved_at,
        };
        done_at.is_some_and(|at| at < due)
    }
}

/// When a deadline turns yellow (configurable per deployment).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LightPolicy {
    /// Yellow once at most this share (0–1) of the allowed time is left (default 0.25).
    pub yellow_share: f64,
    /// Also yellow on the last working day of a working-day deadline (default true).
    pub last_working_day: bool,
}

impl Default for LightPolicy {
    fn default() -> Self {
        Self {
            yellow_share: 0.25,
            last_working_day: true,
        }
    }
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

    /// The light of an open deadline under `policy`: [`TrafficLight::at`], and also yellow on
    /// the last working day of a working-day deadline (feedback, resolution) when
    /// `policy.last_working_day` is set. A working-day deadline ends at 24:00 local, and
    /// Asia/Shanghai has no daylight saving, so its last day is the 24 hours before `due`.
    pub fn of_deadline(
        which: DeadlineKind,
        start: DateTime<Utc>,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
        policy: &LightPolicy,
    ) -> Self {
        let light = Self::at(start, due, now, policy.yellow_share);
        let last_day = policy.last_working_day
            && which != DeadlineKind::Contact
            && now >= due - Duration::hours(24);
        if light == Self::Green && last_day {
            Self::Yellow
        } else {
            light
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
    fn working_day_deadlines_turn_yellow_on_their_last_day() {
        // Resolution assigned Mon 03-02 09:00 local, due 24:00 Mon 03-16 local (16:00Z): the last
        // 25% of 14.6 days starts Wed 03-13 ~07:00Z, the last day at 16:00Z on 03-15.
        let (start, due) = (t("2026-03-02T01:00:00Z"), t("2026-03-16T16:00:00Z"));
        let policy = LightPolicy {
            yellow_share: 0.0,
            last_working_day: true,
        };
        let light =
            |now| TrafficLight::of_deadline(DeadlineKind::Resolution, start, due, t(now), &policy);
        assert_eq!(light("2026-03-15T15:59:59Z"), TrafficLight::Green);
        assert_eq!(light("2026-03-15T16:00:00Z"), TrafficLight::Yellow);
        assert_eq!(light("2026-03-16T16:00:00Z"), TrafficLight::Red);
        // the last-day rule does not apply to the clock-hour contact deadline
        let contact = TrafficLight::of_deadline(
            DeadlineKind::Contact,
            start,
            t("2026-03-02T03:00:00Z"),
            t("2026-03-02T02:00:00Z"),
            &policy,
        );
        assert_eq!(contact, TrafficLight::Green);
        // with the rule off, only the share counts
        let share_only = LightPolicy {
            yellow_share: 0.25,
            last_working_day: false,
        };
        assert_eq!(
            TrafficLight::of_deadline(
                DeadlineKind::Resolution,
                start,
                due,
                t("2026-03-15T16:00:00Z"),
                &share_only
            ),
            TrafficLight::Yellow
        );
        assert_eq!(
            TrafficLight::of_deadline(
                DeadlineKind::Resolution,
                start,
                due,
                t("2026-03-12T00:00:00Z"),
                &share_only
            ),
            TrafficLight::Green
        );
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
