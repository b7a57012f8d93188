//! The ledger (台账): one row per appeal with everything an analyst filters on, plus a timeline
//! row per event. Tables in `ledger.sql`.
//!
//! A batch is applied set-based, in three statements whatever its size: load the rows of the
//! appeals the batch touches, fold the events into them in memory ([`LedgerRow::apply`]), then
//! upsert the changed rows and insert the timeline rows (each as one `jsonb_populate_recordset`).

mod bulk;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate as _;
use linkage_bus::Envelope;
use linkage_domain::appeal::{Appeal, AppealEvent, AppealStatus, ReturnVisitResult};
use linkage_domain::sla::{Deadlines, StepsDone};
use linkage_domain::values::{
    AccountabilityKind, Category, Channel, DeadlineKind, DepartmentId, FilerKind, Phone,
    ResolutionOutcome, Satisfaction, TrackingNumber,
};
use linkage_store::hash::canonical_json_text_without;
use linkage_store::stored::StoredEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::copy::BinaryCopy;
use crate::{Projection, ProjectionError, RebuildOrder, StoredChunk};

/// The ledger projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ledger;

pub const NAME: &str = "ledger";

/// An appeal as the ledger shows it. Field names are the `ledger` table's columns (rows travel to
/// and from Postgres as JSON, see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerRow {
    pub appeal_id: Uuid,
    pub tracking_number: TrackingNumber,
    pub channel: Channel,
    pub filer_kind: FilerKind,
    pub filer_name: String,
    pub filer_contact_person: Option<String>,
    pub filer_phone: Phone,
    pub category: Category,
    pub town: String,
    pub complained_unit: Option<String>,
    pub description: String,
    pub lead_department: Option<DepartmentId>,
    pub co_handlers: Vec<DepartmentId>,
    pub status: AppealStatus,
    pub filed_at: DateTime<Utc>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub contact_due: Option<DateTime<Utc>>,
    pub contacted_at: Option<DateTime<Utc>>,
    pub feedback_due: Option<DateTime<Utc>>,
    pub feedback_at: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution_outcome: Option<ResolutionOutcome>,
    pub extension_pending_days: Option<i32>,
    /// `reached` or `unreachable`.
    pub return_visit_result: Option<String>,
    pub return_visit_solved: Option<bool>,
    pub return_visit_satisfaction: Option<Satisfaction>,
    pub return_visited_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub withdrawn_at: Option<DateTime<Utc>>,
    pub duplicate_of: Option<Uuid>,
    pub extension_count: i32,
    pub rework_count: i32,
    pub transfer_count: i32,
    pub decline_count: i32,
    pub supervised: bool,
    pub supervision_count: i32,
    pub supervision_due: Option<DateTime<Utc>>,
    /// The earliest deadline in force while open; see [`LedgerRow::deadline_in_force`].
    pub next_due: Option<DateTime<Utc>>,
    pub accountability_count: i32,
    pub accountability_kinds: Vec<AccountabilityKind>,
    pub accountability_departments: Vec<DepartmentId>,
    pub missed_deadlines: Vec<DeadlineKind>,
    pub last_sequence: i64,
    pub last_global_position: i64,
    pub last_event_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The calendar version the deadlines in force were computed with (recomputed when the
    /// calendar changes), and the SLA policy label of the assignment.
    pub calendar: Option<String>,
    pub sla_policy: Option<String>,
    /// Deadline kinds whose *current* due instant is recorded as missed.
    pub missed_in_force: Vec<DeadlineKind>,
    /// When the SLA watcher must next look at this appeal; see [`LedgerRow::watch_due`].
    pub watch_due: Option<DateTime<Utc>>,
}

/// One event in an appeal's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    pub appeal_id: Uuid,
    pub sequence: i64,
    pub global_position: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub at: DateTime<Utc>,
    pub actor: Option<String>,
    pub role: Option<String>,
    pub department: Option<String>,
    pub summary: Value,
}

/// Equal at the microsecond precision the ledger's columns keep (events recorded before the
/// clock truncated to microseconds carry nanoseconds).
fn same_instant(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    a.timestamp_micros() == b.timestamp_micros()
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, value: T) {
    if !list.contains(&value) {
        list.push(value);
    }
}

/// What the ledger reads of an event besides its payload and metadata, from an envelope (the
/// live path) or a stored row (a rebuild) alike.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp<'a> {
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub sequence: i64,
    pub global_position: i64,
    pub recorded_at: DateTime<Utc>,
}

impl<'a> From<&'a Envelope> for Stamp<'a> {
    fn from(e: &'a Envelope) -> Self {
        Self {
            event_id: e.event_id,
            event_type: &e.event_type,
            sequence: e.sequence,
            global_position: e.global_position,
            recorded_at: e.recorded_at,
        }
    }
}

impl<'a> From<&StoredEvent<'a>> for Stamp<'a> {
    fn from(e: &StoredEvent<'a>) -> Self {
        Self {
            event_id: e.event_id,
            event_type: e.event_type,
            sequence: e.sequence,
            global_position: e.global_position,
            recorded_at: e.recorded_at,
        }
    }
}

