//! Linkage's read side: projections fold the global event order into read models in Postgres.
//!
//! - [`Projection`]: a read model: its DDL, its tables and how a batch of events changes them.
//! - [`run`]: the live path: one JetStream durable consumer per projection; each fetched batch is
//!   applied and the projection's checkpoint advanced in one Postgres transaction, then acked.
//! - [`rebuild`]: the replay path, pure Postgres: mark the projection (the live runner waits),
//!   truncate, fold the events table in chunks, set the checkpoint, recreate the indexes.
//! - [`status`]: where every projection stands against the relay.
//! - [`ledger::Ledger`]: the ledger (台账) projection.
//!
//! Exactly once in effect: a projection's checkpoint is committed with its rows, envelopes at or
//! before it are dropped, and every batch is checked against the events table so that no event
//! between the checkpoint and the batch was skipped (see [`checkpoint`]).

pub mod assessment;
pub mod checkpoint;
pub mod complaints;
mod copy;
pub mod ledger;
pub mod rates;
pub mod rebuild;
pub mod runner;
pub mod style;
pub mod testing;

use std::fmt;
use std::sync::Arc;

use linkage_bus::Envelope;
use linkage_store::stored::StoredEvent;
use sqlx::{PgConnection, PgPool};

pub use checkpoint::Position;
pub use ledger::Ledger;
pub use rebuild::{
    DEFAULT_CHUNK_SIZE, ProjectionStatus, RebuildSummary, StoredChunk, read_events, rebuild,
    rebuild_with, status,
};
pub use runner::{BatchOutcome, RunnerConfig, RunnerError, apply_batch, run};

/// A read model fed by the global event order.
#[async_trait::async_trait]
pub trait Projection: Send + Sync + fmt::Debug {
    /// Stable name: the checkpoint's key and the durable consumer's suffix (`projection-<name>`).
    fn name(&self) -> &'static str;

    /// DDL of the projection's tables and indexes, idempotent (`CREATE … IF NOT EXISTS`); run at
    /// start by [`ensure_schema`].
    fn schema(&self) -> &'static str;

    /// The tables a rebuild empties.
    fn tables(&self) -> &'static [&'static str];

    /// Applies a batch of events, in publication order, inside the caller's transaction. Called
    /// once per batch; the caller commits the checkpoint in the same transaction. Must ignore
    /// aggregate types it does not care about, and must not skip an event it cannot handle:
    /// returning an error stops the batch (it is retried, never dropped).
    async fn apply(&self, tx: &mut PgConnection, batch: &[Envelope])
    -> Result<(), ProjectionError>;

    /// The order a rebuild may feed events in. [`RebuildOrder::Global`] unless the projection
    /// says otherwise.
    fn rebuild_order(&self) -> RebuildOrder {
        RebuildOrder::Global
    }

    /// Whether a rebuild may drop the primary keys of [`Projection::tables`] while it writes
    /// (and add them back at its end): only when [`Projection::rebuild_chunk`] needs no unique
    /// index, and the DDL adds a missing key back (after a rebuild that failed midway).
    fn rebuild_drops_keys(&self) -> bool {
        false
    }

    /// Writes one chunk of a [`RebuildOrder::PerAggregate`] rebuild: whole streams, each from
    /// its first event, in sequence order, into tables the rebuild emptied and that no other
    /// chunk writes the same rows of. A projection may bulk-load here (no read-back, no upsert)
    /// as long as the rows equal what [`Projection::apply`] would leave. The events come as
    /// read from the events table, so a projection may decode only what it needs. Default:
    /// `apply` of their envelopes.
    async fn rebuild_chunk(
        &self,
        tx: &mut PgConnection,
        chunk: &StoredChunk,
    ) -> Result<(), ProjectionError> {
        self.apply(tx, &chunk.envelopes()?).await
    }
}

/// How a rebuild reads the event store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildOrder {
    /// In publication order `(tx_id, global_position)`, the checkpoint advancing with each
    /// chunk: right for any projection.
    Global,
    /// One whole stream after the other (by aggregate, then sequence), each stream inside one
    /// chunk; the checkpoint is set once, at the end. Only for projections whose rows for an
    /// aggregate depend on nothing but that aggregate's events in sequence order (no
    /// cross-aggregate state). Much faster for them: each row is written once, never reloaded.
    PerAggregate,
}

/// Every projection Linkage has, for `linkage run` / `linkage projector`.
pub fn all_projections() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(Ledger),
        Arc::new(rates::Rates),
        Arc::new(style::Style),
        Arc::new(assessment::Assessment),
        Arc::new(complaints::Complaints),
    ]
}

/// Finds a projection by name, for `linkage projections rebuild <name>`.
pub fn projection_named(name: &str) -> Option<Arc<dyn Projection>> {
    all_projections().into_iter().find(|p| p.name() == name)
}

