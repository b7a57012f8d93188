//! `linkage demo-data`: a deterministic, realistic district (docs/demo-data.md). Months of
//! appeals, style evaluations and accountability records, generated through the real command
//! path: every command is decided by the real aggregate and recorded by
//! [`PgEventStore::execute`] with an idempotency key, on the stored working-day calendar, with
//! the domain clock set to the simulated instant of each step. Nothing is written any other
//! way, so hash chains, deadlines and idempotency are the production ones.
//!
//! Determinism: the seed draws everything (appeal ids, filers, texts, the mix), event ids are
//! derived from the seed, the stream and the sequence, and events are recorded at their
//! simulated instants; the same seed, scale, months and `until` on an empty database give the
//! same events, hashes and tracking numbers.

pub mod district;
mod rng;
mod sim;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Datelike, Months, SubsecRound, Utc};
use linkage_domain::appeal::{Appeal, AppealCommand, AppealError, AppealServices};
use linkage_domain::assessment::{StyleCommand, StyleError, StyleEvaluation};
use linkage_domain::calendar::TZ;
use linkage_domain::clock::{Clock, FixedClock, SystemClock};
use linkage_domain::rules::RulesSource;
use linkage_domain::values::{AccountabilityKind, TrackingNumber};
use linkage_store::events::decode_event;
use linkage_store::idempotency::{self, IdempotencyKey, Replay, StoredResponse};
use linkage_store::rules::LiveRules;
use linkage_store::{
    CommittedEvent, EventStamps, ExecuteError, Idempotent, PgEventStore, StoreError,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};
use uuid::Uuid;

pub use sim::{AppealCounts, Tally};

/// How big a district to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// About 60 appeals a month: for tests.
    Small,
    /// About 500 appeals a month (3,000 over six months).
    Default,
}

impl Scale {
    fn appeals_per_month(self) -> u64 {
        match self {
            Self::Small => 60,
            Self::Default => 500,
        }
    }

    /// Style evaluators per department and quarter.
    fn evaluators(self) -> usize {
        match self {
            Self::Small => 3,
            Self::Default => 8,
        }
    }
}

impl FromStr for Scale {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "small" => Ok(Self::Small),
            "default" => Ok(Self::Default),
            other => Err(format!("unknown scale {other:?}: use `small` or `default`")),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub seed: u64,
    /// Months of history ending at `until` (1–24).
    pub months: u32,
    /// The end of the history (at the latest now).
    pub until: DateTime<Utc>,
    pub scale: Scale,
    /// Load even though the event store already holds appeals (never deletes anything).
    pub force: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(
        "the event store already holds {0} appeals: demo data is only loaded into an empty one \
         (--force adds it anyway; nothing is ever deleted)"
    )]
    NotEmpty(i64),
    #[error("--months must be between 1 and 24, got {0}")]
    Months(u32),
    #[error(
        "--until {until} is in the future (now {now}): the demo history ends at the present at the latest"
    )]
    UntilInFuture {
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    #[error("the demo history would start in {0}, before the stored calendar's first year 2020")]
    TooEarly(i32),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The aggregate refused a generated command: the generator is wrong, say exactly where.
    #[error("demo step refused: {command} on {stream} at {at}: {reason}")]
    Refused {
        command: String,
        stream: String,
        at: DateTime<Utc>,
        reason: String,
    },
}

/// What was generated, counted by the generator itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub seed: u64,
    pub scale: Scale,
    pub months: u32,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Appeals filed.
    pub appeals: u64,
    /// Commands sent (each decided by the aggregate).
    pub commands: u64,
    /// Events recorded.
    pub events: u64,
    /// Commands whose idempotency key was already recorded (a resumed run): nothing recorded.
    pub replayed: u64,
    /// Appeals left filed because assigning them needs a calendar year that is not published.
    pub waiting_for_calendar: u64,
    /// Appeals by status at the end.
    pub statuses: BTreeMap<String, u64>,
    /// Per department: outcomes as docs/metrics.md counts them, and the other events.
    pub departments: BTreeMap<String, Tally>,
    pub appeal_counts: AppealCounts,
    pub style_evaluations: u64,
    /// The enterprise-harassment accountability (一票否决) and when it was recorded.
    pub veto: Option<Veto>,
    pub elapsed_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Veto {
    pub department: String,
    pub tracking_number: Option<String>,
    pub at: DateTime<Utc>,
}

/// The number of appeals in the event store.
pub async fn appeal_count(pool: &PgPool) -> Result<i64, DemoError> {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'appeal' AND sequence = 1",
    )
    .fetch_one(pool)
    .await
    .map_err(|e| StoreError::db("counting appeals", e).into())
}

