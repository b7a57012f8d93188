//! The relay: publishes every committed event of the Postgres event store to NATS JetStream,
//! exactly once per event id, in a global order that never skips a late commit.
//!
//! - **Order.** Events are read in `(tx_id, global_position)` order and only below the oldest
//!   running transaction (`tx_id < pg_snapshot_xmin(pg_current_snapshot())`). Identity values
//!   are handed out before commit, so a transaction that started earlier can commit later with a
//!   smaller position; reading below the horizon waits for it instead of skipping it, and a
//!   transaction that has not written yet will get a larger id than anything read.
//! - **Exactly once.** Each batch is published with pipelined acks, then the checkpoint is
//!   stored in Postgres. `Nats-Msg-Id` is the event id, so JetStream drops a republished batch
//!   inside its duplicate window; and a relay that takes over first moves the checkpoint past
//!   whatever the stream already holds ([`reconcile`]), so a crash between the acks and the
//!   checkpoint republishes nothing even after the window.
//! - **Nothing lost by the server.** A NATS server that crashes before its fsync can lose
//!   messages it acknowledged. So [`reconcile`] also runs whenever the bus connected to a server
//!   again and after any failed step: when the stream's last message is before the checkpoint,
//!   the events after it are published again, in order, before anything new. And every publish
//!   must directly follow the stream's last sequence as this relay knows it
//!   (`Nats-Expected-Last-Sequence`), so a batch sent to a server that lost messages is refused
//!   rather than stored after a gap.
//! - **One at a time.** The active relay holds a Postgres session advisory lock on a connection
//!   of its own; others wait for it. The active relay checks that connection every
//!   `lock_check_interval`; when it is lost it stops publishing at once and waits again. The
//!   checkpoint update is a compare-and-set, so a relay that lost the lock cannot move it.
//! - **Waking.** The relay polls: every 10 ms while events keep coming, backing off to
//!   `poll_interval` when they stop (rows also pass the horizon when an older transaction ends,
//!   which tells nobody). It also listens on [`NOTIFY_CHANNEL`]; there is deliberately no NOTIFY
//!   trigger on `events` (see the migration).
//! - **Tamper evidence.** Publishing keeps a global hash chain ([`chain_step`]) stored with the
//!   checkpoint, and records anchors (`relay_anchors`) every N events or T seconds.

mod chain;
mod run;
mod step;

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};

pub use chain::{chain_step, chain_step_envelope};
pub use run::run;
pub use step::{Anchor, Reconciled, RelayState, load_anchors, publish_pending, reconcile};

/// The Postgres channel the relay listens on: a writer may `NOTIFY linkage_events` (or
/// `SELECT pg_notify('linkage_events', '')`) after its commit, in a transaction of its own, to
/// wake the relay at once. Never inside the appending transaction: a notifying transaction holds
/// a cluster-wide lock through its commit flush, which serializes appends.
pub const NOTIFY_CHANNEL: &str = "linkage_events";

/// The default advisory lock key of the active relay (ASCII "LKRELAY1").
pub const DEFAULT_LOCK_KEY: i64 = 0x4C4B_5245_4C41_5931;

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Events read and published per step.
    pub batch_size: usize,
    /// The longest wait between looks for new events when nothing is coming (the wait starts at
    /// 10 ms after a step that published and doubles up to this). A `NOTIFY` on
    /// [`NOTIFY_CHANNEL`] cuts any wait short.
    pub poll_interval: Duration,
    /// Record an anchor once this many events were published since the last one...
    pub anchor_every_events: u64,
    /// ...or once this long has passed since the last one and events were published.
    pub anchor_every: Duration,
    /// The Postgres advisory lock that makes one relay active per database.
    pub lock_key: i64,
    /// How often a waiting relay tries the lock, and the active one checks its lock connection.
    pub lock_check_interval: Duration,
    /// Longest wait between retries after a failure.
    pub max_backoff: Duration,
    /// Names this relay in logs and in `pg_stat_activity` (`application_name` of its lock
    /// connection: `<instance> lock`).
    pub instance: String,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            poll_interval: Duration::from_millis(100),
            anchor_every_events: 10_000,
            anchor_every: Duration::from_secs(60),
            lock_key: DEFAULT_LOCK_KEY,
            lock_check_interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
            instance: "linkage-relay".into(),
        }
    }
}

