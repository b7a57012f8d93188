//! The monthly rates against the 90% target (seed 000: "每月110联动办结率和满意率均要达到90%以上"),
//! defined once: what becomes known about an appeal ([`RateTracker`] folds its events into
//! [`Outcome`]s) and how outcomes add up to rates ([`RateCounts::rates`]). The exact definitions,
//! with worked examples, are in `docs/metrics.md`.
//!
//! - response rate (响应率): contact outcomes on time / contact outcomes known;
//! - on-time completion rate (按时办结率, the seeds' 办结率): resolutions by the deadline in force /
//!   resolution outcomes known;
//! - resolution rate (解决率): reached return visits saying solved / reached return visits;
//! - satisfaction rate (满意率): (satisfied + w × basically satisfied) / reached return visits.
//!
//! Each appeal counts once per rate, in the Beijing-time month its outcome became known, for the
//! lead department at that moment. Unreachable return visits count nowhere.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::appeal::{AppealEvent, ReturnVisitResult};
use crate::assessment::period::Month;
use crate::values::{Channel, DepartmentId, Satisfaction};

/// What became known about one appeal, for one or two rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutcomeResult {
    /// Response rate: was the filer contacted before the contact deadline in force?
    Contact { on_time: bool },
    /// On-time completion rate: was the appeal resolved before the resolution deadline in force?
    Completion { on_time: bool },
    /// Resolution and satisfaction rates: the first return visit that reached the filer.
    ReturnVisit {
        solved: bool,
        satisfaction: Satisfaction,
    },
}

/// One outcome of one appeal: when it became known and whom it counts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub result: OutcomeResult,
    /// The instant it became known: the step's instant when done in time, else the deadline's.
    pub known_at: DateTime<Utc>,
    /// The lead department at that instant.
    pub department: DepartmentId,
}

impl Outcome {
    /// The month it counts in.
    pub fn month(&self) -> Month {
        Month::of(self.known_at)
    }
}

/// What the rates need to remember of one appeal between its events. Serializable: the rates
/// projection keeps one per appeal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateTracker {
    pub channel: Option<Channel>,
    pub town: Option<String>,
    pub lead: Option<DepartmentId>,
    /// Deadlines in force while their outcome is still unknown (`None` when no department is
    /// assigned, or the appeal was withdrawn or merged).
    pub contact_due: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
    pub contact: Option<Outcome>,
    pub completion: Option<Outcome>,
    pub return_visit: Option<Outcome>,
}

impl RateTracker {
    /// Folds the appeal's next event and returns the outcomes it made known (each appeal yields
    /// at most one outcome per kind over its whole life).
    pub fn observe(&mut self, event: &AppealEvent) -> Vec<Outcome> {
        use AppealEvent as E;
        let at = event.at();
        // Any event at or after a deadline in force shows the deadline passed unmet, under the
        // lead department of that moment (before a transfer or withdrawal takes effect).
        let mut known = self.deadlines_passed(at);
        match event {
            E::AppealFiled { channel, town, .. } => {
                self.channel = Some(*channel);
                self.town = Some(town.to_string());
            }
            E::AppealAssigned {
                lead, deadlines, ..
            }
            | E::AppealTransferred {
                lead, deadlines, ..
            } => {
                self.lead = Some(lead.clone());
                self.set_dues(deadlines.contact_due, deadlines.resolution_due);
            }
            E::DeadlinesRecomputed { deadlines, .. } => {
                self.set_dues(deadlines.contact_due, deadlines.resolution_due);
            }
            E::ExtensionApproved { resolution_due, .. }
            | E::ReturnedForRework { resolution_due, .. } => {
                if self.completion.is_none() {
                    self.resolution_due = Some(*resolution_due);
                }
            }
            E::AppealDeclined { .. } => {
                self.lead = None;
                self.set_dues_none();
            }
            E::AppealWithdrawn { .. } | E::AppealMarkedDuplicate { .. } => self.set_dues_none(),
            E::ContactRecorded { .. } => {
                if let (None, Some(_), Some(lead)) = (&self.contact, self.contact_due, &self.lead) {
                    let o = outcome(OutcomeResult::Contact { on_time: true }, at, lead);
                    self.contact = Some(o.clone());
                    self.contact_due = None;
                    known.push(o);
                }
            }
            E::AppealResolved { .. } => {
                if let (None, Some(_), Some(lead)) =
                    (&self.completion, self.resolution_due, &self.lead)
                {
                    let o = outcome(OutcomeResult::Completion { on_time: true }, at, lead);
                    self.completion = Some(o.clone());
                    self.resolution_due = None;
                    known.push(o);
                }
            }
            E::ReturnVisitRecorded {
                result:
                    ReturnVisitResult::Reached {
                        solved,
                        satisfaction,
                    },
                ..
            } => {
                if let (None, Some(lead)) = (&self.return_visit, &self.lead) {
                    let result = OutcomeResult::ReturnVisit {
                        solved: *solved,
                        satisfaction: *satisfaction,
                    };
                    let o = outcome(result, at, lead);
                    self.return_visit = Some(o.clone());
                    known.push(o);
                }
            }
            E::ReturnVisitRecorded {
                result: ReturnVisitResult::Unreachable,
                ..
            }
            | E::InitialFeedbackGiven { .. }
            | E::ExtensionRequested { .. }
            | E::ExtensionRejected { .. }
            | E::AppealClosed { .. }
            | E::AppealSupervised { .. }
            | E::AccountabilityRecorded { .. }
            | E::DeadlineMissed { .. } => {}
        }
        known
    }

