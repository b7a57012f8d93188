//! The assessment policy: weights of the composite score, penalty points, the rates' target and
//! the weight of "basically satisfied", and how many departments the best and worst lists name.
//! One aggregate for the district (stream [`AssessmentPolicyBook::STREAM`]); each change is an
//! [`PolicyEvent::AssessmentPolicySet`] with a version, so a ranking can be computed with the
//! policy in force at any past moment.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::rates::RateParams;
use crate::values::LongText;

/// Weights of the composite score's components (any non-negative numbers; only their ratios
/// matter, see `docs/metrics.md`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    pub response: f64,
    pub on_time_completion: f64,
    pub resolution: f64,
    pub satisfaction: f64,
    /// The quarterly style evaluation (作风评议).
    pub style: f64,
}

/// Points subtracted from the composite score per occurrence in the period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Penalties {
    /// 问责: delay (推诿扯皮、办理延误).
    pub accountability_delay: f64,
    /// 问责: fraud (弄虚作假).
    pub accountability_fraud: f64,
    /// 问责: harassing enterprises (侵企扰企); also vetoes the department for the period.
    pub accountability_enterprise_harassment: f64,
    /// 退回重办.
    pub rework: f64,
    pub missed_contact: f64,
    pub missed_feedback: f64,
    pub missed_resolution: f64,
}

/// Everything an assessment is computed with. Also the body of the admin's command.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessmentPolicy {
    /// Percent every rate must reach (seed 000: 90).
    pub target_percent: f64,
    /// w of the satisfaction rate, 0–1.
    pub basically_satisfied_weight: f64,
    pub weights: Weights,
    pub penalties: Penalties,
    /// How many departments the best list names (三佳: 3).
    pub best: u32,
    /// How many departments the worst list names (二差: 2).
    pub worst: u32,
}

impl Default for AssessmentPolicy {
    /// Version 0, in force until an admin sets one: the seeds' 90% target, w = 1, completion
    /// and satisfaction (the two rates seed 000 names) weighted most, 三佳二差.
    fn default() -> Self {
        Self {
            target_percent: 90.0,
            basically_satisfied_weight: 1.0,
            weights: Weights {
                response: 20.0,
                on_time_completion: 30.0,
                resolution: 10.0,
                satisfaction: 30.0,
                style: 10.0,
            },
            penalties: Penalties {
                accountability_delay: 2.0,
                accountability_fraud: 5.0,
                accountability_enterprise_harassment: 5.0,
                rework: 1.0,
                missed_contact: 0.5,
                missed_feedback: 0.5,
                missed_resolution: 1.0,
            },
            best: 3,
            worst: 2,
        }
    }
}

impl AssessmentPolicy {
    pub fn rate_params(&self) -> RateParams {
        RateParams {
            target_percent: self.target_percent,
            basically_satisfied_weight: self.basically_satisfied_weight,
        }
    }

    /// The limits an admin may set; the error names the field.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let invalid = |field: &'static str, reason: &str| PolicyError::InvalidField {
            field,
            reason: reason.to_owned(),
        };
        let finite_in = |v: f64, lo: f64, hi: f64| v.is_finite() && (lo..=hi).contains(&v);
        if !finite_in(self.target_percent, 0.0, 100.0) {
            return Err(invalid("target_percent", "must be between 0 and 100"));
        }
        if !finite_in(self.basically_satisfied_weight, 0.0, 1.0) {
            return Err(invalid(
                "basically_satisfied_weight",
                "must be between 0 and 1",
            ));
        }
        let w = &self.weights;
        let weights = [
            ("weights.response", w.response),
            ("weights.on_time_completion", w.on_time_completion),
            ("weights.resolution", w.resolution),
            ("weights.satisfaction", w.satisfaction),
            ("weights.style", w.style),
        ];
        for (field, v) in weights {
            if !finite_in(v, 0.0, 1000.0) {
                return Err(invalid(field, "must be between 0 and 1000"));
            }
        }
        if weights.iter().all(|(_, v)| *v == 0.0) {
            return Err(invalid("weights", "at least one weight must be positive"));
        }
        let p = &self.penalties;
        for (field, v) in [
            ("penalties.accountability_delay", p.accountability_delay),
            ("penalties.accountability_fraud", p.accountability_fraud),
            (
                "penalties.accountability_enterprise_harassment",
                p.accountability_enterprise_harassment,
            ),
            ("penalties.rework", p.rework),
            ("penalties.missed_contact", p.missed_contact),
            ("penalties.missed_feedback", p.missed_feedback),
            ("penalties.missed_resolution", p.missed_resolution),
        ] {
            if !finite_in(v, 0.0, 100.0) {
                return Err(invalid(field, "must be between 0 and 100 points"));
            }
        }
        if self.best > 50 {
            return Err(invalid("best", "must be at most 50"));
        }
        if self.worst > 50 {
            return Err(invalid("worst", "must be at most 50"));
        }
        Ok(())
    }
}

