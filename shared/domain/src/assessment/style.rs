//! Quarterly style evaluations (作风评议, seed 001: "每季度开展一次机关作风评议 … 增加市场主体参与测评
//!工作,采取线上扫码测评"): an enterprise or a return-visit evaluator scores a department on each
//! dimension from 1 to 5. One evaluation per evaluator × department × quarter: its own stream
//! ([`StyleEvaluation::stream_id`]); submitting again records a new event that replaces the
//! previous one (its `revision` says which).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use super::period::Quarter;
use crate::clock::Clock;
use crate::values::{DepartmentId, LongText};

/// What a style evaluation scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StyleDimension {
    /// 服务态度.
    ServiceAttitude,
    /// 办事效率.
    Efficiency,
    /// 依法行政、规范执法.
    LawfulAdministration,
    /// 廉洁自律.
    Integrity,
    /// 诚信践诺 (有诺必践).
    PromiseKeeping,
}

impl StyleDimension {
    pub const ALL: &'static [StyleDimension] = &[
        Self::ServiceAttitude,
        Self::Efficiency,
        Self::LawfulAdministration,
        Self::Integrity,
        Self::PromiseKeeping,
    ];
}

/// The body of `POST /api/v1/style-evaluations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitStyleEvaluation {
    pub quarter: Quarter,
    pub department: DepartmentId,
    /// A score from 1 to 5 for every dimension.
    pub scores: BTreeMap<StyleDimension, u8>,
    #[serde(default)]
    pub comment: Option<LongText>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StyleCommand {
    Submit {
        /// The evaluator's identity (the token's subject) and role.
        evaluator: String,
        evaluator_role: String,
        body: SubmitStyleEvaluation,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StyleEvent {
    StyleEvaluationSubmitted {
        quarter: Quarter,
        department: DepartmentId,
        evaluator: String,
        evaluator_role: String,
        scores: BTreeMap<StyleDimension, u8>,
        comment: Option<LongText>,
        /// 1 for the first evaluation; each resubmission replaces the previous one.
        revision: u32,
        at: DateTime<Utc>,
    },
}

impl StyleEvent {
    pub fn at(&self) -> DateTime<Utc> {
        let Self::StyleEvaluationSubmitted { at, .. } = self;
        *at
    }
}

impl DomainEvent for StyleEvent {
    fn event_type(&self) -> String {
        match self {
            Self::StyleEvaluationSubmitted { .. } => "StyleEvaluationSubmitted".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StyleError {
    #[error("{field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error(
        "the quarter {quarter} is not open for evaluation: evaluations are taken during a quarter and the next one (now {current})"
    )]
    QuarterClosed { quarter: Quarter, current: Quarter },
}

impl StyleError {
    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::InvalidField { field, .. } => field,
            Self::QuarterClosed { .. } => "quarter",
        }
    }
}

pub type StyleServices = Arc<dyn Clock>;

/// One evaluator's evaluation of one department for one quarter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StyleEvaluation {
    pub revision: u32,
}

impl StyleEvaluation {
    /// The stream of `evaluator`'s evaluation of `department` for `quarter`.
    pub fn stream_id(quarter: Quarter, department: &DepartmentId, evaluator: &str) -> String {
        format!("{quarter}/{department}/{evaluator}")
    }

    /// Mean of the scores, 1–5.
    pub fn mean(scores: &BTreeMap<StyleDimension, u8>) -> f64 {
        if scores.is_empty() {
            return 0.0;
        }
        scores.values().map(|s| f64::from(*s)).sum::<f64>() / scores.len() as f64
    }

