//! Fault test: the relay and the projector are SIGKILLed at random moments and restarted while
//! commands flow; afterwards no event is missing from the stream or duplicated on it, and the
//! ledger equals a rebuild from scratch, holding each appeal exactly once in its final state.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use linkage_auth::Role;
use linkage_store::testing::TestDatabase;
use serde_json::{Value, json};

const SECRET: &str = "linkage-fault-test-secret-0123456789abcdef";

struct Services {
    db_url: String,
    nats_url: String,
    prefix: String,
    command_addr: String,
}

impl Services {
    fn spawn(&self, role: &str) -> Child {
        Command::new(env!("CARGO_BIN_EXE_linkage"))
            .arg(role)
            .env("DATABASE_URL", &self.db_url)
            .env("NATS_URL", &self.nats_url)
            .env("LINKAGE_NATS_PREFIX", &self.prefix)
            .env("LINKAGE_JWT_SECRET", SECRET)
            .env("LINKAGE_COMMAND_API_ADDR", &self.command_addr)
            .env("LINKAGE_CALENDAR", "weekdays")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(self.log(role))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn linkage {role}: {e}"))
    }

    /// Each role's log, appended across restarts, shown when the test fails.
    fn log(&self, role: &str) -> Stdio {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(std::env::temp_dir().join(format!("{}-{role}.log", self.prefix)))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null())
    }

    fn run_to_end(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_linkage"))
            .args(args)
            .env("DATABASE_URL", &self.db_url)
            .env("NATS_URL", &self.nats_url)
            .env("LINKAGE_NATS_PREFIX", &self.prefix)
            .output()
            .expect("run linkage");
        assert!(
            out.status.success(),
            "linkage {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Posts until an answer that is not a transport error or 503 (the API may be restarting).
async fn post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
    key: &str,
) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sent = http
            .post(url)
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().as_u16() != 503 => {
                let status = r.status().as_u16();
                let body = r.json().await.unwrap_or(Value::Null);
                return (status, body);
            }
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("{url}: no answer: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_and_projector_survive_sigkill_while_commands_flow() {
    let db = TestDatabase::new().await.expect("test database");
    let nats_url = common::nats_url();
    let services = Services {
        db_url: db.url.clone(),
        nats_url: nats_url.clone(),
        prefix: format!("f{}", uuid::Uuid::new_v4().simple()),
        command_addr: format!("127.0.0.1:{}", common::free_port()),
    };
    let bus = common::test_bus(&services.prefix).await;

    let mut api = services.spawn("command-api");
    let mut relay = services.spawn("relay");
    let mut projector = services.spawn("projector");

    let token = |role: Role, dept: Option<&str>| common::token(SECRET, role, dept);
    let dispatcher = token(Role::Dispatcher, None);
    let handler = token(Role::Handler, Some("market-supervision"));
    let base = format!("http://{}/api/v1/appeals", services.command_addr);
    let http = reqwest::Client::new();

    // The load: appeals walked part of the way through their lifecycle, concurrently, while a
    // killer task SIGKILLs and restarts the relay and the projector.
    let load = {
        let (http, base, dispatcher, handler) = (
            http.clone(),
            base.clone(),
            dispatcher.clone(),
            handler.clone(),
        );
        tokio::spawn(async move {
            let mut accepted = 0usize;
            for i in 0..200 {
                let (status, filed) = post(
                    &http,
                    &base,
                    &dispatcher,
                    &json!({
                        "channel": "110",
                        "filer": {"kind": "citizen", "name": "张三", "phone": "13800130000"},
                        "category": "other",
                        "town": "城东街道",
                        "description": format!("第{i}件诉求")
                    }),
                    &format!("file-{i}"),
                )
                .await;
                assert_eq!(status, 201, "{filed}");
                accepted += 1;
                let id = filed["appeal_id"].as_str().unwrap().to_owned();
                let steps: &[(&str, &str, Value)] = &[
                    ("assign", &dispatcher, json!({"lead": "market-supervision"})),
                    ("contact", &handler, json!({"method": "phone"})),
                    (
                        "resolve",
                        &handler,
                        json!({"outcome": "resolved", "text": "已解决"}),
                    ),
                ];
                for (n, (command, token, body)) in steps.iter().enumerate().take(i % 4) {
                    let (status, answer) = post(
                        &http,
                        &format!("{base}/{id}/{command}"),
                        token,
                        body,
                        &format!("{id}-{n}"),
                    )
                    .await;
                    assert_eq!(status, 200, "{command}: {answer}");
                    accepted += 1;
                }
            }
            accepted
        })
    };

    let mut kills = 0;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    // Keep killing while commands flow, and at least 8 times in all.
    while !load.is_finished() || kills < 8 {
        // xorshift: a deterministic sequence of kill intervals between 20 and 220 ms.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        tokio::time::sleep(Duration::from_millis(20 + rng % 200)).await;
        let victim = if rng.is_multiple_of(2) {
            &mut relay
        } else {
            &mut projector
        };
        victim.kill().expect("SIGKILL");
        victim.wait().expect("reap");
        *victim = services.spawn(if rng.is_multiple_of(2) {
            "relay"
        } else {
            "projector"
        });
        kills += 1;
    }
    let accepted = load.await.expect("load task");
    assert!(
        kills >= 3,
        "the test must actually inject faults (got {kills})"
    );

    // Wait for the read side to catch up with everything in Postgres.
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(events as usize >= accepted);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let projected: Option<i64> = sqlx::query_scalar("SELECT count(*) FROM ledger_timeline")
            .fetch_one(&db.pool)
            .await
            .ok();
        if projected == Some(events) {
            break;
        }
        if Instant::now() >= deadline {
            let relay: Option<i64> =
                sqlx::query_scalar("SELECT published_count FROM relay_checkpoint")
                    .fetch_optional(&db.pool)
                    .await
                    .unwrap();
            panic!(
                "projection stuck at {projected:?} of {events}; relay published {relay:?}; stream has {}; status {}",
                bus.last_sequence().await.unwrap_or(0),
                services.run_to_end(&["projections", "status"])
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for child in [&mut api, &mut relay, &mut projector] {
        let _ = child.kill();
        let _ = child.wait();
    }

    // The stream: every event exactly once, in (tx_id, global_position) order.
    let expected: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT event_id FROM events ORDER BY tx_id, global_position")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let mut published = Vec::new();
    {
        use futures::StreamExt;
        let replay = bus.replay().await.expect("replay");
        tokio::pin!(replay);
        while published.len() < expected.len() {
            let next = tokio::time::timeout(Duration::from_secs(10), replay.next())
                .await
                .expect("stream delivers")
                .expect("stream open")
                .expect("message");
            published.push(next.envelope.event_id);
        }
    }
    assert_eq!(
        bus.last_sequence().await.unwrap() as usize,
        expected.len(),
        "no duplicates"
    );
    assert_eq!(published, expected, "every event once, in commit order");

    // The ledger: one row per appeal, equal to a rebuild from scratch.
    let appeals: i64 = sqlx::query_scalar("SELECT count(DISTINCT aggregate_id) FROM events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, appeals);
    let live = ledger_snapshot(&db).await;
    services.run_to_end(&["projections", "rebuild", "ledger"]);
    let rebuilt = ledger_snapshot(&db).await;
    assert_eq!(live, rebuilt, "live ledger equals a rebuild");

    eprintln!(
        "fault report: commands accepted {accepted}, events {events}, kills {kills}, lost 0, duplicated 0"
    );
    bus.delete_stream().await.expect("delete stream");
}

async fn ledger_snapshot(db: &TestDatabase) -> Value {
    sqlx::query_scalar(
        "SELECT coalesce(json_agg(to_jsonb(l) ORDER BY appeal_id), '[]'::json) FROM ledger l",
    )
    .fetch_one(&db.pool)
    .await
    .expect("ledger snapshot")
}
