//! The projector against real Postgres (a fresh database per test) and NATS JetStream (a stream of
//! its own per test): events appended through the event store, published as the relay would,
//! projected by the runner; redelivery changes nothing; a rebuild equals the live projection.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use linkage_bus::{Bus, BusConfig, Envelope};
use linkage_domain::appeal::{Appeal, AppealEvent, ReturnVisitResult};
use linkage_domain::values::{
    AccountabilityKind, Category, Channel, ContactMethod, DeadlineKind, ResolutionOutcome,
    Satisfaction,
};
use linkage_projector::testing::{assigned, deadlines, dept, filed, v};
use linkage_projector::{
    Ledger, Position, Projection, ProjectionError, RunnerConfig, apply_batch, read_events,
    rebuild_with, status,
};
use linkage_store::PgEventStore;
use linkage_store::testing::TestDatabase;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

async fn bus() -> Bus {
    Bus::connect(BusConfig {
        url: std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
        prefix: format!("t{}", Uuid::new_v4().simple()),
        replicas: 1,
        duplicate_window: Duration::from_secs(60),
    })
    .await
    .expect("connecting to NATS")
}

fn t0() -> DateTime<Utc> {
    "2026-03-02T01:00:00Z".parse().unwrap()
}

fn at(hours: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::hours(hours)
}

/// Appends events through the real event store (hash chain, tx ids, global positions).
struct Writer {
    store: PgEventStore<Appeal>,
    serial: u64,
}

impl Writer {
    fn new(pool: &PgPool) -> Self {
        Self {
            store: PgEventStore::new(pool.clone()),
            serial: 0,
        }
    }

    async fn append(&self, id: Uuid, events: &[AppealEvent]) {
        let loaded = self.store.load(&id.to_string()).await.unwrap();
        let metadata = HashMap::from([
            ("actor".to_owned(), "tester".to_owned()),
            ("role".to_owned(), "dispatcher".to_owned()),
            ("department".to_owned(), String::new()),
        ]);
        self.store
            .append(&loaded, events, &metadata, None)
            .await
            .unwrap();
    }

    /// A new appeal, filed and assigned.
    async fn new_appeal(&mut self, i: i64) -> Uuid {
        self.serial += 1;
        let id = Uuid::now_v7();
        let channel = Channel::ALL[i as usize % Channel::ALL.len()];
        let category = Category::ALL[i as usize % Category::ALL.len()];
        self.append(
            id,
            &[filed(id, self.serial, channel, category, "城关镇", at(i))],
        )
        .await;
        self.append(id, &[assigned("market", &["tax"], at(i + 1))])
            .await;
        id
    }

    /// Takes `id` through one of several lifecycles (each one transaction per command).
    async fn lifecycle(&self, id: Uuid, kind: i64) {
        let contact = AppealEvent::ContactRecorded {
            department: dept("market"),
            method: ContactMethod::Phone,
            note: None,
            at: at(30),
        };
        let resolved = AppealEvent::AppealResolved {
            department: dept("market"),
            outcome: ResolutionOutcome::Resolved,
            text: v("已处理"),
            at: at(40),
        };
        match kind % 4 {
            0 => {
                for e in [
                    contact,
                    resolved,
                    AppealEvent::ReturnVisitRecorded {
                        result: ReturnVisitResult::Reached {
                            solved: true,
                            satisfaction: Satisfaction::Satisfied,
                        },
                        comment: None,
                        at: at(50),
                    },
                    AppealEvent::AppealClosed {
                        note: None,
                        at: at(60),
                    },
                ] {
                    self.append(id, &[e]).await;
                }
            }
            1 => {
                self.append(
                    id,
                    &[AppealEvent::AppealDeclined {
                        department: dept("market"),
                        reason: v("非本部门职责"),
                        at: at(30),
                    }],
                )
                .await;
                self.append(id, &[assigned("housing", &[], at(31))]).await;
            }
            2 => {
                self.append(
                    id,
                    &[AppealEvent::AppealTransferred {
                        from: dept("market"),
                        lead: dept("housing"),
                        co_handlers: vec![dept("tax")],
                        reason: v("转办"),
                        deadlines: deadlines(at(30)),
                        calendar: "test".into(),
                        policy: Default::default(),
                        at: at(30),
                    }],
                )
                .await;
                self.append(
                    id,
                    &[
                        AppealEvent::DeadlineMissed {
                            which: DeadlineKind::Contact,
                            due: at(32),
                            at: at(33),
                        },
                        AppealEvent::AccountabilityRecorded {
                            department: dept("market"),
                            kind: AccountabilityKind::Delay,
                            note: v("推诿"),
                            at: at(34),
                        },
                    ],
                )
                .await;
            }
            _ => {
                for e in [
                    contact,
                    resolved,
                    AppealEvent::ReturnedForRework {
                        reason: v("敷衍"),
                        working_days: 5,
                        resolution_due: at(200),
                        calendar: "test".into(),
                        at: at(45),
                    },
                ] {
                    self.append(id, &[e]).await;
                }
            }
        }
    }
}

