//! The department ranking of a period (考核排名): a composite score from the rates, the style
//! evaluations and penalty points; the one-vote veto (一票否决, seed 003: "对存在侵企、扰企行为的部门单位，
//! 年终考核'一票否决'"); best and worst lists (三佳二差). Pure: the inputs are counted by the
//! projections, the policy is the one chosen by the caller (then in force, or current).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::policy::AssessmentPolicy;
use crate::rates::{RateCounts, Rates};
use crate::values::{AccountabilityKind, DeadlineKind, DepartmentId};

/// What costs a department points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PenaltyKind {
    AccountabilityDelay,
    AccountabilityFraud,
    AccountabilityEnterpriseHarassment,
    Rework,
    MissedContact,
    MissedFeedback,
    MissedResolution,
}

impl PenaltyKind {
    pub const ALL: &'static [PenaltyKind] = &[
        Self::AccountabilityDelay,
        Self::AccountabilityFraud,
        Self::AccountabilityEnterpriseHarassment,
        Self::Rework,
        Self::MissedContact,
        Self::MissedFeedback,
        Self::MissedResolution,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::AccountabilityDelay => "accountability_delay",
            Self::AccountabilityFraud => "accountability_fraud",
            Self::AccountabilityEnterpriseHarassment => "accountability_enterprise_harassment",
            Self::Rework => "rework",
            Self::MissedContact => "missed_contact",
            Self::MissedFeedback => "missed_feedback",
            Self::MissedResolution => "missed_resolution",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    pub fn accountability(kind: AccountabilityKind) -> Self {
        match kind {
            AccountabilityKind::Delay => Self::AccountabilityDelay,
            AccountabilityKind::Fraud => Self::AccountabilityFraud,
            AccountabilityKind::EnterpriseHarassment => Self::AccountabilityEnterpriseHarassment,
        }
    }

    pub fn missed(which: DeadlineKind) -> Self {
        match which {
            DeadlineKind::Contact => Self::MissedContact,
            DeadlineKind::Feedback => Self::MissedFeedback,
            DeadlineKind::Resolution => Self::MissedResolution,
        }
    }

    /// Points per occurrence under `policy`.
    pub fn points(&self, policy: &AssessmentPolicy) -> f64 {
        let p = &policy.penalties;
        match self {
            Self::AccountabilityDelay => p.accountability_delay,
            Self::AccountabilityFraud => p.accountability_fraud,
            Self::AccountabilityEnterpriseHarassment => p.accountability_enterprise_harassment,
            Self::Rework => p.rework,
            Self::MissedContact => p.missed_contact,
            Self::MissedFeedback => p.missed_feedback,
            Self::MissedResolution => p.missed_resolution,
        }
    }

    /// Whether one occurrence in the period vetoes the department (一票否决).
    pub fn vetoes(&self) -> bool {
        *self == Self::AccountabilityEnterpriseHarassment
    }
}

/// Everything counted for one department in the period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DepartmentRecord {
    /// Rate outcomes of the period's months, added up.
    pub counts: RateCounts,
    /// Sum of the means (1–5) of the style evaluations of the period's quarters, and how many.
    pub style_mean_sum: f64,
    pub style_evaluations: i64,
    /// Occurrences in the period, per kind.
    pub penalties: BTreeMap<PenaltyKind, i64>,
}

/// The style component of a department: the mean of its evaluations' means, and that mean on
/// the 0–100 scale ((mean − 1) / 4 × 100: 1 → 0, 5 → 100).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StyleComponent {
    pub evaluations: i64,
    pub mean: Option<f64>,
    pub percent: Option<f64>,
}

/// One department's line in the ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedDepartment {
    /// 1 = best. Vetoed departments come after every other one.
    pub rank: usize,
    pub department: DepartmentId,
    /// Composite score: `base − penalty_points`.
    pub score: f64,
    /// Weighted mean of the components that have data, 0–100 (0 when none has).
    pub base: f64,
    pub rates: Rates,
    pub style: StyleComponent,
    pub penalties: BTreeMap<PenaltyKind, i64>,
    pub penalty_points: f64,
    /// 一票否决: an enterprise-harassment accountability in the period.
    pub vetoed: bool,
    /// On the best or the worst list, or neither.
    pub list: Option<List>,
}

/// The two lists of a ranking (三佳二差: the best three, the worst two, by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum List {
    Best,
    Worst,
}

/// The ranking of a period under one policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranking {
    pub departments: Vec<RankedDepartment>,
    pub best: Vec<DepartmentId>,
    pub worst: Vec<DepartmentId>,
}