/// What can go wrong while applying, rebuilding or inspecting a projection.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("{context}: {source}")]
    Database {
        context: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "event {event_id} ({event_type} #{sequence} of {aggregate_id}) cannot be decoded: {source}"
    )]
    Decode {
        event_id: uuid::Uuid,
        event_type: String,
        aggregate_id: String,
        sequence: i64,
        #[source]
        source: serde_json::Error,
    },
    #[error("encoding rows of projection {projection}: {source}")]
    Encode {
        projection: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The events do not add up: a gap, an event out of order, an event for an unknown appeal.
    /// Retrying does not help until the cause is fixed (usually: rebuild the projection).
    #[error("projection {projection}: {detail}")]
    Inconsistent {
        projection: &'static str,
        detail: String,
    },
    /// A projection's tables are not shaped as its code writes them (e.g. a column added to the
    /// DDL but not to the rebuild's bulk load).
    #[error("projection {projection}: {detail}")]
    Schema {
        projection: &'static str,
        detail: String,
    },
    /// Someone else moved the checkpoint while a rebuild was running.
    #[error(
        "projection {projection} was written to while it was being rebuilt (checkpoint moved from {expected} to {found}); stop the projector and rebuild again"
    )]
    RebuildInterrupted {
        projection: &'static str,
        expected: String,
        found: String,
    },
    #[error("the event reader of a rebuild stopped before the end of the log")]
    ReaderStopped,
    #[error("a task of a rebuild stopped: {0}")]
    TaskStopped(String),
    /// A rebuild is running (or failed and must be run again); the live runner waits.
    #[error(
        "projection {projection} is being rebuilt (or its last rebuild failed: run `linkage projections rebuild {projection}` again)"
    )]
    Rebuilding { projection: &'static str },
}

impl ProjectionError {
    /// The envelope's payload does not decode as its event type.
    pub fn decode(envelope: &linkage_bus::Envelope, source: serde_json::Error) -> Self {
        Self::Decode {
            event_id: envelope.event_id,
            event_type: envelope.event_type.clone(),
            aggregate_id: envelope.aggregate_id.clone(),
            sequence: envelope.sequence,
            source,
        }
    }

    /// [`ProjectionError::decode`] of an event as read from the events table: its payload or
    /// metadata does not decode.
    pub fn decode_stored(event: &StoredEvent<'_>, source: serde_json::Error) -> Self {
        Self::Decode {
            event_id: event.event_id,
            event_type: event.event_type.to_owned(),
            aggregate_id: event.aggregate_id.to_owned(),
            sequence: event.sequence,
            source,
        }
    }

    pub fn db(context: impl Into<String>, source: sqlx::Error) -> Self {
        Self::Database {
            context: context.into(),
            source,
        }
    }

    /// Whether retrying later may succeed without anyone changing anything (the database is
    /// unreachable, overloaded, restarting, or picked this transaction as a deadlock victim).
    pub fn is_transient(&self) -> bool {
        let source = match self {
            Self::Database { source, .. } => source,
            Self::Rebuilding { .. } => return true,
            _ => return false,
        };
        match source {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                // serialization failure, deadlock, admin/crash shutdown, connection and
                // resource classes.
                matches!(c.as_ref(), "40001" | "40P01" | "57P01" | "57P02" | "57P03")
                    || c.starts_with("08")
                    || c.starts_with("53")
            }),
            _ => false,
        }
    }
}

/// Creates every projection's tables if missing. Serialized by an advisory lock, because
/// concurrent `CREATE TABLE IF NOT EXISTS` of the same table can still collide in Postgres.
pub async fn ensure_schema(
    pool: &PgPool,
    projections: &[Arc<dyn Projection>],
) -> Result<(), ProjectionError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| ProjectionError::db("beginning the projection schema transaction", e))?;
    for p in projections {
        create_tables(&mut tx, p.as_ref()).await?;
    }
    tx.commit()
        .await
        .map_err(|e| ProjectionError::db("committing the projection schema", e))
}

/// Runs one projection's DDL and makes sure it has a checkpoint row, inside the caller's
/// transaction (which should hold the schema lock, see [`ensure_schema`]).
pub(crate) async fn create_tables(
    tx: &mut PgConnection,
    projection: &dyn Projection,
) -> Result<(), ProjectionError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('linkage-projection-schema'))")
        .execute(&mut *tx)
        .await
        .map_err(|e| ProjectionError::db("locking the projection schema", e))?;
    sqlx::raw_sql(projection.schema())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            ProjectionError::db(
                format!("creating the tables of projection {}", projection.name()),
                e,
            )
        })?;
    checkpoint::ensure_row(tx, projection.name()).await
}
