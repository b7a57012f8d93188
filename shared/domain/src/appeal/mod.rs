//! The `Appeal` aggregate (诉求工单): its lifecycle and every rule about who may do what when.

mod commands;
mod events;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use commands::*;
pub use events::*;

use crate::calendar::{CalendarError, WorkingCalendar, add_working_days};
use crate::clock::Clock;
use crate::rules::{FixedRules, Rulebook, RulesSource};
use crate::sla::{Deadlines, SlaPolicy, StepsDone, extend_deadline};
use crate::values::{Category, Channel, DeadlineKind, DepartmentId, TrackingNumber};

/// Where an appeal is in its lifecycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppealStatus {
    /// No appeal with this id exists.
    #[default]
    NotFiled,
    /// 待分派: filed (or declined back), waiting for a lead department.
    Filed,
    /// 办理中: a lead department is handling it.
    Assigned,
    /// 已办复: resolved, waiting for the return visit.
    Resolved,
    /// 已回访: the filer was reached at the return visit.
    ReturnVisited,
    /// 已办结归档.
    Closed,
    /// 已撤回.
    Withdrawn,
    /// 重复件, merged into another appeal.
    Duplicate,
}

impl AppealStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NotFiled => "not_filed",
            Self::Filed => "filed",
            Self::Assigned => "assigned",
            Self::Resolved => "resolved",
            Self::ReturnVisited => "return_visited",
            Self::Closed => "closed",
            Self::Withdrawn => "withdrawn",
            Self::Duplicate => "duplicate",
        }
    }
}

