//! `linkage demo-data` through the binary (docs/demo-data.md): the same seed gives the same
//! events and hashes in two fresh databases; a store that already has appeals is refused and
//! left as it was; the history verifies, and after the relay and projector (and a rebuild) the
//! read models show exactly the mix the generator says it made; `linkage run --demo-data auto`
//! loads an empty store once.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use linkage_auth::Role;
use linkage_demo::{Summary, Tally};
use linkage_store::testing::TestDatabase;
use serde_json::Value;
use sqlx::{PgPool, Row};

const SECRET: &str = "linkage-demo-test-secret-0123456789abcdef";
/// A fixed end, so the history does not depend on when the test runs.
const UNTIL: &str = "2026-11-20";

/// Runs `linkage <args>` against `db`; (success, stdout, stderr).
fn linkage(db: &TestDatabase, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_linkage"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "info")
        .output()
        .expect("run linkage");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn demo_data(db: &TestDatabase, seed: &str, extra: &[&str]) -> Summary {
    let mut args = vec![
        "demo-data",
        "--seed",
        seed,
        "--scale",
        "small",
        "--months",
        "3",
        "--until",
        UNTIL,
    ];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = linkage(db, &args);
    assert!(ok, "demo-data failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("summary {e}: {stdout}"))
}

/// Every event of the demo's streams, with everything its hash covers and the hash itself.
async fn demo_events(pool: &PgPool) -> Vec<Vec<String>> {
    sqlx::query(
        "SELECT aggregate_type, aggregate_id, sequence::text, event_id::text, event_type, \
                event_version, payload::text, metadata::text, recorded_at::text, \
                encode(prev_hash, 'hex'), encode(hash, 'hex') \
         FROM events WHERE aggregate_type IN ('appeal', 'style_evaluation') \
         ORDER BY aggregate_type, aggregate_id, sequence",
    )
    .fetch_all(pool)
    .await
    .expect("events")
    .into_iter()
    .map(|row| {
        (0..11)
            .map(|i| row.get::<Option<String>, _>(i).unwrap_or_default())
            .collect()
    })
    .collect()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .expect(sql)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_history_and_a_store_with_appeals_is_refused() {
    let (one, two) = (
        TestDatabase::new().await.expect("db"),
        TestDatabase::new().await.expect("db"),
    );
    let first = demo_data(&one, "11", &[]);
    let second = demo_data(&two, "11", &[]);
    let same = |s: &Summary| Summary {
        elapsed_seconds: 0.0,
        ..s.clone()
    };
    assert_eq!(same(&first), same(&second));
    let (events_one, events_two) = (demo_events(&one.pool).await, demo_events(&two.pool).await);
    assert_eq!(events_one.len() as u64, first.events);
    assert!(first.appeals > 150, "{first:?}");
    assert_eq!(
        events_one, events_two,
        "ids, payloads, metadata, instants and hashes"
    );
    let tracking = |pool: &PgPool| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT payload->>'tracking_number' FROM events \
                 WHERE event_type = 'AppealFiled' ORDER BY payload->>'tracking_number'",
            )
            .fetch_all(&pool)
            .await
            .expect("tracking numbers")
        }
    };
    let numbers = tracking(&one.pool).await;
    assert_eq!(numbers.len() as u64, first.appeals);
    assert_eq!(numbers, tracking(&two.pool).await);
    // A different seed is a different district.
    let three = TestDatabase::new().await.expect("db");
    demo_data(&three, "12", &[]);
    assert_ne!(demo_events(&three.pool).await, events_one);

    // Appeals already there: refused with the count, nothing written.
    let before = count(&one.pool, "SELECT count(*) FROM events").await;
    let counter = count(
        &one.pool,
        "SELECT sum(last_serial)::bigint FROM tracking_counters",
    )
    .await;
    let (ok, _, stderr) = linkage(
        &one,
        &[
            "demo-data",
            "--seed",
            "99",
            "--scale",
            "small",
            "--until",
            UNTIL,
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains(&format!("already holds {} appeals", first.appeals)),
        "{stderr}"
    );
    assert_eq!(
        count(&one.pool, "SELECT count(*) FROM events").await,
        before
    );
    assert_eq!(
        count(
            &one.pool,
            "SELECT sum(last_serial)::bigint FROM tracking_counters"
        )
        .await,
        counter
    );
    // --force with the same seed: every step's idempotency key is recorded, nothing is new.
    let again = demo_data(&one, "11", &["--force"]);
    assert_eq!(again.events, 0, "{again:?}");
    assert_eq!(again.replayed, first.commands);
    assert_eq!(
        count(&one.pool, "SELECT count(*) FROM events").await,
        before
    );
    assert_eq!(events_one, demo_events(&one.pool).await);
    // A bad option is a clear error before anything is read.
    let (ok, _, stderr) = linkage(&three, &["demo-data", "--until", "2999-01-01"]);
    assert!(!ok && stderr.contains("in the future"), "{stderr}");
}

/// A role of the binary as its own process, killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_role(db: &TestDatabase, role: &str, prefix: &str, query_addr: &str) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_linkage"))
            .arg(role)
            .env("DATABASE_URL", &db.url)
            .env("NATS_URL", common::nats_url())
            .env("LINKAGE_NATS_PREFIX", prefix)
            .env("LINKAGE_JWT_SECRET", SECRET)
            .env("LINKAGE_QUERY_API_ADDR", query_addr)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn linkage role"),
    )
}