impl LedgerRow {
    /// The row an `AppealFiled` event starts; `None` for any other event.
    pub(crate) fn filed(envelope: &Stamp<'_>, event: &AppealEvent) -> Option<Self> {
        let AppealEvent::AppealFiled {
            appeal_id,
            tracking_number,
            channel,
            filer,
            category,
            town,
            description,
            complained_unit,
            at,
        } = event
        else {
            return None;
        };
        Some(Self {
            appeal_id: *appeal_id,
            tracking_number: tracking_number.clone(),
            channel: *channel,
            filer_kind: filer.kind,
            filer_name: filer.name.to_string(),
            filer_contact_person: filer.contact_person.as_ref().map(ToString::to_string),
            filer_phone: filer.phone.clone(),
            category: *category,
            town: town.to_string(),
            complained_unit: complained_unit.as_ref().map(ToString::to_string),
            description: description.to_string(),
            lead_department: None,
            co_handlers: Vec::new(),
            status: AppealStatus::Filed,
            filed_at: *at,
            assigned_at: None,
            contact_due: None,
            contacted_at: None,
            feedback_due: None,
            feedback_at: None,
            resolution_due: None,
            resolved_at: None,
            resolution_outcome: None,
            extension_pending_days: None,
            return_visit_result: None,
            return_visit_solved: None,
            return_visit_satisfaction: None,
            return_visited_at: None,
            closed_at: None,
            withdrawn_at: None,
            duplicate_of: None,
            extension_count: 0,
            rework_count: 0,
            transfer_count: 0,
            decline_count: 0,
            supervised: false,
            supervision_count: 0,
            supervision_due: None,
            next_due: None,
            accountability_count: 0,
            accountability_kinds: Vec::new(),
            accountability_departments: Vec::new(),
            missed_deadlines: Vec::new(),
            last_sequence: envelope.sequence,
            last_global_position: envelope.global_position,
            last_event_at: *at,
            updated_at: envelope.recorded_at,
            calendar: None,
            sla_policy: None,
            missed_in_force: Vec::new(),
            watch_due: None,
        })
    }

    /// A new assignment (assign or transfer) starts a new "2110" clock: contact and feedback are
    /// owed again to the new lead department.
    fn assign(
        &mut self,
        lead: DepartmentId,
        co_handlers: Vec<DepartmentId>,
        deadlines: Deadlines,
        calendar: String,
        policy: String,
        at: DateTime<Utc>,
    ) {
        self.calendar = Some(calendar);
        self.sla_policy = Some(policy);
        self.missed_in_force.clear();
        self.lead_department = Some(lead);
        self.co_handlers = co_handlers;
        self.assigned_at = Some(at);
        self.contact_due = Some(deadlines.contact_due);
        self.feedback_due = Some(deadlines.feedback_due);
        self.resolution_due = Some(deadlines.resolution_due);
        self.contacted_at = None;
        self.feedback_at = None;
        self.extension_pending_days = None;
        self.status = AppealStatus::Assigned;
    }

    fn clear_return_visit(&mut self) {
        self.return_visit_result = None;
        self.return_visit_solved = None;
        self.return_visit_satisfaction = None;
        self.return_visited_at = None;
    }

    /// Folds the appeal's next event into the row. The aggregate already enforced the
    /// transitions; this mirrors their effect on what the ledger shows.
    pub(crate) fn apply(&mut self, envelope: &Stamp<'_>, event: AppealEvent) -> Result<(), String> {
        use AppealEvent as E;
        use AppealStatus as S;
        let at = event.at();
        match event {
            E::AppealFiled { .. } => {
                return Err(format!("appeal {} is filed twice", self.appeal_id));
            }
            E::AppealAssigned {
                lead,
                co_handlers,
                deadlines,
                calendar,
                policy,
                ..
            } => self.assign(lead, co_handlers, deadlines, calendar, policy.label, at),
            E::AppealTransferred {
                lead,
                co_handlers,
                deadlines,
                calendar,
                policy,
                ..
            } => {
                self.transfer_count += 1;
                self.assign(lead, co_handlers, deadlines, calendar, policy.label, at);
            }
            E::AppealDeclined { .. } => {
                // 退单: back to dispatch, with no department and no deadlines in force.
                self.decline_count += 1;
                self.lead_department = None;
                self.co_handlers.clear();
                self.assigned_at = None;
                self.contact_due = None;
                self.feedback_due = None;
                self.resolution_due = None;
                self.calendar = None;
                self.sla_policy = None;
                self.missed_in_force.clear();
                self.contacted_at = None;
                self.feedback_at = None;
                self.extension_pending_days = None;
                self.status = S::Filed;
            }
            E::ContactRecorded { .. } => self.contacted_at = Some(at),
            E::InitialFeedbackGiven { .. } => self.feedback_at = Some(at),
            E::AppealResolved { outcome, .. } => {
                self.resolved_at = Some(at);
                self.resolution_outcome = Some(outcome);
                self.extension_pending_days = None;
                self.status = S::Resolved;
            }
            E::ExtensionRequested { working_days, .. } => {
                self.extension_pending_days = Some(i32::try_from(working_days).unwrap_or(i32::MAX));
            }
            E::ExtensionApproved { resolution_due, .. } => {
                self.extension_pending_days = None;
                self.extension_count += 1;
                self.move_deadline(DeadlineKind::Resolution, resolution_due);
            }
            E::ExtensionRejected { .. } => self.extension_pending_days = None,
            E::ReturnedForRework { resolution_due, .. } => {
                // 退回重办: the resolution (and the visit that judged it) no longer stands.
                self.rework_count += 1;
                self.move_deadline(DeadlineKind::Resolution, resolution_due);
                self.resolved_at = None;
                self.resolution_outcome = None;
                self.clear_return_visit();
                self.status = S::Assigned;
            }
            E::ReturnVisitRecorded { result, .. } => {
                self.return_visited_at = Some(at);
                match result {
                    ReturnVisitResult::Reached {
                        solved,
                        satisfaction,
                    } => {
                        self.return_visit_result = Some("reached".into());
                        self.return_visit_solved = Some(solved);
                        self.return_visit_satisfaction = Some(satisfaction);
                        self.status = S::ReturnVisited;
                    }
                    ReturnVisitResult::Unreachable => {
                        self.return_visit_result = Some("unreachable".into());
                        self.return_visit_solved = None;
                        self.return_visit_satisfaction = None;
                    }
                }
            }
            E::AppealClosed { .. } => {
                self.closed_at = Some(at);
                self.status = S::Closed;
            }
            E::AppealWithdrawn { .. } => {
                self.withdrawn_at = Some(at);
                self.status = S::Withdrawn;
            }
            E::AppealMarkedDuplicate { original, .. } => {
                self.duplicate_of = Some(original);
                self.status = S::Duplicate;
            }
            E::AppealSupervised { due, .. } => {
                self.supervised = true;
                self.supervision_count += 1;
                self.supervision_due = Some(due);
            }
            E::AccountabilityRecorded {
                department, kind, ..
            } => {
                self.accountability_count += 1;
                push_unique(&mut self.accountability_kinds, kind);
                push_unique(&mut self.accountability_departments, department);
            }
            E::DeadlineMissed { which, due, .. } => {
                push_unique(&mut self.missed_deadlines, which);
                if self.due(which).is_some_and(|d| same_instant(d, due)) {
                    push_unique(&mut self.missed_in_force, which);
                }
            }
            E::DeadlinesRecomputed {
                deadlines,
                calendar,
                ..
            } => {
                for which in DeadlineKind::ALL {
                    self.move_deadline(*which, deadlines.due(*which));
                }
                self.calendar = Some(calendar);
            }
        }
        self.next_due = self.deadline_in_force();
        self.watch_due = self.watch_due();
        self.last_sequence = envelope.sequence;
        self.last_global_position = envelope.global_position;
        self.last_event_at = at;
        self.updated_at = envelope.recorded_at;
        Ok(())
    }

