//! The live path: one JetStream durable consumer per projection (`projection-<name>`). Each
//! fetched batch goes through one Postgres transaction (lock the checkpoint, drop what it
//! covers, verify nothing is missing, apply, move the checkpoint, commit) and is acked only
//! after the commit. A crash between commit and ack means a redelivery, which the checkpoint
//! drops: exactly once in effect.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use linkage_bus::{Bus, BusError, Envelope, EventConsumer};
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::checkpoint::{self, Position};
use crate::{Projection, ProjectionError, ensure_schema};

/// How the runner reads and retries.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Most envelopes per batch (one transaction each).
    pub batch_size: usize,
    /// How long a fetch waits for the first message when none is there.
    pub fetch_wait: Duration,
    /// First pause after an error; doubled up to `max_backoff` while errors repeat.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Durable consumer names are this prefix + the projection's name.
    pub consumer_prefix: String,
    /// Check every batch against the events table (see [`crate::checkpoint`]). One index range
    /// count per batch; turn off only where the events table is not reachable cheaply.
    pub verify_gaps: bool,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            fetch_wait: Duration::from_millis(500),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            consumer_prefix: "projection-".into(),
            verify_gaps: true,
        }
    }
}

impl RunnerConfig {
    /// The durable consumer of a projection.
    pub fn durable_name(&self, projection: &str) -> String {
        format!("{}{projection}", self.consumer_prefix)
    }
}

/// Why the runner could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("opening the durable consumer {durable}: {source}")]
    Consumer {
        durable: String,
        #[source]
        source: BusError,
    },
}

/// What one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Envelopes applied.
    pub applied: usize,
    /// Envelopes the checkpoint already covered (redeliveries, or events a rebuild applied).
    pub dropped: usize,
    pub position: Option<Position>,
}

/// Runs every projection until `shutdown` resolves, then finishes the batch in hand and returns.
/// Creates the projections' tables and checkpoint rows first. Errors after the start are
/// logged and retried with backoff, never skipped.
pub async fn run(
    pool: PgPool,
    bus: Bus,
    projections: Vec<Arc<dyn Projection>>,
    config: RunnerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunnerError> {
    ensure_schema(&pool, &projections).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for projection in projections {
        let durable = config.durable_name(projection.name());
        let consumer = open_consumer(&pool, &bus, projection.name(), &durable)
            .await
            .map_err(|source| RunnerError::Consumer {
                durable: durable.clone(),
                source,
            })?;
        tracing::info!(
            projection = projection.name(),
            durable,
            "projection started"
        );
        tasks.spawn(run_projection(
            pool.clone(),
            bus.clone(),
            durable,
            projection,
            consumer,
            config.clone(),
            stop_rx.clone(),
        ));
    }
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            joined = tasks.join_next() => match joined {
                // Projection loops only end on shutdown; a panic is a bug worth a loud log.
                Some(Err(e)) => tracing::error!(error = %e, "a projection task died"),
                Some(Ok(())) => {}
                None => break,
            },
        }
    }
    let _ = stop_tx.send(true);
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            tracing::error!(error = %e, "a projection task died");
        }
    }
    drop(bus);
    Ok(())
}

