//! The audit tools against a real Postgres (a fresh database per test) and, where the relay's
//! anchors are needed, the real relay publishing to a real NATS (a stream per test, deleted at
//! the end). Tampering is done the way an insider with database access would: plain SQL.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use linkage_audit::{ExportFormat, ExportOptions, Finding, VerifyReport};
use linkage_bus::{Bus, BusConfig, Envelope};
use linkage_domain::appeal::{Appeal, AppealEvent, AppealStatus};
use linkage_domain::values::{Category, Channel, ContactMethod};
use linkage_projector::testing::{assigned, dept, filed};
use linkage_projector::{Ledger, Projection};
use linkage_relay::{RelayConfig, RelayState, publish_pending};
use linkage_store::PgEventStore;
use linkage_store::hash::{HashedFields, event_hash};
use linkage_store::testing::TestDatabase;
use serde_json::Value;
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// Generous: the xmin horizon is server-wide, so other databases' transactions on the same
/// server can hold the relay back for a while.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(60);

async fn append(pool: &PgPool, appeal_id: Uuid, events: &[AppealEvent]) {
    let store = PgEventStore::<Appeal>::new(pool.clone());
    let loaded = store.load(&appeal_id.to_string()).await.unwrap();
    let metadata = HashMap::from([
        ("actor".to_owned(), "tester".to_owned()),
        ("role".to_owned(), "dispatcher".to_owned()),
    ]);
    store
        .append(&loaded, events, &metadata, None)
        .await
        .unwrap();
}

fn contact(at: DateTime<Utc>) -> AppealEvent {
    AppealEvent::ContactRecorded {
        department: dept("market-supervision"),
        method: ContactMethod::Phone,
        note: None,
        at,
    }
}

/// `n` appeals, each filed, assigned and contacted, one transaction per event, round-robin so
/// streams interleave in the global order. Returns the appeal ids in filing order.
async fn seed(pool: &PgPool, first_serial: u64, n: usize) -> Vec<Uuid> {
    let at = Utc::now().trunc_subsecs(0);
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    for (i, id) in ids.iter().enumerate() {
        let event = filed(
            *id,
            first_serial + i as u64,
            Channel::Hotline12345,
            Category::ArbitraryInspections,
            "经济开发区",
            at,
        );
        append(pool, *id, &[event]).await;
    }
    for id in &ids {
        append(pool, *id, &[assigned("market-supervision", &["tax"], at)]).await;
    }
    for id in &ids {
        append(pool, *id, &[contact(at)]).await;
    }
    ids
}