impl fmt::Display for AppealStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an API should answer an [`AppealError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The appeal does not exist.
    NotFound,
    /// The caller's department may not act on this appeal.
    Forbidden,
    /// The command is not allowed in the appeal's current state.
    Conflict,
    /// A field of the command is invalid in context.
    Invalid,
}

/// Every way a command on an appeal can be refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppealError {
    #[error("no appeal with this id has been filed")]
    NotFound,
    #[error("an appeal with this id is already filed")]
    AlreadyFiled,
    #[error("the command `{command}` is not allowed while the appeal's status is {status}")]
    IllegalTransition {
        command: &'static str,
        status: AppealStatus,
    },
    #[error("department {department} is not {role} of this appeal")]
    NotResponsible {
        department: DepartmentId,
        role: &'static str,
    },
    #[error("the appeal is already led by {0}")]
    AlreadyLedBy(DepartmentId),
    #[error("department {0} has never handled this appeal")]
    DepartmentNotInvolved(DepartmentId),
    #[error("contact with the filer has already been recorded")]
    AlreadyContacted,
    #[error("initial feedback has already been given")]
    FeedbackAlreadyGiven,
    #[error("contact with the filer must be recorded before the appeal is resolved")]
    ContactNotRecorded,
    #[error("the resolution deadline {due} has passed; extensions are only handled before it")]
    ResolutionDeadlinePassed { due: DateTime<Utc> },
    #[error("an extension request is already pending")]
    ExtensionAlreadyPending,
    #[error("no extension request is pending")]
    NoExtensionPending,
    #[error("the appeal has already been granted the maximum of {max} extensions")]
    ExtensionLimitReached { max: u32 },
    #[error("the {which} deadline is not missed: {reason}")]
    DeadlineNotMissed {
        which: DeadlineKind,
        reason: &'static str,
    },
    #[error("the missed {which} deadline {due} is already recorded")]
    DeadlineMissAlreadyRecorded {
        which: DeadlineKind,
        due: DateTime<Utc>,
    },
    #[error("{field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("cannot compute the deadline: {0}")]
    Calendar(#[from] CalendarError),
}

impl AppealError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound => ErrorKind::NotFound,
            Self::NotResponsible { .. } => ErrorKind::Forbidden,
            Self::InvalidField { .. } | Self::DepartmentNotInvolved(_) | Self::Calendar(_) => {
                ErrorKind::Invalid
            }
            Self::AlreadyFiled
            | Self::AlreadyLedBy(_)
            | Self::IllegalTransition { .. }
            | Self::AlreadyContacted
            | Self::FeedbackAlreadyGiven
            | Self::ContactNotRecorded
            | Self::ResolutionDeadlinePassed { .. }
            | Self::ExtensionAlreadyPending
            | Self::NoExtensionPending
            | Self::ExtensionLimitReached { .. }
            | Self::DeadlineNotMissed { .. }
            | Self::DeadlineMissAlreadyRecorded { .. } => ErrorKind::Conflict,
        }
    }

    /// The request field the error is about, when there is one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::InvalidField { field, .. } => Some(field),
            Self::DepartmentNotInvolved(_) => Some("department"),
            _ => None,
        }
    }
}

/// What the aggregate needs from outside: time, and the SLA rules in force (the working-day
/// calendar and the policies), read once per command.
#[derive(Debug, Clone)]
pub struct AppealServices {
    pub clock: Arc<dyn Clock>,
    pub rules: Arc<dyn RulesSource>,
}

impl AppealServices {
    /// Services with rules that never change: one calendar, one policy for every appeal.
    pub fn fixed(
        clock: Arc<dyn Clock>,
        calendar: Arc<dyn WorkingCalendar>,
        policy: SlaPolicy,
    ) -> Self {
        Self {
            clock,
            rules: Arc::new(FixedRules(Arc::new(Rulebook::fixed(calendar, policy)))),
        }
    }
}

/// What the current working-day deadlines were computed from, so they can be computed again when
/// the calendar changes: the assignment instant and policy, a rework's restart, the extensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadlineBasis {
    pub assigned_at: DateTime<Utc>,
    pub policy: SlaPolicy,
    /// The calendar version the deadlines in force were last computed with.
    pub calendar: String,
    /// A rework restarts the resolution period: when, and for how many working days.
    pub rework: Option<(DateTime<Utc>, u32)>,
    /// Extensions approved since the assignment or the last rework, in order (working days).
    pub extensions: Vec<u32>,
}

impl DeadlineBasis {
    /// The deadlines these starting points give under `calendar` (the contact deadline is clock
    /// time and never moves).
    pub fn compute(
        &self,
        contact_due: DateTime<Utc>,
        calendar: &dyn WorkingCalendar,
    ) -> Result<Deadlines, CalendarError> {
        let feedback_due = add_working_days(
            calendar,
            self.assigned_at,
            self.policy.feedback_working_days,
        )?;
        let mut resolution_due = match self.rework {
            Some((at, days)) => add_working_days(calendar, at, days)?,
            None => add_working_days(
                calendar,
                self.assigned_at,
                self.policy.resolution_working_days,
            )?,
        };
        for days in &self.extensions {
            resolution_due = extend_deadline(calendar, resolution_due, *days)?;
        }
        Ok(Deadlines {
            contact_due,
            feedback_due,
            resolution_due,
        })
    }
}

/// The state an appeal's events add up to: only what the rules need.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Appeal {
    pub id: Option<Uuid>,
    pub tracking_number: Option<TrackingNumber>,
    /// Channel and category choose the SLA policy of an assignment.
    pub channel: Option<Channel>,
    pub category: Option<Category>,
    pub status: AppealStatus,
    pub lead: Option<DepartmentId>,
    pub co_handlers: Vec<DepartmentId>,
    /// Every department that was ever lead or co-handler (accountability may name any of them).
    pub involved: BTreeSet<DepartmentId>,
    pub deadlines: Option<Deadlines>,
    pub basis: Option<DeadlineBasis>,
    /// When each step of the current assignment happened: a step after its deadline still
    /// leaves the deadline missed.
    pub contacted_at: Option<DateTime<Utc>>,
    pub feedback_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub pending_extension_days: Option<u32>,
    pub extensions_granted: u32,
    pub unreachable_visits: u32,
    /// Deadlines already recorded as missed, by kind and due instant (a moved deadline can be
    /// missed again, the same one only once).
    pub missed: Vec<(DeadlineKind, DateTime<Utc>)>,
}

impl Appeal {
    fn illegal(&self, command: &AppealCommand) -> AppealError {
        AppealError::IllegalTransition {
            command: command.name(),
            status: self.status,
        }
    }

    fn require_status(
        &self,
        command: &AppealCommand,
        allowed: &[AppealStatus],
    ) -> Result<(), AppealError> {
        if self.status == AppealStatus::NotFiled {
            return Err(AppealError::NotFound);
        }
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(self.illegal(command))
        }
    }

    fn require_lead(&self, by: &DepartmentId) -> Result<(), AppealError> {
        if self.lead.as_ref() == Some(by) {
            Ok(())
        } else {
            Err(AppealError::NotResponsible {
                department: by.clone(),
                role: "the lead department",
            })
        }
    }

    fn require_handler(&self, by: &DepartmentId) -> Result<(), AppealError> {
        if self.lead.as_ref() == Some(by) || self.co_handlers.contains(by) {
            Ok(())
        } else {
            Err(AppealError::NotResponsible {
                department: by.clone(),
                role: "the lead or a co-handling department",
            })
        }
    }

    /// Whether `department` is lead or co-handler now (used for access checks on reads too).
    pub fn is_handled_by(&self, department: &DepartmentId) -> bool {
        self.lead.as_ref() == Some(department) || self.co_handlers.contains(department)
    }

    fn deadlines(&self) -> Deadlines {
        // Only called in the Assigned state, where an assignment always set deadlines.
        self.deadlines.unwrap_or(Deadlines {
            contact_due: DateTime::<Utc>::MIN_UTC,
            feedback_due: DateTime::<Utc>::MIN_UTC,
            resolution_due: DateTime::<Utc>::MIN_UTC,
        })
    }

    /// The policy of the current assignment, else the one the rules give this appeal now.
    fn policy(&self, rules: &Rulebook) -> SlaPolicy {
        match &self.basis {
            Some(basis) => basis.policy.clone(),
            None => self.policy_for_assignment(rules).terms,
        }
    }

    fn policy_for_assignment(&self, rules: &Rulebook) -> AppliedPolicy {
        let (terms, label) = match (self.channel, self.category) {
            (Some(channel), Some(category)) => rules.policies.resolve(channel, category),
            _ => return AppliedPolicy::default(),
        };
        AppliedPolicy { label, terms }
    }

    fn require_before_resolution_due(&self, now: DateTime<Utc>) -> Result<(), AppealError> {
        let due = self.deadlines().resolution_due;
        if now < due {
            Ok(())
        } else {
            Err(AppealError::ResolutionDeadlinePassed { due })
        }
    }

    /// Decides which events a command records, without changing anything: the whole of the rules.
    pub fn decide(
        &self,
        command: &AppealCommand,
        services: &AppealServices,
    ) -> Result<Vec<AppealEvent>, AppealError> {
        use AppealCommand as C;
        use AppealEvent as E;
        use AppealStatus as S;

        let now = services.clock.now();
        let rules = services.rules.current();
        let working_calendar = rules.calendar.as_ref();
        let calendar = working_calendar.version().to_owned();
        let policy = &self.policy(&rules);
        let event = match command {
            C::File {
                appeal_id,
                tracking_number,
                body,
            } => {
                if self.status != S::NotFiled {
                    return Err(AppealError::AlreadyFiled);
                }
                E::AppealFiled {
                    appeal_id: *appeal_id,
                    tracking_number: tracking_number.clone(),
                    channel: body.channel,
                    filer: body.filer.clone(),
                    category: body.category,
                    town: body.town.clone(),
                    description: body.description.clone(),
                    complained_unit: body.complained_unit.clone(),
                    at: now,
                }
            }
            C::Assign(body) => {
                self.require_status(command, &[S::Filed])?;
                check_co_handlers(&body.lead, &body.co_handlers)?;
                let policy = self.policy_for_assignment(&rules);
                E::AppealAssigned {
                    lead: body.lead.clone(),
                    co_handlers: body.co_handlers.clone(),
                    deadlines: Deadlines::for_assignment(&policy.terms, working_calendar, now)?,
                    calendar,
                    policy,
                    at: now,
                }
            }
            C::Transfer(body) => {
                self.require_status(command, &[S::Assigned])?;
                check_co_handlers(&body.lead, &body.co_handlers)?;
                let from = self.lead.clone().ok_or_else(|| self.illegal(command))?;
                if from == body.lead {
                    // A conflict with the current state (e.g. two dispatchers transferring to
                    // the same department at once), not a malformed request.
                    return Err(AppealError::AlreadyLedBy(from));
                }
                let policy = self.policy_for_assignment(&rules);
                E::AppealTransferred {
                    from,
                    lead: body.lead.clone(),
                    co_handlers: body.co_handlers.clone(),
                    reason: body.reason.clone(),
                    deadlines: Deadlines::for_assignment(&policy.terms, working_calendar, now)?,
                    calendar,
                    policy,
                    at: now,
                }
            }
            C::Decline { by, body } => {
                self.require_status(command, &[S::Assigned])?;
                self.require_lead(by)?;
                E::AppealDeclined {
                    department: by.clone(),
                    reason: body.reason.clone(),
                    at: now,
                }
            }
            C::RecordContact { by, body } => {
                self.require_status(command, &[S::Assigned])?;
                self.require_handler(by)?;
                if self.contacted_at.is_some() {
                    return Err(AppealError::AlreadyContacted);
                }
                E::ContactRecorded {
                    department: by.clone(),
                    method: body.method,
                    note: body.note.clone(),
                    at: now,
                }
            }
            C::GiveInitialFeedback { by, body } => {
                self.require_status(command, &[S::Assigned])?;
                self.require_lead(by)?;
                if self.feedback_at.is_some() {
                    return Err(AppealError::FeedbackAlreadyGiven);
                }
                E::InitialFeedbackGiven {
                    department: by.clone(),
                    text: body.text.clone(),
                    at: now,
                }
            }
            C::Resolve { by, body } => {
                self.require_status(command, &[S::Assigned])?;
                self.require_lead(by)?;
                if self.contacted_at.is_none() {
                    return Err(AppealError::ContactNotRecorded);
                }
                E::AppealResolved {
                    department: by.clone(),
                    outcome: body.outcome,
                    text: body.text.clone(),
                    at: now,
                }
            }
            C::RequestExtension { by, body } => {
                self.require_status(command, &[S::Assigned])?;
                self.require_lead(by)?;
                self.require_before_resolution_due(now)?;
                if self.pending_extension_days.is_some() {
                    return Err(AppealError::ExtensionAlreadyPending);
                }
                if self.extensions_granted >= policy.max_extensions {
                    return Err(AppealError::ExtensionLimitReached {
                        max: policy.max_extensions,
                    });
                }
                if !(1..=policy.max_extension_working_days).contains(&body.working_days) {
                    return Err(AppealError::InvalidField {
                        field: "working_days",
                        reason: format!(
                            "must be between 1 and {}",
                            policy.max_extension_working_days
                        ),
                    });
                }
                E::ExtensionRequested {
                    department: by.clone(),
                    working_days: body.working_days,
                    reason: body.reason.clone(),
                    at: now,
                }
            }
            C::ApproveExtension(body) => {
                self.require_status(command, &[S::Assigned])?;
                let days = self
                    .pending_extension_days
                    .ok_or(AppealError::NoExtensionPending)?;
                self.require_before_resolution_due(now)?;
                let previous = self.deadlines().resolution_due;
                E::ExtensionApproved {
                    working_days: days,
                    previous_resolution_due: previous,
                    resolution_due: extend_deadline(working_calendar, previous, days)?,
                    calendar,
                    note: body.note.clone(),
                    at: now,
                }
            }
            C::RejectExtension(body) => {
                self.require_status(command, &[S::Assigned])?;
                if self.pending_extension_days.is_none() {
                    return Err(AppealError::NoExtensionPending);
                }
                self.require_before_resolution_due(now)?;
                E::ExtensionRejected {
                    reason: body.reason.clone(),
                    at: now,
                }
            }
            C::ReturnForRework(body) => {
                self.require_status(command, &[S::Resolved, S::ReturnVisited])?;
                E::ReturnedForRework {
                    reason: body.reason.clone(),
                    working_days: policy.rework_working_days,
                    resolution_due: add_working_days(
                        working_calendar,
                        now,
                        policy.rework_working_days,
                    )?,
                    calendar,
                    at: now,
                }
            }
            C::RecordReturnVisit(body) => {
                self.require_status(command, &[S::Resolved])?;
                E::ReturnVisitRecorded {
                    result: return_visit_result(body)?,
                    comment: body.comment.clone(),
                    at: now,
                }
            }
            C::Close(body) => {
                let closable = self.status == S::ReturnVisited
                    || (self.status == S::Resolved && self.unreachable_visits > 0);
                if !closable {
                    self.require_status(command, &[])?;
                }
                E::AppealClosed {
                    note: body.note.clone(),
                    at: now,
                }
            }
            C::Withdraw(body) => {
                self.require_status(command, &[S::Filed, S::Assigned])?;
                E::AppealWithdrawn {
                    reason: body.reason.clone(),
                    at: now,
                }
            }
            C::MarkDuplicate(body) => {
                self.require_status(command, &[S::Filed, S::Assigned])?;
                if self.id == Some(body.original) {
                    return Err(AppealError::InvalidField {
                        field: "original",
                        reason: "an appeal cannot duplicate itself".into(),
                    });
                }
                E::AppealMarkedDuplicate {
                    original: body.original,
                    at: now,
                }
            }
            C::Supervise(body) => {
                self.require_status(command, &[S::Filed, S::Assigned])?;
                let days = body.working_days.unwrap_or(policy.supervision_working_days);
                if !(1..=30).contains(&days) {
                    return Err(AppealError::InvalidField {
                        field: "working_days",
                        reason: "must be between 1 and 30".into(),
                    });
                }
                E::AppealSupervised {
                    note: body.note.clone(),
                    due: add_working_days(working_calendar, now, days)?,
                    calendar,
                    at: now,
                }
            }
            C::RecordAccountability(body) => {
                self.require_status(
                    command,
                    &[
                        S::Filed,
                        S::Assigned,
                        S::Resolved,
                        S::ReturnVisited,
                        S::Closed,
                        S::Withdrawn,
                        S::Duplicate,
                    ],
                )?;
                if !self.involved.contains(&body.department) {
                    return Err(AppealError::DepartmentNotInvolved(body.department.clone()));
                }
                E::AccountabilityRecorded {
                    department: body.department.clone(),
                    kind: body.kind,
                    note: body.note.clone(),
                    at: now,
                }
            }
            C::RecordDeadlineMissed(body) => {
                // Deadlines stay in force through resolution and closing: a late step is
                // recorded as missed even when the watcher sees it after the step.
                self.require_status(
                    command,
                    &[S::Assigned, S::Resolved, S::ReturnVisited, S::Closed],
                )?;
                let which = body.which;
                let due = self.deadlines().due(which);
                let steps = StepsDone {
                    contacted_at: self.contacted_at,
                    feedback_at: self.feedback_at,
                    resolved_at: self.resolved_at,
                };
                if steps.met(which, due) {
                    return Err(AppealError::DeadlineNotMissed {
                        which,
                        reason: "it was met",
                    });
                }
                if now < due {
                    return Err(AppealError::DeadlineNotMissed {
                        which,
                        reason: "it has not passed yet",
                    });
                }
                if self.missed.contains(&(which, due)) {
                    return Err(AppealError::DeadlineMissAlreadyRecorded { which, due });
                }
                E::DeadlineMissed {
                    which,
                    due,
                    at: now,
                }
            }
            C::RecomputeDeadlines(body) => {
                self.require_status(command, &[S::Assigned])?;
                let (Some(basis), Some(previous)) = (&self.basis, self.deadlines) else {
                    return Err(self.illegal(command));
                };
                if basis.calendar == calendar {
                    return Ok(vec![]);
                }
                let deadlines = basis.compute(previous.contact_due, working_calendar)?;
                if deadlines == previous {
                    // The change does not touch this appeal's deadlines: nothing to record.
                    return Ok(vec![]);
                }
                let mut reason = format!("calendar changed from {} to {calendar}", basis.calendar);
                if let Some(note) = &body.note {
                    reason.push_str(": ");
                    reason.push_str(note.as_str());
                }
                E::DeadlinesRecomputed {
                    previous,
                    deadlines,
                    previous_calendar: basis.calendar.clone(),
                    calendar,
                    reason,
                    at: now,
                }
            }
        };
        Ok(vec![event])
    }
}

fn check_co_handlers(lead: &DepartmentId, co: &[DepartmentId]) -> Result<(), AppealError> {
    let mut seen = BTreeSet::new();
    for d in co {
        if d == lead {
            return Err(AppealError::InvalidField {
                field: "co_handlers",
                reason: format!("{d} is already the lead department"),
            });
        }
        if !seen.insert(d) {
            return Err(AppealError::InvalidField {
                field: "co_handlers",
                reason: format!("{d} is listed twice"),
            });
        }
    }
    if co.len() > 20 {
        return Err(AppealError::InvalidField {
            field: "co_handlers",
            reason: "at most 20 co-handling departments".into(),
        });
    }
    Ok(())
}

fn return_visit_result(body: &RecordReturnVisit) -> Result<ReturnVisitResult, AppealError> {
    let invalid = |field, reason: &str| AppealError::InvalidField {
        field,
        reason: reason.to_owned(),
    };
    match (body.reached, body.solved, body.satisfaction) {
        (true, Some(solved), Some(satisfaction)) => Ok(ReturnVisitResult::Reached {
            solved,
            satisfaction,
        }),
        (true, None, _) => Err(invalid("solved", "required when the filer was reached")),
        (true, _, None) => Err(invalid(
            "satisfaction",
            "required when the filer was reached",
        )),
        (false, None, None) => Ok(ReturnVisitResult::Unreachable),
        (false, Some(_), _) => Err(invalid(
            "solved",
            "must be absent when the filer was not reached",
        )),
        (false, _, Some(_)) => Err(invalid(
            "satisfaction",
            "must be absent when the filer was not reached",
        )),
    }
}

impl Aggregate for Appeal {
    const TYPE: &'static str = "appeal";
    type Command = AppealCommand;
    type Event = AppealEvent;
    type Error = AppealError;
    type Services = AppealServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(&command, services)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        use AppealEvent as E;
        use AppealStatus as S;
        match event {
            E::AppealFiled {
                appeal_id,
                tracking_number,
                channel,
                category,
                ..
            } => {
                self.id = Some(appeal_id);
                self.tracking_number = Some(tracking_number);
                self.channel = Some(channel);
                self.category = Some(category);
                self.status = S::Filed;
            }
            E::AppealAssigned {
                lead,
                co_handlers,
                deadlines,
                calendar,
                policy,
                at,
            }
            | E::AppealTransferred {
                lead,
                co_handlers,
                deadlines,
                calendar,
                policy,
                at,
                ..
            } => {
                self.basis = Some(DeadlineBasis {
                    assigned_at: at,
                    policy: policy.terms,
                    calendar,
                    rework: None,
                    extensions: Vec::new(),
                });
                self.involved.insert(lead.clone());
                self.involved.extend(co_handlers.iter().cloned());
                self.lead = Some(lead);
                self.co_handlers = co_handlers;
                self.deadlines = Some(deadlines);
                self.contacted_at = None;
                self.feedback_at = None;
                self.resolved_at = None;
                self.pending_extension_days = None;
                self.status = S::Assigned;
            }
            E::AppealDeclined { .. } => {
                self.lead = None;
                self.co_handlers.clear();
                self.deadlines = None;
                self.basis = None;
                self.contacted_at = None;
                self.feedback_at = None;
                self.resolved_at = None;
                self.pending_extension_days = None;
                self.status = S::Filed;
            }
            E::ContactRecorded { at, .. } => self.contacted_at = Some(at),
            E::InitialFeedbackGiven { at, .. } => self.feedback_at = Some(at),
            E::AppealResolved { at, .. } => {
                self.resolved_at = Some(at);
                self.pending_extension_days = None;
                self.status = S::Resolved;
            }
            E::ExtensionRequested { working_days, .. } => {
                self.pending_extension_days = Some(working_days);
            }
            E::ExtensionApproved {
                working_days,
                resolution_due,
                ..
            } => {
                self.pending_extension_days = None;
                self.extensions_granted += 1;
                if let Some(d) = self.deadlines.as_mut() {
                    d.resolution_due = resolution_due;
                }
                // The basis keeps the assignment's calendar version: deadlines computed with
                // mixed versions are recomputed (to the same or new values) on the next change.
                if let Some(basis) = self.basis.as_mut() {
                    basis.extensions.push(working_days);
                }
            }
            E::ExtensionRejected { .. } => self.pending_extension_days = None,
            E::ReturnedForRework {
                working_days,
                resolution_due,
                at,
                ..
            } => {
                if let Some(d) = self.deadlines.as_mut() {
                    d.resolution_due = resolution_due;
                }
                if let Some(basis) = self.basis.as_mut() {
                    basis.rework = Some((at, working_days));
                    basis.extensions.clear();
                }
                self.resolved_at = None;
                self.unreachable_visits = 0;
                self.status = S::Assigned;
            }
            E::ReturnVisitRecorded { result, .. } => match result {
                ReturnVisitResult::Reached { .. } => self.status = S::ReturnVisited,
                ReturnVisitResult::Unreachable => self.unreachable_visits += 1,
            },
            E::AppealClosed { .. } => self.status = S::Closed,
            E::AppealWithdrawn { .. } => self.status = S::Withdrawn,
            E::AppealMarkedDuplicate { .. } => self.status = S::Duplicate,
            E::AppealSupervised { .. } | E::AccountabilityRecorded { .. } => {}
            E::DeadlineMissed { which, due, .. } => self.missed.push((which, due)),
            E::DeadlinesRecomputed {
                deadlines,
                calendar,
                ..
            } => {
                self.deadlines = Some(deadlines);
                if let Some(basis) = self.basis.as_mut() {
                    basis.calendar = calendar;
                }
            }
        }
    }
}