/// Event ids from the seed, the stream and the sequence; recorded at the simulated instant.
#[derive(Debug)]
struct Stamps {
    seed: u64,
    clock: Arc<FixedClock>,
}

impl EventStamps for Stamps {
    fn recorded_at(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn event_id(&self, aggregate_id: &str, sequence: i64, recorded_at: DateTime<Utc>) -> Uuid {
        let mut h = Sha256::new();
        h.update(b"linkage-demo-event");
        h.update(self.seed.to_be_bytes());
        h.update(aggregate_id.as_bytes());
        h.update(sequence.to_be_bytes());
        let digest = h.finalize();
        let mut bytes = [0u8; 10];
        bytes.copy_from_slice(&digest[..10]);
        uuid::Builder::from_unix_timestamp_millis(recorded_at.timestamp_millis() as u64, &bytes)
            .into_uuid()
    }
}

/// One step of the simulation, ordered by its instant, then by when it was scheduled.
#[derive(Debug)]
enum Action {
    Appeal(usize, AppealCommand, sim::Actor),
    Style(StyleCommand, sim::Actor),
}

/// The steps to come, earliest first; steps at the same instant in the order they were scheduled.
#[derive(Debug, Default)]
struct Queue {
    heap: BinaryHeap<Reverse<(DateTime<Utc>, u64)>>,
    actions: HashMap<u64, Action>,
    order: u64,
}

impl Queue {
    fn push(&mut self, at: DateTime<Utc>, action: Action) {
        self.order += 1;
        self.heap.push(Reverse((at, self.order)));
        self.actions.insert(self.order, action);
    }

