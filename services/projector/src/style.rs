//! The style-evaluation projection (`style.sql`): the evaluation in force per evaluator ×
//! department × quarter; a resubmission (a higher revision) replaces it.

use std::collections::HashMap;

use cqrs_es::Aggregate as _;
use linkage_bus::Envelope;
use linkage_domain::assessment::{StyleEvaluation, StyleEvent};
use sqlx::PgConnection;

use crate::{Projection, ProjectionError};

pub const NAME: &str = "style";

/// The style-evaluation projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style;

const UPSERT: &str = "INSERT INTO style_evaluations AS s (quarter, department, evaluator, \
         evaluator_role, scores, mean, comment, revision, submitted_at) \
     SELECT u.quarter, u.department, u.evaluator, u.evaluator_role, u.scores::jsonb, u.mean, \
            u.comment, u.revision, u.submitted_at \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                 $6::double precision[], $7::text[], $8::integer[], $9::timestamptz[]) \
          AS u(quarter, department, evaluator, evaluator_role, scores, mean, comment, revision, \
               submitted_at) \
     ON CONFLICT (quarter, department, evaluator) DO UPDATE SET \
         evaluator_role = EXCLUDED.evaluator_role, scores = EXCLUDED.scores, \
         mean = EXCLUDED.mean, comment = EXCLUDED.comment, revision = EXCLUDED.revision, \
         submitted_at = EXCLUDED.submitted_at \
     WHERE s.revision < EXCLUDED.revision";

#[async_trait::async_trait]
impl Projection for Style {
    fn name(&self) -> &'static str {
        NAME
    }

    fn schema(&self) -> &'static str {
        include_str!("style.sql")
    }

    fn tables(&self) -> &'static [&'static str] {
        &["style_evaluations"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        batch: &[Envelope],
    ) -> Result<(), ProjectionError> {
        // The latest revision per evaluation in this batch (one statement cannot upsert a row
        // twice).
        let mut latest: HashMap<String, StyleEvent> = HashMap::new();
        for envelope in batch
            .iter()
            .filter(|e| e.aggregate_type == StyleEvaluation::TYPE)
        {
            let event = linkage_store::events::decode_event::<StyleEvaluation>(
                &envelope.event_type,
                envelope.payload.clone(),
            )
            .map_err(|source| ProjectionError::Decode {
                event_id: envelope.event_id,
                event_type: envelope.event_type.clone(),
                aggregate_id: envelope.aggregate_id.clone(),
                sequence: envelope.sequence,
                source,
            })?;
            latest.insert(envelope.aggregate_id.clone(), event);
        }
        if latest.is_empty() {
            return Ok(());
        }
        let n = latest.len();
        let mut quarter = Vec::with_capacity(n);
        let mut department = Vec::with_capacity(n);
        let mut evaluator = Vec::with_capacity(n);
        let mut evaluator_role = Vec::with_capacity(n);
        let mut scores = Vec::with_capacity(n);
        let mut mean = Vec::with_capacity(n);
        let mut comment = Vec::with_capacity(n);
        let mut revision = Vec::with_capacity(n);
        let mut submitted_at = Vec::with_capacity(n);
        for event in latest.into_values() {
            let StyleEvent::StyleEvaluationSubmitted {
                quarter: q,
                department: d,
                evaluator: e,
                evaluator_role: r,
                scores: s,
                comment: c,
                revision: v,
                at,
            } = event;
            quarter.push(q.to_string());
            department.push(d.to_string());
            evaluator.push(e);
            evaluator_role.push(r);
            mean.push(StyleEvaluation::mean(&s));
            scores.push(
                serde_json::to_string(&s).map_err(|source| ProjectionError::Encode {
                    projection: NAME,
                    source,
                })?,
            );
            comment.push(c.map(String::from));
            revision.push(i32::try_from(v).unwrap_or(i32::MAX));
            submitted_at.push(at);
        }
        sqlx::query(UPSERT)
            .bind(&quarter)
            .bind(&department)
            .bind(&evaluator)
            .bind(&evaluator_role)
            .bind(&scores)
            .bind(&mean)
            .bind(&comment)
            .bind(&revision)
            .bind(&submitted_at)
            .execute(&mut *conn)
            .await
            .map_err(|e| ProjectionError::db("writing style evaluations", e))?;
        Ok(())
    }
}