    fn due(&self, which: DeadlineKind) -> Option<DateTime<Utc>> {
        match which {
            DeadlineKind::Contact => self.contact_due,
            DeadlineKind::Feedback => self.feedback_due,
            DeadlineKind::Resolution => self.resolution_due,
        }
    }

    /// A deadline moved (extension, rework, recomputation): a miss of the old instant no longer
    /// covers it.
    fn move_deadline(&mut self, which: DeadlineKind, due: DateTime<Utc>) {
        if !self.due(which).is_some_and(|d| same_instant(d, due)) {
            self.missed_in_force.retain(|k| *k != which);
        }
        match which {
            DeadlineKind::Contact => self.contact_due = Some(due),
            DeadlineKind::Feedback => self.feedback_due = Some(due),
            DeadlineKind::Resolution => self.resolution_due = Some(due),
        }
    }

    /// The deadlines in force that were not met and are not yet recorded as missed, with their
    /// due instants (the same rule as the aggregate's `deadline-missed`; see docs/domain.md).
    pub fn unrecorded_deadlines(&self) -> Vec<(DeadlineKind, DateTime<Utc>)> {
        use AppealStatus as S;
        if !matches!(
            self.status,
            S::Assigned | S::Resolved | S::ReturnVisited | S::Closed
        ) {
            return Vec::new();
        }
        DeadlineKind::ALL
            .iter()
            .filter_map(|which| {
                let due = self.due(*which)?;
                let met = StepsDone {
                    contacted_at: self.contacted_at,
                    feedback_at: self.feedback_at,
                    resolved_at: self.resolved_at,
                }
                .met(*which, due);
                (!met && !self.missed_in_force.contains(which)).then_some((*which, due))
            })
            .collect()
    }

    /// The deadlines still owed while the appeal is being handled, each with the instant its
    /// allowed time started (the assignment): contact and feedback until given, resolution.
    pub fn open_deadlines(&self) -> Vec<(DeadlineKind, DateTime<Utc>, DateTime<Utc>)> {
        let (AppealStatus::Assigned, Some(start)) = (self.status, self.assigned_at) else {
            return Vec::new();
        };
        let owed = [
            (DeadlineKind::Contact, self.contacted_at.is_none()),
            (DeadlineKind::Feedback, self.feedback_at.is_none()),
            (DeadlineKind::Resolution, true),
        ];
        owed.into_iter()
            .filter(|(_, owed)| *owed)
            .filter_map(|(which, _)| Some((which, start, self.due(which)?)))
            .collect()
    }

    /// The earliest unrecorded deadline: when the SLA watcher must look at the appeal next.
    pub fn watch_due(&self) -> Option<DateTime<Utc>> {
        self.unrecorded_deadlines()
            .into_iter()
            .map(|(_, due)| due)
            .min()
    }

    /// The earliest deadline the appeal must still meet: while assigned, contact and initial
    /// feedback until recorded, and resolution; while filed or assigned, a supervision (督办)
    /// deadline. `None` once the appeal is resolved, closed, withdrawn or merged.
    pub fn deadline_in_force(&self) -> Option<DateTime<Utc>> {
        let open = matches!(self.status, AppealStatus::Filed | AppealStatus::Assigned);
        if !open {
            return None;
        }
        let mut dues = vec![self.supervision_due];
        if self.status == AppealStatus::Assigned {
            dues.push(self.contact_due.filter(|_| self.contacted_at.is_none()));
            dues.push(self.feedback_due.filter(|_| self.feedback_at.is_none()));
            dues.push(self.resolution_due);
        }
        dues.into_iter().flatten().min()
    }
}

/// The keys of an event's payload the timeline leaves out: its instant (a column already) and,
/// for a filing, the filer's personal data and the long texts, which stay in the ledger row
/// behind its masking.
fn summary_skips(event_type: &str) -> &'static [&'static str] {
    if event_type == "AppealFiled" {
        &["at", "filer", "description", "appeal_id"]
    } else {
        &["at"]
    }
}

/// The payload without the skipped keys, serialized straight from the borrowed payload.
struct Summary<'a>(&'a Value, &'static [&'static str]);

impl Serialize for Summary<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                serializer.collect_map(map.iter().filter(|(k, _)| !self.1.contains(&k.as_str())))
            }
            other => other.serialize(serializer),
        }
    }
}

/// An envelope's metadata entry, when it is a non-empty string.
fn meta(envelope: &Envelope, key: &str) -> Option<String> {
    meta_str(envelope, key).map(str::to_owned)
}

fn meta_str<'a>(envelope: &'a Envelope, key: &str) -> Option<&'a str> {
    envelope
        .metadata
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Who acted, as the timeline keeps it: the metadata entries [`meta_str`] reads, from an
/// envelope or straight from a stored event's metadata text.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Actors<'a> {
    pub actor: Option<Cow<'a, str>>,
    pub role: Option<Cow<'a, str>>,
    pub department: Option<Cow<'a, str>>,
}

