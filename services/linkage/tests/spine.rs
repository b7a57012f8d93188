//! `linkage run` end to end: a lifecycle posted over HTTP reaches the ledger and timeline of the
//! query API through NATS, and an independent subscriber sees every event once, in order.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use linkage_auth::Role;
use linkage_store::testing::TestDatabase;
use serde_json::{Value, json};

const SECRET: &str = "linkage-spine-test-secret-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifecycle_reaches_the_ledger_through_nats() {
    let db = TestDatabase::new().await.expect("test database");
    let nats_url = common::nats_url();
    let prefix = format!("s{}", uuid::Uuid::new_v4().simple());
    let (command_addr, query_addr) = (
        format!("127.0.0.1:{}", common::free_port()),
        format!("127.0.0.1:{}", common::free_port()),
    );
    let bus = common::test_bus(&prefix).await;
    // An independent subscriber, attached before anything is published.
    let mut subscriber = bus
        .consumer("independent-subscriber")
        .await
        .expect("consumer");

    let mut linkage = Command::new(env!("CARGO_BIN_EXE_linkage"))
        .arg("run")
        .env("DATABASE_URL", &db.url)
        .env("NATS_URL", &nats_url)
        .env("LINKAGE_NATS_PREFIX", &prefix)
        .env("LINKAGE_JWT_SECRET", SECRET)
        .env("LINKAGE_COMMAND_API_ADDR", &command_addr)
        .env("LINKAGE_QUERY_API_ADDR", &query_addr)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn linkage run");

    let token = |role: Role, dept: Option<&str>| common::token(SECRET, role, dept);
    let http = reqwest::Client::new();
    let api = format!("http://{command_addr}/api/v1/appeals");
    let post = |url: String, token: String, body: Value| {
        let http = http.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                // The process may still be starting.
                match http.post(&url).bearer_auth(&token).json(&body).send().await {
                    Ok(r) => return (r.status().as_u16(), r.json::<Value>().await.unwrap()),
                    Err(_) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(100)).await
                    }
                    Err(e) => panic!("{url}: {e}"),
                }
            }
        }
    };

    let (status, filed) = post(
        api.clone(),
        token(Role::Dispatcher, None),
        json!({
            "channel": "110",
            "filer": {"kind": "enterprise", "name": "某某科技有限公司", "phone": "13800130000"},
            "category": "approval_delay",
            "town": "高新园区",
            "description": "施工许可审批超过承诺时限。",
            "complained_unit": "区行政审批局"
        }),
    )
    .await;
    assert_eq!(status, 201, "{filed}");
    let id = filed["appeal_id"].as_str().unwrap().to_owned();
    let handler = token(Role::Handler, Some("approvals"));
    let steps = [
        (
            "assign",
            token(Role::Dispatcher, None),
            json!({"lead": "approvals"}),
        ),
        ("contact", handler.clone(), json!({"method": "on_site"})),
        ("feedback", handler.clone(), json!({"text": "已现场核实"})),
        (
            "resolve",
            handler.clone(),
            json!({"outcome": "resolved", "text": "许可已核发"}),
        ),
        (
            "return-visit",
            token(Role::Evaluator, None),
            json!({"reached": true, "solved": true, "satisfaction": "basically_satisfied"}),
        ),
        ("close", token(Role::Supervisor, None), json!({})),
    ];
    let mut last_position = 0;
    for (command, token, body) in steps {
        let (status, answer) = post(format!("{api}/{id}/{command}"), token, body).await;
        assert_eq!(status, 200, "{command}: {answer}");
        last_position = answer["events"][0]["global_position"].as_i64().unwrap();
    }

    // Read your write: the query API waits until the ledger holds the last event.
    let analyst = token(Role::Analyst, None);
    let detail: Value = http
        .get(format!(
            "http://{query_addr}/api/v1/appeals/{id}?min_position={last_position}"
        ))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(detail["stale"], true, "{detail}");
    let row = &detail["appeal"];
    let row = if row.is_null() { &detail } else { row };
    assert_eq!(row["status"], "closed", "{detail}");
    assert_eq!(row["lead_department"], "approvals", "{detail}");
    assert_eq!(
        row["filer_phone"], "138****0000",
        "analysts see masked phones: {detail}"
    );
    let timeline: Vec<String> = detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        timeline,
        [
            "AppealFiled",
            "AppealAssigned",
            "ContactRecorded",
            "InitialFeedbackGiven",
            "AppealResolved",
            "ReturnVisitRecorded",
            "AppealClosed"
        ]
    );
    let ledger: Value = http
        .get(format!(
            "http://{query_addr}/api/v1/ledger?channel=110&status=closed"
        ))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ledger["items"].as_array().unwrap().len(), 1, "{ledger}");
    assert_eq!(
        ledger["items"][0]["tracking_number"],
        filed["tracking_number"]
    );

    // The independent subscriber: every event once, in commit order.
    let expected: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT event_id FROM events ORDER BY tx_id, global_position")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < expected.len() && Instant::now() < deadline {
        for d in subscriber
            .fetch(100, Duration::from_millis(500))
            .await
            .unwrap()
        {
            seen.push(d.envelope.event_id);
        }
    }
    // Nothing more arrives.
    assert!(
        subscriber
            .fetch(100, Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(seen, expected);
    let replayed: Vec<_> = bus.replay().await.unwrap().collect().await;
    assert_eq!(replayed.len(), expected.len());

    let _ = linkage.kill();
    let _ = linkage.wait();
    bus.delete_stream().await.expect("delete stream");
}
