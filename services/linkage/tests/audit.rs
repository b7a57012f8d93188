//! `linkage audit …` and the auditor's HTTP reads, through the real binary, over a fresh
//! database holding a few appeals' events.

// No stream here: the bus helpers stay unused.
#[allow(dead_code)]
mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use linkage_auth::Role;
use linkage_domain::appeal::{Appeal, AppealEvent};
use linkage_domain::values::{Category, Channel};
use linkage_projector::testing::{assigned, filed};
use linkage_store::PgEventStore;
use linkage_store::testing::TestDatabase;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

const SECRET: &str = "linkage-audit-test-secret-0123456789abcdef";

/// Runs `linkage <args>` against `db`; (success, stdout, stderr).
fn linkage(db: &TestDatabase, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_linkage"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run linkage");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn append(pool: &PgPool, id: Uuid, event: AppealEvent) {
    let store = PgEventStore::<Appeal>::new(pool.clone());
    let loaded = store.load(&id.to_string()).await.unwrap();
    store
        .append(&loaded, &[event], &HashMap::new(), None)
        .await
        .unwrap();
}

/// Two appeals filed; the first one assigned after `filed_by` (returned), which is after both
/// filings were recorded.
async fn history(pool: &PgPool) -> (Vec<Uuid>, chrono::DateTime<Utc>) {
    let at = Utc::now().trunc_subsecs(0);
    let ids = vec![Uuid::now_v7(), Uuid::now_v7()];
    for (i, id) in ids.iter().enumerate() {
        let event = filed(
            *id,
            i as u64 + 1,
            Channel::Linkage110,
            Category::ApprovalDelay,
            "高新园区",
            at,
        );
        append(pool, *id, event).await;
    }
    let filed_by: chrono::DateTime<Utc> = sqlx::query_scalar("SELECT max(recorded_at) FROM events")
        .fetch_one(pool)
        .await
        .unwrap();
    while Utc::now().trunc_subsecs(6) <= filed_by {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    append(pool, ids[0], assigned("approvals", &[], at)).await;
    // Exports read below the oldest running transaction: wait until these are.
    let started = Instant::now();
    loop {
        let above: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE tx_id >= pg_snapshot_xmin(pg_current_snapshot())",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if above == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "horizon stuck");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (ids, filed_by)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_commands_export_verify_reconstruct_and_replay() {
    let db = TestDatabase::new().await.expect("test database");
    let (ids, filed_by) = history(&db.pool).await;
    let filed_by = filed_by.to_rfc3339();

    // Export: piped, one envelope per line, nothing on stderr.
    let (ok, out, err) = linkage(&db, &["audit", "export"]);
    assert!(ok, "{err}");
    assert!(err.is_empty(), "no progress bar when piped: {err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["event_type"], "AppealAssigned");
    let (ok, out, _) = linkage(
        &db,
        &["audit", "export", "--format", "csv", "--until", &filed_by],
    );
    assert!(ok);
    assert_eq!(
        out.lines().count(),
        3,
        "a header and the two filings: {out}"
    );

    // Verify: clean, then one edited payload is named.
    let (ok, out, err) = linkage(&db, &["audit", "verify"]);
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (report["ok"].as_bool(), report["events"].as_u64()),
        (Some(true), Some(3))
    );

    // An appeal then and now, by tracking number.
    let (ok, out, err) = linkage(
        &db,
        &["audit", "appeal", "LK-2026-000001", "--as-of", &filed_by],
    );
    assert!(ok, "{err}");
    let then: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(then["appeal_id"], ids[0].to_string());
    assert_eq!(then["state"]["status"], "filed");
    assert_eq!(then["later_events"], 1);
    let (ok, out, _) = linkage(&db, &["audit", "appeal", &ids[0].to_string()]);
    assert!(ok);
    let now: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(now["state"]["status"], "assigned");

    // Replay the ledger as of the filings, and diff it against a live ledger rebuilt now.
    let (ok, out, err) = linkage(
        &db,
        &[
            "audit",
            "replay",
            "--as-of",
            &filed_by,
            "--projection",
            "ledger",
            "--into",
            "audit_then",
        ],
    );
    assert!(ok, "{err}");
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["events"], 2);
    let (ok, _, err) = linkage(&db, &["projections", "rebuild", "ledger"]);
    assert!(ok, "{err}");
    let (ok, out, err) = linkage(
        &db,
        &[
            "audit",
            "diff",
            "--projection",
            "ledger",
            "--schema",
            "audit_then",
        ],
    );
    assert!(!ok, "the ledger moved on since: exit 1");
    assert!(err.contains("differs"), "{err}");
    let diff: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(diff["equal"], false);

    // Tampering: the verify exits 1 and names the event.
    let (edited, _): (Uuid, i64) = sqlx::query_as(
        "UPDATE events SET payload = payload::jsonb || '{\"town\": \"别处\"}' \
         WHERE aggregate_id = $1 AND sequence = 1 RETURNING event_id, global_position",
    )
    .bind(ids[1].to_string())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let (ok, out, err) = linkage(&db, &["audit", "verify"]);
    assert!(!ok);
    assert!(err.contains(&edited.to_string()), "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["findings"][0]["kind"], "edited");
    assert_eq!(
        report["findings"][0]["event"]["event_id"],
        edited.to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditors_read_the_history_over_http() {
    let db = TestDatabase::new().await.expect("test database");
    let (ids, filed_by) = history(&db.pool).await;
    let addr = format!("127.0.0.1:{}", common::free_port());
    let mut server = Command::new(env!("CARGO_BIN_EXE_linkage"))
        .arg("query-api")
        .env("DATABASE_URL", &db.url)
        .env("NATS_URL", common::nats_url())
        .env("LINKAGE_JWT_SECRET", SECRET)
        .env("LINKAGE_QUERY_API_ADDR", &addr)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn linkage query-api");
    let http = reqwest::Client::new();
    let get = |path: String, role: Role| {
        let http = http.clone();
        let url = format!("http://{addr}{path}");
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                // The process may still be starting.
                match http
                    .get(&url)
                    .bearer_auth(common::token(SECRET, role, None))
                    .send()
                    .await
                {
                    Ok(r) => return (r.status().as_u16(), r.json::<Value>().await.unwrap()),
                    Err(_) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(100)).await
                    }
                    Err(e) => panic!("{url}: {e}"),
                }
            }
        }
    };

    let (status, page) = get("/api/v1/audit/events?limit=2".into(), Role::Auditor).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    let next = page["next_after"].as_i64().unwrap();
    let (_, rest) = get(
        format!("/api/v1/audit/events?after={next}&limit=2"),
        Role::Auditor,
    )
    .await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 1);
    assert_eq!(rest["events"][0]["event_type"], "AppealAssigned");
    // The payload as stored: the auditor can recompute hashes (personal data included).
    assert_eq!(
        page["events"][0]["payload"]["filer"]["phone"],
        "13800138000"
    );

    let (status, problem) = get("/api/v1/audit/events".into(), Role::Analyst).await;
    assert_eq!(status, 403, "{problem}");
    let (status, problem) = get("/api/v1/audit/events?after=999999".into(), Role::Auditor).await;
    assert_eq!((status, problem["field"].as_str()), (422, Some("after")));

    let as_of = filed_by.to_rfc3339().replace('+', "%2B");
    let (status, then) = get(
        format!("/api/v1/audit/appeals/LK-2026-000001?as_of={as_of}"),
        Role::Auditor,
    )
    .await;
    assert_eq!(status, 200, "{then}");
    assert_eq!(then["appeal_id"], ids[0].to_string());
    assert_eq!(then["state"]["status"], "filed");
    assert_eq!(then["chain"]["ok"], true);
    let (_, now) = get(format!("/api/v1/audit/appeals/{}", ids[0]), Role::Auditor).await;
    assert_eq!(now["state"]["status"], "assigned");
    let (status, problem) = get(
        "/api/v1/audit/appeals/LK-2026-000001?as_of=yesterday".into(),
        Role::Auditor,
    )
    .await;
    assert_eq!((status, problem["field"].as_str()), (422, Some("as_of")));
    let (status, _) = get(
        "/api/v1/audit/appeals/LK-2026-000001?as_of=2020-01-01".into(),
        Role::Auditor,
    )
    .await;
    assert_eq!(status, 404);

    server.kill().expect("stop the query API");
    let _ = server.wait();
}
