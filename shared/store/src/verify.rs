//! Re-checking a stream's hash chain from what is stored: the first event whose hash does not
//! match its content and predecessor, or whose sequence skips, is named.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::StoreError;
use crate::hash::{HashedFields, event_hash};

/// Why a stream does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("event {event_id} (sequence {sequence}): sequence expected {expected}")]
    SequenceGap {
        event_id: Uuid,
        sequence: i64,
        expected: i64,
    },
    #[error("event {event_id} (sequence {sequence}): prev_hash does not match the previous event")]
    BrokenLink { event_id: Uuid, sequence: i64 },
    #[error("event {event_id} (sequence {sequence}): hash does not match its content")]
    Tampered { event_id: Uuid, sequence: i64 },
}

/// Verifies one stream; `Ok(n)` is the number of events checked.
pub async fn verify_stream(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Result<usize, ChainBreak>, StoreError> {
    let rows = sqlx::query(
        "SELECT event_id, sequence, event_type, event_version, payload, metadata, recorded_at, \
                prev_hash, hash \
         FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_all(pool)
    .await
    .map_err(|e| StoreError::db(format!("reading stream {aggregate_id} to verify it"), e))?;
    let mut prev: Option<Vec<u8>> = None;
    for (i, row) in rows.iter().enumerate() {
        let event_id: Uuid = row.get("event_id");
        let sequence: i64 = row.get("sequence");
        let expected = i as i64 + 1;
        if sequence != expected {
            return Ok(Err(ChainBreak::SequenceGap {
                event_id,
                sequence,
                expected,
            }));
        }
        let prev_hash: Option<Vec<u8>> = row.get("prev_hash");
        if prev_hash != prev {
            return Ok(Err(ChainBreak::BrokenLink { event_id, sequence }));
        }
        let payload: Value = row.get("payload");
        let metadata: Value = row.get("metadata");
        let recorded_at: DateTime<Utc> = row.get("recorded_at");
        let event_type: String = row.get("event_type");
        let event_version: String = row.get("event_version");
        let computed = event_hash(
            prev.as_deref(),
            &HashedFields {
                event_id,
                aggregate_type,
                aggregate_id,
                sequence,
                event_type: &event_type,
                event_version: &event_version,
                payload: &payload,
                metadata: &metadata,
                recorded_at,
            },
        );
        let stored: Vec<u8> = row.get("hash");
        if computed != stored {
            return Ok(Err(ChainBreak::Tampered { event_id, sequence }));
        }
        prev = Some(stored);
    }
    Ok(Ok(rows.len()))
}