impl<'a> Actors<'a> {
    #[cfg(test)]
    fn of(envelope: &'a Envelope) -> Self {
        let get = |key| meta_str(envelope, key).map(Cow::Borrowed);
        Self {
            actor: get("actor"),
            role: get("role"),
            department: get("department"),
        }
    }

    /// Reads the stored metadata text as [`meta_str`] reads the parsed metadata: an entry that
    /// is a non-empty string, of repeated keys the last; anything else is no entry.
    fn read(text: &'a [u8]) -> Result<Self, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(text);
        let actors = Self::deserialize(&mut de)?;
        de.end()?;
        Ok(actors)
    }
}

impl<'de> Deserialize<'de> for Actors<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = Actors<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut actors = Actors::default();
                while let Some(AnyText(key)) = map.next_key()? {
                    let slot = match key.as_deref() {
                        Some("actor") => &mut actors.actor,
                        Some("role") => &mut actors.role,
                        Some("department") => &mut actors.department,
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    let AnyText(value) = map.next_value()?;
                    *slot = value.filter(|v| !v.is_empty());
                }
                Ok(actors)
            }
            // Metadata that is not an object has no entries (`Value::get` finds none).
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Actors::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Actors::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Actors::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Actors::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Actors::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Actors::default())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Actors::default())
            }
        }
        d.deserialize_any(Entries)
    }
}

/// A JSON value when it is a string (borrowed from the text when it has no escapes), else
/// `None`, consuming it either way.
struct AnyText<'de>(Option<Cow<'de, str>>);