    pub fn decide(
        &self,
        command: &StyleCommand,
        clock: &dyn Clock,
    ) -> Result<Vec<StyleEvent>, StyleError> {
        let StyleCommand::Submit {
            evaluator,
            evaluator_role,
            body,
        } = command;
        for dim in StyleDimension::ALL {
            match body.scores.get(dim) {
                None => {
                    return Err(StyleError::InvalidField {
                        field: "scores",
                        reason: format!(
                            "every dimension must be scored; missing {}",
                            serde_json::to_string(dim).unwrap_or_default()
                        ),
                    });
                }
                Some(s) if !(1..=5).contains(s) => {
                    return Err(StyleError::InvalidField {
                        field: "scores",
                        reason: format!("scores are 1 to 5, got {s}"),
                    });
                }
                Some(_) => {}
            }
        }
        let now = clock.now();
        let current = Quarter::of(now);
        let previous = current
            .months()
            .first()
            .map(|m| Quarter::of(m.start() - chrono::Duration::seconds(1)));
        if body.quarter != current && Some(body.quarter) != previous {
            return Err(StyleError::QuarterClosed {
                quarter: body.quarter,
                current,
            });
        }
        Ok(vec![StyleEvent::StyleEvaluationSubmitted {
            quarter: body.quarter,
            department: body.department.clone(),
            evaluator: evaluator.clone(),
            evaluator_role: evaluator_role.clone(),
            scores: body.scores.clone(),
            comment: body.comment.clone(),
            revision: self.revision + 1,
            at: now,
        }])
    }
}

impl Aggregate for StyleEvaluation {
    const TYPE: &'static str = "style_evaluation";
    type Command = StyleCommand;
    type Event = StyleEvent;
    type Error = StyleError;
    type Services = StyleServices;

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
        let StyleEvent::StyleEvaluationSubmitted { revision, .. } = event;
        self.revision = revision;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use cqrs_es::test::TestFramework;

    const NOW: &str = "2026-10-08T01:00:00Z";

    fn clock() -> StyleServices {
        Arc::new(FixedClock::new(NOW.parse().unwrap()))
    }

    fn scores(s: [u8; 5]) -> BTreeMap<StyleDimension, u8> {
        StyleDimension::ALL.iter().copied().zip(s).collect()
    }

    fn submit(quarter: &str, s: [u8; 5]) -> StyleCommand {
        StyleCommand::Submit {
            evaluator: "ent-001".into(),
            evaluator_role: "enterprise".into(),
            body: SubmitStyleEvaluation {
                quarter: quarter.parse().unwrap(),
                department: "market".parse().unwrap(),
                scores: scores(s),
                comment: None,
            },
        }
    }

    fn submitted(quarter: &str, s: [u8; 5], revision: u32) -> StyleEvent {
        StyleEvent::StyleEvaluationSubmitted {
            quarter: quarter.parse().unwrap(),
            department: "market".parse().unwrap(),
            evaluator: "ent-001".into(),
            evaluator_role: "enterprise".into(),
            scores: scores(s),
            comment: None,
            revision,
            at: NOW.parse().unwrap(),
        }
    }

    #[test]
    fn a_second_submission_replaces_the_first_as_a_new_revision() {
        TestFramework::<StyleEvaluation>::with(clock())
            .given_no_previous_events()
            .when(submit("2026-Q4", [5, 4, 4, 5, 3]))
            .then_expect_events(vec![submitted("2026-Q4", [5, 4, 4, 5, 3], 1)]);
        // The previous quarter is still open in the first days of the next.
        TestFramework::<StyleEvaluation>::with(clock())
            .given(vec![submitted("2026-Q3", [5, 4, 4, 5, 3], 1)])
            .when(submit("2026-Q3", [2, 2, 3, 3, 3]))
            .then_expect_events(vec![submitted("2026-Q3", [2, 2, 3, 3, 3], 2)]);
    }

    #[test]
    fn scores_must_cover_every_dimension_from_1_to_5_in_an_open_quarter() {
        let mut missing = submit("2026-Q4", [5, 4, 4, 5, 3]);
        let StyleCommand::Submit { body, .. } = &mut missing;
        body.scores.remove(&StyleDimension::Integrity);
        let e = StyleEvaluation::default()
            .decide(&missing, clock().as_ref())
            .unwrap_err();
        assert_eq!(e.field(), "scores");
        assert!(e.to_string().contains("integrity"), "{e}");
        let e = StyleEvaluation::default()
            .decide(&submit("2026-Q4", [5, 4, 0, 5, 3]), clock().as_ref())
            .unwrap_err();
        assert!(e.to_string().contains("1 to 5"), "{e}");
        for closed in ["2026-Q2", "2027-Q1"] {
            let e = StyleEvaluation::default()
                .decide(&submit(closed, [5, 4, 4, 5, 3]), clock().as_ref())
                .unwrap_err();
            assert_eq!(e.field(), "quarter", "{closed}");
        }
        assert_eq!(StyleEvaluation::mean(&scores([5, 4, 4, 5, 3])), 4.2);
    }
}