/// Waits until every event is below the oldest running transaction, where the global order is
/// final and the relay, rebuilds and exports read. The horizon is server-wide: other tests'
/// transactions can hold it back for a while.
async fn settled(pool: &PgPool) {
    let started = std::time::Instant::now();
    loop {
        let above: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE tx_id >= pg_snapshot_xmin(pg_current_snapshot())",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if above == 0 {
            return;
        }
        assert!(
            started.elapsed() < PUBLISH_DEADLINE,
            "events stayed above the transaction horizon"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn event_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The bus on a prefix of this test's own.
async fn test_bus() -> Bus {
    Bus::connect(BusConfig {
        url: std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
        prefix: format!("t{}", Uuid::new_v4().simple()),
        replicas: 1,
        duplicate_window: Duration::from_secs(120),
    })
    .await
    .expect("connecting to NATS")
}

/// Runs the real relay until everything is published, with an anchor every 4 events.
async fn publish_everything(pool: &PgPool) {
    let bus = test_bus().await;
    let config = RelayConfig {
        batch_size: 5,
        anchor_every_events: 4,
        anchor_every: Duration::from_secs(3600),
        ..RelayConfig::default()
    };
    let total = event_count(pool).await;
    let mut state = RelayState::load(pool).await.unwrap();
    let started = std::time::Instant::now();
    while state.published_count < total {
        assert!(
            started.elapsed() < PUBLISH_DEADLINE,
            "the relay did not publish everything"
        );
        if publish_pending(pool, &bus, &config, &mut state)
            .await
            .unwrap()
            == 0
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    bus.delete_stream().await.unwrap();
}

/// A history of `n` appeals, published by the relay (so anchored).
async fn anchored_history(n: usize) -> (TestDatabase, Vec<Uuid>) {
    let db = TestDatabase::new().await.unwrap();
    let ids = seed(&db.pool, 1, n).await;
    publish_everything(&db.pool).await;
    (db, ids)
}

async fn verify(pool: &PgPool) -> VerifyReport {
    linkage_audit::verify(pool, false, &|_, _| {})
        .await
        .unwrap()
}

/// `(event_id, global_position)` of an appeal's event.
async fn event_at(pool: &PgPool, appeal: Uuid, sequence: i64) -> (Uuid, i64) {
    sqlx::query_as(
        "SELECT event_id, global_position FROM events \
         WHERE aggregate_type = 'appeal' AND aggregate_id = $1 AND sequence = $2",
    )
    .bind(appeal.to_string())
    .bind(sequence)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Recomputes and stores the hash of an appeal's event from its stored content and prev_hash,
/// as a forger would after editing it.
async fn forge_hash(pool: &PgPool, appeal: Uuid, sequence: i64) {
    let row = sqlx::query(
        "SELECT event_id, event_type, event_version, payload, metadata, recorded_at, prev_hash \
         FROM events WHERE aggregate_type = 'appeal' AND aggregate_id = $1 AND sequence = $2",
    )
    .bind(appeal.to_string())
    .bind(sequence)
    .fetch_one(pool)
    .await
    .unwrap();
    let aggregate_id = appeal.to_string();
    let payload: Value = row.get("payload");
    let metadata: Value = row.get("metadata");
    let event_type: String = row.get("event_type");
    let event_version: String = row.get("event_version");
    let prev_hash: Option<Vec<u8>> = row.get("prev_hash");
    let hash = event_hash(
        prev_hash.as_deref(),
        &HashedFields {
            event_id: row.get("event_id"),
            aggregate_type: "appeal",
            aggregate_id: &aggregate_id,
            sequence,
            event_type: &event_type,
            event_version: &event_version,
            payload: &payload,
            metadata: &metadata,
            recorded_at: row.get("recorded_at"),
        },
    );
    sqlx::query(
        "UPDATE events SET hash = $3 \
         WHERE aggregate_type = 'appeal' AND aggregate_id = $1 AND sequence = $2",
    )
    .bind(appeal.to_string())
    .bind(sequence)
    .bind(hash)
    .execute(pool)
    .await
    .unwrap();
}

async fn edit_payload(pool: &PgPool, appeal: Uuid, sequence: i64) {
    sqlx::query(
        "UPDATE events SET payload = jsonb_set(payload::jsonb, '{lead}', '\"housing\"') \
         WHERE aggregate_type = 'appeal' AND aggregate_id = $1 AND sequence = $2",
    )
    .bind(appeal.to_string())
    .bind(sequence)
    .execute(pool)
    .await
    .unwrap();
}

fn stream_findings(report: &VerifyReport) -> Vec<&Finding> {
    report
        .findings
        .iter()
        .filter(|f| {
            !matches!(
                f,
                Finding::AnchorMismatch { .. }
                    | Finding::AnchorEventMissing { .. }
                    | Finding::CheckpointMismatch { .. }
            )
        })
        .collect()
}

#[tokio::test]
async fn an_untouched_history_verifies() {
    let (db, ids) = anchored_history(5).await;
    let report = verify(&db.pool).await;
    assert!(report.ok, "{:?}", report.findings);
    assert_eq!(report.events, 15);
    assert_eq!(report.streams, ids.len() as u64);
    assert_eq!(report.chained_events, 15);
    assert_eq!(
        report.anchors, 3,
        "an anchor every 4 events: after 4, 8 and 12"
    );
}

/// The last migration that stored payload and metadata as `jsonb`.
const JSONB_EVENTS_MIGRATION: i64 = 20261123000003;

#[tokio::test]
async fn a_history_stored_as_jsonb_still_verifies_after_the_json_migration() {
    let mut db = TestDatabase::migrated_to(Some(JSONB_EVENTS_MIGRATION))
        .await
        .unwrap();
    let column_type = |pool: PgPool| async move {
        let t: String = sqlx::query_scalar(
            "SELECT data_type FROM information_schema.columns \
             WHERE table_name = 'events' AND column_name = 'payload'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        t
    };
    assert_eq!(column_type(db.pool.clone()).await, "jsonb");
    let ids = seed(&db.pool, 1, 4).await;
    publish_everything(&db.pool).await;

    db.migrate_rest().await.unwrap();
    assert_eq!(column_type(db.pool.clone()).await, "json");
    // The old events keep the text Postgres printed their jsonb as, not the canonical encoding
    // the hash covers: verify has to re-encode them.
    let text: String = sqlx::query_scalar(
        "SELECT payload::text FROM events WHERE aggregate_id = $1 AND sequence = 1",
    )
    .bind(ids[0].to_string())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(text.contains("\": "), "{text}");
    let report = verify(&db.pool).await;
    assert!(report.ok, "{:?}", report.findings);
    assert_eq!((report.events, report.chained_events), (12, 12));
    assert!(
        report.anchors >= 2,
        "an anchor every 4 events: {}",
        report.anchors
    );

    // New events are stored as canonical text, after the old ones of the same streams.
    append(&db.pool, ids[0], &[contact(Utc::now().trunc_subsecs(0))]).await;
    let text: String = sqlx::query_scalar(
        "SELECT payload::text FROM events WHERE aggregate_id = $1 AND sequence = 4",
    )
    .bind(ids[0].to_string())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(!text.contains("\": "), "{text}");
    publish_everything(&db.pool).await;
    let report = verify(&db.pool).await;
    assert!(report.ok, "{:?}", report.findings);
    assert_eq!((report.events, report.chained_events), (13, 13));

    // The export gives what the relay publishes, old and new events alike.
    let expected = published_envelopes(&db.pool).await;
    let (ndjson, n) = export_to_vec(&db.pool, &ExportOptions::default()).await;
    assert_eq!(n, 13);
    let exported: Vec<Envelope> = ndjson
        .lines()
        .map(|l| Envelope::decode(l.as_bytes()).unwrap())
        .collect();
    assert_eq!(exported, expected);

    // An old event edited after the migration is still named.
    edit_payload(&db.pool, ids[1], 2).await;
    let report = verify(&db.pool).await;
    let (event_id, _) = event_at(&db.pool, ids[1], 2).await;
    match report.first() {
        Some(Finding::Edited { event }) => assert_eq!(event.event_id, event_id),
        other => panic!("expected the edited event first, got {other:?}"),
    }
}

#[tokio::test]
async fn an_edited_payload_is_named() {
    let (db, ids) = anchored_history(5).await;
    edit_payload(&db.pool, ids[2], 2).await;
    let report = verify(&db.pool).await;
    assert!(!report.ok);
    let (event_id, _) = event_at(&db.pool, ids[2], 2).await;
    match report.first() {
        Some(Finding::Edited { event }) => {
            assert_eq!(event.event_id, event_id);
            assert_eq!(event.aggregate_id, ids[2].to_string());
            assert_eq!(event.sequence, 2);
        }
        other => panic!("expected the edited event first, got {other:?}"),
    }
    // The relay's chain does not cover payloads (the stream hash does): no anchor finding.
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
}

#[tokio::test]
async fn a_deleted_event_is_named_by_its_stream_and_sequence() {
    let (db, ids) = anchored_history(5).await;
    let (deleted, deleted_position) = event_at(&db.pool, ids[1], 2).await;
    let (next, _) = event_at(&db.pool, ids[1], 3).await;
    sqlx::query("DELETE FROM events WHERE event_id = $1")
        .bind(deleted)
        .execute(&db.pool)
        .await
        .unwrap();
    let report = verify(&db.pool).await;
    assert!(!report.ok);
    let streams = stream_findings(&report);
    assert_eq!(streams.len(), 1, "{streams:?}");
    match streams[0] {
        Finding::Missing {
            aggregate_id,
            first_missing,
            last_missing,
            next: after_gap,
            ..
        } => {
            assert_eq!(aggregate_id, &ids[1].to_string());
            assert_eq!((*first_missing, *last_missing), (2, 2));
            assert_eq!(after_gap.event_id, next);
        }
        other => panic!("expected the missing event, got {other:?}"),
    }
    // The global chain misses it too: the anchor over its run no longer adds up.
    assert!(report.findings.iter().any(|f| matches!(
        f,
        Finding::AnchorMismatch { first, last, found_events, expected_events, .. }
            if first.global_position <= deleted_position
                && deleted_position <= last.global_position
                && found_events + 1 == *expected_events
    )));
}

#[tokio::test]
async fn a_deleted_last_event_of_a_stream_is_caught_by_the_anchors() {
    let (db, ids) = anchored_history(5).await;
    // The stream still verifies on its own: it is just one event shorter.
    let (deleted, deleted_position) = event_at(&db.pool, ids[0], 3).await;
    sqlx::query("DELETE FROM events WHERE event_id = $1")
        .bind(deleted)
        .execute(&db.pool)
        .await
        .unwrap();
    let report = verify(&db.pool).await;
    assert!(!report.ok);
    assert!(stream_findings(&report).is_empty(), "{:?}", report.findings);
    match report.first() {
        Some(Finding::AnchorMismatch { first, last, .. }) => {
            assert!(first.global_position <= deleted_position);
            assert!(deleted_position <= last.global_position);
        }
        Some(Finding::AnchorEventMissing { position, .. }) => {
            assert_eq!(position.global_position, deleted_position);
        }
        other => panic!("expected an anchor finding, got {other:?}"),
    }
}

#[tokio::test]
async fn a_reordered_sequence_is_named() {
    let (db, ids) = anchored_history(5).await;
    let (second, _) = event_at(&db.pool, ids[3], 2).await;
    let (third, _) = event_at(&db.pool, ids[3], 3).await;
    // Swap sequences 2 and 3 (through a free number: the primary key is checked per row).
    for (event, sequence) in [(second, 100), (third, 2), (second, 3)] {
        sqlx::query("UPDATE events SET sequence = $2 WHERE event_id = $1")
            .bind(event)
            .bind(sequence)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let report = verify(&db.pool).await;
    assert!(!report.ok);
    match report.first() {
        Some(Finding::Unlinked { event }) => {
            assert_eq!(event.event_id, third, "the event moved into sequence 2");
            assert_eq!(event.sequence, 2);
        }
        other => panic!("expected the moved event, got {other:?}"),
    }
}

#[tokio::test]
async fn a_forged_hash_is_named() {
    let (db, ids) = anchored_history(5).await;
    // Edit the assignment and recompute its hash: it verifies on its own, but the next event
    // chained to the original hash.
    edit_payload(&db.pool, ids[4], 2).await;
    forge_hash(&db.pool, ids[4], 2).await;
    let (forged, _) = event_at(&db.pool, ids[4], 2).await;
    let (successor, _) = event_at(&db.pool, ids[4], 3).await;
    let report = verify(&db.pool).await;
    assert!(!report.ok);
    match report.first() {
        Some(Finding::ForgedHash {
            event,
            successor: s,
        }) => {
            assert_eq!(event.event_id, forged);
            assert_eq!(s.event_id, successor);
        }
        other => panic!("expected the forged event, got {other:?}"),
    }
    // The relay's chain recorded the original hash: the anchor over it disagrees too.
    assert!(
        report
            .findings
            .iter()
            .any(|f| matches!(f, Finding::AnchorMismatch { .. }))
    );
}

#[tokio::test]
async fn a_consistently_rewritten_stream_tail_is_caught_by_the_anchors() {
    let (db, ids) = anchored_history(5).await;
    // The last event of a stream, edited and re-hashed: nothing in the stream can tell.
    edit_payload(&db.pool, ids[1], 3).await;
    forge_hash(&db.pool, ids[1], 3).await;
    let (_, position) = event_at(&db.pool, ids[1], 3).await;
    let report = verify(&db.pool).await;
    assert!(!report.ok);
    assert!(stream_findings(&report).is_empty(), "{:?}", report.findings);
    match report.first() {
        Some(Finding::AnchorMismatch {
            first,
            last,
            found_events,
            expected_events,
            ..
        }) => {
            assert!(first.global_position <= position && position <= last.global_position);
            assert_eq!(found_events, expected_events, "nothing was removed");
        }
        other => panic!("expected the anchor over the rewritten event, got {other:?}"),
    }
}

#[tokio::test]
async fn a_history_the_relay_never_published_verifies_by_its_streams() {
    let db = TestDatabase::new().await.unwrap();
    seed(&db.pool, 1, 3).await;
    let report = verify(&db.pool).await;
    assert!(report.ok, "{:?}", report.findings);
    assert_eq!(
        (report.events, report.anchors, report.chained_events),
        (9, 0, 0)
    );
}

/// What the relay would publish: every event in the global order.
async fn published_envelopes(pool: &PgPool) -> Vec<Envelope> {
    settled(pool).await;
    linkage_projector::read_events(pool, None, 1_000_000)
        .await
        .unwrap()
}

async fn export_to_vec(pool: &PgPool, options: &ExportOptions) -> (String, u64) {
    let mut out = Vec::new();
    let summary = linkage_audit::export(pool, options, &mut out, &|_, _| {})
        .await
        .unwrap();
    (String::from_utf8(out).unwrap(), summary.events)
}

#[tokio::test]
async fn export_writes_every_envelope_in_the_global_order() {
    let db = TestDatabase::new().await.unwrap();
    seed(&db.pool, 1, 4).await;
    let expected = published_envelopes(&db.pool).await;
    assert_eq!(expected.len(), 12);

    let (ndjson, n) = export_to_vec(&db.pool, &ExportOptions::default()).await;
    assert_eq!(n, 12);
    let exported: Vec<Envelope> = ndjson
        .lines()
        .map(|l| Envelope::decode(l.as_bytes()).unwrap())
        .collect();
    assert_eq!(exported, expected);

    // From an event (inclusive) on.
    let from = &expected[5];
    let (tail, n) = export_to_vec(
        &db.pool,
        &ExportOptions {
            from_position: Some(from.global_position),
            ..ExportOptions::default()
        },
    )
    .await;
    assert_eq!(n, 7);
    let first = Envelope::decode(tail.lines().next().unwrap().as_bytes()).unwrap();
    assert_eq!(first, *from);

    // Until an instant: only what was recorded by then.
    let until = expected[3].recorded_at;
    let (head, _) = export_to_vec(
        &db.pool,
        &ExportOptions {
            until: Some(until),
            ..ExportOptions::default()
        },
    )
    .await;
    let head: Vec<Envelope> = head
        .lines()
        .map(|l| Envelope::decode(l.as_bytes()).unwrap())
        .collect();
    let recorded_by_then: Vec<Envelope> = expected
        .iter()
        .filter(|e| e.recorded_at <= until)
        .cloned()
        .collect();
    assert!(recorded_by_then.len() >= 4);
    assert_eq!(head, recorded_by_then);

    // CSV: a header and one line per event (no field holds a line break here).
    let (csv, _) = export_to_vec(
        &db.pool,
        &ExportOptions {
            format: ExportFormat::Csv,
            ..ExportOptions::default()
        },
    )
    .await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 13);
    assert_eq!(lines[0], linkage_audit::export::CSV_COLUMNS.join(","));
    assert!(lines[1].starts_with(&format!(
        "{},{},{},appeal,{},1,AppealFiled,1,",
        expected[0].global_position,
        expected[0].tx_id,
        expected[0].event_id,
        expected[0].aggregate_id
    )));

    // An unknown position is refused, naming the argument.
    let err = linkage_audit::export(
        &db.pool,
        &ExportOptions {
            from_position: Some(999_999),
            ..ExportOptions::default()
        },
        &mut Vec::new(),
        &|_, _| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(
        err,
        linkage_audit::AuditError::Invalid {
            field: "from_position",
            ..
        }
    ));
}

#[tokio::test]
async fn event_pages_cover_the_global_order_once() {
    let db = TestDatabase::new().await.unwrap();
    seed(&db.pool, 1, 3).await;
    let expected = published_envelopes(&db.pool).await;
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = linkage_audit::events_page(&db.pool, after, 4)
            .await
            .unwrap();
        if page.events.is_empty() {
            assert_eq!(page.next_after, after);
            break;
        }
        assert!(page.events.len() <= 4);
        after = page.next_after;
        seen.extend(page.events);
    }
    assert_eq!(seen, expected);
}

/// Waits until the clock is past `t` at the store's precision, so what is appended next is
/// recorded after `t`.
async fn after_instant(t: DateTime<Utc>) {
    while Utc::now().trunc_subsecs(6) <= t {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn last_recorded_at(pool: &PgPool) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT max(recorded_at) FROM events")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_appeal_as_of_an_instant_is_its_state_then() {
    let db = TestDatabase::new().await.unwrap();
    let id = Uuid::now_v7();
    let at = Utc::now().trunc_subsecs(0);
    append(
        &db.pool,
        id,
        &[filed(
            id,
            42,
            Channel::Hotline12345,
            Category::ArbitraryInspections,
            "经济开发区",
            at,
        )],
    )
    .await;
    let filed_then = last_recorded_at(&db.pool).await;
    after_instant(filed_then).await;
    append(&db.pool, id, &[assigned("market-supervision", &[], at)]).await;

    let then = linkage_audit::appeal_as_of(&db.pool, "LK-2026-000042", Some(filed_then))
        .await
        .unwrap();
    assert_eq!(then.appeal_id, id.to_string());
    assert_eq!(then.state.status, AppealStatus::Filed);
    assert_eq!(then.timeline.len(), 1);
    assert_eq!(then.later_events, 1);
    assert!(then.chain.ok);

    let now = linkage_audit::appeal_as_of(&db.pool, &id.to_string(), None)
        .await
        .unwrap();
    assert_eq!(now.state.status, AppealStatus::Assigned);
    assert_eq!(now.state.lead, Some(dept("market-supervision")));
    assert_eq!(now.timeline.len(), 2);

    let before = filed_then - chrono::TimeDelta::microseconds(1);
    assert!(matches!(
        linkage_audit::appeal_as_of(&db.pool, &id.to_string(), Some(before)).await,
        Err(linkage_audit::AuditError::NotFound(_))
    ));
    assert!(matches!(
        linkage_audit::appeal_as_of(&db.pool, "LK-2026-000043", None).await,
        Err(linkage_audit::AuditError::NotFound(_))
    ));
    assert!(matches!(
        linkage_audit::appeal_as_of(&db.pool, "nonsense", None).await,
        Err(linkage_audit::AuditError::Invalid { field: "id", .. })
    ));
}

/// Copies the live tables of a projection into `schema`: the projection as it stands now.
async fn snapshot(pool: &PgPool, projection: &dyn Projection, schema: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(pool)
        .await
        .unwrap();
    for table in projection.tables() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {schema}.{table} AS SELECT * FROM public.{table}"
        )))
        .execute(pool)
        .await
        .unwrap();
    }
}

async fn rebuild_live(pool: &PgPool, projection: &dyn Projection) {
    settled(pool).await;
    linkage_projector::rebuild(pool, projection, |_, _| {})
        .await
        .unwrap();
}

#[tokio::test]
async fn a_projection_replayed_as_of_an_instant_equals_a_rebuild_made_then() {
    let db = TestDatabase::new().await.unwrap();
    let ledger = Ledger;
    let first = seed(&db.pool, 1, 3).await;
    // A rebuild made "then", kept aside.
    rebuild_live(&db.pool, &ledger).await;
    snapshot(&db.pool, &ledger, "made_then").await;
    let then = last_recorded_at(&db.pool).await;

    // Later events: a new appeal, and an old one moves on.
    after_instant(then).await;
    seed(&db.pool, 100, 1).await;
    append(
        &db.pool,
        first[0],
        &[AppealEvent::AppealDeclined {
            department: dept("market-supervision"),
            reason: linkage_projector::testing::v("不属于本部门职责"),
            at: Utc::now(),
        }],
    )
    .await;
    rebuild_live(&db.pool, &ledger).await;

    let summary = linkage_audit::replay(&db.pool, &ledger, then, "as_of_then", |_, _| {})
        .await
        .unwrap();
    assert_eq!(summary.events, 9);

    let same = linkage_audit::diff(&db.pool, &ledger, "as_of_then", Some("made_then"), 3)
        .await
        .unwrap();
    assert!(same.equal, "{same:#?}");

    let today = linkage_audit::diff(&db.pool, &ledger, "as_of_then", None, 3)
        .await
        .unwrap();
    assert!(!today.equal);
    let rows = today.tables.iter().find(|t| t.table == "ledger").unwrap();
    // Today's ledger has the new appeal and the declined one changed.
    assert_eq!((rows.only_left, rows.only_right), (1, 2));

    // The live projection and its checkpoint were left alone by the replay.
    let live_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM public.ledger")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(live_rows, 4);
    let live_position: Option<i64> = sqlx::query_scalar(
        "SELECT global_position FROM public.projection_checkpoints WHERE name = 'ledger'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let last_position: i64 = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(live_position, Some(last_position));

    // Replaying into the live schema is refused.
    assert!(matches!(
        linkage_audit::replay(&db.pool, &ledger, then, "public", |_, _| {}).await,
        Err(linkage_audit::AuditError::Invalid { field: "into", .. })
    ));
}
