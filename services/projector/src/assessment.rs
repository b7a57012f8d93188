//! The assessment projection (`assessment.sql`): the assessment policy's versions, and one row
//! per event that costs a department points (accountability by kind, rework, missed deadline),
//! attributed as `docs/metrics.md` says: accountability to the department it names, reworks and
//! missed deadlines to the lead department at that moment.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate as _;
use linkage_bus::Envelope;
use linkage_domain::appeal::AppealEvent;
use linkage_domain::assessment::{AssessmentPolicyBook, Month, PenaltyKind, PolicyEvent};
use linkage_domain::values::DepartmentId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::rates::{AppealStates, appeal_events};
use crate::{Projection, ProjectionError};

pub const NAME: &str = "assessment";

/// The assessment projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Assessment;

const LOAD_LEADS: &str =
    "SELECT appeal_id, last_sequence, lead FROM assessment_appeals WHERE appeal_id = ANY($1)";

const SAVE_LEADS: &str = "INSERT INTO assessment_appeals (appeal_id, last_sequence, lead) \
     SELECT u.id, u.seq, u.state::jsonb FROM unnest($1::uuid[], $2::bigint[], $3::text[]) \
          AS u(id, seq, state) \
     ON CONFLICT (appeal_id) DO UPDATE SET last_sequence = EXCLUDED.last_sequence, \
         lead = EXCLUDED.lead \
     WHERE assessment_appeals.last_sequence < EXCLUDED.last_sequence";

const INSERT_PENALTIES: &str = "INSERT INTO assessment_penalties \
         (event_id, appeal_id, department, kind, at) \
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[]) \
     ON CONFLICT (event_id) DO NOTHING";

const ADD_COUNTS: &str = "INSERT INTO assessment_penalty_counts AS c \
         (month, department, kind, occurrences) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) \
     ON CONFLICT (month, department, kind) DO UPDATE SET \
         occurrences = c.occurrences + EXCLUDED.occurrences";

const INSERT_POLICY: &str = "INSERT INTO assessment_policies \
         (version, policy, reason, set_at, set_by) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (version) DO NOTHING";

/// Penalty occurrences of one batch: one row per event, and counts per month × department ×
/// kind.
#[derive(Default)]
struct PenaltyRows {
    counts: HashMap<(String, String, &'static str), i64>,
    event_id: Vec<Uuid>,
    appeal_id: Vec<Uuid>,
    department: Vec<String>,
    kind: Vec<&'static str>,
    at: Vec<DateTime<Utc>>,
}

impl PenaltyRows {
    fn push(
        &mut self,
        envelope: &Envelope,
        appeal: Uuid,
        department: &DepartmentId,
        kind: PenaltyKind,
        at: DateTime<Utc>,
    ) {
        *self
            .counts
            .entry((
                Month::of(at).to_string(),
                department.to_string(),
                kind.as_str(),
            ))
            .or_default() += 1;
        self.event_id.push(envelope.event_id);
        self.appeal_id.push(appeal);
        self.department.push(department.to_string());
        self.kind.push(kind.as_str());
        self.at.push(at);
    }
}

async fn apply_policies(
    conn: &mut PgConnection,
    batch: &[Envelope],
) -> Result<(), ProjectionError> {
    for envelope in batch
        .iter()
        .filter(|e| e.aggregate_type == AssessmentPolicyBook::TYPE)
    {
        let event = linkage_store::events::decode_event::<AssessmentPolicyBook>(
            &envelope.event_type,
            envelope.payload.clone(),
        )
        .map_err(|source| ProjectionError::decode(envelope, source))?;
        let PolicyEvent::AssessmentPolicySet {
            version,
            policy,
            reason,
            at,
        } = event;
        let policy = serde_json::to_value(policy).map_err(|source| ProjectionError::Encode {
            projection: NAME,
            source,
        })?;
        let set_by = envelope
            .metadata
            .get("actor")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        sqlx::query(INSERT_POLICY)
            .bind(i64::try_from(version).unwrap_or(i64::MAX))
            .bind(policy)
            .bind(reason.as_str())
            .bind(at)
            .bind(set_by)
            .execute(&mut *conn)
            .await
            .map_err(|e| ProjectionError::db("recording an assessment policy version", e))?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl Projection for Assessment {
    fn name(&self) -> &'static str {
        NAME
    }

    fn schema(&self) -> &'static str {
        include_str!("assessment.sql")
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "assessment_policies",
            "assessment_appeals",
            "assessment_penalties",
            "assessment_penalty_counts",
        ]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        batch: &[Envelope],
    ) -> Result<(), ProjectionError> {
        apply_policies(conn, batch).await?;
        let events = appeal_events(NAME, batch)?;
        if events.is_empty() {
            return Ok(());
        }
        let mut leads =
            AppealStates::<Option<DepartmentId>>::load(conn, NAME, LOAD_LEADS, &events).await?;
        let mut penalties = PenaltyRows::default();
        for (envelope, id, event) in &events {
            let Some(lead) = leads.next(envelope, *id)? else {
                continue;
            };
            match event {
                AppealEvent::AppealAssigned { lead: new, .. }
                | AppealEvent::AppealTransferred { lead: new, .. } => *lead = Some(new.clone()),
                AppealEvent::AppealDeclined { .. } => *lead = None,
                AppealEvent::AccountabilityRecorded {
                    department, kind, ..
                } => penalties.push(
                    envelope,
                    *id,
                    department,
                    PenaltyKind::accountability(*kind),
                    event.at(),
                ),
                AppealEvent::ReturnedForRework { .. } => {
                    if let Some(l) = lead.as_ref() {
                        penalties.push(envelope, *id, l, PenaltyKind::Rework, event.at());
                    }
                }
                AppealEvent::DeadlineMissed { which, .. } => {
                    if let Some(l) = lead.as_ref() {
                        penalties.push(envelope, *id, l, PenaltyKind::missed(*which), event.at());
                    }
                }
                _ => {}
            }
        }
        leads.save(conn, SAVE_LEADS).await?;
        if penalties.event_id.is_empty() {
            return Ok(());
        }
        sqlx::query(INSERT_PENALTIES)
            .bind(&penalties.event_id)
            .bind(&penalties.appeal_id)
            .bind(&penalties.department)
            .bind(&penalties.kind)
            .bind(&penalties.at)
            .execute(&mut *conn)
            .await
            .map_err(|e| ProjectionError::db("recording assessment penalties", e))?;
        let (mut month, mut department, mut kind, mut occurrences) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((m, d, k), n) in penalties.counts {
            month.push(m);
            department.push(d);
            kind.push(k);
            occurrences.push(n);
        }
        sqlx::query(ADD_COUNTS)
            .bind(&month)
            .bind(&department)
            .bind(&kind)
            .bind(&occurrences)
            .execute(&mut *conn)
            .await
            .map_err(|e| ProjectionError::db("counting assessment penalties", e))?;
        Ok(())
    }
}