/// Waits until every event in the store is below the transaction horizon, which tests running
/// beside this one (on the same server) may hold back for a moment.
async fn settle(pool: &PgPool) {
    for _ in 0..1200 {
        let settled: bool = sqlx::query_scalar(
            "SELECT coalesce(max(tx_id) < pg_snapshot_xmin(pg_current_snapshot()), true) FROM events",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if settled {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the transaction horizon never passed this test's events");
}

/// Every event of the store, as the relay would publish them.
async fn all_events(pool: &PgPool) -> Vec<Envelope> {
    settle(pool).await;
    read_events(pool, None, 1_000_000).await.unwrap()
}

/// The events after `after`, once all are below the horizon.
async fn events_after(pool: &PgPool, after: Position) -> Vec<Envelope> {
    let all = all_events(pool).await;
    all.into_iter()
        .filter(|e| Position::of(e) > after)
        .collect()
}

async fn checkpoint(pool: &PgPool) -> (Option<Position>, Option<i64>) {
    let s = status(pool).await.unwrap();
    // No row until the runner has created it.
    s.iter()
        .find(|s| s.name == "ledger")
        .map_or((None, None), |l| (l.position, l.stream_sequence))
}

/// Waits until the ledger's checkpoint reaches `target` (a liveness wait, not a timing check).
async fn wait_for(pool: &PgPool, target: Position) {
    for _ in 0..1200 {
        if checkpoint(pool).await.0 >= Some(target) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the ledger never reached {target}");
}

/// Both ledger tables, row for row, as JSON.
async fn snapshot(pool: &PgPool) -> (Value, Value) {
    let ledger: sqlx::types::Json<Value> = sqlx::query_scalar(
        "SELECT coalesce(jsonb_agg(to_jsonb(l) ORDER BY appeal_id), '[]') FROM ledger l",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let timeline: sqlx::types::Json<Value> = sqlx::query_scalar(
        "SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY appeal_id, sequence), '[]') \
         FROM ledger_timeline t",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    (ledger.0, timeline.0)
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

fn start(pool: &PgPool, bus: &Bus) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let config = RunnerConfig {
        batch_size: 50,
        fetch_wait: Duration::from_millis(100),
        ..RunnerConfig::default()
    };
    let task = tokio::spawn(linkage_projector::run(
        pool.clone(),
        bus.clone(),
        vec![Arc::new(Ledger)],
        config,
        async move {
            let _ = stopped.await;
        },
    ));
    Running {
        stop,
        task: tokio::spawn(async move { task.await.unwrap().unwrap() }),
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

#[tokio::test]
async fn live_projection_redelivery_and_rebuild_agree() {
    let db = TestDatabase::new().await.unwrap();
    let pool = &db.pool;
    let bus = bus().await;
    let mut writer = Writer::new(pool);
    let mut ids = Vec::new();
    for i in 0..24 {
        ids.push(writer.new_appeal(i).await);
    }
    for (i, id) in ids.iter().enumerate() {
        writer.lifecycle(*id, i as i64).await;
    }
    let events = all_events(pool).await;
    let sequences = bus.publish(&events).await.unwrap();
    let last = Position::of(events.last().unwrap());

    // Live: the runner catches up with everything published.
    let runner = start(pool, &bus);
    wait_for(pool, last).await;
    let (position, stream_sequence) = checkpoint(pool).await;
    assert_eq!(position, Some(last));
    assert_eq!(stream_sequence, sequences.last().map(|s| *s as i64));
    let live = snapshot(pool).await;
    assert_eq!(live.0.as_array().unwrap().len(), 24);
    assert_eq!(live.1.as_array().unwrap().len(), events.len());
    let statuses: Vec<&str> = live.0.as_array().unwrap()[..4]
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert!(statuses.iter().all(|s| !s.is_empty()));
    runner.stop().await;

    // Redelivery: the consumer is gone, so a new one gets the whole stream again; the checkpoint
    // drops all of it. A new appeal published after it shows the runner went through it.
    bus.delete_consumer("projection-ledger").await.unwrap();
    let later = Uuid::now_v7();
    writer.serial += 1;
    writer
        .append(
            later,
            &[filed(
                later,
                writer.serial,
                Channel::Online,
                Category::Other,
                "开发区",
                at(100),
            )],
        )
        .await;
    let fresh: Vec<Envelope> = events_after(pool, last).await;
    assert_eq!(fresh.len(), 1);
    bus.publish(&fresh).await.unwrap();
    // The same events again, as after a relay crash: JetStream drops them by event id.
    bus.publish(&events[..10]).await.unwrap();
    let runner = start(pool, &bus);
    let newest = Position::of(&fresh[0]);
    wait_for(pool, newest).await;
    runner.stop().await;
    let after = snapshot(pool).await;
    let old_rows: Vec<&Value> = after
        .0
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["appeal_id"] != later.to_string())
        .collect();
    assert_eq!(
        old_rows,
        live.0.as_array().unwrap().iter().collect::<Vec<_>>()
    );
    assert_eq!(after.1.as_array().unwrap().len(), events.len() + 1);

    // Rebuild from the store equals the live projection, row for row (all_events: wait until
    // the rebuild's horizon will cover every event).
    assert_eq!(all_events(pool).await.len(), events.len() + 1);
    let done = AtomicU64::new(0);
    let summary = rebuild_with(pool, &Ledger, 7, |d, total| {
        assert!(d <= total);
        done.store(d, Ordering::SeqCst);
    })
    .await
    .unwrap();
    assert_eq!(summary.events, events.len() as u64 + 1);
    assert_eq!(done.load(Ordering::SeqCst), summary.events);
    assert_eq!(summary.position, Some(newest));
    assert_eq!(snapshot(pool).await, after);
    let (position, stream_sequence) = checkpoint(pool).await;
    assert_eq!(position, Some(newest));
    assert_eq!(stream_sequence, None);

    // The live runner goes on from the rebuilt checkpoint.
    writer
        .append(later, &[assigned("housing", &[], at(101))])
        .await;
    let next = events_after(pool, newest).await;
    bus.publish(&next).await.unwrap();
    let runner = start(pool, &bus);
    wait_for(pool, Position::of(&next[0])).await;
    runner.stop().await;
    let end = snapshot(pool).await;
    assert_eq!(end.1.as_array().unwrap().len(), events.len() + 2);
    let row = end
        .0
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["appeal_id"] == later.to_string())
        .unwrap();
    assert_eq!(row["status"], "assigned");
    assert_eq!(row["lead_department"], "housing");

    bus.delete_stream().await.unwrap();
}

#[tokio::test]
async fn batches_are_checked_against_the_event_store() {
    let db = TestDatabase::new().await.unwrap();
    let pool = &db.pool;
    linkage_projector::ensure_schema(pool, &linkage_projector::all_projections())
        .await
        .unwrap();
    let mut writer = Writer::new(pool);
    for i in 0..3 {
        let id = writer.new_appeal(i).await;
        writer.lifecycle(id, 0).await;
    }
    let events = all_events(pool).await;
    let batch = |range: std::ops::Range<usize>| -> Vec<(u64, &Envelope)> {
        events[range]
            .iter()
            .enumerate()
            .map(|(i, e)| (i as u64 + 1, e))
            .collect()
    };

    // A batch that leaves out an event is refused whole.
    let mut holey = batch(0..6);
    holey.remove(3);
    let e = apply_batch(pool, &Ledger, &holey, true).await.unwrap_err();
    assert!(matches!(e, ProjectionError::Inconsistent { .. }), "{e}");
    assert_eq!(checkpoint(pool).await.0, None);
    // So is one that starts after the checkpoint with a gap.
    let e = apply_batch(pool, &Ledger, &batch(2..6), true)
        .await
        .unwrap_err();
    assert!(matches!(e, ProjectionError::Inconsistent { .. }), "{e}");

    let outcome = apply_batch(pool, &Ledger, &batch(0..6), true)
        .await
        .unwrap();
    assert_eq!((outcome.applied, outcome.dropped), (6, 0));
    let once = snapshot(pool).await;
    // Redelivered, whole or overlapping: only what is new is applied.
    let outcome = apply_batch(pool, &Ledger, &batch(0..6), true)
        .await
        .unwrap();
    assert_eq!((outcome.applied, outcome.dropped), (0, 6));
    assert_eq!(snapshot(pool).await, once);
    let outcome = apply_batch(pool, &Ledger, &batch(4..events.len()), true)
        .await
        .unwrap();
    assert_eq!((outcome.applied, outcome.dropped), (events.len() - 6, 2));
    assert_eq!(
        checkpoint(pool).await.0,
        Some(Position::of(events.last().unwrap()))
    );

    // A rebuild gives the same tables, stream by stream (the ledger's order) or in global order.
    let live = snapshot(pool).await;
    settle(pool).await;
    linkage_projector::rebuild(pool, &Ledger, |_, _| {})
        .await
        .unwrap();
    assert_eq!(snapshot(pool).await, live);
    let summary = rebuild_with(pool, &GlobalLedger, 4, |_, _| {})
        .await
        .unwrap();
    assert_eq!(summary.position, Some(Position::of(events.last().unwrap())));
    assert_eq!(snapshot(pool).await, live);

    // While a rebuild runs (or after one failed) the live path waits.
    sqlx::query("UPDATE projection_checkpoints SET rebuilding_since = now() WHERE name = 'ledger'")
        .execute(pool)
        .await
        .unwrap();
    let e = apply_batch(pool, &Ledger, &batch(0..2), true)
        .await
        .unwrap_err();
    assert!(matches!(e, ProjectionError::Rebuilding { .. }), "{e}");
    assert!(e.is_transient());
    let ledger_status = |s: Vec<linkage_projector::rebuild::ProjectionStatus>| {
        s.into_iter()
            .find(|p| p.name == "ledger")
            .expect("the ledger's status")
    };
    assert!(
        ledger_status(status(pool).await.unwrap())
            .rebuilding_since
            .is_some()
    );
    linkage_projector::rebuild(pool, &Ledger, |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        ledger_status(status(pool).await.unwrap()).rebuilding_since,
        None
    );
    assert_eq!(snapshot(pool).await, live);
}

/// The ledger, rebuilt in global order (as any projection may be).
#[derive(Debug)]
struct GlobalLedger;

#[async_trait::async_trait]
impl Projection for GlobalLedger {
    fn name(&self) -> &'static str {
        Ledger.name()
    }
    fn schema(&self) -> &'static str {
        Ledger.schema()
    }
    fn tables(&self) -> &'static [&'static str] {
        Ledger.tables()
    }
    async fn apply(
        &self,
        tx: &mut sqlx::PgConnection,
        batch: &[Envelope],
    ) -> Result<(), ProjectionError> {
        Ledger.apply(tx, batch).await
    }
}

#[tokio::test]
async fn status_counts_events_behind_the_relay() {
    let db = TestDatabase::new().await.unwrap();
    let pool = &db.pool;
    linkage_projector::ensure_schema(pool, &linkage_projector::all_projections())
        .await
        .unwrap();
    let mut writer = Writer::new(pool);
    writer.new_appeal(0).await;
    writer.new_appeal(1).await;
    let events = all_events(pool).await;
    assert_eq!(events.len(), 4);
    // Every projection is listed; the ledger is the one this test moves.
    let ledger = |s: Vec<linkage_projector::rebuild::ProjectionStatus>| {
        s.into_iter()
            .find(|p| p.name == "ledger")
            .expect("the ledger's status")
    };
    let s = status(pool).await.unwrap();
    assert_eq!(s.len(), linkage_projector::all_projections().len());
    let l = ledger(s);
    assert_eq!((l.position, l.behind), (None, Some(0)));

    // Pretend the relay published the first three.
    let third = Position::of(&events[2]);
    sqlx::query("UPDATE relay_checkpoint SET tx_id = $1::bigint::text::xid8, global_position = $2")
        .bind(third.tx_id)
        .bind(third.global_position)
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(ledger(status(pool).await.unwrap()).behind, Some(3));
    let first: Vec<(u64, &Envelope)> = vec![(1, &events[0])];
    apply_batch(pool, &Ledger, &first, true).await.unwrap();
    let l = ledger(status(pool).await.unwrap());
    assert_eq!(l.behind, Some(2));
    assert_eq!(l.position, Some(Position::of(&events[0])));
    assert_eq!(l.stream_sequence, Some(1));
}

/// Fills the events table with `appeals` full lifecycles (7 events each) straight in SQL, in
/// blocks of `block` appeals whose events interleave (as days of real traffic would).
async fn synthetic_history(pool: &PgPool, appeals: i64, block: i64) {
    sqlx::query(
        r#"
        INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                            payload, metadata, event_id, recorded_at, prev_hash, hash)
        SELECT 'appeal', a.id::text, s.seq, s.type, '1', s.payload,
               '{"actor":"bench","role":"dispatcher","department":""}', gen_random_uuid(), s.at,
               CASE WHEN s.seq = 1 THEN NULL ELSE '\x00'::bytea END, '\x01'::bytea
        FROM (SELECT i, ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid AS id,
                     timestamptz '2026-03-02 01:00:00+00' + (i % 1000) * interval '1 minute' AS t
              FROM generate_series(1, $1::bigint) AS i) a
        CROSS JOIN LATERAL (VALUES
          (1, 'AppealFiled', a.t, jsonb_build_object(
              'appeal_id', a.id, 'tracking_number', 'LK-2026-' || lpad(a.i::text, 7, '0'),
              'channel', (ARRAY['110','12345','online','walk_in'])[1 + a.i % 4],
              'filer', jsonb_build_object('kind', 'citizen', 'name', '张三',
                                          'contact_person', NULL, 'phone', '13800138000'),
              'category', (ARRAY['other','approval_delay','arbitrary_fines'])[1 + a.i % 3],
              'town', (ARRAY['城关镇','开发区'])[1 + a.i % 2],
              'description', '门口道路被占用，影响企业运输', 'complained_unit', NULL, 'at', a.t)),
          (2, 'AppealAssigned', a.t + interval '1 hour', jsonb_build_object(
              'lead', (ARRAY['market','tax','housing'])[1 + a.i % 3], 'co_handlers', '["police"]'::jsonb,
              'deadlines', jsonb_build_object('contact_due', a.t + interval '3 hours',
                  'feedback_due', a.t + interval '1 day', 'resolution_due', a.t + interval '14 days'),
              'calendar', 'cn', 'at', a.t + interval '1 hour')),
          (3, 'ContactRecorded', a.t + interval '2 hours', jsonb_build_object(
              'department', 'market', 'method', 'phone', 'note', NULL, 'at', a.t + interval '2 hours')),
          (4, 'InitialFeedbackGiven', a.t + interval '3 hours', jsonb_build_object(
              'department', 'market', 'text', '已受理', 'at', a.t + interval '3 hours')),
          (5, 'AppealResolved', a.t + interval '3 days', jsonb_build_object(
              'department', 'market', 'outcome', 'resolved', 'text', '已处理', 'at', a.t + interval '3 days')),
          (6, 'ReturnVisitRecorded', a.t + interval '4 days', jsonb_build_object(
              'result', '{"outcome":"reached","solved":true,"satisfaction":"satisfied"}'::jsonb,
              'comment', NULL, 'at', a.t + interval '4 days')),
          (7, 'AppealClosed', a.t + interval '5 days', jsonb_build_object(
              'note', NULL, 'at', a.t + interval '5 days'))
        ) AS s(seq, type, at, payload)
        ORDER BY a.i / $2::bigint, s.seq, a.i
        "#,
    )
    .bind(appeals)
    .bind(block)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE events").execute(pool).await.unwrap();
}

/// `cargo test -p linkage-projector --release --test runner -- --ignored --nocapture`:
/// prints the rebuild rate (BENCH_APPEALS appeals × 7 events; BENCH_BLOCK appeals interleaved).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn rebuild_throughput() {
    let appeals: i64 = std::env::var("BENCH_APPEALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    let block: i64 = std::env::var("BENCH_BLOCK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let chunk: usize = std::env::var("BENCH_CHUNK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(linkage_projector::DEFAULT_CHUNK_SIZE);
    let db = TestDatabase::new().await.unwrap();
    synthetic_history(&db.pool, appeals, block).await;
    settle(&db.pool).await;
    let summary = rebuild_with(&db.pool, &Ledger, chunk, |_, _| {})
        .await
        .unwrap();
    let rate = summary.events as f64 / summary.elapsed.as_secs_f64();
    println!(
        "rebuild: {} events ({appeals} appeals, blocks of {block}, chunks of {chunk}) in {:.2?}: {rate:.0} events/s",
        summary.events, summary.elapsed
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, appeals);
}