/// The projection's consumer, delivering from just after its checkpoint's stream sequence.
async fn open_consumer(
    pool: &PgPool,
    bus: &Bus,
    name: &str,
    durable: &str,
) -> Result<EventConsumer, linkage_bus::BusError> {
    let checkpoint: Option<i64> =
        sqlx::query_scalar("SELECT stream_sequence FROM projection_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await
            .ok()
            .flatten();
    // Unknown (e.g. after a rebuild from Postgres) means from the start: what the checkpoint
    // covers is dropped by position.
    bus.consumer_from(durable, checkpoint.unwrap_or(0).max(0) as u64 + 1)
        .await
}

/// Doubling pauses between retries.
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Sleeps `d` unless asked to stop first; `true` when stopping.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

#[tracing::instrument(name = "projection", skip_all, fields(projection = projection.name()))]
async fn run_projection(
    pool: PgPool,
    bus: Bus,
    durable: String,
    projection: Arc<dyn Projection>,
    mut consumer: EventConsumer,
    config: RunnerConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(config.min_backoff, config.max_backoff);
    loop {
        if *stop.borrow() {
            return;
        }
        let fetched = tokio::select! {
            _ = stop.changed() => return,
            fetched = consumer.fetch(config.batch_size, config.fetch_wait) => fetched,
        };
        let batch = match fetched {
            Ok(batch) => batch,
            // The consumer may be gone or stale (a NATS restart can lose it, or leave a pull
            // request unanswered): open it again from the checkpoint, as on start.
            Err(e) => {
                tracing::warn!(error = %e, "fetching from the bus failed; reopening the consumer");
                if pause(backoff.next(), &mut stop).await {
                    return;
                }
                match open_consumer(&pool, &bus, projection.name(), &durable).await {
                    Ok(fresh) => consumer = fresh,
                    Err(e) => tracing::warn!(error = %e, "reopening the consumer failed"),
                }
                continue;
            }
        };
        backoff.reset();
        let Some(last) = batch.last() else { continue };

        // The same batch until it commits: an event is never skipped. A shutdown meanwhile
        // leaves it un-acked, to be redelivered.
        let items: Vec<(u64, &Envelope)> = batch
            .iter()
            .map(|d| (d.stream_sequence, &d.envelope))
            .collect();
        let mut committed = false;
        loop {
            match apply_batch(&pool, projection.as_ref(), &items, config.verify_gaps).await {
                Ok(outcome) => {
                    tracing::debug!(
                        applied = outcome.applied,
                        dropped = outcome.dropped,
                        stream_sequence = last.stream_sequence,
                        "batch committed"
                    );
                    backoff.reset();
                    committed = true;
                    break;
                }
                Err(e) if e.is_transient() => {
                    let pause_for = backoff.next();
                    tracing::warn!(error = %e, retry_in_ms = pause_for.as_millis() as u64, "applying a batch failed; retrying");
                    if pause(pause_for, &mut stop).await {
                        return;
                    }
                }
                // Not contiguous with the checkpoint (typically: a killed predecessor left
                // earlier messages un-acked): drop the batch and read again from the checkpoint.
                Err(e) => {
                    let pause_for = backoff.next();
                    tracing::warn!(error = %e, "batch not applicable; re-reading from the checkpoint");
                    if pause(pause_for, &mut stop).await {
                        return;
                    }
                    match open_consumer(&pool, &bus, projection.name(), &durable).await {
                        Ok(fresh) => consumer = fresh,
                        Err(e) => tracing::warn!(error = %e, "reopening the consumer failed"),
                    }
                    break;
                }
            }
        }
        if !committed {
            continue;
        }
        if let Err(e) = consumer.ack_through(last).await {
            // Committed already: JetStream redelivers and the checkpoint drops the repeats.
            tracing::warn!(error = %e, stream_sequence = last.stream_sequence, "acking a committed batch failed");
        }
    }
}

/// Applies one batch of `(stream sequence, envelope)` in one transaction with the checkpoint.
/// Public so tests and tools can drive a projection without the bus.
pub async fn apply_batch(
    pool: &PgPool,
    projection: &dyn Projection,
    batch: &[(u64, &Envelope)],
    verify_gaps: bool,
) -> Result<BatchOutcome, ProjectionError> {
    let name = projection.name();
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| ProjectionError::db(format!("beginning a batch of {name}"), e))?;
    // A read model's commit need not wait for the WAL flush: should a crash lose it, the
    // checkpoint goes back with it, the next batch is not contiguous with that checkpoint and
    // the runner reads the events again (`verify_contiguous`). Without that check, keep waiting.
    if verify_gaps {
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await
            .map_err(|e| ProjectionError::db(format!("configuring a batch of {name}"), e))?;
    }
    let locked = checkpoint::lock(&mut tx, name).await?;
    if locked.rebuilding {
        return Err(ProjectionError::Rebuilding { projection: name });
    }
    let start = locked.position;
    // Only what lies strictly after the checkpoint, and strictly increasing: anything else was
    // applied already (a redelivery, or events a rebuild read from the store).
    let mut fresh = Vec::with_capacity(batch.len());
    let mut position = start;
    let mut stream_sequence = None;
    for &(sequence, envelope) in batch {
        let p = Position::of(envelope);
        if position.is_none_or(|at| p > at) {
            fresh.push(envelope.clone());
            position = Some(p);
            stream_sequence = Some(sequence);
        }
    }
    let dropped = batch.len() - fresh.len();
    let Some(last) = position.filter(|_| !fresh.is_empty()) else {
        // Nothing new; the transaction only read (and locked) the checkpoint.
        return Ok(BatchOutcome {
            applied: 0,
            dropped,
            position: start,
        });
    };
    if verify_gaps {
        checkpoint::verify_contiguous(&mut tx, name, start, last, fresh.len()).await?;
    }
    projection.apply(&mut tx, &fresh).await?;
    checkpoint::save(&mut tx, name, Some(last), stream_sequence).await?;
    tx.commit()
        .await
        .map_err(|e| ProjectionError::db(format!("committing a batch of {name}"), e))?;
    Ok(BatchOutcome {
        applied: fresh.len(),
        dropped,
        position: Some(last),
    })
}