    /// Deadlines whose outcome is still unknown and that `at` is at or past: missed, known at
    /// the deadline (a deadline is an exclusive end, as in the aggregate).
    fn deadlines_passed(&mut self, at: DateTime<Utc>) -> Vec<Outcome> {
        let mut known = Vec::new();
        let Some(lead) = self.lead.clone() else {
            return known;
        };
        if let Some(due) = self.contact_due.filter(|due| at >= *due)
            && self.contact.is_none()
        {
            let o = outcome(OutcomeResult::Contact { on_time: false }, due, &lead);
            self.contact = Some(o.clone());
            self.contact_due = None;
            known.push(o);
        }
        if let Some(due) = self.resolution_due.filter(|due| at >= *due)
            && self.completion.is_none()
        {
            let o = outcome(OutcomeResult::Completion { on_time: false }, due, &lead);
            self.completion = Some(o.clone());
            self.resolution_due = None;
            known.push(o);
        }
        known
    }

    /// Only deadlines whose outcome is still unknown are followed.
    fn set_dues(&mut self, contact_due: DateTime<Utc>, resolution_due: DateTime<Utc>) {
        self.contact_due = self.contact.is_none().then_some(contact_due);
        self.resolution_due = self.completion.is_none().then_some(resolution_due);
    }

    fn set_dues_none(&mut self) {
        self.contact_due = None;
        self.resolution_due = None;
    }
}

fn outcome(result: OutcomeResult, known_at: DateTime<Utc>, lead: &DepartmentId) -> Outcome {
    Outcome {
        result,
        known_at,
        department: lead.clone(),
    }
}

/// The parameters of the rates: the target and the weight of "basically satisfied".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateParams {
    /// Percent a rate must reach (90 = the seeds' 90%); a rate below it is flagged.
    pub target_percent: f64,
    /// w: how much a "basically satisfied" (基本满意) answer counts towards the satisfaction rate,
    /// 0–1 (1 = as much as "satisfied").
    pub basically_satisfied_weight: f64,
}

impl Default for RateParams {
    fn default() -> Self {
        Self {
            target_percent: 90.0,
            basically_satisfied_weight: 1.0,
        }
    }
}

/// Counters of outcomes in one cell (month × department × channel × town, or any sum of
/// cells). Rates over several months add their counters, never average their rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateCounts {
    pub contacts: i64,
    pub contacts_on_time: i64,
    pub completions: i64,
    pub completions_on_time: i64,
    /// Return visits that reached the filer (unreachable ones are not counted anywhere).
    pub visits: i64,
    pub solved: i64,
    pub satisfied: i64,
    pub basically_satisfied: i64,
}

