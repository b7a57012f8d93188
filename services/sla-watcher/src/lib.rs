//! The SLA watcher (超时监控): records every missed "2110" deadline as a `DeadlineMissed` event,
//! exactly once per deadline instance, and asks open appeals to recompute their deadlines after
//! the working-day calendar changed.
//!
//! How it knows what to watch: the ledger's `watch_due` column is, per appeal, the earliest
//! deadline in force that is neither met nor recorded as missed (`ledger_watch_due` index). The
//! watcher sleeps until the earliest such instant (or at most [`WatcherConfig::max_sleep`], to
//! learn deadlines set since), then sends `deadline-missed` for each passed one through the
//! normal command path (`PgEventStore::execute` on the `Appeal` aggregate).
//!
//! Why exactly once: the aggregate refuses a second `DeadlineMissed` for the same deadline kind
//! and due instant (`DeadlineMissAlreadyRecorded`), and appends are optimistic on the stream's
//! sequence, so two watchers, a restart after a crash, or a stale ledger row all end in one
//! event. A refusal is therefore an expected outcome, not an error.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use linkage_domain::appeal::{
    AppealCommand, AppealError, RecomputeDeadlines, RecordDeadlineMissed,
};
use linkage_domain::rules::RulesSource;
use linkage_domain::values::DeadlineKind;
use linkage_domain::{Appeal, AppealServices};
use linkage_projector::ledger::LedgerRow;
use linkage_store::rules::LiveRules;
use linkage_store::{ExecuteError, PgEventStore, StoreError};
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct WatcherConfig {
    /// The longest sleep: how soon a deadline set since the last look is noticed.
    pub max_sleep: Duration,
    /// Appeals looked at per round.
    pub batch: i64,
    /// Pause after a failed round (database down, …) before trying again.
    pub error_backoff: Duration,
    /// Who the watcher is, in event metadata.
    pub actor: String,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        Self {
            max_sleep: Duration::from_secs(30),
            batch: 500,
            error_backoff: Duration::from_secs(2),
            actor: "sla-watcher".to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatcherError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{context}: {source}")]
    Database {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> WatcherError {
    move |source| WatcherError::Database { context, source }
}

/// What one round did (logged, and returned for tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// `DeadlineMissed` events this watcher recorded.
    pub recorded: usize,
    /// Misses another watcher (or an earlier run) had recorded, or deadlines met after all.
    pub already_done: usize,
    /// `DeadlinesRecomputed` events recorded after a calendar change.
    pub recomputed: usize,
    /// When to look again, if a deadline is known.
    pub next_due: Option<DateTime<Utc>>,
}

/// The watcher's memory between rounds.
#[derive(Debug)]
pub struct Watcher {
    store: PgEventStore<Appeal>,
    services: AppealServices,
    rules: Arc<LiveRules>,
    config: WatcherConfig,
    /// Deadline instances this process already settled: skipped until the ledger catches up
    /// (it shows them until the projector applies the event).
    settled: HashSet<(Uuid, DeadlineKind, DateTime<Utc>)>,
    /// The calendar version whose open appeals were last swept for recomputation.
    swept_calendar: Option<String>,
}

impl Watcher {
    /// `services.rules` should be `rules` (the live rules this watcher refreshes).
    pub fn new(
        pool: PgPool,
        services: AppealServices,
        rules: Arc<LiveRules>,
        config: WatcherConfig,
    ) -> Self {
        Self {
            store: PgEventStore::new(pool),
            services,
            rules,
            config,
            settled: HashSet::new(),
            swept_calendar: None,
        }
    }

    fn pool(&self) -> &PgPool {
        self.store.pool()
    }

    fn metadata(&self, command: &str) -> HashMap<String, String> {
        HashMap::from([
            ("actor".to_owned(), self.config.actor.clone()),
            ("role".to_owned(), "system".to_owned()),
            ("command".to_owned(), command.to_owned()),
        ])
    }

    /// One look: recompute after a calendar change, record every passed deadline.
    pub async fn round(&mut self) -> Result<Round, WatcherError> {
        let mut round = Round::default();
        self.rules.refresh().await?;
        let calendar = self.rules.current().calendar.version().to_owned();
        if self.swept_calendar.as_deref() != Some(calendar.as_str()) {
            round.recomputed = self.recompute_open_appeals(&calendar).await?;
            self.swept_calendar = Some(calendar);
        }

        let now = self.services.clock.now();
        let rows: Vec<Json<LedgerRow>> = sqlx::query_scalar(
            "SELECT to_jsonb(l) FROM ledger l WHERE watch_due <= $1 ORDER BY watch_due LIMIT $2",
        )
        .bind(now)
        .bind(self.config.batch)
        .fetch_all(self.pool())
        .await
        .map_err(db("reading passed deadlines from the ledger"))?;
        let mut due_now = HashSet::new();
        for Json(row) in &rows {
            for (which, due) in row.unrecorded_deadlines() {
                if due > now {
                    continue;
                }
                let instance = (row.appeal_id, which, due);
                due_now.insert(instance);
                if self.settled.contains(&instance) {
                    continue;
                }
                if self.record_miss(row.appeal_id, which).await? {
                    round.recorded += 1;
                } else {
                    round.already_done += 1;
                }
                self.settled.insert(instance);
            }
        }
        // Forget instances the ledger no longer shows (the projector caught up).
        self.settled.retain(|instance| due_now.contains(instance));

        round.next_due =
            sqlx::query_scalar("SELECT min(watch_due) FROM ledger WHERE watch_due > $1")
                .bind(now)
                .fetch_one(self.pool())
                .await
                .map_err(db("reading the next deadline from the ledger"))?;
        Ok(round)
    }

    /// Sends `deadline-missed`; `Ok(false)` when the aggregate says it is already recorded or
    /// was met (another watcher, or a ledger row behind its stream).
    async fn record_miss(
        &self,
        appeal_id: Uuid,
        which: DeadlineKind,
    ) -> Result<bool, WatcherError> {
        let command = AppealCommand::RecordDeadlineMissed(RecordDeadlineMissed { which });
        self.send(appeal_id, &command).await
    }

    async fn send(&self, appeal_id: Uuid, command: &AppealCommand) -> Result<bool, WatcherError> {
        let metadata = self.metadata(command.name());
        match self
            .store
            .execute(
                &appeal_id.to_string(),
                command,
                &self.services,
                &metadata,
                None,
            )
            .await
        {
            Ok(executed) => Ok(!executed.committed.is_empty()),
            Err(ExecuteError::Rejected(e)) => {
                if !matches!(
                    e,
                    AppealError::DeadlineMissAlreadyRecorded { .. }
                        | AppealError::DeadlineNotMissed { .. }
                        | AppealError::IllegalTransition { .. }
                ) {
                    tracing::warn!(%appeal_id, command = command.name(), error = %e, "refused");
                }
                Ok(false)
            }
            // Someone kept appending: the next round looks again.
            Err(ExecuteError::Conflict | ExecuteError::IdempotencyKeyTaken) => Ok(false),
            Err(ExecuteError::Store(e)) => Err(e.into()),
        }
    }

    /// Sends `recompute-deadlines` to every appeal being handled whose deadlines were computed
    /// with another calendar version; the aggregate records an event only where they move.
    async fn recompute_open_appeals(&self, calendar: &str) -> Result<usize, WatcherError> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT appeal_id FROM ledger WHERE status = 'assigned' \
             AND calendar IS DISTINCT FROM $1 ORDER BY appeal_id",
        )
        .bind(calendar)
        .fetch_all(self.pool())
        .await
        .map_err(db("listing open appeals to recompute"))?;
        let command = AppealCommand::RecomputeDeadlines(RecomputeDeadlines::default());
        let mut recomputed = 0;
        for id in ids {
            if self.send(id, &command).await? {
                recomputed += 1;
            }
        }
        if recomputed > 0 {
            tracing::info!(
                calendar,
                recomputed,
                "deadlines recomputed after a calendar change"
            );
        }
        Ok(recomputed)
    }
}

/// Runs the watcher until `shutdown` resolves.
pub async fn run(
    pool: PgPool,
    services: AppealServices,
    rules: Arc<LiveRules>,
    config: WatcherConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), WatcherError> {
    tokio::pin!(shutdown);
    let (max_sleep, backoff) = (config.max_sleep, config.error_backoff);
    let mut watcher = Watcher::new(pool, services, rules, config);
    tracing::info!("SLA watcher started");
    loop {
        let sleep = match watcher.round().await {
            Ok(round) => {
                if round.recorded > 0 || round.recomputed > 0 {
                    tracing::info!(
                        recorded = round.recorded,
                        already_done = round.already_done,
                        recomputed = round.recomputed,
                        "SLA watcher round"
                    );
                }
                let now = watcher.services.clock.now();
                round
                    .next_due
                    .and_then(|due| (due - now).to_std().ok())
                    .map_or(max_sleep, |until| until.min(max_sleep))
            }
            Err(e) => {
                tracing::warn!(error = %e, "SLA watcher round failed; retrying");
                backoff
            }
        };
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            // A deadline is an exclusive end: wake just after it.
            () = tokio::time::sleep(sleep + Duration::from_millis(5)) => {}
        }
    }
}