    fn pop(&mut self) -> Option<(DateTime<Utc>, Action)> {
        let Reverse((at, order)) = self.heap.pop()?;
        self.actions.remove(&order).map(|a| (at, a))
    }
}

/// Generates the district into `pool`'s event store. `progress(filed, total)` is called as
/// appeals are filed.
#[tracing::instrument(name = "demo_data", skip_all, fields(seed = options.seed, months = options.months, scale = ?options.scale))]
pub async fn load(
    pool: &PgPool,
    options: &DemoOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<Summary, DemoError> {
    let started = Instant::now();
    if !(1..=24).contains(&options.months) {
        return Err(DemoError::Months(options.months));
    }
    let now = SystemClock.now();
    if options.until > now {
        return Err(DemoError::UntilInFuture {
            until: options.until,
            now,
        });
    }
    // Whole seconds: instants in events equal what Postgres (microseconds) reads back.
    let until = options.until.trunc_subsecs(0);
    let from = until
        .checked_sub_months(Months::new(options.months))
        .unwrap_or(until);
    if from.with_timezone(&TZ).year() < 2020 {
        return Err(DemoError::TooEarly(from.with_timezone(&TZ).year()));
    }
    if !options.force {
        let existing = appeal_count(pool).await?;
        if existing > 0 {
            return Err(DemoError::NotEmpty(existing));
        }
    }

    // The history can be generated again from its seed, so its commits need not wait for the
    // disk one by one (docs/operations.md: re-derivable writes turn synchronous commit off); it
    // is all flushed before `load` returns.
    let bulk = bulk_pool(pool).await?;
    let summary = generate(&bulk, options, from, until, started, &mut progress).await;
    let flushed = flush_wal(&bulk).await;
    bulk.close().await;
    let summary = summary?;
    flushed?;
    Ok(summary)
}

/// A connection of its own with synchronous commit off.
async fn bulk_pool(pool: &PgPool) -> Result<PgPool, DemoError> {
    let options = (*pool.connect_options()).clone();
    PgPoolOptions::new()
        .max_connections(1)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET synchronous_commit = off").await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(|e| StoreError::db("connecting for the demo data", e).into())
}

/// Waits until the WAL written so far is on disk (the WAL writer flushes asynchronous commits
/// within a few hundred milliseconds).
async fn flush_wal(pool: &PgPool) -> Result<(), DemoError> {
    let written: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(pool)
        .await
        .map_err(|e| StoreError::db("reading the WAL position", e))?;
    loop {
        let flushed: bool =
            sqlx::query_scalar("SELECT pg_current_wal_flush_lsn() >= $1::text::pg_lsn")
                .bind(&written)
                .fetch_one(pool)
                .await
                .map_err(|e| StoreError::db("waiting for the WAL flush", e))?;
        if flushed {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn generate(
    pool: &PgPool,
    options: &DemoOptions,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    started: Instant,
    progress: &mut impl FnMut(u64, u64),
) -> Result<Summary, DemoError> {
    let mut rng = rng::Rng::new(options.seed);
    let count = options.scale.appeals_per_month() * u64::from(options.months);
    let mut sims = sim::draw_appeals(&mut rng, count as usize, from, until);
    let styles = sim::draw_style_evaluations(&mut rng, options.scale.evaluators(), from, until);

    // The rules in force: the stored calendar and SLA policies (seeded on an empty database).
    let rules = LiveRules::load(pool.clone(), Arc::new(SystemClock)).await?;
    let clock = Arc::new(FixedClock::new(from));
    let services = AppealServices {
        clock: clock.clone(),
        rules: rules.clone(),
    };
    let stamps: Arc<dyn EventStamps> = Arc::new(Stamps {
        seed: options.seed,
        clock: clock.clone(),
    });
    let appeals = PgEventStore::<Appeal>::new(pool.clone()).with_stamps(stamps.clone());
    let evaluations = PgEventStore::<StyleEvaluation>::new(pool.clone()).with_stamps(stamps);
    let style_clock: Arc<dyn Clock> = clock.clone();

    let mut queue = Queue::default();
    let total = sims.len() as u64;
    for sim in &sims {
        let placeholder = TrackingNumber::new(2020, 0);
        queue.push(
            sim.filed_at,
            Action::Appeal(sim.index, sim.file_command(placeholder), sim.filing_actor()),
        );
    }
    for (at, command, actor) in styles {
        queue.push(at, Action::Style(command, actor));
    }

    let mut states: Vec<Appeal> = vec![Appeal::default(); sims.len()];
    let mut summary = Summary {
        seed: options.seed,
        scale: options.scale,
        months: options.months,
        from,
        until,
        appeals: 0,
        commands: 0,
        events: 0,
        replayed: 0,
        waiting_for_calendar: 0,
        statuses: BTreeMap::new(),
        departments: BTreeMap::new(),
        appeal_counts: AppealCounts::default(),
        style_evaluations: 0,
        veto: None,
        elapsed_seconds: 0.0,
    };
    while let Some((at, action)) = queue.pop() {
        clock.set(at);
        summary.commands += 1;
        match action {
            Action::Style(command, actor) => {
                let StyleCommand::Submit { body, .. } = &command;
                let stream =
                    StyleEvaluation::stream_id(body.quarter, &body.department, &actor.subject);
                let key = idempotency_key(options.seed, &actor, &stream, 1);
                let metadata = metadata(
                    options.seed,
                    &actor,
                    "style-evaluation",
                    summary.commands,
                    &stream,
                );
                let respond = |e: &StyleEvaluation, committed: &[CommittedEvent]| StoredResponse {
                    status: 201,
                    body: json!({"evaluation": stream, "revision": e.revision, "events": committed}),
                };
                let result = evaluations
                    .execute(
                        &stream,
                        &command,
                        &style_clock,
                        &metadata,
                        Some(Idempotent {
                            key: &key,
                            respond: &respond,
                        }),
                    )
                    .await;
                match result {
                    Ok(executed) => summary.events += executed.committed.len() as u64,
                    Err(ExecuteError::IdempotencyKeyTaken) => summary.replayed += 1,
                    Err(e) => {
                        return Err(refused::<StyleError>(e, "style-evaluation", &stream, at));
                    }
                }
                summary.style_evaluations += 1;
            }
            Action::Appeal(index, mut command, actor) => {
                let sim = &mut sims[index];
                let stream = sim.id.to_string();
                let key = idempotency_key(options.seed, &actor, &stream, sim.steps + 1);
                let mut replayed = false;
                if let AppealCommand::File {
                    tracking_number, ..
                } = &mut command
                {
                    // A resumed run: the filing is recorded; do not take another number.
                    if matches!(idempotency::lookup(pool, &key).await?, Replay::Same(_)) {
                        replayed = true;
                    } else {
                        let year = at.with_timezone(&TZ).year();
                        *tracking_number =
                            linkage_store::tracking::next_tracking_number(pool, year).await?;
                    }
                    summary.appeals += 1;
                    progress(summary.appeals, total);
                }
                let before = states[index].clone();
                let name = command.name();
                let metadata = metadata(options.seed, &actor, name, summary.commands, &stream);
                let appeal_id = sim.id;
                let respond = move |appeal: &Appeal, committed: &[CommittedEvent]| StoredResponse {
                    status: if name == "file" { 201 } else { 200 },
                    body: json!({
                        "appeal_id": appeal_id,
                        "tracking_number": appeal.tracking_number,
                        "status": appeal.status,
                        "events": committed,
                    }),
                };
                let result = if replayed {
                    Err(ExecuteError::IdempotencyKeyTaken)
                } else {
                    appeals
                        .execute(
                            &stream,
                            &command,
                            &services,
                            &metadata,
                            Some(Idempotent {
                                key: &key,
                                respond: &respond,
                            }),
                        )
                        .await
                };
                let after = match result {
                    Ok(executed) => {
                        summary.events += executed.committed.len() as u64;
                        executed.state
                    }
                    Err(ExecuteError::IdempotencyKeyTaken) => {
                        summary.replayed += 1;
                        state_after_replay(pool, &stream, &key).await?
                    }
                    Err(e) => return Err(refused::<AppealError>(e, name, &stream, at)),
                };
                sim.record(at, &command, &before, &mut summary.departments);
                if let AppealCommand::RecordAccountability(a) = &command
                    && a.kind == AccountabilityKind::EnterpriseHarassment
                {
                    summary.veto = Some(Veto {
                        department: a.department.as_str().to_owned(),
                        tracking_number: after
                            .tracking_number
                            .as_ref()
                            .map(|t| t.as_str().to_owned()),
                        at,
                    });
                }
                let rulebook = rules.current();
                if let Some((next_at, next, next_actor)) = sim.next(&after, &rulebook, until) {
                    queue.push(next_at, Action::Appeal(index, next, next_actor));
                }
                states[index] = after;
            }
        }
    }

    for (sim, state) in sims.iter().zip(&states) {
        if sim.steps == 0 {
            continue;
        }
        *summary
            .statuses
            .entry(state.status.as_str().to_owned())
            .or_default() += 1;
        summary.waiting_for_calendar += u64::from(sim.waiting_for_calendar);
        sim.counts(state, &mut summary.appeal_counts);
    }
    summary.elapsed_seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// The appeal as it stood right after the step a recorded idempotency key answered (a resumed
/// run continues from there, so it sends the same steps as the first run).
async fn state_after_replay(
    pool: &PgPool,
    stream: &str,
    key: &IdempotencyKey,
) -> Result<Appeal, DemoError> {
    let upto = match idempotency::lookup(pool, key).await? {
        Replay::Same(stored) => stored.body["events"]
            .as_array()
            .and_then(|events| events.last())
            .and_then(|e| e["sequence"].as_i64())
            .unwrap_or(0),
        _ => 0,
    };
    let rows: Vec<(i64, String, serde_json::Value)> = sqlx::query_as(
        "SELECT sequence, event_type, payload FROM events \
         WHERE aggregate_type = 'appeal' AND aggregate_id = $1 AND sequence <= $2 ORDER BY sequence",
    )
    .bind(stream)
    .bind(upto)
    .fetch_all(pool)
    .await
    .map_err(|e| StoreError::db(format!("loading stream {stream}"), e))?;
    let mut appeal = Appeal::default();
    for (sequence, event_type, payload) in rows {
        let event =
            decode_event::<Appeal>(&event_type, payload).map_err(|source| StoreError::Decode {
                aggregate_id: stream.to_owned(),
                sequence,
                source,
            })?;
        cqrs_es::Aggregate::apply(&mut appeal, event);
    }
    Ok(appeal)
}

fn refused<E: std::error::Error>(
    e: ExecuteError<E>,
    command: &str,
    stream: &str,
    at: DateTime<Utc>,
) -> DemoError {
    match e {
        ExecuteError::Store(e) => DemoError::Store(e),
        other => DemoError::Refused {
            command: command.to_owned(),
            stream: stream.to_owned(),
            at,
            reason: other.to_string(),
        },
    }
}

/// One key per appeal step (or evaluation), scoped to the actor as the command API scopes keys
/// to the token's subject: a rerun of the same seed replays instead of recording again.
fn idempotency_key(seed: u64, actor: &sim::Actor, stream: &str, step: u32) -> IdempotencyKey {
    let key = format!("demo-{seed}-{stream}-{step}");
    IdempotencyKey::new(
        &actor.subject,
        &key,
        &[b"demo-data", stream.as_bytes(), &step.to_be_bytes()],
    )
}

/// The metadata the command API records, with deterministic request and correlation ids.
fn metadata(
    seed: u64,
    actor: &sim::Actor,
    command: &str,
    n: u64,
    stream: &str,
) -> HashMap<String, String> {
    HashMap::from([
        ("actor".to_owned(), actor.subject.clone()),
        ("role".to_owned(), actor.role.to_owned()),
        (
            "department".to_owned(),
            actor.department.clone().unwrap_or_default(),
        ),
        ("request_id".to_owned(), format!("demo-{seed}-{n:08}")),
        ("correlation_id".to_owned(), format!("demo-{seed}-{stream}")),
        ("command".to_owned(), command.to_owned()),
    ])
}