/// Waits until the relay published every event and every projection applied it.
async fn caught_up(pool: &PgPool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let events = count(pool, "SELECT count(*) FROM events").await;
        let last = count(pool, "SELECT coalesce(max(global_position), 0) FROM events").await;
        let published: Option<i64> =
            sqlx::query_scalar("SELECT published_count FROM relay_checkpoint")
                .fetch_optional(pool)
                .await
                .unwrap_or(None);
        if published == Some(events)
            && let Ok(statuses) = linkage_projector::status(pool).await
            && statuses.len() == linkage_projector::all_projections().len()
            && statuses
                .iter()
                .all(|s| s.position.as_ref().map(|p| p.global_position) == Some(last))
        {
            return;
        }
        assert!(Instant::now() < deadline, "the read side did not catch up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Outcome counters per department over every month, as the rates projection holds them.
async fn rate_totals(pool: &PgPool) -> BTreeMap<String, [i64; 8]> {
    sqlx::query(
        "SELECT key, sum(contacts)::bigint, sum(contacts_on_time)::bigint, \
                sum(completions)::bigint, sum(completions_on_time)::bigint, \
                sum(visits)::bigint, sum(solved)::bigint, sum(satisfied)::bigint, \
                sum(basically_satisfied)::bigint \
         FROM rate_totals WHERE dimension = 'department' GROUP BY key",
    )
    .fetch_all(pool)
    .await
    .expect("rate totals")
    .into_iter()
    .map(|row| {
        let counts: [i64; 8] = std::array::from_fn(|i| row.get::<i64, _>(i + 1));
        (row.get::<String, _>(0), counts)
    })
    .filter(|(_, c)| c.iter().any(|n| *n > 0))
    .collect()
}

fn expected_totals(summary: &Summary) -> BTreeMap<String, [i64; 8]> {
    let row = |t: &Tally| {
        [
            t.contacts,
            t.contacts_on_time,
            t.completions,
            t.completions_on_time,
            t.visits,
            t.solved,
            t.satisfied,
            t.basically_satisfied,
        ]
        .map(|n| n as i64)
    };
    summary
        .departments
        .iter()
        .map(|(d, t)| (d.clone(), row(t)))
        .filter(|(_, c)| c.iter().any(|n| *n > 0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_verifies_rebuilds_and_the_read_models_show_the_generated_mix() {
    let db = TestDatabase::new().await.expect("db");
    let summary = demo_data(&db, "5", &[]);

    // The mix a dashboard needs, as the generator counted it.
    let below = |num: u64, den: u64| den > 0 && 100 * num < 90 * den;
    let weak: Vec<&String> = summary
        .departments
        .iter()
        .filter(|(_, t)| {
            below(t.completions_on_time, t.completions)
                || below(t.satisfied + t.basically_satisfied, t.visits)
        })
        .map(|(d, _)| d)
        .collect();
    assert!(!weak.is_empty(), "a department under 90%: {summary:?}");
    assert!(
        weak.len() < summary.departments.len() / 2,
        "most departments meet the target: {weak:?}"
    );
    let sum = |f: fn(&Tally) -> u64| summary.departments.values().map(f).sum::<u64>();
    assert!(sum(|t| t.completions - t.completions_on_time) > 0, "late");
    assert!(sum(|t| t.contacts - t.contacts_on_time) > 0, "late contact");
    assert!(sum(|t| t.extensions_approved) > 0, "extended");
    assert!(sum(|t| t.reworks) > 0, "reworked");
    assert!(sum(|t| t.transfers_away) > 0, "transferred");
    assert!(sum(|t| t.unreachable_visits) > 0, "unreachable");
    assert!(
        sum(|t| t.visits - t.satisfied - t.basically_satisfied) > 0,
        "dissatisfied"
    );
    assert!(summary.style_evaluations > 0);
    let veto = summary.veto.clone().expect("a veto");

    // The history verifies (the relay's anchors included) once the relay has run.
    let prefix = format!("d{}", uuid::Uuid::new_v4().simple());
    let query_addr = format!("127.0.0.1:{}", common::free_port());
    let relay = spawn_role(&db, "relay", &prefix, &query_addr);
    let projector = spawn_role(&db, "projector", &prefix, &query_addr);
    let _query = spawn_role(&db, "query-api", &prefix, &query_addr);
    caught_up(&db.pool).await;
    drop((relay, projector));
    let (ok, stdout, stderr) = linkage(&db, &["audit", "verify"]);
    assert!(ok, "verify: {stdout} {stderr}");

    // Rates: exactly the generator's outcomes, per department over all months.
    let expected = expected_totals(&summary);
    assert_eq!(rate_totals(&db.pool).await, expected);
    // The ledger: one row per appeal, the extended / reworked / late ones as generated.
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ledger").await as u64,
        summary.appeals
    );
    let counts = &summary.appeal_counts;
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM ledger WHERE extension_count > 0"
        )
        .await as u64,
        counts.extended
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM ledger WHERE rework_count > 0"
        )
        .await as u64,
        counts.reworked
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM ledger WHERE cardinality(missed_deadlines) > 0"
        )
        .await as u64,
        counts.late
    );
    for (status, n) in &summary.statuses {
        let sql = format!("SELECT count(*) FROM ledger WHERE status = '{status}'");
        assert_eq!(count(&db.pool, &sql).await as u64, *n, "{status}");
    }

    // The ranking of the veto's quarter: that department vetoed, ranked last.
    let quarter = linkage_domain::assessment::period::Quarter::of(veto.at).to_string();
    let analyst = common::token(SECRET, Role::Analyst, None);
    let ranking: Value = reqwest::Client::new()
        .get(format!(
            "http://{query_addr}/api/v1/rankings?period={quarter}"
        ))
        .bearer_auth(&analyst)
        .send()
        .await
        .expect("rankings")
        .json()
        .await
        .expect("json");
    let departments = ranking["departments"].as_array().expect("departments");
    let vetoed: Vec<&str> = departments
        .iter()
        .filter(|d| d["vetoed"] == true)
        .map(|d| d["department"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(vetoed, [veto.department.as_str()], "{ranking}");
    assert_eq!(
        departments.last().and_then(|d| d["department"].as_str()),
        Some(veto.department.as_str())
    );

    // A rebuild from the event store gives the same numbers.
    let (ok, _, stderr) = linkage(&db, &["projections", "rebuild", "rates"]);
    assert!(ok, "{stderr}");
    assert_eq!(rate_totals(&db.pool).await, expected);

    common::test_bus(&prefix)
        .await
        .delete_stream()
        .await
        .expect("delete stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linkage_run_loads_demo_data_into_an_empty_store_once() {
    let db = TestDatabase::new().await.expect("db");
    let prefix = format!("r{}", uuid::Uuid::new_v4().simple());
    let run = |demo: &str| {
        Command::new(env!("CARGO_BIN_EXE_linkage"))
            .args(["run", "--demo-data", demo])
            .env("DATABASE_URL", &db.url)
            .env("NATS_URL", common::nats_url())
            .env("LINKAGE_NATS_PREFIX", &prefix)
            .env("LINKAGE_JWT_SECRET", SECRET)
            .env("LINKAGE_DEMO_SCALE", "small")
            .env("LINKAGE_DEMO_MONTHS", "1")
            .env(
                "LINKAGE_COMMAND_API_ADDR",
                format!("127.0.0.1:{}", common::free_port()),
            )
            .env(
                "LINKAGE_QUERY_API_ADDR",
                format!("127.0.0.1:{}", common::free_port()),
            )
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn linkage run")
    };
    // Wait for the log line that says what happened, then stop the process.
    let outcome = |child: Child, wanted: &'static str| async move {
        let mut child = Proc(child);
        let stderr = child.0.stderr.take().expect("stderr");
        let lines = tokio::task::spawn_blocking(move || {
            use std::io::BufRead;
            let mut seen = Vec::new();
            for line in std::io::BufReader::new(stderr).lines() {
                let line = line.unwrap_or_default();
                let done = line.contains(wanted);
                seen.push(line);
                if done {
                    break;
                }
            }
            seen
        })
        .await
        .expect("read log");
        drop(child);
        lines.join("\n")
    };

    let log = outcome(run("auto"), "demo data loaded").await;
    assert!(log.contains("loading the demo district"), "{log}");
    let appeals = count(
        &db.pool,
        "SELECT count(*) FROM events WHERE aggregate_type = 'appeal' AND sequence = 1",
    )
    .await;
    assert!(appeals > 50, "{appeals}: {log}");
    let events = count(&db.pool, "SELECT count(*) FROM events").await;
    // Started again: the store has appeals, nothing is added.
    let log = outcome(run("auto"), "nothing loaded").await;
    assert!(log.contains("already holds appeals"), "{log}");
    assert!(count(&db.pool, "SELECT count(*) FROM events").await >= events);
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM events WHERE aggregate_type = 'appeal' AND sequence = 1"
        )
        .await,
        appeals
    );
    common::test_bus(&prefix).await.delete_stream().await.ok();
}
