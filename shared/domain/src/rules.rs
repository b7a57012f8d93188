//! The SLA rules (时限规则): the official working-day calendar and the SLA policies, kept as one
//! event-sourced stream per district so every deadline can name the version it was computed with,
//! and every change has a who, a when and a why.
//!
//! Versions: the rules version is the number of rules events applied (the stream's sequence).
//! The calendar's version label is `calendar-v<N>`, N being the sequence of the last calendar
//! event; a policy's label is `<scope>@v<N>`, N being the sequence of the event that set it.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::appeal::ErrorKind;
use crate::calendar::{OfficialCalendar, WorkingCalendar, is_weekend, official};
use crate::clock::Clock;
use crate::sla::{PolicyScope, PolicyTable, SlaPolicy};
use crate::values::{LongText, ShortText};

/// The id of the district's rules stream (one district per deployment).
pub const RULES_ID: &str = "district";

/// Years a calendar may be published for: enough for history and the planning horizon, and a
/// guard against typos such as `20227`.
pub const PUBLISHABLE_YEARS: std::ops::RangeInclusive<i32> = 2000..=2100;

/// Body of "publish a year's official calendar" (国务院办公厅关于部分节假日安排的通知).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishCalendarYear {
    pub year: i32,
    /// Public holidays (days off), including any that fall on a weekend.
    pub holidays: Vec<NaiveDate>,
    /// Adjusted working weekends (调休上班): Saturdays or Sundays that are working days.
    #[serde(default)]
    pub working_weekends: Vec<NaiveDate>,
    /// Where the data comes from, e.g. the notice's number.
    pub source: ShortText,
}

/// Body of "correct one date of a published year".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrectCalendarDate {
    pub date: NaiveDate,
    /// Whether the date is a working day after the correction.
    pub working: bool,
    pub reason: LongText,
}

/// Body of "set the SLA policy for a scope".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSlaPolicy {
    #[serde(default)]
    pub scope: PolicyScope,
    pub policy: SlaPolicy,
    pub reason: LongText,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RulesCommand {
    PublishCalendarYear(PublishCalendarYear),
    CorrectCalendarDate(CorrectCalendarDate),
    SetSlaPolicy(SetSlaPolicy),
}

impl RulesCommand {
    /// The command's route name (the access matrix key).
    pub fn name(&self) -> &'static str {
        match self {
            Self::PublishCalendarYear(_) => "publish-calendar-year",
            Self::CorrectCalendarDate(_) => "correct-calendar-date",
            Self::SetSlaPolicy(_) => "set-sla-policy",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RulesEvent {
    CalendarYearPublished {
        year: i32,
        holidays: Vec<NaiveDate>,
        working_weekends: Vec<NaiveDate>,
        source: ShortText,
        at: DateTime<Utc>,
    },
    CalendarDateCorrected {
        date: NaiveDate,
        working: bool,
        reason: LongText,
        at: DateTime<Utc>,
    },
    SlaPolicySet {
        scope: PolicyScope,
        policy: SlaPolicy,
        /// The policy this one replaces for the same scope, if any.
        previous: Option<SlaPolicy>,
        reason: LongText,
        at: DateTime<Utc>,
    },
}

impl RulesEvent {
    pub fn name(&self) -> &'static str {
        match self {
            Self::CalendarYearPublished { .. } => "CalendarYearPublished",
            Self::CalendarDateCorrected { .. } => "CalendarDateCorrected",
            Self::SlaPolicySet { .. } => "SlaPolicySet",
        }
    }

    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::CalendarYearPublished { at, .. }
            | Self::CalendarDateCorrected { at, .. }
            | Self::SlaPolicySet { at, .. } => *at,
        }
    }

    /// Whether the event changes working days (and so may move deadlines of open appeals).
    pub fn changes_calendar(&self) -> bool {
        !matches!(self, Self::SlaPolicySet { .. })
    }
}

impl DomainEvent for RulesEvent {
    fn event_type(&self) -> String {
        self.name().to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("{field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("the calendar of {0} is already published; correct single dates instead")]
    YearAlreadyPublished(i32),
    #[error("the calendar of {0} is not published yet; publish the year first")]
    YearNotPublished(i32),
    #[error("{date} is already a {what}")]
    DateUnchanged { date: NaiveDate, what: &'static str },
}

impl RulesError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidField { .. } | Self::YearNotPublished(_) => ErrorKind::Invalid,
            Self::YearAlreadyPublished(_) | Self::DateUnchanged { .. } => ErrorKind::Conflict,
        }
    }

    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::InvalidField { field, .. } => Some(field),
            Self::YearNotPublished(_) | Self::DateUnchanged { .. } => Some("date"),
            Self::YearAlreadyPublished(_) => Some("year"),
        }
    }
}

