//! The SLA watcher as processes, on the real clock: an admin sets a short SLA policy for the 110
//! channel (contact within 1 minute) over HTTP; three watchers run (one inside `linkage run`, two
//! as `linkage sla-watcher`), one of them is SIGKILLed around the deadline; each missed contact
//! deadline is recorded exactly once and shows red in `GET /api/v1/alerts`.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Datelike;
use linkage_auth::Role;
use linkage_store::testing::TestDatabase;
use serde_json::{Value, json};

const SECRET: &str = "linkage-sla-watcher-test-secret-0123456789";

struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn linkage(role: &str, env: &[(&str, String)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_linkage"))
        .arg(role)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn linkage")
}

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut request = http.request(method.clone(), url).bearer_auth(token);
        if let Some(body) = &body {
            request = request.json(body);
        }
        match request.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                return (status, r.json().await.unwrap_or(Value::Null));
            }
            // The process may still be starting.
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{url}: {e}"),
        }
    }
}

async fn missed(db: &TestDatabase, id: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'DeadlineMissed'",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_record_each_missed_deadline_once_even_when_one_is_killed() {
    let db = TestDatabase::new().await.expect("test database");
    let prefix = format!("w{}", uuid::Uuid::new_v4().simple());
    let (command_addr, query_addr) = (
        format!("127.0.0.1:{}", common::free_port()),
        format!("127.0.0.1:{}", common::free_port()),
    );
    let env = vec![
        ("DATABASE_URL", db.url.clone()),
        ("NATS_URL", common::nats_url()),
        ("LINKAGE_NATS_PREFIX", prefix.clone()),
        ("LINKAGE_JWT_SECRET", SECRET.to_owned()),
        ("LINKAGE_COMMAND_API_ADDR", command_addr.clone()),
        ("LINKAGE_QUERY_API_ADDR", query_addr.clone()),
        ("LINKAGE_SLA_WATCH_MAX_SLEEP_MS", "300".to_owned()),
    ];
    let mut processes = Processes(vec![linkage("run", &env)]);
    let http = reqwest::Client::new();
    let admin = common::token(SECRET, Role::Admin, None);
    let api = |path: &str| format!("http://{command_addr}/api/v1{path}");

    // Deadlines must not depend on which real years are published: publish test data for this
    // year and the next if they are missing (409 when already published).
    let year = chrono::Utc::now().year();
    for y in [year, year + 1] {
        let (status, body) = send(
            &http,
            reqwest::Method::POST,
            &api("/calendar/years"),
            &admin,
            Some(json!({"year": y, "holidays": [format!("{y}-01-01")], "source": "test data"})),
        )
        .await;
        assert!(status == 201 || status == 409, "{status} {body}");
    }
    let policy = json!({
        "scope": {"channel": "110"},
        "policy": {
            "contact_minutes": 1, "feedback_working_days": 1, "resolution_working_days": 10,
            "rework_working_days": 5, "max_extensions": 2, "max_extension_working_days": 10,
            "supervision_working_days": 3
        },
        "reason": "test: a one-minute contact window"
    });
    let (status, body) = send(
        &http,
        reqwest::Method::POST,
        &api("/sla-policies"),
        &admin,
        Some(policy),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Two more watchers, started once the schema exists.
    processes.0.push(linkage("sla-watcher", &env));
    processes.0.push(linkage("sla-watcher", &env));

    let dispatcher = common::token(SECRET, Role::Dispatcher, None);
    let handler = common::token(SECRET, Role::Handler, Some("approvals"));
    let mut appeals = Vec::new();
    for _ in 0..3 {
        let (status, filed) = send(
            &http,
            reqwest::Method::POST,
            &api("/appeals"),
            &dispatcher,
            Some(json!({
                "channel": "110",
                "filer": {"kind": "enterprise", "name": "某某科技有限公司", "phone": "13800130000"},
                "category": "approval_delay",
                "town": "高新园区",
                "description": "施工许可审批超过承诺时限。"
            })),
        )
        .await;
        assert_eq!(status, 201, "{filed}");
        let id = filed["appeal_id"].as_str().unwrap().to_owned();
        let (status, assigned) = send(
            &http,
            reqwest::Method::POST,
            &api(&format!("/appeals/{id}/assign")),
            &dispatcher,
            Some(json!({"lead": "approvals"})),
        )
        .await;
        assert_eq!(status, 200, "{assigned}");
        appeals.push(id);
    }
    let due: chrono::DateTime<chrono::Utc> = {
        let payload: Value = sqlx::query_scalar(
            "SELECT payload FROM events WHERE aggregate_id = $1 AND event_type = 'AppealAssigned'",
        )
        .bind(&appeals[0])
        .fetch_one(&db.pool)
        .await
        .unwrap();
        let label = payload["policy"]["label"].as_str().unwrap_or_default();
        assert!(label.starts_with("channel=110,category=*@v"), "{payload}");
        assert_eq!(
            payload["policy"]["terms"]["contact_minutes"], 1,
            "{payload}"
        );
        payload["deadlines"]["contact_due"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    // The third appeal is contacted in time.
    let (status, body) = send(
        &http,
        reqwest::Method::POST,
        &api(&format!("/appeals/{}/contact", appeals[2])),
        &handler,
        Some(json!({"method": "phone"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Kill one standalone watcher just after the deadline, while the watchers race.
    let until_due = (due - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(until_due + Duration::from_millis(20)).await;
    let mut killed = processes.0.pop().expect("a watcher");
    killed.kill().expect("SIGKILL a watcher");
    let _ = killed.wait();

    let deadline = Instant::now() + Duration::from_secs(60);
    while missed(&db, &appeals[0]).await < 1 || missed(&db, &appeals[1]).await < 1 {
        assert!(
            Instant::now() < deadline,
            "the misses were not recorded in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the surviving watchers look a few more times: nothing more may be recorded.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(missed(&db, &appeals[0]).await, 1);
    assert_eq!(missed(&db, &appeals[1]).await, 1);
    assert_eq!(missed(&db, &appeals[2]).await, 0);

    // The query API shows both missed contacts red, and the contacted appeal not at all.
    let analyst = common::token(SECRET, Role::Analyst, None);
    let alerts_url = format!("http://{query_addr}/api/v1/alerts?light=red");
    let deadline = Instant::now() + Duration::from_secs(30);
    let alerts = loop {
        let (status, alerts) = send(&http, reqwest::Method::GET, &alerts_url, &analyst, None).await;
        assert_eq!(status, 200, "{alerts}");
        if alerts["lights"]["red"] == 2 || Instant::now() > deadline {
            break alerts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(alerts["lights"]["red"], 2, "{alerts}");
    let red: Vec<(&str, &str)> = alerts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["appeal_id"].as_str().unwrap(),
                i["deadline"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(red.contains(&(appeals[0].as_str(), "contact")), "{alerts}");
    assert!(red.contains(&(appeals[1].as_str(), "contact")), "{alerts}");
    // The ledger row's own light (the Rust rule) agrees with the alert (the SQL rule).
    let (_, detail) = send(
        &http,
        reqwest::Method::GET,
        &format!("http://{query_addr}/api/v1/appeals/{}", appeals[0]),
        &analyst,
        None,
    )
    .await;
    assert_eq!(detail["appeal"]["lights"]["contact"], "red", "{detail}");
    assert_eq!(
        detail["appeal"]["missed_in_force"],
        json!(["contact"]),
        "{detail}"
    );

    drop(processes);
    common::test_bus(&prefix).await.delete_stream().await.ok();
}
