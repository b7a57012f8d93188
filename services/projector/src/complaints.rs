//! The complaint projection (`complaints.sql`, 投诉通报): every appeal filed with a
//! complained-about unit, marked when merged into another appeal as a duplicate, and counts per
//! month × unit × category without the duplicates.

use chrono::{DateTime, Utc};
use linkage_bus::Envelope;
use linkage_domain::appeal::AppealEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::rates::appeal_events;
use crate::{Projection, ProjectionError};

pub const NAME: &str = "complaints";

/// The complaint projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Complaints;

/// Counts only what the statement changed (`RETURNING`), so a redelivered event counts nothing.
/// Months are Beijing-time months, as `linkage_domain::assessment::Month::of`.
const INSERT: &str = "WITH inserted AS ( \
         INSERT INTO complaint_appeals \
             (appeal_id, complained_unit, tracking_number, channel, category, town, filed_at) \
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], \
                              $6::text[], $7::timestamptz[]) \
         ON CONFLICT (appeal_id) DO NOTHING \
         RETURNING complained_unit, category, filed_at) \
     INSERT INTO complaint_counts AS c (month, unit, category, complaints) \
     SELECT to_char(filed_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM'), complained_unit, \
            category, count(*) \
     FROM inserted GROUP BY 1, 2, 3 \
     ON CONFLICT (month, unit, category) DO UPDATE SET complaints = c.complaints + EXCLUDED.complaints";

const MARK_DUPLICATES: &str = "WITH marked AS ( \
         UPDATE complaint_appeals SET duplicate = true \
         WHERE appeal_id = ANY($1) AND NOT duplicate \
         RETURNING complained_unit, category, filed_at) \
     INSERT INTO complaint_counts AS c (month, unit, category, complaints) \
     SELECT to_char(filed_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM'), complained_unit, \
            category, -count(*) \
     FROM marked GROUP BY 1, 2, 3 \
     ON CONFLICT (month, unit, category) DO UPDATE SET complaints = c.complaints + EXCLUDED.complaints";

#[derive(Default)]
struct Filed {
    appeal_id: Vec<Uuid>,
    unit: Vec<String>,
    tracking_number: Vec<String>,
    channel: Vec<&'static str>,
    category: Vec<&'static str>,
    town: Vec<String>,
    filed_at: Vec<DateTime<Utc>>,
}

#[async_trait::async_trait]
impl Projection for Complaints {
    fn name(&self) -> &'static str {
        NAME
    }

    fn schema(&self) -> &'static str {
        include_str!("complaints.sql")
    }

    fn tables(&self) -> &'static [&'static str] {
        &["complaint_appeals", "complaint_counts"]
    }

    /// Both statements are idempotent, so a redelivered event changes nothing.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        batch: &[Envelope],
    ) -> Result<(), ProjectionError> {
        let mut filed = Filed::default();
        let mut duplicates = Vec::new();
        for (_, id, event) in appeal_events(NAME, batch)? {
            match event {
                AppealEvent::AppealFiled {
                    tracking_number,
                    channel,
                    category,
                    town,
                    complained_unit: Some(unit),
                    at,
                    ..
                } => {
                    filed.appeal_id.push(id);
                    filed.unit.push(unit.to_string());
                    filed.tracking_number.push(tracking_number.to_string());
                    filed.channel.push(channel.as_str());
                    filed.category.push(category.as_str());
                    filed.town.push(town.to_string());
                    filed.filed_at.push(at);
                }
                AppealEvent::AppealMarkedDuplicate { .. } => duplicates.push(id),
                _ => {}
            }
        }
        if !filed.appeal_id.is_empty() {
            sqlx::query(INSERT)
                .bind(&filed.appeal_id)
                .bind(&filed.unit)
                .bind(&filed.tracking_number)
                .bind(&filed.channel)
                .bind(&filed.category)
                .bind(&filed.town)
                .bind(&filed.filed_at)
                .execute(&mut *conn)
                .await
                .map_err(|e| ProjectionError::db("recording complaints", e))?;
        }
        if !duplicates.is_empty() {
            sqlx::query(MARK_DUPLICATES)
                .bind(&duplicates)
                .execute(&mut *conn)
                .await
                .map_err(|e| ProjectionError::db("marking duplicate complaints", e))?;
        }
        Ok(())
    }
}