/// What the rules aggregate needs from outside: only the clock.
#[derive(Debug, Clone)]
pub struct RulesServices {
    pub clock: Arc<dyn Clock>,
}

/// The rules as their events add up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaRules {
    /// Number of rules events applied.
    pub version: u64,
    /// Sequence of the last calendar event (0 = none yet).
    pub calendar_version: u64,
    pub calendar: OfficialCalendar,
    pub policies: PolicyTable,
}

impl Default for SlaRules {
    fn default() -> Self {
        Self {
            version: 0,
            calendar_version: 0,
            calendar: OfficialCalendar::empty(calendar_label(0)),
            policies: PolicyTable::default(),
        }
    }
}

/// The calendar version label recorded in deadline events.
pub fn calendar_label(calendar_version: u64) -> String {
    format!("calendar-v{calendar_version}")
}

fn invalid(field: &'static str, reason: impl Into<String>) -> RulesError {
    RulesError::InvalidField {
        field,
        reason: reason.into(),
    }
}

impl SlaRules {
    pub fn decide(
        &self,
        command: &RulesCommand,
        now: DateTime<Utc>,
    ) -> Result<RulesEvent, RulesError> {
        Ok(match command {
            RulesCommand::PublishCalendarYear(body) => {
                self.check_year(body)?;
                let mut holidays = body.holidays.clone();
                let mut working_weekends = body.working_weekends.clone();
                holidays.sort_unstable();
                working_weekends.sort_unstable();
                RulesEvent::CalendarYearPublished {
                    year: body.year,
                    holidays,
                    working_weekends,
                    source: body.source.clone(),
                    at: now,
                }
            }
            RulesCommand::CorrectCalendarDate(body) => {
                let year = body.date.year();
                if !self.calendar.covers(year) {
                    return Err(RulesError::YearNotPublished(year));
                }
                let working_now = self
                    .calendar
                    .is_working_day(body.date)
                    .map_err(|e| invalid("date", e.to_string()))?;
                if working_now == body.working {
                    return Err(RulesError::DateUnchanged {
                        date: body.date,
                        what: if body.working {
                            "working day"
                        } else {
                            "day off"
                        },
                    });
                }
                RulesEvent::CalendarDateCorrected {
                    date: body.date,
                    working: body.working,
                    reason: body.reason.clone(),
                    at: now,
                }
            }
            RulesCommand::SetSlaPolicy(body) => {
                body.policy.validate().map_err(|r| invalid("policy", r))?;
                let previous = self
                    .policies
                    .entries()
                    .find(|(scope, _, _)| **scope == body.scope)
                    .map(|(_, policy, _)| policy.clone());
                RulesEvent::SlaPolicySet {
                    scope: body.scope,
                    policy: body.policy.clone(),
                    previous,
                    reason: body.reason.clone(),
                    at: now,
                }
            }
        })
    }