impl RateCounts {
    pub fn add(&mut self, result: &OutcomeResult) {
        match *result {
            OutcomeResult::Contact { on_time } => {
                self.contacts += 1;
                self.contacts_on_time += i64::from(on_time);
            }
            OutcomeResult::Completion { on_time } => {
                self.completions += 1;
                self.completions_on_time += i64::from(on_time);
            }
            OutcomeResult::ReturnVisit {
                solved,
                satisfaction,
            } => {
                self.visits += 1;
                self.solved += i64::from(solved);
                match satisfaction {
                    Satisfaction::Satisfied => self.satisfied += 1,
                    Satisfaction::BasicallySatisfied => self.basically_satisfied += 1,
                    Satisfaction::Dissatisfied => {}
                }
            }
        }
    }

    pub fn merge(&mut self, other: &RateCounts) {
        self.contacts += other.contacts;
        self.contacts_on_time += other.contacts_on_time;
        self.completions += other.completions;
        self.completions_on_time += other.completions_on_time;
        self.visits += other.visits;
        self.solved += other.solved;
        self.satisfied += other.satisfied;
        self.basically_satisfied += other.basically_satisfied;
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The four rates of these counters.
    pub fn rates(&self, params: &RateParams) -> Rates {
        let rate = |numerator: f64, denominator: i64| Rate::new(numerator, denominator, params);
        Rates {
            response: rate(self.contacts_on_time as f64, self.contacts),
            on_time_completion: rate(self.completions_on_time as f64, self.completions),
            resolution: rate(self.solved as f64, self.visits),
            satisfaction: rate(
                self.satisfied as f64
                    + params.basically_satisfied_weight * self.basically_satisfied as f64,
                self.visits,
            ),
        }
    }
}

/// One rate: its numerator and denominator, the ratio in percent (absent without a
/// denominator) and whether it is below the target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub numerator: f64,
    pub denominator: i64,
    /// 100 × numerator / denominator; `None` when nothing counted.
    pub percent: Option<f64>,
    /// `None` when nothing counted.
    pub below_target: Option<bool>,
}

impl Rate {
    pub fn new(numerator: f64, denominator: i64, params: &RateParams) -> Self {
        let percent = (denominator > 0).then(|| 100.0 * numerator / denominator as f64);
        Self {
            numerator,
            denominator,
            percent,
            // Compared without dividing, so 9 of 10 against 90% is exactly on target.
            below_target: (denominator > 0)
                .then_some(100.0 * numerator < params.target_percent * denominator as f64),
        }
    }
}

