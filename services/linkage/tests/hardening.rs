//! Hardening settings of the binary (docs/operations.md): the event store's pools commit
//! synchronously whatever the database's default, and the command API's per-client rate limit
//! answers 429 with `Retry-After`.

// The bus helpers are for the spine tests; this one needs no stream.
#[allow(dead_code)]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use linkage_auth::Role;
use linkage_store::testing::TestDatabase;

const SECRET: &str = "linkage-hardening-test-secret-0123456789";

#[tokio::test]
async fn event_store_pools_commit_synchronously_even_when_the_database_default_is_off() {
    let db = TestDatabase::new().await.expect("test database");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {} SET synchronous_commit = off",
        linkage_store::db::quote_ident(&db.name)
    )))
    .execute(&db.pool)
    .await
    .expect("alter database");
    // A plain connection now gets the database's default…
    let plain: String = {
        use sqlx::Connection;
        let options: sqlx::postgres::PgConnectOptions = db.url.parse().expect("url");
        let mut c = sqlx::PgConnection::connect_with(&options)
            .await
            .expect("connect");
        sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&mut c)
            .await
            .expect("show")
    };
    assert_eq!(plain, "off");
    // …and Linkage's pool does not.
    let pool = linkage_store::db::connect(&db.url, 2, Duration::from_secs(5))
        .await
        .expect("pool");
    let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&pool)
        .await
        .expect("show");
    assert_eq!(setting, "on");
}

struct Api(Child);

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_command_api_limits_each_client_and_answers_429_with_retry_after() {
    let db = TestDatabase::new().await.expect("test database");
    let addr = format!("127.0.0.1:{}", common::free_port());
    let _api = Api(Command::new(env!("CARGO_BIN_EXE_linkage"))
        .arg("command-api")
        .env("DATABASE_URL", &db.url)
        .env("NATS_URL", common::nats_url())
        .env("LINKAGE_JWT_SECRET", SECRET)
        .env("LINKAGE_COMMAND_API_ADDR", &addr)
        .env("LINKAGE_CALENDAR", "weekdays")
        // One request a minute, bursts of 2: the third request in a row is refused.
        .env("LINKAGE_RATE_LIMIT_PER_SECOND", "0.0166")
        .env("LINKAGE_RATE_LIMIT_BURST", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn linkage command-api"));
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the command API did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let analyst = common::token(SECRET, Role::Analyst, None);
    let evaluator = common::token(SECRET, Role::Evaluator, None);
    let post = |token: &str| {
        http.post(format!("http://{addr}/api/v1/appeals"))
            .bearer_auth(token)
            .json(&serde_json::json!({}))
            .send()
    };
    // Refused (an empty body, and an analyst may not file), but counted: the limit comes
    // before everything else.
    for _ in 0..2 {
        assert_eq!(post(&analyst).await.expect("answer").status(), 422);
    }
    let limited = post(&analyst).await.expect("answer");
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=61).contains(&retry_after), "{retry_after}");
    assert_eq!(
        limited.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = limited.json().await.expect("json");
    assert_eq!(body["type"], "/problems/rate-limited");
    assert_eq!(body["status"], 429);

    // Another subject has a bucket of its own; probes are never limited.
    assert_eq!(post(&evaluator).await.expect("answer").status(), 422);
    for _ in 0..5 {
        let health = http
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .expect("answer");
        assert_eq!(health.status(), 200);
    }
    // Without a token the client is its address: the first two pass the limit (and are 401).
    let anonymous = || {
        http.post(format!("http://{addr}/api/v1/appeals"))
            .json(&serde_json::json!({}))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(anonymous().await.expect("answer").status(), 401);
    }
    assert_eq!(anonymous().await.expect("answer").status(), 429);
}