/// The admin's command: replace the policy in force from now on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetAssessmentPolicy {
    pub policy: AssessmentPolicy,
    /// Why it changed (e.g. the decision of the assessment committee).
    pub reason: LongText,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PolicyCommand {
    Set(SetAssessmentPolicy),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PolicyEvent {
    /// The policy in force from `at` on, as version `version` (1, 2, …; 0 is the default).
    AssessmentPolicySet {
        version: u64,
        policy: AssessmentPolicy,
        reason: LongText,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for PolicyEvent {
    fn event_type(&self) -> String {
        match self {
            Self::AssessmentPolicySet { .. } => "AssessmentPolicySet".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("the policy is already the one in force (version {version})")]
    Unchanged { version: u64 },
}

/// The district's assessment policy stream: the version and policy in force.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssessmentPolicyBook {
    pub version: u64,
    pub policy: AssessmentPolicy,
}

impl AssessmentPolicyBook {
    /// The id of the district's one policy stream.
    pub const STREAM: &'static str = "district";

    pub fn decide(
        &self,
        command: &PolicyCommand,
        clock: &dyn Clock,
    ) -> Result<Vec<PolicyEvent>, PolicyError> {
        let PolicyCommand::Set(body) = command;
        body.policy.validate()?;
        if self.version > 0 && body.policy == self.policy {
            return Err(PolicyError::Unchanged {
                version: self.version,
            });
        }
        Ok(vec![PolicyEvent::AssessmentPolicySet {
            version: self.version + 1,
            policy: body.policy,
            reason: body.reason.clone(),
            at: clock.now(),
        }])
    }
}

impl Aggregate for AssessmentPolicyBook {
    const TYPE: &'static str = "assessment_policy";
    type Command = PolicyCommand;
    type Event = PolicyEvent;
    type Error = PolicyError;
    type Services = std::sync::Arc<dyn Clock>;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(&command, services.as_ref())? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        let PolicyEvent::AssessmentPolicySet {
            version, policy, ..
        } = event;
        self.version = version;
        self.policy = policy;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use cqrs_es::test::TestFramework;
    use std::sync::Arc;

    fn clock() -> Arc<dyn Clock> {
        Arc::new(FixedClock::new("2026-10-08T01:00:00Z".parse().unwrap()))
    }

    fn set(policy: AssessmentPolicy) -> PolicyCommand {
        PolicyCommand::Set(SetAssessmentPolicy {
            policy,
            reason: "考核委员会决定".parse().unwrap(),
        })
    }

    #[test]
    fn setting_a_policy_records_the_next_version() {
        let mut p = AssessmentPolicy::default();
        p.weights.style = 20.0;
        TestFramework::<AssessmentPolicyBook>::with(clock())
            .given(vec![PolicyEvent::AssessmentPolicySet {
                version: 1,
                policy: AssessmentPolicy::default(),
                reason: "初始".parse().unwrap(),
                at: "2026-07-01T00:00:00Z".parse().unwrap(),
            }])
            .when(set(p))
            .then_expect_events(vec![PolicyEvent::AssessmentPolicySet {
                version: 2,
                policy: p,
                reason: "考核委员会决定".parse().unwrap(),
                at: "2026-10-08T01:00:00Z".parse().unwrap(),
            }]);
    }

    #[test]
    fn invalid_or_unchanged_policies_are_refused() {
        let p = AssessmentPolicy {
            basically_satisfied_weight: 1.5,
            ..Default::default()
        };
        TestFramework::<AssessmentPolicyBook>::with(clock())
            .given_no_previous_events()
            .when(set(p))
            .then_expect_error(PolicyError::InvalidField {
                field: "basically_satisfied_weight",
                reason: "must be between 0 and 1".into(),
            });
        let mut p = AssessmentPolicy {
            weights: Weights {
                response: 0.0,
                on_time_completion: 0.0,
                resolution: 0.0,
                satisfaction: 0.0,
                style: 0.0,
            },
            ..Default::default()
        };
        assert!(matches!(
            p.validate(),
            Err(PolicyError::InvalidField {
                field: "weights",
                ..
            })
        ));
        p = AssessmentPolicy::default();
        p.penalties.rework = f64::NAN;
        assert!(p.validate().is_err());
        TestFramework::<AssessmentPolicyBook>::with(clock())
            .given(vec![PolicyEvent::AssessmentPolicySet {
                version: 1,
                policy: AssessmentPolicy::default(),
                reason: "初始".parse().unwrap(),
                at: "2026-07-01T00:00:00Z".parse().unwrap(),
            }])
            .when(set(AssessmentPolicy::default()))
            .then_expect_error(PolicyError::Unchanged { version: 1 });
    }
}
