//! A projection's checkpoint: the position of the last event it applied, in the relay's
//! publication order `(tx_id, global_position)`, kept in `projection_checkpoints` and written in
//! the same transaction as the projection's rows.
//!
//! Besides dropping envelopes at or before the checkpoint, every batch is verified against the
//! events table (the source of truth): the envelopes applied must be exactly the events between
//! the checkpoint and the batch's last envelope. This turns "the bus lost or reordered an event",
//! "two projector instances raced on one consumer" or "the stream no longer holds the start of
//! history" into a loud error instead of a silently wrong read model.

use std::fmt;

use linkage_bus::Envelope;
use sqlx::{PgConnection, Row};

use crate::ProjectionError;

/// A place in the global order: the writing transaction's id, then the insertion position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Position {
    pub tx_id: i64,
    pub global_position: i64,
}

impl Position {
    pub fn of(envelope: &Envelope) -> Self {
        Self {
            tx_id: envelope.tx_id,
            global_position: envelope.global_position,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(tx {}, position {})", self.tx_id, self.global_position)
    }
}

/// Shows an optional position, for messages.
pub fn show(p: Option<Position>) -> String {
    p.map_or_else(|| "the start".to_owned(), |p| p.to_string())
}

/// Makes sure the projection has a checkpoint row (at the start of history when new).
pub async fn ensure_row(conn: &mut PgConnection, name: &str) -> Result<(), ProjectionError> {
    sqlx::query("INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(name)
        .execute(conn)
        .await
        .map_err(|e| ProjectionError::db(format!("creating the checkpoint of {name}"), e))?;
    Ok(())
}

/// A checkpoint row as read under its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub position: Option<Position>,
    /// A rebuild is running (or failed): only the rebuild may write.
    pub rebuilding: bool,
}

/// Locks the projection's checkpoint row for the rest of the transaction and reads it: every
/// writer of a projection goes through here, so batches and rebuild chunks never interleave.
pub async fn lock(conn: &mut PgConnection, name: &str) -> Result<Locked, ProjectionError> {
    ensure_row(conn, name).await?;
    let row = sqlx::query(
        "SELECT tx_id::text::bigint AS tx_id, global_position, \
                rebuilding_since IS NOT NULL AS rebuilding \
         FROM projection_checkpoints WHERE name = $1 FOR UPDATE",
    )
    .bind(name)
    .fetch_one(conn)
    .await
    .map_err(|e| ProjectionError::db(format!("locking the checkpoint of {name}"), e))?;
    let tx_id: Option<i64> = row.get("tx_id");
    let global_position: Option<i64> = row.get("global_position");
    Ok(Locked {
        position: tx_id
            .zip(global_position)
            .map(|(tx_id, global_position)| Position {
                tx_id,
                global_position,
            }),
        rebuilding: row.get("rebuilding"),
    })
}

/// Marks the projection as being rebuilt (`true`) or not.
pub async fn set_rebuilding(
    conn: &mut PgConnection,
    name: &str,
    rebuilding: bool,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "UPDATE projection_checkpoints \
         SET rebuilding_since = CASE WHEN $2 THEN now() END, updated_at = now() WHERE name = $1",
    )
    .bind(name)
    .bind(rebuilding)
    .execute(conn)
    .await
    .map_err(|e| ProjectionError::db(format!("marking the rebuild of {name}"), e))?;
    Ok(())
}

/// Moves the checkpoint (`None`: back to the start of history).
pub async fn save(
    conn: &mut PgConnection,
    name: &str,
    position: Option<Position>,
    stream_sequence: Option<u64>,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "UPDATE projection_checkpoints \
         SET tx_id = $2::bigint::text::xid8, global_position = $3, stream_sequence = $4, \
             updated_at = now() \
         WHERE name = $1",
    )
    .bind(name)
    .bind(position.map(|p| p.tx_id))
    .bind(position.map(|p| p.global_position))
    .bind(stream_sequence.map(|s| s as i64))
    .execute(conn)
    .await
    .map_err(|e| ProjectionError::db(format!("saving the checkpoint of {name}"), e))?;
    Ok(())
}

/// Checks that `count` envelopes, strictly increasing, after `after` and ending at `last`, are
/// all the events the store holds in `(after, last]`. Uses the `events_commit_order` index.
pub async fn verify_contiguous(
    conn: &mut PgConnection,
    projection: &'static str,
    after: Option<Position>,
    last: Position,
    count: usize,
) -> Result<(), ProjectionError> {
    let after = after.unwrap_or(Position {
        tx_id: 0,
        global_position: 0,
    });
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events \
         WHERE (tx_id, global_position) > ($1::bigint::text::xid8, $2) \
           AND (tx_id, global_position) <= ($3::bigint::text::xid8, $4)",
    )
    .bind(after.tx_id)
    .bind(after.global_position)
    .bind(last.tx_id)
    .bind(last.global_position)
    .fetch_one(conn)
    .await
    .map_err(|e| ProjectionError::db("counting the events a batch should hold", e))?;
    if stored == count as i64 {
        Ok(())
    } else {
        Err(ProjectionError::Inconsistent {
            projection,
            detail: format!(
                "the batch holds {count} new events up to {last}, but the event store has {stored} \
                 after {after}: events are missing from the bus (or another instance is applying \
                 the same projection); it will be retried, and if this persists rebuild the \
                 projection"
            ),
        })
    }
}
