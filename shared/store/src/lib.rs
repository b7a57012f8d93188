//! Linkage's Postgres event store: the events table with its per-stream hash chain, command
//! execution with optimistic concurrency, idempotency keys, tracking numbers and migrations.

pub mod db;
pub mod events;
pub mod execute;
pub mod hash;
pub mod idempotency;
pub mod rules;
pub mod stored;
pub mod testing;
pub mod tracking;
pub mod verify;

pub use events::{CommittedEvent, EventStamps, LoadedAggregate, PgEventStore};
pub use execute::{ExecuteError, Executed, Idempotent, MAX_ATTEMPTS};

/// Everything that can go wrong in the store; each I/O error says what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{context}: {source}")]
    Database {
        context: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("migrating the database: {0}")]
    Migrate(#[source] Box<sqlx::migrate::MigrateError>),
    #[error("stream {aggregate_id} event {sequence} cannot be decoded: {source}")]
    Decode {
        aggregate_id: String,
        sequence: i64,
        #[source]
        source: serde_json::Error,
    },
    #[error("encoding an event: {0}")]
    Encode(#[source] serde_json::Error),
    /// Another writer appended to the stream first.
    #[error("the stream was appended to concurrently")]
    Conflict,
    /// Another request with the same idempotency key committed first.
    #[error("the idempotency key was recorded by another request")]
    IdempotencyKeyTaken,
}

impl StoreError {
    pub fn db(context: impl Into<String>, source: sqlx::Error) -> Self {
        Self::Database {
            context: context.into(),
            source,
        }
    }

    /// Whether retrying later may succeed: the database is unreachable, restarting, overloaded,
    /// or our connection was terminated. Nothing was committed in these cases (a lost COMMIT
    /// acknowledgement aside, which idempotency keys cover).
    pub fn is_transient(&self) -> bool {
        let Self::Database { source, .. } = self else {
            return false;
        };
        match source {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => true,
            // Class 08 connection exceptions, 57P01-03 admin/crash shutdown, 53 insufficient
            // resources, 40001/40P01 serialization failure and deadlock.
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                c.starts_with("08")
                    || c.starts_with("53")
                    || matches!(&*c, "57P01" | "57P02" | "57P03" | "40001" | "40P01")
            }),
            _ => false,
        }
    }
}
