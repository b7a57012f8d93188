//! Linkage's audit tools, over the event store (the source of truth), never over read models:
//!
//! - [`export`]: every event in the global order `(tx_id, global_position)` with its envelope,
//!   streamed (server-side cursor, constant memory) as NDJSON or CSV.
//! - [`verify`]: re-checks every stream's hash chain and the relay's global chain against its
//!   anchors and checkpoint; names the first bad event.
//! - [`appeal_as_of`]: an appeal's state and timeline as they stood at an instant.
//! - [`replay`] / [`diff`]: any [`linkage_projector::Projection`] rebuilt from the events recorded
//!   up to an instant, into a scratch schema, and compared with the live one.
//!
//! The rules (what "as of" includes, what each finding means) are in `docs/audit.md`.

pub mod appeal;
mod as_of;
pub mod export;
pub mod replay;
mod row;
pub mod verify;

pub use appeal::{AppealAsOf, EventsPage, appeal_as_of, events_page};
pub use as_of::parse_as_of;
pub use export::{ExportFormat, ExportOptions, ExportSummary, export};
pub use replay::{DiffReport, ReplaySummary, TableDiff, diff, replay};
pub use verify::{EventRef, Finding, VerifyReport, verify};

/// Everything the audit tools can fail with; each I/O error says what was being done. A history
/// that does not verify is not an error: it is a [`VerifyReport`] with findings.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A database error, with what was being done (the store's classification of transient
    /// failures applies).
    #[error(transparent)]
    Store(#[from] linkage_store::StoreError),
    #[error("writing the output: {0}")]
    Write(#[source] std::io::Error),
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
    #[error(transparent)]
    Projection(#[from] linkage_projector::ProjectionError),
    #[error(transparent)]
    Relay(#[from] linkage_relay::RelayError),
    /// A background part of the work stopped (panicked or was cancelled).
    #[error("{0}")]
    Task(String),
    /// What was asked for does not exist (an appeal, an event at a position).
    #[error("{0}")]
    NotFound(String),
    /// An argument is unusable; `field` names it.
    #[error("{detail}")]
    Invalid { field: &'static str, detail: String },
}

impl AuditError {
    pub fn db(context: impl Into<String>, source: sqlx::Error) -> Self {
        Self::Store(linkage_store::StoreError::db(context, source))
    }

    pub fn invalid(field: &'static str, detail: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            detail: detail.into(),
        }
    }

    /// Whether retrying later may succeed (the database is unreachable or overloaded).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Store(e) => e.is_transient(),
            Self::Projection(e) => e.is_transient(),
            _ => false,
        }
    }
}