    fn check_year(&self, body: &PublishCalendarYear) -> Result<(), RulesError> {
        let year = body.year;
        if !PUBLISHABLE_YEARS.contains(&year) {
            return Err(invalid(
                "year",
                format!(
                    "must be between {} and {}",
                    PUBLISHABLE_YEARS.start(),
                    PUBLISHABLE_YEARS.end()
                ),
            ));
        }
        if self.calendar.covers(year) {
            return Err(RulesError::YearAlreadyPublished(year));
        }
        if body.holidays.is_empty() {
            // Every year has at least New Year's Day: an empty list is missing data.
            return Err(invalid(
                "holidays",
                "a year has at least one public holiday",
            ));
        }
        let mut seen = BTreeSet::new();
        for (field, dates) in [
            ("holidays", &body.holidays),
            ("working_weekends", &body.working_weekends),
        ] {
            if dates.len() > 366 {
                return Err(invalid(field, "more dates than a year has"));
            }
            for date in dates {
                if date.year() != year {
                    return Err(invalid(field, format!("{date} is not in {year}")));
                }
                if !seen.insert(*date) {
                    return Err(invalid(field, format!("{date} is listed twice")));
                }
                if field == "working_weekends" && !is_weekend(*date) {
                    return Err(invalid(
                        field,
                        format!(
                            "{date} is a {}; an adjusted working day must be a Saturday or Sunday",
                            date.weekday()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn apply_event(&mut self, event: &RulesEvent) {
        self.version += 1;
        match event {
            RulesEvent::CalendarYearPublished {
                year,
                holidays,
                working_weekends,
                ..
            } => {
                let overrides = holidays
                    .iter()
                    .map(|d| (*d, false))
                    .chain(working_weekends.iter().map(|d| (*d, true)));
                self.calendar.publish_year(*year, overrides);
            }
            RulesEvent::CalendarDateCorrected { date, working, .. } => {
                self.calendar.correct_date(*date, *working);
            }
            RulesEvent::SlaPolicySet { scope, policy, .. } => {
                self.policies.set(*scope, policy.clone(), self.version);
            }
        }
        if event.changes_calendar() {
            self.calendar_version = self.version;
            self.calendar.set_version(calendar_label(self.version));
        }
    }

    /// The commands that publish the embedded official calendar (2020–2026), one per year: the
    /// history of a new district starts with them, so that data, too, is an auditable event.
    pub fn seed_commands() -> Vec<RulesCommand> {
        let embedded = official();
        embedded
            .years()
            .map(|year| {
                let (mut holidays, mut working_weekends) = (Vec::new(), Vec::new());
                for (date, working) in embedded.overrides_in(year) {
                    if working {
                        working_weekends.push(date);
                    } else {
                        holidays.push(date);
                    }
                }
                RulesCommand::PublishCalendarYear(PublishCalendarYear {
                    year,
                    holidays,
                    working_weekends,
                    source: format!("embedded official data ({})", embedded.version())
                        .parse::<ShortText>()
                        .expect("a short label"),
                })
            })
            .collect()
    }

    /// The snapshot the appeal aggregate computes deadlines with.
    pub fn rulebook(&self) -> Rulebook {
        Rulebook {
            version: self.version,
            calendar: Arc::new(self.calendar.clone()),
            policies: self.policies.clone(),
        }
    }
}

impl Aggregate for SlaRules {
    const TYPE: &'static str = "sla_rules";
    type Command = RulesCommand;
    type Event = RulesEvent;
    type Error = RulesError;
    type Services = RulesServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = self.decide(&command, services.clock.now())?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.apply_event(&event);
    }
}

/// An immutable snapshot of the rules in force: what deadlines are computed with.
#[derive(Debug, Clone)]
pub struct Rulebook {
    pub version: u64,
    pub calendar: Arc<dyn WorkingCalendar>,
    pub policies: PolicyTable,
}

impl Rulebook {
    /// Fixed rules (tests, the CLI without a database): one calendar, one policy for everything.
    pub fn fixed(calendar: Arc<dyn WorkingCalendar>, policy: SlaPolicy) -> Self {
        let mut policies = PolicyTable::default();
        if policy != SlaPolicy::default() {
            policies.set(PolicyScope::default(), policy, 0);
        }
        Self {
            version: 0,
            calendar,
            policies,
        }
    }
}

/// Where the appeal aggregate gets the rules in force; the store keeps a live one that follows
/// the rules stream.
pub trait RulesSource: Send + Sync + fmt::Debug {
    fn current(&self) -> Arc<Rulebook>;
}

/// Rules that never change.
#[derive(Debug, Clone)]
pub struct FixedRules(pub Arc<Rulebook>);

impl RulesSource for FixedRules {
    fn current(&self) -> Arc<Rulebook> {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appeal::ErrorKind;
    use crate::calendar::{CalendarError, add_working_days};
    use crate::values::{Category, Channel};

    fn now() -> DateTime<Utc> {
        "2026-11-23T02:00:00Z".parse().unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn seeded() -> SlaRules {
        let mut rules = SlaRules::default();
        for command in SlaRules::seed_commands() {
            let event = rules.decide(&command, now()).unwrap();
            rules.apply_event(&event);
        }
        rules
    }

    fn publish(year: i32, holidays: &[&str], work: &[&str]) -> RulesCommand {
        RulesCommand::PublishCalendarYear(PublishCalendarYear {
            year,
            holidays: holidays.iter().map(|s| d(s)).collect(),
            working_weekends: work.iter().map(|s| d(s)).collect(),
            source: "国办发明电〔2026〕1号".parse::<ShortText>().unwrap(),
        })
    }

    #[test]
    fn seeding_reproduces_the_embedded_calendar_day_for_day() {
        let rules = seeded();
        assert_eq!(rules.version, 7);
        assert_eq!(rules.calendar.version(), "calendar-v7");
        let mut day = d("2020-01-01");
        while day <= d("2026-12-31") {
            assert_eq!(
                rules.calendar.is_working_day(day),
                official().is_working_day(day),
                "{day}"
            );
            day = day.succ_opt().unwrap();
        }
        assert_eq!(
            rules.calendar.is_working_day(d("2027-01-04")),
            Err(CalendarError::YearNotCovered(2027))
        );
    }

    #[test]
    fn publishing_2027_lets_deadlines_cross_into_it() {
        // given the seeded rules, a deadline in January 2027 is an error naming the year
        let mut rules = seeded();
        let dec_28: DateTime<Utc> = "2026-12-28T02:00:00Z".parse().unwrap();
        assert_eq!(
            add_working_days(&rules.calendar, dec_28, 10),
            Err(CalendarError::YearNotCovered(2027))
        );
        // when 2027 is published with New Year's Day off
        let event = rules
            .decide(&publish(2027, &["2027-01-01"], &[]), now())
            .unwrap();
        rules.apply_event(&event);
        // then Mon 28 Dec + 10 working days skips Fri 1 Jan: 29,30,31 Dec, 4–8, 11, 12 Jan
        assert_eq!(rules.calendar.version(), "calendar-v8");
        assert_eq!(
            add_working_days(&rules.calendar, dec_28, 10).unwrap(),
            "2027-01-12T16:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn a_published_year_cannot_be_published_again() {
        let rules = seeded();
        let err = rules
            .decide(&publish(2026, &["2026-01-01"], &[]), now())
            .unwrap_err();
        assert_eq!(err, RulesError::YearAlreadyPublished(2026));
        assert_eq!(err.kind(), ErrorKind::Conflict);
    }

    #[test]
    fn bad_year_data_is_refused_with_the_field_named() {
        let rules = seeded();
        let cases = [
            (publish(2027, &[], &[]), "holidays"),
            (publish(2027, &["2028-01-01"], &[]), "holidays"),
            (
                publish(2027, &["2027-01-01", "2027-01-01"], &[]),
                "holidays",
            ),
            // 2027-01-04 is a Monday: it cannot be an adjusted working weekend
            (
                publish(2027, &["2027-01-01"], &["2027-01-04"]),
                "working_weekends",
            ),
            (
                publish(2027, &["2027-01-01"], &["2027-01-01"]),
                "working_weekends",
            ),
            (publish(20227, &["2027-01-01"], &[]), "year"),
        ];
        for (command, field) in cases {
            let err = rules.decide(&command, now()).unwrap_err();
            assert_eq!(err.field(), Some(field), "{err}");
            assert_eq!(err.kind(), ErrorKind::Invalid);
        }
    }

    #[test]
    fn correcting_a_date_flips_it_and_bumps_the_calendar_version() {
        let mut rules = seeded();
        // Monday 2026-11-30 becomes a day off (a hypothetical local correction)
        let command = RulesCommand::CorrectCalendarDate(CorrectCalendarDate {
            date: d("2026-11-30"),
            working: false,
            reason: "typhoon closure".parse::<LongText>().unwrap(),
        });
        let event = rules.decide(&command, now()).unwrap();
        rules.apply_event(&event);
        assert_eq!(rules.calendar.is_working_day(d("2026-11-30")), Ok(false));
        assert_eq!(rules.calendar_version, 8);
        // the same correction again changes nothing and is refused
        assert_eq!(
            rules.decide(&command, now()).unwrap_err().kind(),
            ErrorKind::Conflict
        );
        // a date in an unpublished year cannot be corrected
        let command = RulesCommand::CorrectCalendarDate(CorrectCalendarDate {
            date: d("2027-03-01"),
            working: false,
            reason: "x".parse::<LongText>().unwrap(),
        });
        assert_eq!(
            rules.decide(&command, now()).unwrap_err(),
            RulesError::YearNotPublished(2027)
        );
    }

    #[test]
    fn the_most_specific_policy_wins_and_names_its_version() {
        let mut rules = seeded();
        let fast = SlaPolicy {
            contact_minutes: 30,
            ..SlaPolicy::default()
        };
        let set = |scope: PolicyScope, policy: &SlaPolicy| {
            RulesCommand::SetSlaPolicy(SetSlaPolicy {
                scope,
                policy: policy.clone(),
                reason: "district decision".parse::<LongText>().unwrap(),
            })
        };
        let by_channel = PolicyScope {
            channel: Some(Channel::Linkage110),
            category: None,
        };
        let event = rules.decide(&set(by_channel, &fast), now()).unwrap();
        rules.apply_event(&event);
        // a policy change does not change the calendar version
        assert_eq!(rules.calendar_version, 7);
        let (policy, label) = rules
            .policies
            .resolve(Channel::Linkage110, Category::ArbitraryFines);
        assert_eq!(
            (policy.contact_minutes, label.as_str()),
            (30, "channel=110,category=*@v8")
        );
        let (policy, label) = rules
            .policies
            .resolve(Channel::Hotline12345, Category::ArbitraryFines);
        assert_eq!(
            (policy.contact_minutes, label.as_str()),
            (120, "channel=*,category=*@default")
        );
        // an invalid policy is refused
        let broken = SlaPolicy {
            resolution_working_days: 0,
            ..SlaPolicy::default()
        };
        let err = rules
            .decide(&set(PolicyScope::default(), &broken), now())
            .unwrap_err();
        assert_eq!(err.field(), Some("policy"));
    }
}
