//! The district's SLA rules as stored, followed live: [`LiveRules`] folds the rules stream
//! (calendar years, date corrections, SLA policies) into the [`Rulebook`] that appeal commands
//! compute deadlines with, and reloads it when the stream grows.
//!
//! A new district's stream starts with the embedded official calendar (2020–2026) as
//! `CalendarYearPublished` events ([`SlaRules::seed_commands`]), so the whole calendar history is
//! in the event store. Concurrent seeders race on the stream's first sequence: one wins, the
//! others see a conflict and load what it wrote.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use linkage_domain::clock::Clock;
use linkage_domain::rules::{RULES_ID, Rulebook, RulesServices, RulesSource, SlaRules};
use sqlx::PgPool;

use crate::events::PgEventStore;
use crate::{ExecuteError, StoreError};

/// The rules in force, shared by every command of this process.
#[derive(Debug)]
pub struct LiveRules {
    store: PgEventStore<SlaRules>,
    state: RwLock<Snapshot>,
}

#[derive(Debug, Clone)]
struct Snapshot {
    rules: Arc<SlaRules>,
    rulebook: Arc<Rulebook>,
}

impl Snapshot {
    fn of(rules: SlaRules) -> Self {
        Self {
            rulebook: Arc::new(rules.rulebook()),
            rules: Arc::new(rules),
        }
    }
}

impl LiveRules {
    /// Loads the rules, first seeding an empty stream with the embedded official calendar.
    pub async fn load(pool: PgPool, clock: Arc<dyn Clock>) -> Result<Arc<Self>, StoreError> {
        let store = PgEventStore::<SlaRules>::new(pool);
        seed_if_empty(&store, clock).await?;
        let loaded = store.load(RULES_ID).await?;
        Ok(Arc::new(Self {
            store,
            state: RwLock::new(Snapshot::of(loaded.aggregate)),
        }))
    }

    /// The rules as last loaded (calendar, policies, versions).
    pub fn rules(&self) -> Arc<SlaRules> {
        self.snapshot().rules
    }

    fn snapshot(&self) -> Snapshot {
        // A poisoned lock only means a reader panicked; the snapshot itself is immutable.
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reloads the rules if the stream has grown since the last load (one indexed query when
    /// it has not). Returns whether the rules changed.
    pub async fn refresh(&self) -> Result<bool, StoreError> {
        let stored: Option<i64> = sqlx::query_scalar(
            "SELECT max(sequence) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
        )
        .bind(<SlaRules as cqrs_es::Aggregate>::TYPE)
        .bind(RULES_ID)
        .fetch_one(self.store.pool())
        .await
        .map_err(|e| StoreError::db("reading the SLA rules version", e))?;
        let known = self.rules().version;
        if u64::try_from(stored.unwrap_or(0)).unwrap_or(0) == known {
            return Ok(false);
        }
        let loaded = self.store.load(RULES_ID).await?;
        self.install(loaded.aggregate);
        Ok(true)
    }

    /// Installs rules this process has just executed a command on (no need to wait for the
    /// next refresh), unless a newer version is already installed.
    pub fn install(&self, rules: SlaRules) {
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if rules.version > state.rules.version {
            *state = Snapshot::of(rules);
        }
    }

    /// Follows the stream every `every` until `shutdown` resolves, so rules changed through
    /// another process take effect here within that interval.
    pub async fn follow(
        self: Arc<Self>,
        every: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "refreshing the SLA rules failed; keeping the loaded ones");
            }
        }
    }
}

impl RulesSource for LiveRules {
    fn current(&self) -> Arc<Rulebook> {
        self.snapshot().rulebook
    }
}

async fn seed_if_empty(
    store: &PgEventStore<SlaRules>,
    clock: Arc<dyn Clock>,
) -> Result<(), StoreError> {
    if store.load(RULES_ID).await?.sequence > 0 {
        return Ok(());
    }
    let services = RulesServices { clock };
    let metadata = HashMap::from([
        ("actor".to_owned(), "linkage".to_owned()),
        ("role".to_owned(), "system".to_owned()),
        ("command".to_owned(), "seed-calendar".to_owned()),
    ]);
    for command in SlaRules::seed_commands() {
        match store
            .execute(RULES_ID, &command, &services, &metadata, None)
            .await
        {
            Ok(_) => {}
            // Another process seeded concurrently (or already published this year).
            Err(ExecuteError::Conflict | ExecuteError::Rejected(_)) => {}
            Err(ExecuteError::Store(e)) => return Err(e),
            Err(ExecuteError::IdempotencyKeyTaken) => {}
        }
    }
    Ok(())
}
