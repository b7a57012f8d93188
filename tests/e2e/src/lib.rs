//! Test harness: `spawn_app()` starts the real command API on port 0 over a fresh database of
//! its own, with a pinned clock, and offers a small HTTP client speaking its language.
//! `browser` drives headless Chromium for the dashboard's test.

pub mod browser;

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use linkage_auth::{Role, TokenKeys};
use linkage_command_api::{AppState, HttpConfig};
use linkage_domain::AppealServices;
use linkage_domain::clock::FixedClock;
use linkage_store::PgEventStore;
use linkage_store::rules::LiveRules;
use linkage_store::testing::TestDatabase;
use serde_json::Value;
use tokio::sync::oneshot;

/// The HS256 secret test tokens are signed with.
pub const TEST_SECRET: &[u8] = b"linkage-e2e-test-secret-0123456789abcdef";

/// Monday 2026-03-02 09:00 in Asia/Shanghai: the instant the test clock starts at.
pub fn monday_morning() -> DateTime<Utc> {
    "2026-03-02T01:00:00Z".parse().expect("valid instant")
}

/// A running command API.
#[derive(Debug)]
pub struct TestApp {
    pub addr: SocketAddr,
    pub db: TestDatabase,
    pub clock: Arc<FixedClock>,
    pub keys: TokenKeys,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
}

/// An HTTP answer, with the body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn content_type(&self) -> &str {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts a problem+json answer with this status and problem type slug.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, problem: &str) {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        assert_eq!(self.content_type(), "application/problem+json");
        assert_eq!(
            self.body["type"],
            format!("/problems/{problem}"),
            "{}",
            self.body
        );
        assert_eq!(self.body["status"], status);
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
}

