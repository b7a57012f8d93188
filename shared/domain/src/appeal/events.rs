//! Events of an appeal: the facts the event store keeps forever. Every field needed to replay a
//! decision is in the event (deadlines and the calendar version that produced them included), so
//! replays never consult the current calendar or policy.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::commands::Filer;
use crate::sla::{Deadlines, PolicyScope, SlaPolicy};
use crate::values::{
    AccountabilityKind, Category, Channel, ContactMethod, DeadlineKind, DepartmentId, LongText,
    ResolutionOutcome, Satisfaction, ShortText, TrackingNumber,
};

/// The SLA policy a deadline was computed with: its label (scope and rules version) and its terms,
/// so a replay or an audit never needs the policy table of the time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedPolicy {
    pub label: String,
    pub terms: SlaPolicy,
}

impl Default for AppliedPolicy {
    /// Events recorded before policies were data carry no policy: they used the built-in "2110".
    fn default() -> Self {
        Self {
            label: format!("{}@default", PolicyScope::default()),
            terms: SlaPolicy::default(),
        }
    }
}

fn default_rework_days() -> u32 {
    SlaPolicy::default().rework_working_days
}

/// What a return visit found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReturnVisitResult {
    Reached {
        solved: bool,
        satisfaction: Satisfaction,
    },
    Unreachable,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AppealEvent {
    AppealFiled {
        appeal_id: Uuid,
        tracking_number: TrackingNumber,
        channel: Channel,
        filer: Filer,
        category: Category,
        town: ShortText,
        description: LongText,
        complained_unit: Option<ShortText>,
        at: DateTime<Utc>,
    },
    AppealAssigned {
        lead: DepartmentId,
        co_handlers: Vec<DepartmentId>,
        deadlines: Deadlines,
        calendar: String,
        #[serde(default)]
        policy: AppliedPolicy,
        at: DateTime<Utc>,
    },
    AppealTransferred {
        from: DepartmentId,
        lead: DepartmentId,
        co_handlers: Vec<DepartmentId>,
        reason: LongText,
        deadlines: Deadlines,
        calendar: String,
        #[serde(default)]
        policy: AppliedPolicy,
        at: DateTime<Utc>,
    },
    AppealDeclined {
        department: DepartmentId,
        reason: LongText,
        at: DateTime<Utc>,
    },
    ContactRecorded {
        department: DepartmentId,
        method: ContactMethod,
        note: Option<LongText>,
        at: DateTime<Utc>,
    },
    InitialFeedbackGiven {
        department: DepartmentId,
        text: LongText,
        at: DateTime<Utc>,
    },
    AppealResolved {
        department: DepartmentId,
        outcome: ResolutionOutcome,
        text: LongText,
        at: DateTime<Utc>,
    },
    ExtensionRequested {
        department: DepartmentId,
        working_days: u32,
        reason: LongText,
        at: DateTime<Utc>,
    },
    ExtensionApproved {
        working_days: u32,
        previous_resolution_due: DateTime<Utc>,
        resolution_due: DateTime<Utc>,
        calendar: String,
        note: Option<LongText>,
        at: DateTime<Utc>,
    },
    ExtensionRejected {
        reason: LongText,
        at: DateTime<Utc>,
    },
    ReturnedForRework {
        reason: LongText,
        /// Working days the rework gets (from the assignment's policy).
        #[serde(default = "default_rework_days")]
        working_days: u32,
        resolution_due: DateTime<Utc>,
        calendar: String,
        at: DateTime<Utc>,
    },
    ReturnVisitRecorded {
        result: ReturnVisitResult,
        comment: Option<LongText>,
        at: DateTime<Utc>,
    },
    AppealClosed {
        note: Option<LongText>,
        at: DateTime<Utc>,
    },
    AppealWithdrawn {
        reason: LongText,
        at: DateTime<Utc>,
    },
    AppealMarkedDuplicate {
        original: Uuid,
        at: DateTime<Utc>,
    },
    AppealSupervised {
        note: LongText,
        due: DateTime<Utc>,
        calendar: String,
        at: DateTime<Utc>,
    },
    AccountabilityRecorded {
        department: DepartmentId,
        kind: AccountabilityKind,
        note: LongText,
        at: DateTime<Utc>,
    },
    DeadlineMissed {
        which: DeadlineKind,
        due: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// The calendar changed under an open appeal: its working-day deadlines computed again from
    /// the same starting instants and policy with the new calendar (old → new, and why).
    DeadlinesRecomputed {
        previous: Deadlines,
        deadlines: Deadlines,
        previous_calendar: String,
        calendar: String,
        reason: String,
        at: DateTime<Utc>,
    },
}

impl AppealEvent {
    /// The event's name (also its variant name and its type in the store and on the bus).
    pub fn name(&self) -> &'static str {
        match self {
            Self::AppealFiled { .. } => "AppealFiled",
            Self::AppealAssigned { .. } => "AppealAssigned",
            Self::AppealTransferred { .. } => "AppealTransferred",
            Self::AppealDeclined { .. } => "AppealDeclined",
            Self::ContactRecorded { .. } => "ContactRecorded",
            Self::InitialFeedbackGiven { .. } => "InitialFeedbackGiven",
            Self::AppealResolved { .. } => "AppealResolved",
            Self::ExtensionRequested { .. } => "ExtensionRequested",
            Self::ExtensionApproved { .. } => "ExtensionApproved",
            Self::ExtensionRejected { .. } => "ExtensionRejected",
            Self::ReturnedForRework { .. } => "ReturnedForRework",
            Self::ReturnVisitRecorded { .. } => "ReturnVisitRecorded",
            Self::AppealClosed { .. } => "AppealClosed",
            Self::AppealWithdrawn { .. } => "AppealWithdrawn",
            Self::AppealMarkedDuplicate { .. } => "AppealMarkedDuplicate",
            Self::AppealSupervised { .. } => "AppealSupervised",
            Self::AccountabilityRecorded { .. } => "AccountabilityRecorded",
            Self::DeadlineMissed { .. } => "DeadlineMissed",
            Self::DeadlinesRecomputed { .. } => "DeadlinesRecomputed",
        }
    }

    /// When the fact happened (the domain clock at decision time).
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::AppealFiled { at, .. }
            | Self::AppealAssigned { at, .. }
            | Self::AppealTransferred { at, .. }
            | Self::AppealDeclined { at, .. }
            | Self::ContactRecorded { at, .. }
            | Self::InitialFeedbackGiven { at, .. }
            | Self::AppealResolved { at, .. }
            | Self::ExtensionRequested { at, .. }
            | Self::ExtensionApproved { at, .. }
            | Self::ExtensionRejected { at, .. }
            | Self::ReturnedForRework { at, .. }
            | Self::ReturnVisitRecorded { at, .. }
            | Self::AppealClosed { at, .. }
            | Self::AppealWithdrawn { at, .. }
            | Self::AppealMarkedDuplicate { at, .. }
            | Self::AppealSupervised { at, .. }
            | Self::AccountabilityRecorded { at, .. }
            | Self::DeadlineMissed { at, .. }
            | Self::DeadlinesRecomputed { at, .. } => *at,
        }
    }
}

/// Version of every event's payload schema; bump per event when its shape changes.
pub const EVENT_VERSION: &str = "1";

impl DomainEvent for AppealEvent {
    fn event_type(&self) -> String {
        self.name().to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_owned()
    }
}
