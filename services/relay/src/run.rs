//! The relay's life: wait for the advisory lock, then publish until shutdown, a fatal error, or
//! the loss of the lock connection (then wait again).

use std::future::Future;
use std::time::{Duration, Instant};

use linkage_bus::Bus;
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection, PgPool};

use crate::step::{RelayState, publish_pending, reconcile};
use crate::{NOTIFY_CHANNEL, RelayConfig, RelayError};

/// How long a check of the lock connection may take before it counts as lost.
const LOCK_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often to try LISTEN again after it failed (polling covers the gap).
const RELISTEN_AFTER: Duration = Duration::from_secs(30);

/// Runs the relay until `shutdown` completes (then returns `Ok`) or a fatal error (the schema is
/// missing, stored data is corrupt). Waits while another relay holds the lock; retries
/// Postgres and NATS failures with backoff, logging them.
///
/// Uses the pool for reads and checkpoints and holds one pooled connection for LISTEN; the lock
/// lives on a connection of its own (`application_name` = `<instance> lock`).
#[tracing::instrument(skip_all, fields(instance = %config.instance))]
pub async fn run(
    pool: PgPool,
    bus: Bus,
    config: RelayConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RelayError> {
    tokio::pin!(shutdown);
    loop {
        let mut lock = tokio::select! {
            biased;
            () = &mut shutdown => return Ok(()),
            lock = acquire_lock(&pool, &config) => lock,
        };
        tracing::info!("this relay is now the active one");
        let outcome = tokio::select! {
            biased;
            () = &mut shutdown => Outcome::Shutdown,
            reason = watch_lock(&mut lock, config.lock_check_interval) => Outcome::LockLost(reason),
            error = lead(&pool, &bus, &config) => Outcome::Failed(error),
        };
        match outcome {
            Outcome::Shutdown => {
                release_lock(lock, config.lock_key).await;
                tracing::info!("relay stopped");
                return Ok(());
            }
            Outcome::LockLost(reason) => {
                // Publishing stopped with the select above; whoever takes over reconciles.
                tracing::error!(%reason, "lost the relay lock connection; stopped publishing");
                drop(lock);
            }
            Outcome::Failed(error) => {
                release_lock(lock, config.lock_key).await;
                tracing::error!(%error, "relay failed");
                return Err(error);
            }
        }
    }
}

enum Outcome {
    Shutdown,
    LockLost(String),
    Failed(RelayError),
}

/// A connection holding the relay's session advisory lock; waits (forever) until it gets it.
async fn acquire_lock(pool: &PgPool, config: &RelayConfig) -> PgConnection {
    let options = pool
        .connect_options()
        .as_ref()
        .clone()
        .application_name(&format!("{} lock", config.instance))
        // If this relay's host vanishes, the server notices within about 25 s (instead of the
        // kernel's hours) and frees the lock for a standby. No effect over a Unix socket.
        .options([
            ("tcp_keepalives_idle", "10"),
            ("tcp_keepalives_interval", "5"),
            ("tcp_keepalives_count", "3"),
        ]);
    let mut backoff = Backoff::new(config.max_backoff);
    let mut conn: Option<PgConnection> = None;
    let mut told = false;
    loop {
        let attempt = async {
            let c = match &mut conn {
                Some(c) => c,
                None => conn.insert(
                    PgConnection::connect_with(&options)
                        .await
                        .map_err(|e| RelayError::db("connecting for the relay lock", e))?,
                ),
            };
            sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
                .bind(config.lock_key)
                .fetch_one(c)
                .await
                .map_err(|e| RelayError::db("trying the relay lock", e))
        };
        match attempt.await {
            Ok(true) => {
                if let Some(c) = conn.take() {
                    return c;
                }
            }
            Ok(false) => {
                if !told {
                    tracing::info!("another relay is active; waiting for its lock");
                    told = true;
                }
                backoff.reset();
                tokio::time::sleep(config.lock_check_interval).await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot try the relay lock; retrying");
                conn = None;
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

/// Completes (with the reason) when the lock connection stops answering: the session, and with
/// it the lock, may be gone.
async fn watch_lock(lock: &mut PgConnection, interval: Duration) -> String {
    loop {
        tokio::time::sleep(interval).await;
        match tokio::time::timeout(LOCK_CHECK_TIMEOUT, lock.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return e.to_string(),
            Err(_) => return format!("no answer within {LOCK_CHECK_TIMEOUT:?}"),
        }
    }
}

async fn release_lock(mut lock: PgConnection, key: i64) {
    let release = async {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(key)
            .execute(&mut lock)
            .await?;
        lock.close().await
    };
    // Closing the session releases the lock anyway; this only makes it prompt.
    match tokio::time::timeout(LOCK_CHECK_TIMEOUT, release).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "releasing the relay lock"),
        Err(_) => tracing::warn!("releasing the relay lock timed out"),
    }
}

/// Publishes for as long as this relay is active; returns only a fatal error.
async fn lead(pool: &PgPool, bus: &Bus, config: &RelayConfig) -> RelayError {
    let mut backoff = Backoff::new(config.max_backoff);
    let mut listener: Option<PgListener> = None;
    let mut listened_at: Option<Instant> = None;
    let mut state: Option<RelayState> = None;
    let mut idle = Idle::new(config.poll_interval);
    loop {
        if listener.is_none() && listened_at.is_none_or(|at| at.elapsed() >= RELISTEN_AFTER) {
            listener = listen(pool).await;
            listened_at = Some(Instant::now());
        }
        // After a reconnection the server may be one that lost messages: look at the stream
        // again (from the stored checkpoint) before publishing anything more.
        if state.as_ref().is_some_and(|s| s.stream_unverified(bus)) {
            tracing::info!("reconnected to NATS; reconciling with the stream");
            state = None;
        }
        let step = match &mut state {
            Some(state) => publish_pending(pool, bus, config, state).await,
            None => match start(pool, bus, config).await {
                Ok(loaded) => {
                    state = Some(loaded);
                    continue;
                }
                Err(e) => Err(e),
            },
        };
        match step {
            Ok(published) => {
                backoff.reset();
                if published >= config.batch_size {
                    // More is waiting; let other tasks run between full batches.
                    idle.reset();
                    tokio::task::yield_now().await;
                    continue;
                }
                // While events keep coming, look again soon; the longer nothing comes, the
                // less often, up to the poll interval. (Commits notify nobody by themselves;
                // a NOTIFY from a writer wakes the relay at once.)
                if published > 0 {
                    idle.reset();
                }
                wait_for_events(&mut listener, idle.next_delay()).await;
            }
            Err(error) if error.is_fatal() => return error,
            Err(error) => {
                tracing::warn!(%error, "relay step failed; retrying");
                // Start over from what is stored: whatever half happened, the stored
                // checkpoint and the stream say where to go on.
                state = None;
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

/// The stored state, moved past what the stream already holds.
async fn start(pool: &PgPool, bus: &Bus, config: &RelayConfig) -> Result<RelayState, RelayError> {
    let mut state = RelayState::load(pool).await?;
    reconcile(pool, bus, config, &mut state).await?;
    tracing::info!(
        tx_id = state.tx_id,
        global_position = state.global_position,
        published_count = state.published_count,
        "relay resuming"
    );
    Ok(state)
}

async fn listen(pool: &PgPool) -> Option<PgListener> {
    let result = async {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    }
    .await;
    match result {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for new events; polling only");
            None
        }
    }
}

/// Until a notification or the poll interval, whichever comes first.
async fn wait_for_events(listener: &mut Option<PgListener>, poll_interval: Duration) {
    let Some(l) = listener else {
        tokio::time::sleep(poll_interval).await;
        return;
    };
    tokio::select! {
        received = l.recv() => match received {
            // One step reads everything pending, however many commits notified.
            Ok(_) => while l.next_buffered().is_some() {},
            Err(error) => {
                tracing::warn!(%error, "event notifications failed; polling meanwhile");
                *listener = None;
            }
        },
        () = tokio::time::sleep(poll_interval) => {}
    }
}

/// Doubling delays from a start up to a ceiling.
#[derive(Debug)]
struct Doubling<const START_MS: u64> {
    next: Duration,
    max: Duration,
}

impl<const START_MS: u64> Doubling<START_MS> {
    const START: Duration = Duration::from_millis(START_MS);

    fn new(max: Duration) -> Self {
        Self {
            next: Self::START,
            max: max.max(Self::START),
        }
    }

    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    fn reset(&mut self) {
        self.next = Self::START;
    }
}

/// Retries after failures: from 100 ms.
type Backoff = Doubling<100>;
/// Waits between steps that found less than a batch: from 10 ms.
type Idle = Doubling<10>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_ceiling_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500));
        let delays: Vec<_> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 100);
    }
}
