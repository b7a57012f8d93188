//! The style-evaluation projection (`style.sql`): the evaluation in force per evaluator ×
//! department × quarter (a resubmission, a higher revision, replaces it) and, per department and
//! quarter, exact integer totals of the evaluations in force, so that averages are read from one
//! row per department however many enterprises scored.

use std::collections::{BTreeMap, HashMap};

use cqrs_es::Aggregate as _;
use linkage_bus::Envelope;
use linkage_domain::assessment::{StyleDimension, StyleEvaluation, StyleEvent};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use sqlx::types::Json;

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

/// The totals of one department's evaluations in force for one quarter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StyleTotals {
    pub evaluations: i64,
    /// Sum of every score of every evaluation.
    pub points: i64,
    /// Sum of the scores per dimension.
    pub dimensions: BTreeMap<StyleDimension, i64>,
}

impl StyleTotals {
    /// Adds (`sign` = 1) or takes away (`sign` = -1) one evaluation's scores.
    fn add(&mut self, scores: &BTreeMap<StyleDimension, u8>, sign: i64) {
        self.evaluations += sign;
        for (dim, score) in scores {
            self.points += sign * i64::from(*score);
            *self.dimensions.entry(*dim).or_default() += sign * i64::from(*score);
        }
    }
}

const LOAD_EVALUATIONS: &str = "SELECT s.quarter, s.department, s.evaluator, s.revision, s.scores \
     FROM style_evaluations s \
     JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(quarter, department, evaluator) \
       USING (quarter, department, evaluator)";

const LOAD_TOTALS: &str = "SELECT t.quarter, t.department, t.totals FROM style_totals t \
     JOIN unnest($1::text[], $2::text[]) AS k(quarter, department) USING (quarter, department)";

const SAVE_TOTALS: &str = "INSERT INTO style_totals (quarter, department, totals) \
     SELECT u.quarter, u.department, u.totals::jsonb \
     FROM unnest($1::text[], $2::text[], $3::text[]) AS u(quarter, department, totals) \
     ON CONFLICT (quarter, department) DO UPDATE SET totals = EXCLUDED.totals";

type Scores = BTreeMap<StyleDimension, u8>;
/// Quarter, department, evaluator.
type EvaluationKey = (String, String, String);
/// A stored evaluation: quarter, department, evaluator, revision, scores.
type StoredEvaluation = (String, String, String, i32, Json<Scores>);

/// Moves the totals of the departments `latest` touches from the evaluations in force to the
/// ones `latest` brings (only where its revision is newer), and drops from `latest` what is not.
async fn update_totals(
    conn: &mut PgConnection,
    latest: &mut HashMap<String, StyleEvent>,
) -> Result<(), ProjectionError> {
    let mut keys: (Vec<String>, Vec<String>, Vec<String>) = Default::default();
    for StyleEvent::StyleEvaluationSubmitted {
        quarter,
        department,
        evaluator,
        ..
    } in latest.values()
    {
        keys.0.push(quarter.to_string());
        keys.1.push(department.to_string());
        keys.2.push(evaluator.clone());
    }
    let stored: Vec<StoredEvaluation> = sqlx::query_as(LOAD_EVALUATIONS)
        .bind(&keys.0)
        .bind(&keys.1)
        .bind(&keys.2)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| ProjectionError::db("loading style evaluations", e))?;
    let stored: HashMap<EvaluationKey, (i32, Scores)> = stored
        .into_iter()
        .map(|(q, d, e, revision, Json(scores))| ((q, d, e), (revision, scores)))
        .collect();
    let loaded: Vec<(String, String, Json<StyleTotals>)> = sqlx::query_as(LOAD_TOTALS)
        .bind(&keys.0)
        .bind(&keys.1)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| ProjectionError::db("loading style totals", e))?;
    let mut totals: BTreeMap<(String, String), StyleTotals> = loaded
        .into_iter()
        .map(|(q, d, Json(t))| ((q, d), t))
        .collect();
    let mut changed = Vec::new();
    latest.retain(
        |_,
         StyleEvent::StyleEvaluationSubmitted {
             quarter,
             department,
             evaluator,
             scores,
             revision,
             ..
         }| {
            let key = (quarter.to_string(), department.to_string());
            let previous = stored.get(&(key.0.clone(), key.1.clone(), evaluator.clone()));
            if previous.is_some_and(|(r, _)| i64::from(*r) >= i64::from(*revision)) {
                return false;
            }
            let t = totals.entry(key.clone()).or_default();
            if let Some((_, old)) = previous {
                t.add(old, -1);
            }
            t.add(scores, 1);
            changed.push(key);
            true
        },
    );
    if changed.is_empty() {
        return Ok(());
    }
    changed.sort();
    changed.dedup();
    let mut rows: (Vec<String>, Vec<String>, Vec<String>) = Default::default();
    for key in changed {
        let t = &totals[&key];
        rows.2.push(
            serde_json::to_string(t).map_err(|source| ProjectionError::Encode {
                projection: NAME,
                source,
            })?,
        );
        rows.0.push(key.0);
        rows.1.push(key.1);
    }
    sqlx::query(SAVE_TOTALS)
        .bind(&rows.0)
        .bind(&rows.1)
        .bind(&rows.2)
        .execute(&mut *conn)
        .await
        .map_err(|e| ProjectionError::db("writing style totals", e))?;
    Ok(())
}

#[async_trait::async_trait]
impl Projection for Style {
    fn name(&self) -> &'static str {
        NAME
    }

    fn schema(&self) -> &'static str {
        include_str!("style.sql")
    }

    fn tables(&self) -> &'static [&'static str] {
        &["style_evaluations", "style_totals"]
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
            .map_err(|source| ProjectionError::decode(envelope, source))?;
            latest.insert(envelope.aggregate_id.clone(), event);
        }
        if latest.is_empty() {
            return Ok(());
        }
        update_totals(conn, &mut latest).await?;
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