/// Starts the command API on 127.0.0.1:0 over a fresh, migrated database.
pub async fn spawn_app() -> TestApp {
    let db = TestDatabase::new().await.expect("test database");
    let clock = Arc::new(FixedClock::new(monday_morning()));
    let keys = TokenKeys::hs256(TEST_SECRET).expect("test key");
    let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let nats_addr = linkage_command_api::health::nats_addr(&nats_url).expect("NATS_URL");
    let rules = LiveRules::load(db.pool.clone(), clock.clone())
        .await
        .expect("SLA rules");
    let state = Arc::new(AppState {
        pool: db.pool.clone(),
        store: PgEventStore::new(db.pool.clone()),
        services: AppealServices {
            clock: clock.clone(),
            rules: rules.clone(),
        },
        rules,
        keys: keys.clone(),
        nats_addr,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = oneshot::channel();
    let app = linkage_command_api::router(state, &HttpConfig::default());
    tokio::spawn(linkage_command_api::serve(listener, app, async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        db,
        clock,
        keys,
        http: reqwest::Client::new(),
        shutdown: Some(tx),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A valid token for `role` (and department, for handlers).
    pub fn token(&self, role: Role, dept: Option<&str>) -> String {
        self.keys
            .issue(
                &format!("{role}-{}", dept.unwrap_or("district")),
                role,
                dept.map(|d| d.parse().expect("department id")),
                Utc::now(),
                chrono::Duration::hours(1),
            )
            .expect("token")
    }

    /// POSTs JSON with a bearer token and optional idempotency key.
    pub async fn post(&self, path: &str, token: &str, body: &Value, key: Option<&str>) -> Answer {
        let mut req = self.http.post(self.url(path)).bearer_auth(token).json(body);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        Self::answer(req.send().await.expect("request")).await
    }

    pub async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Files a sample appeal as a dispatcher; returns its id.
    pub async fn file_appeal(&self) -> String {
        let a = self
            .post(
                "/api/v1/appeals",
                &self.token(Role::Dispatcher, None),
                &sample_appeal(),
                None,
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        a.body["appeal_id"].as_str().expect("appeal id").to_owned()
    }

    /// Sends the command `name` on appeal `id`; asserts 200.
    pub async fn command_ok(&self, id: &str, name: &str, token: &str, body: Value) -> Answer {
        let a = self
            .post(&format!("/api/v1/appeals/{id}/{name}"), token, &body, None)
            .await;
        assert_eq!(a.status, 200, "{name}: {}", a.body);
        a
    }

    /// Number of events stored for the appeal.
    pub async fn event_count(&self, id: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
            .bind(id)
            .fetch_one(&self.db.pool)
            .await
            .expect("count events")
    }

    /// Starts the query API over this app's database with the same token keys (no projector:
    /// tests fill the read models themselves).
    pub async fn spawn_query_api(&self) -> SocketAddr {
        linkage_projector::ensure_schema(&self.db.pool, &linkage_projector::all_projections())
            .await
            .expect("read model schema");
        let state = Arc::new(linkage_query_api::QueryState {
            pool: self.db.pool.clone(),
            keys: self.keys.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = linkage_query_api::router(state, &linkage_query_api::QueryConfig::default());
        tokio::spawn(linkage_query_api::serve(
            listener,
            router,
            std::future::pending(),
        ));
        addr
    }

    /// Events of appeals (not counting the SLA rules stream every database starts with).
    pub async fn appeal_events(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'appeal'")
            .fetch_one(&self.db.pool)
            .await
            .expect("count appeal events")
    }

    pub async fn total_events(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.db.pool)
            .await
            .expect("count events")
    }
}

/// A realistic appeal: an enterprise complaining about repeated inspections.
pub fn sample_appeal() -> Value {
    serde_json::json!({
        "channel": "12345",
        "filer": {
            "kind": "enterprise",
            "name": "杭州某某精密机械有限公司",
            "contact_person": "王经理",
            "phone": "13800130000"
        },
        "category": "arbitrary_inspections",
        "town": "经济开发区",
        "description": "同一周内三个部门先后上门检查消防和环保，影响正常生产。",
        "complained_unit": "某街道综合执法队"
    })
}

/// A Beijing-time instant, `YYYY-MM-DD HH:MM`.
pub fn beijing(s: &str) -> DateTime<Utc> {
    use chrono::TimeZone;
    let local = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("test instant");
    linkage_domain::calendar::TZ
        .from_local_datetime(&local)
        .single()
        .expect("one instant")
        .with_timezone(&Utc)
}

/// The read side in process, as production runs it: the relay and the projector (every
/// projection) on a NATS stream prefix of the test's own.
pub struct ReadSide {
    pub bus: linkage_bus::Bus,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    /// Starts the relay and the projector on this app's database; `name` tags the relay.
    pub async fn spawn_read_side(&self, name: &str) -> ReadSide {
        use std::time::Duration;
        let pool = self.db.pool.clone();
        let bus = linkage_bus::Bus::connect(linkage_bus::BusConfig {
            url: std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
            prefix: format!("t{}", uuid::Uuid::new_v4().simple()),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
        })
        .await
        .expect("NATS");
        linkage_projector::ensure_schema(&pool, &linkage_projector::all_projections())
            .await
            .expect("read model schema");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let relay = tokio::spawn(linkage_relay::run(
            pool.clone(),
            bus.clone(),
            linkage_relay::RelayConfig {
                poll_interval: Duration::from_millis(20),
                instance: format!("{name}-test-relay"),
                ..Default::default()
            },
            until_stopped(),
        ));
        let projector = tokio::spawn(linkage_projector::run(
            pool,
            bus.clone(),
            linkage_projector::all_projections(),
            linkage_projector::RunnerConfig {
                batch_size: 100,
                fetch_wait: Duration::from_millis(50),
                ..Default::default()
            },
            until_stopped(),
        ));
        let tasks = vec![
            tokio::spawn(async move { relay.await.expect("relay task").expect("relay") }),
            tokio::spawn(
                async move { projector.await.expect("projector task").expect("projector") },
            ),
        ];
        ReadSide { bus, stop, tasks }
    }
}

impl std::fmt::Debug for ReadSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadSide")
            .field("roles", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl ReadSide {
    /// Stops the relay and the projector and waits for both (a role's error fails the test).
    pub async fn stop(self) -> linkage_bus::Bus {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await.expect("task");
        }
        self.bus
    }
}
