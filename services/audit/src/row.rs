//! Reading events rows: places in the global order, and a borrowed envelope that is written out
//! without parsing the stored JSON.

use chrono::{DateTime, Utc};
use linkage_bus::envelope::ENVELOPE_VERSION;
use linkage_projector::Position;
use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::AuditError;

const POSITION: &str = include_str!("position.sql");

/// The place in the global order `(tx_id, global_position)` of the event at `global_position`.
pub(crate) async fn position_of(
    pool: &PgPool,
    field: &'static str,
    global_position: i64,
) -> Result<Position, AuditError> {
    let row: Option<(i64, i64)> = sqlx::query_as(POSITION)
        .bind(global_position)
        .fetch_optional(pool)
        .await
        .map_err(|e| AuditError::db("looking up an event by its global position", e))?;
    row.map(|(tx_id, global_position)| Position {
        tx_id,
        global_position,
    })
    .ok_or_else(|| {
        AuditError::invalid(
            field,
            format!("{field}: no event has the global position {global_position}"),
        )
    })
}

/// The envelope of an events row as `linkage_bus::Envelope` serializes it (same fields, same
/// order), borrowing from the row: payload and metadata are the stored JSON text.
#[derive(Debug, Serialize)]
pub(crate) struct RawEnvelope<'r> {
    pub envelope_version: u32,
    pub event_id: Uuid,
    pub global_position: i64,
    pub tx_id: i64,
    pub aggregate_type: &'r str,
    pub aggregate_id: &'r str,
    pub sequence: i64,
    pub event_type: &'r str,
    pub event_version: &'r str,
    pub recorded_at: DateTime<Utc>,
    pub payload: &'r RawValue,
    pub metadata: &'r RawValue,
    pub hash: &'r str,
    pub prev_hash: Option<&'r str>,
}

impl<'r> RawEnvelope<'r> {
    /// A row selected with the export's columns (`export.sql`).
    pub fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let Json(payload): Json<&RawValue> = row.try_get("payload")?;
        let Json(metadata): Json<&RawValue> = row.try_get("metadata")?;
        Ok(Self {
            envelope_version: ENVELOPE_VERSION,
            event_id: row.try_get("event_id")?,
            global_position: row.try_get("global_position")?,
            tx_id: row.try_get("tx_id")?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            recorded_at: row.try_get("recorded_at")?,
            payload,
            metadata,
            hash: row.try_get("hash")?,
            prev_hash: row.try_get("prev_hash")?,
        })
    }
}
