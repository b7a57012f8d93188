//! Assessment (考核评议): the periods it covers, the assessment policy (weights, penalties, target,
//! best/worst list sizes) as an aggregate whose every change is an event, quarterly style
//! evaluations (作风评议) as an aggregate per evaluator × department × quarter, and the pure
//! ranking with the one-vote veto (一票否决). Definitions and worked examples: `docs/metrics.md`.

pub mod period;
pub mod policy;
pub mod ranking;
pub mod style;

pub use period::{Month, Period, Quarter};
pub use policy::{
    AssessmentPolicy, AssessmentPolicyBook, Penalties, PolicyCommand, PolicyError, PolicyEvent,
    Weights,
};
pub use ranking::{DepartmentRecord, List, PenaltyKind, RankedDepartment, Ranking, rank};
pub use style::{
    StyleCommand, StyleDimension, StyleError, StyleEvaluation, StyleEvent, StyleServices,
    SubmitStyleEvaluation,
};