/// The four rates of one cell or group.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub response: Rate,
    pub on_time_completion: Rate,
    pub resolution: Rate,
    pub satisfaction: Rate,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sla::Deadlines;
    use crate::values::{AccountabilityKind, DeadlineKind};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn d(s: &str) -> DepartmentId {
        s.parse().unwrap()
    }

    fn text<T: std::str::FromStr>(s: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        s.parse().unwrap()
    }

    fn filed(at: &str) -> AppealEvent {
        AppealEvent::AppealFiled {
            appeal_id: uuid::Uuid::nil(),
            tracking_number: crate::values::TrackingNumber::new(2026, 1),
            channel: Channel::Linkage110,
            filer: crate::appeal::Filer {
                kind: crate::values::FilerKind::Enterprise,
                name: text("某某公司"),
                contact_person: None,
                phone: text("13800138000"),
            },
            category: crate::values::Category::ApprovalDelay,
            town: text("城关镇"),
            description: text("审批超时"),
            complained_unit: None,
            at: t(at),
        }
    }

    fn deadlines(contact: &str, resolution: &str) -> Deadlines {
        Deadlines {
            contact_due: t(contact),
            feedback_due: t(contact),
            resolution_due: t(resolution),
        }
    }

    fn assigned(lead: &str, at: &str, contact_due: &str, resolution_due: &str) -> AppealEvent {
        AppealEvent::AppealAssigned {
            lead: d(lead),
            co_handlers: vec![],
            deadlines: deadlines(contact_due, resolution_due),
            calendar: "test".into(),
            policy: Default::default(),
            at: t(at),
        }
    }

    fn contact(by: &str, at: &str) -> AppealEvent {
        AppealEvent::ContactRecorded {
            department: d(by),
            method: crate::values::ContactMethod::Phone,
            note: None,
            at: t(at),
        }
    }

    fn resolved(by: &str, at: &str) -> AppealEvent {
        AppealEvent::AppealResolved {
            department: d(by),
            outcome: crate::values::ResolutionOutcome::Resolved,
            text: text("已解决"),
            at: t(at),
        }
    }

    fn visit(at: &str, result: ReturnVisitResult) -> AppealEvent {
        AppealEvent::ReturnVisitRecorded {
            result,
            comment: None,
            at: t(at),
        }
    }

    fn reached(solved: bool, satisfaction: Satisfaction) -> ReturnVisitResult {
        ReturnVisitResult::Reached {
            solved,
            satisfaction,
        }
    }

    fn run(events: &[AppealEvent]) -> Vec<Outcome> {
        let mut tracker = RateTracker::default();
        events.iter().flat_map(|e| tracker.observe(e)).collect()
    }

    #[test]
    fn a_lifecycle_in_time_yields_three_outcomes_for_the_lead() {
        let outcomes = run(&[
            filed("2026-07-01T01:00:00Z"),
            assigned(
                "market",
                "2026-07-01T02:00:00Z",
                "2026-07-01T04:00:00Z",
                "2026-07-15T02:00:00Z",
            ),
            contact("market", "2026-07-01T03:00:00Z"),
            resolved("market", "2026-07-10T02:00:00Z"),
            visit(
                "2026-07-31T17:00:00Z",
                reached(true, Satisfaction::BasicallySatisfied),
            ),
        ]);
        let summary: Vec<_> = outcomes
            .iter()
            .map(|o| (o.result, o.month().to_string(), o.department.to_string()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    OutcomeResult::Contact { on_time: true },
                    "2026-07".into(),
                    "market".into()
                ),
                (
                    OutcomeResult::Completion { on_time: true },
                    "2026-07".into(),
                    "market".into()
                ),
                // 2026-08-01 01:00 in Beijing: counts in August.
                (
                    OutcomeResult::ReturnVisit {
                        solved: true,
                        satisfaction: Satisfaction::BasicallySatisfied
                    },
                    "2026-08".into(),
                    "market".into()
                ),
            ]
        );
    }

    #[test]
    fn a_step_at_the_deadline_is_late_and_known_at_the_deadline() {
        let outcomes = run(&[
            filed("2026-07-01T01:00:00Z"),
            assigned(
                "market",
                "2026-07-01T02:00:00Z",
                "2026-07-01T04:00:00Z",
                "2026-07-15T02:00:00Z",
            ),
            contact("market", "2026-07-01T04:00:00Z"),
        ]);
        assert_eq!(
            outcomes,
            [Outcome {
                result: OutcomeResult::Contact { on_time: false },
                known_at: t("2026-07-01T04:00:00Z"),
                department: d("market"),
            }]
        );
    }

    #[test]
    fn an_extension_approved_in_time_moves_the_deadline_that_counts() {
        let outcomes = run(&[
            filed("2026-07-01T01:00:00Z"),
            assigned(
                "market",
                "2026-07-01T02:00:00Z",
                "2026-07-01T04:00:00Z",
                "2026-07-15T02:00:00Z",
            ),
            contact("market", "2026-07-01T03:00:00Z"),
            AppealEvent::ExtensionApproved {
                working_days: 5,
                previous_resolution_due: t("2026-07-15T02:00:00Z"),
                resolution_due: t("2026-07-22T02:00:00Z"),
                calendar: "test".into(),
                note: None,
                at: t("2026-07-14T02:00:00Z"),
            },
            resolved("market", "2026-07-20T02:00:00Z"),
        ]);
        assert_eq!(
            outcomes[1].result,
            OutcomeResult::Completion { on_time: true }
        );
    }

    #[test]
    fn a_transfer_after_a_missed_deadline_leaves_it_with_the_first_department() {
        let outcomes = run(&[
            filed("2026-07-01T01:00:00Z"),
            assigned(
                "market",
                "2026-07-01T02:00:00Z",
                "2026-07-01T04:00:00Z",
                "2026-07-15T02:00:00Z",
            ),
            // No contact by 04:00; transferred at 05:00: the miss is market's, known at 04:00.
            AppealEvent::AppealTransferred {
                from: d("market"),
                lead: d("housing"),
                co_handlers: vec![],
                reason: text("职责不符"),
                deadlines: deadlines("2026-07-01T07:00:00Z", "2026-07-16T05:00:00Z"),
                calendar: "test".into(),
                policy: Default::default(),
                at: t("2026-07-01T05:00:00Z"),
            },
            contact("housing", "2026-07-01T06:00:00Z"),
            resolved("housing", "2026-07-10T02:00:00Z"),
        ]);
        let summary: Vec<_> = outcomes
            .iter()
            .map(|o| (o.result, o.known_at, o.department.to_string()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    OutcomeResult::Contact { on_time: false },
                    t("2026-07-01T04:00:00Z"),
                    "market".into()
                ),
                (
                    OutcomeResult::Completion { on_time: true },
                    t("2026-07-10T02:00:00Z"),
                    "housing".into()
                ),
            ]
        );
    }

    #[test]
    fn a_transfer_before_any_deadline_gives_every_outcome_to_the_new_lead() {
        let outcomes = run(&[
            filed("2026-07-01T01:00:00Z"),
            assigned(
                "market",
                "2026-07-01T02:00:00Z",
                "2026-07-01T04:00:00Z",
                "2026-07-15T02:00:00Z",
            ),
            AppealEvent::AppealTransferred {
                from: d("market"),
                lead: d("housing"),
                co_handlers: vec![],
                reason: text("职责不符"),
                deadlines: deadlines("2026-07-01T05:00:00Z", "2026-07-16T03:00:00Z"),
                calendar: "test".into(),
                policy: Default::default(),
                at: t("2026-07-01T03:00:00Z"),
            },
            contact("housing", "2026-07-01T04:30:00Z"),
        ]);
        assert_eq!(outcomes.len(), 1);
        assert_eq!(outcomes[0].department, d("housing"));
        assert_eq!(outcomes[0].result, OutcomeResult::Contact { on_time: true });
    }

    #[test]
    fn rework_and_later_visits_do_not_count_twice_and_unreachable_visits_not_at_all() {
        let outcomes = run(&[
            filed("2026-07-01T01:00:00Z"),
            assigned(
                "market",
                "2026-07-01T02:00:00Z",
                "2026-07-01T04:00:00Z",
                "2026-07-15T02:00:00Z",
            ),
            contact("market", "2026-07-01T03:00:00Z"),
            resolved("market", "2026-07-10T02:00:00Z"),
            visit("2026-07-11T02:00:00Z", ReturnVisitResult::Unreachable),
            visit(
                "2026-07-12T02:00:00Z",
                reached(false, Satisfaction::Dissatisfied),
            ),
            AppealEvent::ReturnedForRework {
                reason: text("答复敷衍"),
                working_days: 5,
                resolution_due: t("2026-07-19T02:00:00Z"),
                calendar: "test".into(),
                at: t("2026-07-12T03:00:00Z"),
            },
            // The rework is late (after 07-19), but the completion outcome is already known.
            resolved("market", "2026-07-25T02:00:00Z"),
            visit(
                "2026-07-26T02:00:00Z",
                reached(true, Satisfaction::Satisfied),
            ),
        ]);
        let results: Vec<_> = outcomes.iter().map(|o| o.result).collect();
        assert_eq!(
            results,
            [
                OutcomeResult::Contact { on_time: true },
                OutcomeResult::Completion { on_time: true },
                OutcomeResult::ReturnVisit {
                    solved: false,
                    satisfaction: Satisfaction::Dissatisfied
                },
            ]
        );
    }

    #[test]
    fn the_watcher_reveals_a_missed_deadline_and_withdrawal_stops_the_clock() {
        let base = [
            filed("2026-07-01T01:00:00Z"),
            assigned(
                "market",
                "2026-07-01T02:00:00Z",
                "2026-07-01T04:00:00Z",
                "2026-07-15T02:00:00Z",
            ),
        ];
        let mut missed = base.to_vec();
        missed.push(AppealEvent::DeadlineMissed {
            which: DeadlineKind::Contact,
            due: t("2026-07-01T04:00:00Z"),
            at: t("2026-07-01T04:01:00Z"),
        });
        assert_eq!(
            run(&missed),
            [Outcome {
                result: OutcomeResult::Contact { on_time: false },
                known_at: t("2026-07-01T04:00:00Z"),
                department: d("market"),
            }]
        );
        let mut withdrawn = base.to_vec();
        withdrawn.push(AppealEvent::AppealWithdrawn {
            reason: text("诉求人撤回"),
            at: t("2026-07-01T03:00:00Z"),
        });
        // Long after every deadline: nothing was owed any more.
        withdrawn.push(AppealEvent::AccountabilityRecorded {
            department: d("market"),
            kind: AccountabilityKind::Delay,
            note: text("拖延"),
            at: t("2026-08-01T03:00:00Z"),
        });
        assert_eq!(run(&withdrawn), []);
    }

    #[test]
    fn recomputed_deadlines_are_the_ones_in_force() {
        let outcomes = run(&[
            filed("2026-07-01T01:00:00Z"),
            assigned(
                "market",
                "2026-07-01T02:00:00Z",
                "2026-07-01T04:00:00Z",
                "2026-07-15T02:00:00Z",
            ),
            contact("market", "2026-07-01T03:00:00Z"),
            AppealEvent::DeadlinesRecomputed {
                previous: deadlines("2026-07-01T04:00:00Z", "2026-07-15T02:00:00Z"),
                deadlines: deadlines("2026-07-01T04:00:00Z", "2026-07-16T02:00:00Z"),
                previous_calendar: "v1".into(),
                calendar: "v2".into(),
                reason: "holiday added".into(),
                at: t("2026-07-02T02:00:00Z"),
            },
            resolved("market", "2026-07-15T12:00:00Z"),
        ]);
        assert_eq!(
            outcomes[1].result,
            OutcomeResult::Completion { on_time: true }
        );
    }

    #[test]
    fn rates_from_counts_with_target_and_weight() {
        // The worked example of docs/metrics.md: 10 contacts (9 on time), 8 completions
        // (6 on time), 5 reached visits: 4 solved, 3 satisfied, 1 basically, 1 dissatisfied.
        let counts = RateCounts {
            contacts: 10,
            contacts_on_time: 9,
            completions: 8,
            completions_on_time: 6,
            visits: 5,
            solved: 4,
            satisfied: 3,
            basically_satisfied: 1,
        };
        let r = counts.rates(&RateParams::default());
        assert_eq!(r.response.percent, Some(90.0));
        assert_eq!(r.response.below_target, Some(false));
        assert_eq!(r.on_time_completion.percent, Some(75.0));
        assert_eq!(r.on_time_completion.below_target, Some(true));
        assert_eq!(r.resolution.percent, Some(80.0));
        assert_eq!(r.satisfaction.numerator, 4.0);
        assert_eq!(r.satisfaction.percent, Some(80.0));
        let half = RateParams {
            target_percent: 70.0,
            basically_satisfied_weight: 0.5,
        };
        let r = counts.rates(&half);
        assert_eq!(r.satisfaction.numerator, 3.5);
        assert_eq!(r.satisfaction.percent, Some(70.0));
        assert_eq!(r.satisfaction.below_target, Some(false));
        let none = RateCounts::default().rates(&half);
        assert_eq!(none.response.percent, None);
        assert_eq!(none.response.below_target, None);
    }
}