/// What can go wrong in the relay; each error says what was being done.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("{context}: {source}")]
    Database {
        context: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(transparent)]
    Bus(#[from] linkage_bus::BusError),
    /// Someone else moved the checkpoint: another relay was active, or it was edited.
    #[error("the relay checkpoint was moved by someone else")]
    CheckpointMoved,
    /// The stored chain or a stored event does not have the expected shape.
    #[error("{0}")]
    Corrupt(String),
}

impl RelayError {
    pub(crate) fn db(context: impl Into<String>, source: sqlx::Error) -> Self {
        Self::Database {
            context: context.into(),
            source,
        }
    }

    /// Whether retrying cannot help: the schema is missing or wrong (SQLSTATE class 42, e.g.
    /// the relay migration was not applied), or stored data is corrupt.
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::Database {
                source: sqlx::Error::Database(db),
                ..
            } => db.code().is_some_and(|code| code.starts_with("42")),
            Self::Corrupt(_) => true,
            _ => false,
        }
    }
}

/// `Lag::events` is counted up to this many; a longer backlog reports this number.
pub const LAG_COUNT_CAP: u64 = 1_000_000;

/// How far the published log is behind the committed events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// Committed events not yet published (at most [`LAG_COUNT_CAP`]).
    pub events: u64,
    /// Age of the next event to publish, the oldest unpublished one (0 when there is none).
    pub seconds: f64,
    /// When that event was recorded.
    pub oldest_unpublished_at: Option<DateTime<Utc>>,
}

/// The relay's lag, read from Postgres: usable from any process (readiness, metrics). Costs an
/// index range scan over the backlog (capped), so it stays cheap while the relay keeps up.
pub async fn lag(pool: &PgPool) -> Result<Lag, RelayError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| RelayError::db("beginning the relay lag query", e))?;
    // A large backlog makes the count look expensive enough for JIT compilation, which costs far
    // more than the scan itself.
    sqlx::query("SET LOCAL jit = off")
        .execute(&mut *tx)
        .await
        .map_err(|e| RelayError::db("measuring the relay lag", e))?;
    // The checkpoint first, so the planner sees its values: a join lets it pick a full scan.
    let checkpoint =
        sqlx::query("SELECT tx_id::text AS tx_id, global_position FROM relay_checkpoint")
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| RelayError::db("reading the relay checkpoint", e))?;
    let row = sqlx::query(
        "SELECT \
           (SELECT count(*) FROM (SELECT 1 FROM events \
                                  WHERE (tx_id, global_position) > ($1::text::xid8, $2) \
                                  LIMIT $3) backlog) AS events, \
           (SELECT recorded_at FROM events \
            WHERE (tx_id, global_position) > ($1::text::xid8, $2) \
            ORDER BY events.tx_id, events.global_position LIMIT 1) AS oldest, \
           clock_timestamp() AS now",
    )
    .bind(checkpoint.get::<String, _>("tx_id"))
    .bind(checkpoint.get::<i64, _>("global_position"))
    .bind(LAG_COUNT_CAP as i64)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| RelayError::db("measuring the relay lag", e))?;
    tx.commit()
        .await
        .map_err(|e| RelayError::db("ending the relay lag query", e))?;
    let events: i64 = row.get("events");
    let oldest: Option<DateTime<Utc>> = row.get("oldest");
    let now: DateTime<Utc> = row.get("now");
    let seconds = oldest.map_or(0.0, |at| {
        ((now - at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6).max(0.0)
    });
    Ok(Lag {
        events: events.max(0) as u64,
        seconds,
        oldest_unpublished_at: oldest,
    })
}