impl<'de> Deserialize<'de> for AnyText<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = AnyText<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(AnyText(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(AnyText(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(AnyText(Some(Cow::Owned(v))))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(AnyText(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(AnyText(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(AnyText(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(AnyText(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(AnyText(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(AnyText(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(AnyText(None))
            }
        }
        d.deserialize_any(Text)
    }
}

/// Ledger rows as one array per column, for [`UPSERT_ROWS`].
#[derive(Default)]
struct LedgerColumns {
    appeal_id: Vec<Uuid>,
    tracking_number: Vec<String>,
    channel: Vec<&'static str>,
    filer_kind: Vec<&'static str>,
    filer_name: Vec<String>,
    filer_contact_person: Vec<Option<String>>,
    filer_phone: Vec<String>,
    category: Vec<&'static str>,
    town: Vec<String>,
    complained_unit: Vec<Option<String>>,
    description: Vec<String>,
    lead_department: Vec<Option<String>>,
    co_handlers: Vec<String>,
    status: Vec<&'static str>,
    filed_at: Vec<DateTime<Utc>>,
    assigned_at: Vec<Option<DateTime<Utc>>>,
    contact_due: Vec<Option<DateTime<Utc>>>,
    contacted_at: Vec<Option<DateTime<Utc>>>,
    feedback_due: Vec<Option<DateTime<Utc>>>,
    feedback_at: Vec<Option<DateTime<Utc>>>,
    resolution_due: Vec<Option<DateTime<Utc>>>,
    resolved_at: Vec<Option<DateTime<Utc>>>,
    resolution_outcome: Vec<Option<&'static str>>,
    extension_pending_days: Vec<Option<i32>>,
    return_visit_result: Vec<Option<String>>,
    return_visit_solved: Vec<Option<bool>>,
    return_visit_satisfaction: Vec<Option<&'static str>>,
    return_visited_at: Vec<Option<DateTime<Utc>>>,
    closed_at: Vec<Option<DateTime<Utc>>>,
    withdrawn_at: Vec<Option<DateTime<Utc>>>,
    duplicate_of: Vec<Option<Uuid>>,
    extension_count: Vec<i32>,
    rework_count: Vec<i32>,
    transfer_count: Vec<i32>,
    decline_count: Vec<i32>,
    supervised: Vec<bool>,
    supervision_count: Vec<i32>,
    supervision_due: Vec<Option<DateTime<Utc>>>,
    next_due: Vec<Option<DateTime<Utc>>>,
    accountability_count: Vec<i32>,
    accountability_kinds: Vec<String>,
    accountability_departments: Vec<String>,
    missed_deadlines: Vec<String>,
    last_sequence: Vec<i64>,
    last_global_position: Vec<i64>,
    last_event_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
    calendar: Vec<Option<String>>,
    sla_policy: Vec<Option<String>>,
    missed_in_force: Vec<String>,
    watch_due: Vec<Option<DateTime<Utc>>>,
}

/// A Postgres array literal of `items`, each quoted (for a `text[]` cast).
fn array_literal<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("{");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in item.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

impl From<&[&LedgerRow]> for LedgerColumns {
    fn from(rows: &[&LedgerRow]) -> Self {
        let mut c = Self::default();
        for r in rows {
            c.appeal_id.push(r.appeal_id);
            c.tracking_number
                .push(r.tracking_number.as_str().to_owned());
            c.channel.push(r.channel.as_str());
            c.filer_kind.push(r.filer_kind.as_str());
            c.filer_name.push(r.filer_name.clone());
            c.filer_contact_person.push(r.filer_contact_person.clone());
            c.filer_phone.push(r.filer_phone.as_str().to_owned());
            c.category.push(r.category.as_str());
            c.town.push(r.town.clone());
            c.complained_unit.push(r.complained_unit.clone());
            c.description.push(r.description.clone());
            c.lead_department
                .push(r.lead_department.as_ref().map(|d| d.as_str().to_owned()));
            c.co_handlers.push(array_literal(
                r.co_handlers.iter().map(DepartmentId::as_str),
            ));
            c.status.push(r.status.as_str());
            c.filed_at.push(r.filed_at);
            c.assigned_at.push(r.assigned_at);
            c.contact_due.push(r.contact_due);
            c.contacted_at.push(r.contacted_at);
            c.feedback_due.push(r.feedback_due);
            c.feedback_at.push(r.feedback_at);
            c.resolution_due.push(r.resolution_due);
            c.resolved_at.push(r.resolved_at);
            c.resolution_outcome
                .push(r.resolution_outcome.as_ref().map(ResolutionOutcome::as_str));
            c.extension_pending_days.push(r.extension_pending_days);
            c.return_visit_result.push(r.return_visit_result.clone());
            c.return_visit_solved.push(r.return_visit_solved);
            c.return_visit_satisfaction.push(
                r.return_visit_satisfaction
                    .as_ref()
                    .map(Satisfaction::as_str),
            );
            c.return_visited_at.push(r.return_visited_at);
            c.closed_at.push(r.closed_at);
            c.withdrawn_at.push(r.withdrawn_at);
            c.duplicate_of.push(r.duplicate_of);
            c.extension_count.push(r.extension_count);
            c.rework_count.push(r.rework_count);
            c.transfer_count.push(r.transfer_count);
            c.decline_count.push(r.decline_count);
            c.supervised.push(r.supervised);
            c.supervision_count.push(r.supervision_count);
            c.supervision_due.push(r.supervision_due);
            c.next_due.push(r.next_due);
            c.accountability_count.push(r.accountability_count);
            c.accountability_kinds.push(array_literal(
                r.accountability_kinds
                    .iter()
                    .map(AccountabilityKind::as_str),
            ));
            c.accountability_departments.push(array_literal(
                r.accountability_departments
                    .iter()
                    .map(DepartmentId::as_str),
            ));
            c.missed_deadlines.push(array_literal(
                r.missed_deadlines.iter().map(DeadlineKind::as_str),
            ));
            c.last_sequence.push(r.last_sequence);
            c.last_global_position.push(r.last_global_position);
            c.last_event_at.push(r.last_event_at);
            c.updated_at.push(r.updated_at);
            c.calendar.push(r.calendar.clone());
            c.sla_policy.push(r.sla_policy.clone());
            c.missed_in_force.push(array_literal(
                r.missed_in_force.iter().map(DeadlineKind::as_str),
            ));
            c.watch_due.push(r.watch_due);
        }
        c
    }
}

impl LedgerColumns {
    /// Binds every column, in [`UPSERT_ROWS`]'s parameter order.
    fn bind<'q>(
        &'q self,
        q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        q.bind(&self.appeal_id)
            .bind(&self.tracking_number)
            .bind(&self.channel)
            .bind(&self.filer_kind)
            .bind(&self.filer_name)
            .bind(&self.filer_contact_person)
            .bind(&self.filer_phone)
            .bind(&self.category)
            .bind(&self.town)
            .bind(&self.complained_unit)
            .bind(&self.description)
            .bind(&self.lead_department)
            .bind(&self.co_handlers)
            .bind(&self.status)
            .bind(&self.filed_at)
            .bind(&self.assigned_at)
            .bind(&self.contact_due)
            .bind(&self.contacted_at)
            .bind(&self.feedback_due)
            .bind(&self.feedback_at)
            .bind(&self.resolution_due)
            .bind(&self.resolved_at)
            .bind(&self.resolution_outcome)
            .bind(&self.extension_pending_days)
            .bind(&self.return_visit_result)
            .bind(&self.return_visit_solved)
            .bind(&self.return_visit_satisfaction)
            .bind(&self.return_visited_at)
            .bind(&self.closed_at)
            .bind(&self.withdrawn_at)
            .bind(&self.duplicate_of)
            .bind(&self.extension_count)
            .bind(&self.rework_count)
            .bind(&self.transfer_count)
            .bind(&self.decline_count)
            .bind(&self.supervised)
            .bind(&self.supervision_count)
            .bind(&self.supervision_due)
            .bind(&self.next_due)
            .bind(&self.accountability_count)
            .bind(&self.accountability_kinds)
            .bind(&self.accountability_departments)
            .bind(&self.missed_deadlines)
            .bind(&self.last_sequence)
            .bind(&self.last_global_position)
            .bind(&self.last_event_at)
            .bind(&self.updated_at)
            .bind(&self.calendar)
            .bind(&self.sla_policy)
            .bind(&self.missed_in_force)
            .bind(&self.watch_due)
    }
}

/// Timeline rows as one array per column, for `unnest`.
#[derive(Default)]
struct TimelineColumns {
    appeal_id: Vec<Uuid>,
    sequence: Vec<i64>,
    global_position: Vec<i64>,
    event_id: Vec<Uuid>,
    event_type: Vec<String>,
    at: Vec<DateTime<Utc>>,
    actor: Vec<Option<String>>,
    role: Vec<Option<String>>,
    department: Vec<Option<String>>,
    /// JSON text: the column is `json`, so Postgres only checks it (one row per event: this
    /// is the rebuild's hottest path).
    summary: Vec<String>,
}

impl TimelineColumns {
    fn with_capacity(n: usize) -> Self {
        Self {
            appeal_id: Vec::with_capacity(n),
            sequence: Vec::with_capacity(n),
            global_position: Vec::with_capacity(n),
            event_id: Vec::with_capacity(n),
            event_type: Vec::with_capacity(n),
            at: Vec::with_capacity(n),
            actor: Vec::with_capacity(n),
            role: Vec::with_capacity(n),
            department: Vec::with_capacity(n),
            summary: Vec::with_capacity(n),
        }
    }

    fn push(
        &mut self,
        envelope: &Envelope,
        appeal_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(), ProjectionError> {
        let summary = Summary(&envelope.payload, summary_skips(&envelope.event_type));
        self.summary
            .push(
                serde_json::to_string(&summary).map_err(|source| ProjectionError::Encode {
                    projection: NAME,
                    source,
                })?,
            );
        self.appeal_id.push(appeal_id);
        self.sequence.push(envelope.sequence);
        self.global_position.push(envelope.global_position);
        self.event_id.push(envelope.event_id);
        self.event_type.push(envelope.event_type.clone());
        self.at.push(at);
        self.actor.push(meta(envelope, "actor"));
        self.role.push(meta(envelope, "role"));
        self.department.push(meta(envelope, "department"));
        Ok(())
    }
}

/// Reads the stored payload of an appeal event: what
/// `linkage_store::events::decode_event::<Appeal>` reads, without copying the payload into a
/// `{event_type: payload}` object first (that copy was a tenth of a rebuild's client time).
pub fn decode(envelope: &Envelope) -> Result<AppealEvent, ProjectionError> {
    AppealEvent::deserialize(Tagged {
        tag: &envelope.event_type,
        content: &envelope.payload,
    })
    .map_err(|source| ProjectionError::decode(envelope, source))
}

/// [`decode`] of a stored event: its payload read straight from the stored text (no
/// `serde_json::Value` in between).
fn decode_stored(event: &StoredEvent<'_>) -> Result<AppealEvent, ProjectionError> {
    let mut text = serde_json::Deserializer::from_slice(event.payload);
    AppealEvent::deserialize(Tagged {
        tag: event.event_type,
        content: &mut text,
    })
    .and_then(|decoded| text.end().map(|()| decoded))
    .map_err(|source| ProjectionError::decode_stored(event, source))
}

/// An externally tagged enum value as a borrowed tag and content, read as serde_json reads the
/// object `{tag: content}` (a struct variant's content must be an object). The content is a
/// parsed `Value` or the stored text.
struct Tagged<'a, D> {
    tag: &'a str,
    content: D,
}

impl<'de, D> serde::Deserializer<'de> for Tagged<'_, D>
where
    D: serde::Deserializer<'de, Error = serde_json::Error>,
{
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

impl<'de, D> serde::de::EnumAccess<'de> for Tagged<'_, D>
where
    D: serde::Deserializer<'de, Error = serde_json::Error>,
{
    type Error = serde_json::Error;
    type Variant = TaggedContent<D>;

    fn variant_seed<V: serde::de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Self::Error> {
        use serde::de::IntoDeserializer as _;
        let variant = seed.deserialize(self.tag.into_deserializer())?;
        Ok((variant, TaggedContent(self.content)))
    }
}

struct TaggedContent<D>(D);

impl<'de, D> serde::de::VariantAccess<'de> for TaggedContent<D>
where
    D: serde::Deserializer<'de, Error = serde_json::Error>,
{
    type Error = serde_json::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        <()>::deserialize(self.0)
    }

    fn newtype_variant_seed<T: serde::de::DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        seed.deserialize(self.0)
    }

    fn tuple_variant<V: serde::de::Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_seq(self.0, visitor)
    }

    /// Only an object: `deserialize_map`, where `deserialize_struct` would take an array too.
    fn struct_variant<V: serde::de::Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_map(self.0, visitor)
    }
}

const LOAD_ROWS: &str = "SELECT to_jsonb(l) FROM ledger l WHERE appeal_id = ANY($1)";

/// Rows go as one typed array per column (binary, no per-field text parsing); list columns go
/// as array literals, one per row, cast back here. Column order is the table's.
const UPSERT_ROWS: &str = r#"
INSERT INTO ledger
SELECT
    r.appeal_id, r.tracking_number, r.channel, r.filer_kind, r.filer_name,
    r.filer_contact_person, r.filer_phone, r.category, r.town, r.complained_unit,
    r.description, r.lead_department, r.co_handlers::text[], r.status, r.filed_at,
    r.assigned_at, r.contact_due, r.contacted_at, r.feedback_due, r.feedback_at,
    r.resolution_due, r.resolved_at, r.resolution_outcome, r.extension_pending_days,
    r.return_visit_result, r.return_visit_solved, r.return_visit_satisfaction,
    r.return_visited_at, r.closed_at, r.withdrawn_at, r.duplicate_of, r.extension_count,
    r.rework_count, r.transfer_count, r.decline_count, r.supervised, r.supervision_count,
    r.supervision_due, r.next_due, r.accountability_count, r.accountability_kinds::text[],
    r.accountability_departments::text[], r.missed_deadlines::text[], r.last_sequence,
    r.last_global_position, r.last_event_at, r.updated_at, r.calendar, r.sla_policy,
    r.missed_in_force::text[], r.watch_due
FROM unnest(
    $1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
    $15::timestamptz[], $16::timestamptz[], $17::timestamptz[], $18::timestamptz[],
    $19::timestamptz[], $20::timestamptz[], $21::timestamptz[], $22::timestamptz[],
    $23::text[], $24::integer[], $25::text[], $26::boolean[], $27::text[], $28::timestamptz[],
    $29::timestamptz[], $30::timestamptz[], $31::uuid[], $32::integer[], $33::integer[],
    $34::integer[], $35::integer[], $36::boolean[], $37::integer[], $38::timestamptz[],
    $39::timestamptz[], $40::integer[], $41::text[], $42::text[], $43::text[], $44::bigint[],
    $45::bigint[], $46::timestamptz[], $47::timestamptz[], $48::text[], $49::text[],
    $50::text[], $51::timestamptz[]
) AS r(
    appeal_id, tracking_number, channel, filer_kind, filer_name, filer_contact_person,
    filer_phone, category, town, complained_unit, description, lead_department, co_handlers,
    status, filed_at, assigned_at, contact_due, contacted_at, feedback_due, feedback_at,
    resolution_due, resolved_at, resolution_outcome, extension_pending_days,
    return_visit_result, return_visit_solved, return_visit_satisfaction, return_visited_at,
    closed_at, withdrawn_at, duplicate_of, extension_count, rework_count, transfer_count,
    decline_count, supervised, supervision_count, supervision_due, next_due,
    accountability_count, accountability_kinds, accountability_departments, missed_deadlines,
    last_sequence, last_global_position, last_event_at, updated_at, calendar, sla_policy,
    missed_in_force, watch_due
)
ON CONFLICT (appeal_id) DO UPDATE SET
    tracking_number = EXCLUDED.tracking_number,
    channel = EXCLUDED.channel,
    filer_kind = EXCLUDED.filer_kind,
    filer_name = EXCLUDED.filer_name,
    filer_contact_person = EXCLUDED.filer_contact_person,
    filer_phone = EXCLUDED.filer_phone,
    category = EXCLUDED.category,
    town = EXCLUDED.town,
    complained_unit = EXCLUDED.complained_unit,
    description = EXCLUDED.description,
    lead_department = EXCLUDED.lead_department,
    co_handlers = EXCLUDED.co_handlers,
    status = EXCLUDED.status,
    filed_at = EXCLUDED.filed_at,
    assigned_at = EXCLUDED.assigned_at,
    contact_due = EXCLUDED.contact_due,
    contacted_at = EXCLUDED.contacted_at,
    feedback_due = EXCLUDED.feedback_due,
    feedback_at = EXCLUDED.feedback_at,
    resolution_due = EXCLUDED.resolution_due,
    resolved_at = EXCLUDED.resolved_at,
    resolution_outcome = EXCLUDED.resolution_outcome,
    extension_pending_days = EXCLUDED.extension_pending_days,
    return_visit_result = EXCLUDED.return_visit_result,
    return_visit_solved = EXCLUDED.return_visit_solved,
    return_visit_satisfaction = EXCLUDED.return_visit_satisfaction,
    return_visited_at = EXCLUDED.return_visited_at,
    closed_at = EXCLUDED.closed_at,
    withdrawn_at = EXCLUDED.withdrawn_at,
    duplicate_of = EXCLUDED.duplicate_of,
    extension_count = EXCLUDED.extension_count,
    rework_count = EXCLUDED.rework_count,
    transfer_count = EXCLUDED.transfer_count,
    decline_count = EXCLUDED.decline_count,
    supervised = EXCLUDED.supervised,
    supervision_count = EXCLUDED.supervision_count,
    supervision_due = EXCLUDED.supervision_due,
    next_due = EXCLUDED.next_due,
    accountability_count = EXCLUDED.accountability_count,
    accountability_kinds = EXCLUDED.accountability_kinds,
    accountability_departments = EXCLUDED.accountability_departments,
    missed_deadlines = EXCLUDED.missed_deadlines,
    last_sequence = EXCLUDED.last_sequence,
    last_global_position = EXCLUDED.last_global_position,
    last_event_at = EXCLUDED.last_event_at,
    updated_at = EXCLUDED.updated_at,
    calendar = EXCLUDED.calendar,
    sla_policy = EXCLUDED.sla_policy,
    missed_in_force = EXCLUDED.missed_in_force,
    watch_due = EXCLUDED.watch_due
-- Never move a row back to an older state (a safety net: the checkpoint already drops repeats).
WHERE ledger.last_sequence < EXCLUDED.last_sequence
"#;

/// Typed arrays rather than JSON: one row per event makes this the hot statement of a rebuild.
const INSERT_TIMELINE: &str = "INSERT INTO ledger_timeline \
     (appeal_id, sequence, global_position, event_id, event_type, at, actor, role, department, summary) \
     SELECT u.appeal_id, u.sequence, u.global_position, u.event_id, u.event_type, u.at, u.actor, \
            u.role, u.department, u.summary::json \
     FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::uuid[], $5::text[], \
                 $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[]) \
          AS u(appeal_id, sequence, global_position, event_id, event_type, at, actor, role, \
               department, summary) \
     ON CONFLICT DO NOTHING";

/// What [`fold`] did with an event.
enum Folded {
    /// Folded into the appeal's row.
    Applied,
    /// The filing: the appeal's first row (boxed: the other variants carry nothing).
    Filed(Box<LedgerRow>),
    /// Already in the row (a redelivery).
    Repeat,
}

/// Folds an appeal's next event into its row (`None`: no row yet). The one place that decides
/// whether an event may follow the row, for the live path and the rebuild's bulk load alike.
fn fold(
    row: Option<&mut LedgerRow>,
    envelope: &Stamp<'_>,
    id: Uuid,
    event: AppealEvent,
) -> Result<Folded, ProjectionError> {
    match row {
        Some(row) if envelope.sequence <= row.last_sequence => Ok(Folded::Repeat),
        Some(row) if envelope.sequence != row.last_sequence + 1 => Err(inconsistent(format!(
            "appeal {id}: event #{} follows #{} (a gap in its stream)",
            envelope.sequence, row.last_sequence
        ))),
        Some(row) => {
            row.apply(envelope, event).map_err(inconsistent)?;
            Ok(Folded::Applied)
        }
        None => LedgerRow::filed(envelope, &event)
            .filter(|_| envelope.sequence == 1)
            .map(|row| Folded::Filed(Box::new(row)))
            .ok_or_else(|| {
                inconsistent(format!(
                    "appeal {id}: event #{} ({}) arrived before the appeal was filed",
                    envelope.sequence, envelope.event_type
                ))
            }),
    }
}

/// The appeal an event belongs to.
fn appeal_id(envelope: &Envelope) -> Result<Uuid, ProjectionError> {
    parse_appeal_id(&envelope.aggregate_id, envelope.event_id)
}

fn parse_appeal_id(aggregate_id: &str, event_id: Uuid) -> Result<Uuid, ProjectionError> {
    Uuid::parse_str(aggregate_id).map_err(|_| {
        inconsistent(format!(
            "event {event_id} belongs to appeal {aggregate_id:?}, which is not a uuid"
        ))
    })
}

fn inconsistent(detail: String) -> ProjectionError {
    ProjectionError::Inconsistent {
        projection: NAME,
        detail,
    }
}

#[async_trait::async_trait]
impl Projection for Ledger {
    fn name(&self) -> &'static str {
        NAME
    }

    fn schema(&self) -> &'static str {
        include_str!("ledger.sql")
    }

    fn tables(&self) -> &'static [&'static str] {
        &["ledger", "ledger_timeline"]
    }

    /// An appeal's row and timeline come from its own events alone.
    fn rebuild_order(&self) -> RebuildOrder {
        RebuildOrder::PerAggregate
    }

    /// The bulk load below writes whole streams and checks no conflicts; `ledger.sql` adds a
    /// missing key back.
    fn rebuild_drops_keys(&self) -> bool {
        true
    }

    /// Whole streams into emptied tables: each appeal is folded in memory by [`fold`], as the
    /// live path folds it, and its row and timeline are written by binary `COPY`, with nothing
    /// to read back and no conflict to check. Payloads and metadata are read from the stored
    /// text (no `serde_json::Value`s: building and dropping them was most of a rebuild's client
    /// time); the timeline's summary is the canonical text the live path's `Summary` writes.
    async fn rebuild_chunk(
        &self,
        conn: &mut PgConnection,
        chunk: &StoredChunk,
    ) -> Result<(), ProjectionError> {
        bulk::check_columns(&mut *conn).await?;
        let mut rows = BinaryCopy::with_capacity(chunk.len() * 80);
        let mut timeline = BinaryCopy::with_capacity(chunk.len() * 200);
        let mut current: Option<(Uuid, LedgerRow)> = None;
        let mut events = 0usize;
        for event in chunk.events() {
            let event = event?;
            if event.aggregate_type != Appeal::TYPE {
                continue;
            }
            let id = parse_appeal_id(event.aggregate_id, event.event_id)?;
            let stamp = Stamp::from(&event);
            let decoded = decode_stored(&event)?;
            let at = decoded.at();
            if current.as_ref().is_some_and(|(current, _)| *current != id)
                && let Some((_, row)) = current.take()
            {
                bulk::write_row(&mut rows, &row)?;
            }
            match fold(current.as_mut().map(|(_, row)| row), &stamp, id, decoded)? {
                Folded::Applied => {}
                Folded::Filed(row) => current = Some((id, *row)),
                // A stream is read once, in sequence order: a repeat means the reader is wrong.
                Folded::Repeat => {
                    return Err(inconsistent(format!(
                        "appeal {id}: event #{} read twice in a rebuild",
                        event.sequence
                    )));
                }
            }
            let actors = Actors::read(event.metadata)
                .map_err(|e| ProjectionError::decode_stored(&event, e))?;
            bulk::write_timeline(&mut timeline, &stamp, id, at, &actors, |out| {
                canonical_json_text_without(event.payload, summary_skips(event.event_type), out)
                    .map_err(|e| ProjectionError::decode_stored(&event, e))
            })?;
            events += 1;
        }
        let Some((_, row)) = current else {
            return Ok(());
        };
        bulk::write_row(&mut rows, &row)?;
        bulk::copy_in(&mut *conn, bulk::COPY_LEDGER, rows.finish(), "ledger rows").await?;
        bulk::copy_in(
            &mut *conn,
            bulk::COPY_TIMELINE,
            timeline.finish(),
            "ledger timeline rows",
        )
        .await?;
        tracing::trace!(events, "ledger rebuild chunk copied");
        Ok(())
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        batch: &[Envelope],
    ) -> Result<(), ProjectionError> {
        let mut decoded = Vec::with_capacity(batch.len());
        let mut ids = Vec::new();
        for envelope in batch.iter().filter(|e| e.aggregate_type == Appeal::TYPE) {
            let id = appeal_id(envelope)?;
            decoded.push((envelope, id, decode(envelope)?));
            ids.push((id, envelope.sequence));
        }
        if decoded.is_empty() {
            return Ok(());
        }
        // Appeals whose first event here is their filing have no row yet (the upsert's guard
        // covers a row that exists anyway): load only the others.
        ids.sort_unstable();
        ids.dedup_by_key(|(id, _)| *id);
        let ids: Vec<Uuid> = ids
            .into_iter()
            .filter(|(_, first)| *first > 1)
            .map(|(id, _)| id)
            .collect();

        let existing: Vec<Json<LedgerRow>> = sqlx::query_scalar(LOAD_ROWS)
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| ProjectionError::db("loading ledger rows", e))?;
        let mut rows: HashMap<Uuid, LedgerRow> = existing
            .into_iter()
            .map(|Json(row)| (row.appeal_id, row))
            .collect();
        let mut changed = Vec::new();
        let mut timeline = TimelineColumns::with_capacity(decoded.len());
        for (envelope, id, event) in decoded {
            let at = event.at();
            match fold(rows.get_mut(&id), &envelope.into(), id, event)? {
                // Already applied (a redelivery the checkpoint did not cover): nothing to do.
                Folded::Repeat => continue,
                Folded::Applied => {}
                Folded::Filed(row) => {
                    rows.insert(id, *row);
                }
            }
            changed.push(id);
            timeline.push(envelope, id, at)?;
        }
        if changed.is_empty() {
            return Ok(());
        }
        changed.sort_unstable();
        changed.dedup();
        let changed: Vec<&LedgerRow> = changed.iter().filter_map(|id| rows.get(id)).collect();

        LedgerColumns::from(&changed[..])
            .bind(sqlx::query(UPSERT_ROWS))
            .execute(&mut *conn)
            .await
            .map_err(|e| ProjectionError::db("writing ledger rows", e))?;
        sqlx::query(INSERT_TIMELINE)
            .bind(&timeline.appeal_id)
            .bind(&timeline.sequence)
            .bind(&timeline.global_position)
            .bind(&timeline.event_id)
            .bind(&timeline.event_type)
            .bind(&timeline.at)
            .bind(&timeline.actor)
            .bind(&timeline.role)
            .bind(&timeline.department)
            .bind(&timeline.summary)
            .execute(&mut *conn)
            .await
            .map_err(|e| ProjectionError::db("writing ledger timeline rows", e))?;
        Ok(())
    }
}