/// Ranks every department of `records` under `policy`:
///
/// 1. each component with data (a rate with a denominator; style with an evaluation) gives a
///    percent 0–100; `base` = Σ weight × percent / Σ weight over those components;
/// 2. `score` = `base` − Σ points(kind) × occurrences(kind);
/// 3. departments without a veto by score (highest first), then the vetoed ones by score;
///    equal scores by department id, so the order is total;
/// 4. `best` = the first `policy.best` departments without a veto; `worst` = the last
///    `policy.worst` departments not already best.
pub fn rank(
    records: BTreeMap<DepartmentId, DepartmentRecord>,
    policy: &AssessmentPolicy,
) -> Ranking {
    let params = policy.rate_params();
    let w = &policy.weights;
    let mut lines: Vec<RankedDepartment> = records
        .into_iter()
        .map(|(department, record)| {
            let rates = record.counts.rates(&params);
            let style_mean = (record.style_evaluations > 0)
                .then(|| record.style_mean_sum / record.style_evaluations as f64);
            let style = StyleComponent {
                evaluations: record.style_evaluations,
                mean: style_mean,
                percent: style_mean.map(|m| (m - 1.0) / 4.0 * 100.0),
            };
            let components = [
                (w.response, rates.response.percent),
                (w.on_time_completion, rates.on_time_completion.percent),
                (w.resolution, rates.resolution.percent),
                (w.satisfaction, rates.satisfaction.percent),
                (w.style, style.percent),
            ];
            let (weighted, weights) = components
                .iter()
                .filter_map(|(w, p)| p.map(|p| (w * p, *w)))
                .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
            let base = if weights > 0.0 {
                weighted / weights
            } else {
                0.0
            };
            let penalty_points: f64 = record
                .penalties
                .iter()
                .map(|(kind, n)| kind.points(policy) * *n as f64)
                .sum();
            let vetoed = record
                .penalties
                .iter()
                .any(|(kind, n)| kind.vetoes() && *n > 0);
            RankedDepartment {
                rank: 0,
                department,
                score: base - penalty_points,
                base,
                rates,
                style,
                penalties: record.penalties,
                penalty_points,
                vetoed,
                list: None,
            }
        })
        .collect();
    lines.sort_by(|a, b| {
        a.vetoed
            .cmp(&b.vetoed)
            .then(b.score.total_cmp(&a.score))
            .then_with(|| a.department.cmp(&b.department))
    });
    let eligible = lines.iter().filter(|l| !l.vetoed).count();
    let best_n = (policy.best as usize).min(eligible);
    let worst_m = (policy.worst as usize).min(lines.len() - best_n);
    let total = lines.len();
    for (i, line) in lines.iter_mut().enumerate() {
        line.rank = i + 1;
        if i < best_n {
            line.list = Some(List::Best);
        } else if i >= total - worst_m {
            line.list = Some(List::Worst);
        }
    }
    let named = |list: List| {
        lines
            .iter()
            .filter(|l| l.list == Some(list))
            .map(|l| l.department.clone())
            .collect()
    };
    Ranking {
        best: named(List::Best),
        worst: named(List::Worst),
        departments: lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> DepartmentId {
        s.parse().unwrap()
    }

    fn record(
        contacts: (i64, i64),
        completions: (i64, i64),
        visits: (i64, i64, i64, i64),
        style: (f64, i64),
        penalties: &[(PenaltyKind, i64)],
    ) -> DepartmentRecord {
        DepartmentRecord {
            counts: RateCounts {
                contacts: contacts.1,
                contacts_on_time: contacts.0,
                completions: completions.1,
                completions_on_time: completions.0,
                visits: visits.3,
                solved: visits.0,
                satisfied: visits.1,
                basically_satisfied: visits.2,
            },
            style_mean_sum: style.0,
            style_evaluations: style.1,
            penalties: penalties.iter().copied().collect(),
        }
    }

    #[test]
    fn composite_score_veto_and_lists() {
        // The worked example of docs/metrics.md, default policy (weights 20/30/10/30/10).
        let records = BTreeMap::from([
            // All rates 100%, style mean 5 → base 100; one rework → 99.
            (
                d("tax"),
                record(
                    (2, 2),
                    (2, 2),
                    (2, 2, 0, 2),
                    (5.0, 1),
                    &[(PenaltyKind::Rework, 1)],
                ),
            ),
            // Response 50%, completion 100%, no visits, no style: (20·50 + 30·100) / 50 = 80.
            (
                d("housing"),
                record((1, 2), (1, 1), (0, 0, 0, 0), (0.0, 0), &[]),
            ),
            // Would be best (100), but vetoed: ranked last, minus 5 points → 95.
            (
                d("market"),
                record(
                    (1, 1),
                    (1, 1),
                    (1, 1, 0, 1),
                    (0.0, 0),
                    &[(PenaltyKind::AccountabilityEnterpriseHarassment, 1)],
                ),
            ),
            // Only a style mean of 3 → 50; a missed resolution → 49.
            (
                d("police"),
                record(
                    (0, 0),
                    (0, 0),
                    (0, 0, 0, 0),
                    (3.0, 1),
                    &[(PenaltyKind::MissedResolution, 1)],
                ),
            ),
        ]);
        let policy = AssessmentPolicy {
            best: 1,
            worst: 2,
            ..Default::default()
        };
        let r = rank(records, &policy);
        let order: Vec<_> = r
            .departments
            .iter()
            .map(|l| (l.rank, l.department.to_string(), l.score, l.vetoed, l.list))
            .collect();
        assert_eq!(
            order,
            [
                (1, "tax".into(), 99.0, false, Some(List::Best)),
                (2, "housing".into(), 80.0, false, None),
                (3, "police".into(), 49.0, false, Some(List::Worst)),
                (4, "market".into(), 95.0, true, Some(List::Worst)),
            ]
        );
        assert_eq!(r.best, [d("tax")]);
        assert_eq!(r.worst, [d("police"), d("market")]);
        assert_eq!(r.departments[2].style.percent, Some(50.0));
    }

    #[test]
    fn lists_never_overlap_and_vetoed_departments_are_never_best() {
        let records = BTreeMap::from([
            (
                d("a"),
                record(
                    (1, 1),
                    (0, 0),
                    (0, 0, 0, 0),
                    (0.0, 0),
                    &[(PenaltyKind::AccountabilityEnterpriseHarassment, 2)],
                ),
            ),
            (d("b"), record((0, 1), (0, 0), (0, 0, 0, 0), (0.0, 0), &[])),
        ]);
        let r = rank(records, &AssessmentPolicy::default());
        assert_eq!(r.best, [d("b")]);
        assert_eq!(r.worst, [d("a")]);
        assert!(
            rank(BTreeMap::new(), &AssessmentPolicy::default())
                .departments
                .is_empty()
        );
    }
}
