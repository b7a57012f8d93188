//! The relay against a real Postgres (a fresh database per test) and a real NATS (a stream per
//! test, under a random prefix, deleted at the end).

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use futures::StreamExt;
use linkage_bus::{Bus, BusConfig, Envelope};
use linkage_relay::{
    Lag, RelayConfig, RelayState, chain_step_envelope, lag, load_anchors, publish_pending,
    reconcile,
};
use linkage_store::hash::{HashedFields, event_hash};
use linkage_store::testing::TestDatabase;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Generous: the xmin horizon is server-wide, so other databases' transactions on the same
/// server can hold it back for a while.
const DEADLINE: Duration = Duration::from_secs(60);

async fn bus_with_window(duplicate_window: Duration) -> Bus {
    Bus::connect(BusConfig {
        url: std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
        prefix: format!("t{}", Uuid::new_v4().simple()),
        replicas: 1,
        duplicate_window,
    })
    .await
    .expect("connecting to NATS")
}

async fn bus() -> Bus {
    bus_with_window(Duration::from_secs(120)).await
}

fn config(instance: &str) -> RelayConfig {
    RelayConfig {
        batch_size: 100,
        poll_interval: Duration::from_millis(50),
        anchor_every_events: 7,
        anchor_every: Duration::from_secs(3600),
        lock_check_interval: Duration::from_millis(100),
        max_backoff: Duration::from_millis(500),
        instance: instance.into(),
        ..RelayConfig::default()
    }
}

/// Inserts one event the way the store does (with its per-stream hash); returns its hash.
async fn insert_event(
    conn: &mut PgConnection,
    aggregate_id: &str,
    sequence: i64,
    prev_hash: Option<&[u8]>,
) -> Vec<u8> {
    let event_id = Uuid::now_v7();
    let payload = json!({"n": sequence});
    let metadata = json!({"correlation_id": format!("c-{aggregate_id}-{sequence}")});
    let recorded_at = Utc::now().trunc_subsecs(6);
    let hash = event_hash(
        prev_hash,
        &HashedFields {
            event_id,
            aggregate_type: "appeal",
            aggregate_id,
            sequence,
            event_type: "AppealFiled",
            event_version: "1",
            payload: &payload,
            metadata: &metadata,
            recorded_at,
        },
    );
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata, event_id, recorded_at, prev_hash, hash) \
         VALUES ('appeal', $1, $2, 'AppealFiled', '1', $3, $4, $5, $6, $7, $8)",
    )
    .bind(aggregate_id)
    .bind(sequence)
    .bind(&payload)
    .bind(&metadata)
    .bind(event_id)
    .bind(recorded_at)
    .bind(prev_hash)
    .bind(&hash)
    .execute(conn)
    .await
    .unwrap();
    hash
}

/// Appends `count` events to one stream, one transaction each.
async fn append_stream(pool: &PgPool, aggregate_id: &str, count: i64) {
    let mut conn = pool.acquire().await.unwrap();
    let mut prev: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT hash FROM events WHERE aggregate_type = 'appeal' AND aggregate_id = $1 \
         ORDER BY sequence DESC LIMIT 1",
    )
    .bind(aggregate_id)
    .fetch_optional(&mut *conn)
    .await
    .unwrap();
    let start: i64 = sqlx::query_scalar(
        "SELECT COALESCE(max(sequence), 0) FROM events \
         WHERE aggregate_type = 'appeal' AND aggregate_id = $1",
    )
    .bind(aggregate_id)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    for sequence in start + 1..=start + count {
        prev = Some(insert_event(&mut conn, aggregate_id, sequence, prev.as_deref()).await);
    }
}

/// Event ids in publication order, `(tx_id, global_position)`.
async fn ids_in_commit_order(pool: &PgPool) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT event_id FROM events ORDER BY tx_id, global_position")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn replay(bus: &Bus) -> Vec<Envelope> {
    bus.replay()
        .await
        .unwrap()
        .map(|d| d.unwrap().envelope)
        .collect()
        .await
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Steps the relay until `count` events in all were published.
async fn publish_until(pool: &PgPool, bus: &Bus, state: &mut RelayState, count: i64) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while state.published_count < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out publishing"
        );
        if publish_pending(pool, bus, &config("step"), state)
            .await
            .unwrap()
            == 0
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), linkage_relay::RelayError>>,
}

fn start_relay(pool: &PgPool, bus: &Bus, config: RelayConfig) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(linkage_relay::run(
        pool.clone(),
        bus.clone(),
        config,
        async move {
            let _ = stopped.await;
        },
    ));
    Running { stop, task }
}

impl Running {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// The `application_name` of the session holding the relay lock, if any.
async fn lock_holder(pool: &PgPool) -> Option<String> {
    sqlx::query_scalar(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_optional(pool)
    .await
    .unwrap()
}

async fn caught_up(pool: &PgPool) -> bool {
    lag(pool).await.unwrap().events == 0
}

/// Recomputes the global chain from the stream; checks every anchor and the checkpoint
/// against it.
async fn verify_chain(pool: &PgPool, published: &[Envelope]) {
    let mut chain: Vec<Vec<u8>> = Vec::new();
    for e in published {
        let next = chain_step_envelope(chain.last().map(Vec::as_slice), e).unwrap();
        chain.push(next);
    }
    let state = RelayState::load(pool).await.unwrap();
    assert_eq!(state.published_count, published.len() as i64);
    assert_eq!(state.chain_hash.as_ref(), chain.last());
    let anchors = load_anchors(pool).await.unwrap();
    assert!(!anchors.is_empty());
    let mut covered = 0;
    for a in &anchors {
        let first = &published[covered as usize];
        assert_eq!(
            (a.from_tx_id, a.from_position),
            (first.tx_id, first.global_position)
        );
        assert_eq!(a.chain_length, covered + a.event_count);
        let last = &published[a.chain_length as usize - 1];
        assert_eq!(
            (a.to_tx_id, a.to_position),
            (last.tx_id, last.global_position)
        );
        assert_eq!(a.chain_hash, chain[a.chain_length as usize - 1]);
        let prev = (covered > 0).then(|| chain[covered as usize - 1].clone());
        assert_eq!(a.prev_chain_hash, prev);
        covered = a.chain_length;
    }
}

#[tokio::test]
async fn the_gap_rule_waits_for_a_late_commit_and_never_publishes_a_rollback() {
    let db = TestDatabase::new().await.unwrap();
    let pool = &db.pool;
    let bus = bus().await;
    let mut state = RelayState::load(pool).await.unwrap();

    // T1 writes first (lower tx id and position) but commits last.
    let mut t1 = pool.begin().await.unwrap();
    insert_event(&mut t1, "a1", 1, None).await;
    let mut t2 = pool.begin().await.unwrap();
    insert_event(&mut t2, "a2", 1, None).await;
    t2.commit().await.unwrap();

    // T2 is committed, but T1 is still running below it: nothing may be published yet, or T1's
    // event would be skipped.
    assert_eq!(
        publish_pending(pool, &bus, &config("step"), &mut state)
            .await
            .unwrap(),
        0
    );
    let mut t3 = pool.begin().await.unwrap();
    insert_event(&mut t3, "a3", 1, None).await;
    t3.rollback().await.unwrap();
    assert_eq!(
        publish_pending(pool, &bus, &config("step"), &mut state)
            .await
            .unwrap(),
        0
    );
    assert_eq!(bus.last_sequence().await.unwrap(), 0);

    t1.commit().await.unwrap();
    publish_until(pool, &bus, &mut state, 2).await;
    // Nothing more: the rolled-back event is not there to publish.
    assert_eq!(
        publish_pending(pool, &bus, &config("step"), &mut state)
            .await
            .unwrap(),
        0
    );

    let published = replay(&bus).await;
    assert_eq!(
        published
            .iter()
            .map(|e| e.aggregate_id.as_str())
            .collect::<Vec<_>>(),
        vec!["a1", "a2"]
    );
    assert!(
        (published[0].tx_id, published[0].global_position)
            < (published[1].tx_id, published[1].global_position)
    );
    assert_eq!(
        published.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        ids_in_commit_order(pool).await
    );
    bus.delete_stream().await.unwrap();
}

#[tokio::test]
async fn publication_follows_transaction_order_not_position_order() {
    let db = TestDatabase::new().await.unwrap();
    let pool = &db.pool;
    let bus = bus().await;
    let mut state = RelayState::load(pool).await.unwrap();

    // T1 takes its transaction id first, but inserts after T2: T1's event has the higher
    // position and the lower tx id.
    let mut t1 = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *t1)
        .await
        .unwrap();
    let mut t2 = pool.begin().await.unwrap();
    insert_event(&mut t2, "second-tx", 1, None).await;
    t2.commit().await.unwrap();
    insert_event(&mut t1, "first-tx", 1, None).await;
    assert_eq!(
        publish_pending(pool, &bus, &config("step"), &mut state)
            .await
            .unwrap(),
        0
    );
    t1.commit().await.unwrap();
    publish_until(pool, &bus, &mut state, 2).await;

    let published = replay(&bus).await;
    assert_eq!(
        published
            .iter()
            .map(|e| e.aggregate_id.as_str())
            .collect::<Vec<_>>(),
        vec!["first-tx", "second-tx"]
    );
    assert!(published[0].global_position > published[1].global_position);
    assert!(published[0].tx_id < published[1].tx_id);
    bus.delete_stream().await.unwrap();
}

#[tokio::test]
async fn a_subscriber_sees_a_burst_of_concurrent_appends_once_each_in_order() {
    let db = TestDatabase::new().await.unwrap();
    let pool = db.pool.clone();
    let bus = bus().await;
    let mut subscriber = bus.consumer("independent").await.unwrap();
    let relay = start_relay(&pool, &bus, config("relay"));

    let writers: Vec<_> = (0..4)
        .map(|w| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for round in 0..10 {
                    // Several streams per writer, and some transactions with several events.
                    let aggregate_id = format!("w{w}-{}", round % 3);
                    append_stream(&pool, &aggregate_id, 1).await;
                    let mut tx = pool.begin().await.unwrap();
                    let id = format!("w{w}-multi-{round}");
                    let h = insert_event(&mut tx, &id, 1, None).await;
                    insert_event(&mut tx, &id, 2, Some(&h)).await;
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let total = 4 * 10 * 3;

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while seen.len() < total {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscriber saw {} of {total} events",
            seen.len()
        );
        let batch = subscriber
            .fetch(100, Duration::from_millis(500))
            .await
            .unwrap();
        if let Some(last) = batch.last() {
            subscriber.ack_through(last).await.unwrap();
        }
        seen.extend(batch.into_iter().map(|d| d.envelope));
    }
    // Nothing more arrives.
    assert!(
        subscriber
            .fetch(100, Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    relay.shutdown().await;

    let ids: Vec<Uuid> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), total, "once each");
    assert_eq!(ids, ids_in_commit_order(&pool).await, "in commit order");
    assert!(
        seen.windows(2)
            .all(|w| (w[0].tx_id, w[0].global_position) < (w[1].tx_id, w[1].global_position))
    );
    bus.delete_stream().await.unwrap();
}

#[tokio::test]
async fn a_restarted_relay_continues_without_duplicates_gaps_or_a_broken_chain() {
    let db = TestDatabase::new().await.unwrap();
    let pool = db.pool.clone();
    let bus = bus().await;

    let relay = start_relay(&pool, &bus, config("first"));
    for s in 0..4 {
        append_stream(&pool, &format!("s{s}"), 5).await;
    }
    eventually("the first run to publish", || caught_up(&pool)).await;
    relay.shutdown().await;

    for s in 2..6 {
        append_stream(&pool, &format!("s{s}"), 4).await;
    }
    assert_eq!(lag(&pool).await.unwrap().events, 16);
    let relay = start_relay(&pool, &bus, config("second"));
    eventually("the second run to publish", || caught_up(&pool)).await;
    relay.shutdown().await;

    let published = replay(&bus).await;
    assert_eq!(published.len(), 36);
    assert_eq!(
        published.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        ids_in_commit_order(&pool).await
    );
    verify_chain(&pool, &published).await;
    bus.delete_stream().await.unwrap();
}

#[tokio::test]
async fn a_crash_between_acks_and_checkpoint_republishes_nothing_even_after_the_window() {
    let db = TestDatabase::new().await.unwrap();
    let pool = &db.pool;
    // A short duplicate window: JetStream alone would take the republished events again.
    let bus = bus_with_window(Duration::from_secs(1)).await;
    append_stream(pool, "a", 10).await;
    let mut state = RelayState::load(pool).await.unwrap();
    publish_until(pool, &bus, &mut state, 10).await;

    // The checkpoint write is lost: as if the relay died right after the acks.
    sqlx::query(
        "UPDATE relay_checkpoint SET tx_id = '0'::xid8, global_position = 0, chain_hash = NULL, \
                                     published_count = 0",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM relay_anchors")
        .execute(pool)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    append_stream(pool, "a", 3).await;

    let mut state = RelayState::load(pool).await.unwrap();
    assert_eq!(state.published_count, 0);
    let reconciled = reconcile(pool, &bus, &config("step"), &mut state)
        .await
        .unwrap();
    assert_eq!(reconciled.skipped, 10);
    assert_eq!(reconciled.republished, 0);
    publish_until(pool, &bus, &mut state, 13).await;

    let published = replay(&bus).await;
    assert_eq!(published.len(), 13);
    assert_eq!(
        published.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        ids_in_commit_order(pool).await
    );
    verify_chain(pool, &published).await;
    bus.delete_stream().await.unwrap();
}

#[tokio::test]
async fn two_relays_take_turns_and_publish_every_event_once() {
    let db = TestDatabase::new().await.unwrap();
    let pool = db.pool.clone();
    let bus = bus().await;

    let a = start_relay(&pool, &bus, config("relay-a"));
    eventually("relay-a to hold the lock", || async {
        lock_holder(&pool).await.as_deref() == Some("relay-a lock")
    })
    .await;
    let b = start_relay(&pool, &bus, config("relay-b"));
    append_stream(&pool, "x", 10).await;
    eventually("relay-a to publish", || caught_up(&pool)).await;
    assert_eq!(
        lock_holder(&pool).await.as_deref(),
        Some("relay-a lock"),
        "relay-b waits while relay-a is active"
    );

    a.shutdown().await;
    eventually("relay-b to take over", || async {
        lock_holder(&pool).await.as_deref() == Some("relay-b lock")
    })
    .await;
    append_stream(&pool, "y", 10).await;
    eventually("relay-b to publish", || caught_up(&pool)).await;
    b.shutdown().await;
    assert_eq!(lock_holder(&pool).await, None);

    let published = replay(&bus).await;
    assert_eq!(published.len(), 20);
    assert_eq!(
        published.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        ids_in_commit_order(&pool).await
    );
    verify_chain(&pool, &published).await;
    bus.delete_stream().await.unwrap();
}

#[tokio::test]
async fn a_relay_whose_lock_connection_dies_stops_and_another_takes_over() {
    let db = TestDatabase::new().await.unwrap();
    let pool = db.pool.clone();
    let bus = bus().await;

    let a = start_relay(&pool, &bus, config("relay-a"));
    eventually("relay-a to hold the lock", || async {
        lock_holder(&pool).await.as_deref() == Some("relay-a lock")
    })
    .await;
    let b = start_relay(&pool, &bus, config("relay-b"));
    append_stream(&pool, "x", 5).await;
    eventually("relay-a to publish", || caught_up(&pool)).await;

    // Kill relay-a's lock session: relay-a must stop, and one of the two becomes active again.
    let killed: bool = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'relay-a lock' AND datname = current_database()",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(killed);
    eventually("a relay to hold the lock again", || async {
        lock_holder(&pool).await.is_some()
    })
    .await;
    // relay-a noticed: it opened a new lock connection to wait (or to lead again).
    eventually("relay-a to go back to the lock", || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
                            WHERE application_name = 'relay-a lock' \
                              AND datname = current_database())",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    })
    .await;
    append_stream(&pool, "y", 5).await;
    eventually("the new active relay to publish", || caught_up(&pool)).await;
    assert!(
        !a.task.is_finished() && !b.task.is_finished(),
        "both keep running"
    );
    a.shutdown().await;
    b.shutdown().await;

    let published = replay(&bus).await;
    assert_eq!(published.len(), 10);
    assert_eq!(
        published.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        ids_in_commit_order(&pool).await
    );
    bus.delete_stream().await.unwrap();
}

#[tokio::test]
async fn lag_counts_what_is_not_yet_published() {
    let db = TestDatabase::new().await.unwrap();
    let pool = &db.pool;
    let bus = bus().await;
    assert_eq!(
        lag(pool).await.unwrap(),
        Lag {
            events: 0,
            seconds: 0.0,
            oldest_unpublished_at: None
        }
    );
    append_stream(pool, "a", 7).await;
    append_stream(pool, "b", 5).await;
    let behind = lag(pool).await.unwrap();
    assert_eq!(behind.events, 12);
    assert!(behind.seconds >= 0.0);
    assert!(behind.oldest_unpublished_at.is_some());

    let mut state = RelayState::load(pool).await.unwrap();
    publish_until(pool, &bus, &mut state, 12).await;
    let after = lag(pool).await.unwrap();
    assert_eq!(after.events, 0);
    assert_eq!(after.seconds, 0.0);
    assert_eq!(after.oldest_unpublished_at, None);
    bus.delete_stream().await.unwrap();
}

#[tokio::test]
async fn a_relay_with_a_stale_checkpoint_cannot_move_it() {
    let db = TestDatabase::new().await.unwrap();
    let pool = &db.pool;
    let bus = bus().await;
    append_stream(pool, "a", 3).await;
    let mut active = RelayState::load(pool).await.unwrap();
    let mut stale = active.clone();
    publish_until(pool, &bus, &mut active, 3).await;

    let result = publish_pending(pool, &bus, &config("stale"), &mut stale).await;
    assert!(
        matches!(result, Err(linkage_relay::RelayError::CheckpointMoved)),
        "{result:?}"
    );
    assert_eq!(stale.published_count, 0, "the stale state is unchanged");
    let stored = RelayState::load(pool).await.unwrap();
    assert_eq!(stored.published_count, 3);
    assert_eq!(stored.chain_hash, active.chain_hash);
    // JetStream dropped the stale relay's republished events.
    assert_eq!(bus.last_sequence().await.unwrap(), 3);
    bus.delete_stream().await.unwrap();
}

/// The server loses acknowledged messages (as nats-server does when it crashes before its
/// lazy fsync): here the stream is recreated holding only the first 6 of 10 published events.
/// The running relay's next publish must not land after the gap: it is refused, the relay
/// reconciles, publishes the 4 lost events again, then the new ones, all in commit order.
#[tokio::test]
async fn a_stream_that_lost_acknowledged_events_gets_them_again_before_new_ones() {
    let db = TestDatabase::new().await.unwrap();
    let pool = &db.pool;
    let bus = bus().await;
    append_stream(pool, "a", 6).await;
    append_stream(pool, "b", 4).await;
    let relay = start_relay(pool, &bus, config("lossy"));
    eventually("the relay to publish 10 events", || async {
        caught_up(pool).await && replay(&bus).await.len() == 10
    })
    .await;

    let kept: Vec<Envelope> = replay(&bus).await.into_iter().take(6).collect();
    bus.delete_stream().await.unwrap();
    let server = Bus::connect(bus.config().clone()).await.unwrap();
    server.publish(&kept).await.unwrap();

    append_stream(pool, "a", 3).await;
    eventually(
        "the relay to republish the lost events and publish the new ones",
        || async { caught_up(pool).await && replay(&bus).await.len() >= 13 },
    )
    .await;
    relay.shutdown().await;

    let published = replay(&bus).await;
    let ids: Vec<Uuid> = published.iter().map(|e| e.event_id).collect();
    assert_eq!(
        ids,
        ids_in_commit_order(pool).await,
        "every event once, in commit order"
    );
    // The republished events were in the chain already: it covers each event once.
    verify_chain(pool, &published).await;
    bus.delete_stream().await.unwrap();
}

/// A stream that holds nothing while the checkpoint says events were published (deleted and
/// created again, or a server that lost it all) gets the whole history again when a relay
/// becomes active.
#[tokio::test]
async fn an_emptied_stream_gets_the_whole_history_again() {
    let db = TestDatabase::new().await.unwrap();
    let pool = &db.pool;
    let bus = bus().await;
    append_stream(pool, "a", 5).await;
    let mut state = RelayState::load(pool).await.unwrap();
    publish_until(pool, &bus, &mut state, 5).await;
    bus.delete_stream().await.unwrap();
    let bus = Bus::connect(bus.config().clone()).await.unwrap();

    let mut state = RelayState::load(pool).await.unwrap();
    let reconciled = reconcile(pool, &bus, &config("step"), &mut state)
        .await
        .unwrap();
    assert_eq!(reconciled.republished, 5);
    assert_eq!(reconciled.skipped, 0);
    assert_eq!(state.published_count, 5, "the checkpoint does not move");
    append_stream(pool, "a", 2).await;
    publish_until(pool, &bus, &mut state, 7).await;

    let published = replay(&bus).await;
    let ids: Vec<Uuid> = published.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, ids_in_commit_order(pool).await);
    verify_chain(pool, &published).await;
    bus.delete_stream().await.unwrap();
}

/// A backlog of several full batches: each batch is published while the next one is read
/// (the read ahead); the stream and the chain are as if read one after the other.
#[tokio::test]
async fn a_backlog_of_full_batches_is_published_once_in_order() {
    let db = TestDatabase::new().await.unwrap();
    let pool = &db.pool;
    let bus = bus().await;
    for stream in ["a", "b", "c"] {
        append_stream(pool, stream, 117).await;
    }
    let relay = start_relay(pool, &bus, config("backlog"));
    eventually("the relay to publish the backlog", || async {
        caught_up(pool).await
    })
    .await;
    append_stream(pool, "d", 5).await;
    eventually("the relay to publish the rest", || async {
        caught_up(pool).await
    })
    .await;
    relay.shutdown().await;

    let published = replay(&bus).await;
    assert_eq!(published.len(), 3 * 117 + 5);
    let ids: Vec<Uuid> = published.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, ids_in_commit_order(pool).await);
    verify_chain(pool, &published).await;
    bus.delete_stream().await.unwrap();
}
