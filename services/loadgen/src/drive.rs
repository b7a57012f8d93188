//! Commands over HTTP: many concurrent callers playing appeal scripts against the command API,
//! closed-loop (each client sends its next command when the previous answered: the most the
//! system does) or open-loop (commands start on a fixed schedule whatever the answers, so a slow
//! answer does not hide later ones: latency is counted from the scheduled instant).
//!
//! A sample of commands is followed by a *lag probe*: `GET /api/v1/appeals/{id}?min_position=N`
//! on the query API, which answers once the ledger holds the command's last event (the query API
//! looks every 50 ms, up to 5 s). The lag is the time from the command's answer to that read.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use linkage_auth::{Role, TokenKeys};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::lifecycle::{self, Actor, Rng, Script, Timeline};
use crate::stats::{self, Latency};

/// How commands are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// `clients` callers, each sending as soon as its previous command answered.
    Closed { clients: usize },
    /// Commands start at `rate` per second on a fixed schedule.
    Open { rate: f64 },
}

#[derive(Debug, Clone)]
pub struct DriveConfig {
    pub command_url: String,
    pub query_url: String,
    pub keys: Arc<TokenKeys>,
    pub pace: Pace,
    /// Commands sent before measuring starts (connections warm, caches filled).
    pub warmup: Duration,
    /// How long the measured part lasts.
    pub duration: Duration,
    /// One command in this many is followed by a lag probe (0: none).
    pub lag_every: u64,
    pub seed: u64,
    /// Open-loop only: commands in flight beyond which a scheduled command is counted as
    /// missed instead of sent (the system is saturated).
    pub max_in_flight: usize,
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct DriveReport {
    pub pace: String,
    pub clients: Option<usize>,
    pub target_rate: Option<f64>,
    pub measured_secs: f64,
    /// Commands answered 200/201 while measuring.
    pub commands_ok: u64,
    pub commands_per_sec: f64,
    /// Appeals filed while measuring.
    pub appeals_filed: u64,
    pub latency: Latency,
    /// Per command name.
    pub latency_by_command: BTreeMap<String, Latency>,
    /// Failed commands while measuring, by "status command" (e.g. "409 close").
    pub errors: BTreeMap<String, u64>,
    /// Open-loop: scheduled commands not sent because too many were in flight.
    pub missed_schedule: u64,
    /// Command answered → the query API shows it.
    pub lag: Latency,
    pub lag_probes: u64,
    /// Probes still stale after the query API's 5 s wait.
    pub lag_stale: u64,
    pub lag_errors: u64,
}

/// One appeal on its way through its script.
#[derive(Debug)]
struct InFlight {
    appeal_id: Option<Uuid>,
    script: Script,
    next: usize,
}

#[derive(Debug)]
struct Tokens {
    dispatcher: String,
    supervisor: String,
    evaluator: String,
    analyst: String,
    handlers: HashMap<&'static str, String>,
}

impl Tokens {
    fn mint(keys: &TokenKeys) -> Result<Self> {
        let now = chrono::Utc::now();
        let ttl = chrono::Duration::hours(2);
        let issue = |role: Role, dept: Option<&str>| -> Result<String> {
            let dept = dept
                .map(|d| {
                    d.parse()
                        .map_err(|e| anyhow::anyhow!("department {d}: {e}"))
                })
                .transpose()?;
            let sub = format!("loadgen-{role}");
            Ok(keys.issue(&sub, role, dept, now, ttl)?)
        };
        let mut handlers = HashMap::new();
        for dept in lifecycle::DEPARTMENTS {
            handlers.insert(*dept, issue(Role::Handler, Some(dept))?);
        }
        Ok(Self {
            dispatcher: issue(Role::Dispatcher, None)?,
            supervisor: issue(Role::Supervisor, None)?,
            evaluator: issue(Role::Evaluator, None)?,
            analyst: issue(Role::Analyst, None)?,
            handlers,
        })
    }

    fn of(&self, actor: &Actor) -> Result<&str> {
        Ok(match actor {
            Actor::Dispatcher => &self.dispatcher,
            Actor::Supervisor => &self.supervisor,
            Actor::Evaluator => &self.evaluator,
            Actor::Handler(dept) => self
                .handlers
                .get(dept)
                .with_context(|| format!("no token for department {dept}"))?,
            Actor::Watcher => bail!("live scripts have no SLA watcher steps"),
        })
    }
}

#[derive(Debug)]
struct Recorder {
    latency: Histogram<u64>,
    by_command: HashMap<&'static str, Histogram<u64>>,
    errors: BTreeMap<String, u64>,
    ok: u64,
    filed: u64,
    missed_schedule: u64,
    lag: Histogram<u64>,
    lag_probes: u64,
    lag_stale: u64,
    lag_errors: u64,
}

struct Shared {
    config: DriveConfig,
    client: reqwest::Client,
    tokens: Tokens,
    ready: Mutex<VecDeque<InFlight>>,
    rng: Mutex<Rng>,
    last_filed: Mutex<Option<Uuid>>,
    recorder: Mutex<Recorder>,
    measuring: AtomicBool,
    commands_sent: AtomicUsize,
    in_flight: AtomicUsize,
    probes: Mutex<tokio::task::JoinSet<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub async fn drive(config: DriveConfig) -> Result<DriveReport> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let shared = Arc::new(Shared {
        tokens: Tokens::mint(&config.keys)?,
        rng: Mutex::new(Rng::new(config.seed)),
        config,
        client,
        ready: Mutex::new(VecDeque::new()),
        last_filed: Mutex::new(None),
        recorder: Mutex::new(Recorder {
            latency: stats::histogram(),
            by_command: HashMap::new(),
            errors: BTreeMap::new(),
            ok: 0,
            filed: 0,
            missed_schedule: 0,
            lag: stats::histogram(),
            lag_probes: 0,
            lag_stale: 0,
            lag_errors: 0,
        }),
        measuring: AtomicBool::new(false),
        commands_sent: AtomicUsize::new(0),
        in_flight: AtomicUsize::new(0),
        probes: Mutex::new(tokio::task::JoinSet::new()),
    });
    let config = &shared.config;
    let started = Instant::now();
    let measure_from = started + config.warmup;
    let end = measure_from + config.duration;
    {
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_from.into()).await;
            shared.measuring.store(true, Ordering::Relaxed);
        });
    }
    match config.pace {
        Pace::Closed { clients } => {
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..clients {
                let shared = shared.clone();
                workers.spawn(async move {
                    while Instant::now() < end {
                        let job = shared.next_job();
                        shared.run(job, Instant::now()).await;
                    }
                });
            }
            while workers.join_next().await.is_some() {}
        }
        Pace::Open { rate } => {
            if rate <= 0.0 {
                bail!("the open-loop rate must be positive");
            }
            let mut tasks = tokio::task::JoinSet::new();
            let period = Duration::from_secs_f64(1.0 / rate);
            let mut i: u32 = 0;
            loop {
                let at = started + period * i;
                if at >= end {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                i += 1;
                if shared.in_flight.load(Ordering::Relaxed) >= config.max_in_flight {
                    if shared.measuring.load(Ordering::Relaxed) {
                        lock(&shared.recorder).missed_schedule += 1;
                    }
                    continue;
                }
                let job = shared.next_job();
                let shared = shared.clone();
                tasks.spawn(async move { shared.run(job, at).await });
                // Reap finished tasks so the set stays small.
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        }
    }
    let measured_secs = config.duration.as_secs_f64();
    // Let the last lag probes finish.
    let mut probes = std::mem::take(&mut *lock(&shared.probes));
    while probes.join_next().await.is_some() {}

    let r = lock(&shared.recorder);
    let (pace, clients, target_rate) = match config.pace {
        Pace::Closed { clients } => ("closed".to_owned(), Some(clients), None),
        Pace::Open { rate } => ("open".to_owned(), None, Some(rate)),
    };
    Ok(DriveReport {
        pace,
        clients,
        target_rate,
        measured_secs,
        commands_ok: r.ok,
        commands_per_sec: r.ok as f64 / measured_secs,
        appeals_filed: r.filed,
        latency: Latency::of(&r.latency),
        latency_by_command: r
            .by_command
            .iter()
            .map(|(k, h)| ((*k).to_owned(), Latency::of(h)))
            .collect(),
        errors: r.errors.clone(),
        missed_schedule: r.missed_schedule,
        lag: Latency::of(&r.lag),
        lag_probes: r.lag_probes,
        lag_stale: r.lag_stale,
        lag_errors: r.lag_errors,
    })
}

impl Shared {
    /// The oldest appeal waiting for its next command, or a new appeal.
    fn next_job(&self) -> InFlight {
        if let Some(job) = lock(&self.ready).pop_front() {
            return job;
        }
        let original = *lock(&self.last_filed);
        let script = lifecycle::draw(&mut lock(&self.rng), original, Timeline::Live);
        InFlight {
            appeal_id: None,
            script,
            next: 0,
        }
    }

    /// Sends the job's next command; latency counts from `since` (the send, or the scheduled
    /// instant in open loop).
    async fn run(self: &Arc<Self>, mut job: InFlight, since: Instant) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let outcome = self.send(&job).await;
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let answered = Instant::now();
        let step = &job.script.steps[job.next];
        let measuring = self.measuring.load(Ordering::Relaxed);
        match outcome {
            Ok((appeal_id, last_position)) => {
                if measuring {
                    let mut r = lock(&self.recorder);
                    r.ok += 1;
                    stats::record(&mut r.latency, answered - since);
                    let h = r
                        .by_command
                        .entry(step.command)
                        .or_insert_with(stats::histogram);
                    stats::record(h, answered - since);
                    if step.command == "file" {
                        r.filed += 1;
                    }
                }
                if step.command == "file" {
                    *lock(&self.last_filed) = Some(appeal_id);
                }
                job.appeal_id = Some(appeal_id);
                let n = self.commands_sent.fetch_add(1, Ordering::Relaxed) as u64;
                if measuring && self.config.lag_every > 0 && n.is_multiple_of(self.config.lag_every)
                {
                    let me = self.clone();
                    lock(&self.probes).spawn(async move {
                        me.probe(appeal_id, last_position, answered).await;
                    });
                }
                job.next += 1;
                if job.next < job.script.steps.len() {
                    lock(&self.ready).push_back(job);
                }
            }
            Err(failure) => {
                // The appeal cannot go on consistently: drop it.
                if measuring {
                    *lock(&self.recorder).errors.entry(failure).or_default() += 1;
                }
            }
        }
    }

    /// One command; `Ok` with the appeal id and the last event's global position, or `Err`
    /// naming the failure.
    async fn send(&self, job: &InFlight) -> Result<(Uuid, i64), String> {
        let step = &job.script.steps[job.next];
        let base = &self.config.command_url;
        let url = match (step.command, job.appeal_id) {
            ("file", _) => format!("{base}/api/v1/appeals"),
            (command, Some(id)) => format!("{base}/api/v1/appeals/{id}/{command}"),
            (command, None) => return Err(format!("--- {command} before filing")),
        };
        let token = self
            .tokens
            .of(&step.actor)
            .map_err(|e| format!("--- {}: {e}", step.command))?;
        let response = self
            .client
            .post(url)
            .bearer_auth(token)
            .json(&step.body)
            .send()
            .await
            .map_err(|e| format!("io {}: {}", step.command, io_kind(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{} {}", status.as_u16(), step.command));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|_| format!("bad-body {}", step.command))?;
        let appeal_id = body["appeal_id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| format!("no-appeal-id {}", step.command))?;
        let last_position = body["events"]
            .as_array()
            .and_then(|events| {
                events
                    .iter()
                    .filter_map(|e| e["global_position"].as_i64())
                    .max()
            })
            .unwrap_or(0);
        Ok((appeal_id, last_position))
    }

    async fn probe(&self, appeal_id: Uuid, position: i64, answered: Instant) {
        let url = format!(
            "{}/api/v1/appeals/{appeal_id}?min_position={position}",
            self.config.query_url
        );
        let result = async {
            let response = self
                .client
                .get(url)
                .bearer_auth(&self.tokens.analyst)
                .send()
                .await?
                .error_for_status()?;
            response.json::<Value>().await
        }
        .await;
        let seen = Instant::now();
        let mut r = lock(&self.recorder);
        r.lag_probes += 1;
        match result {
            Ok(body) if body["stale"] == Value::Bool(false) => {
                stats::record(&mut r.lag, seen - answered);
            }
            Ok(_) => r.lag_stale += 1,
            Err(_) => r.lag_errors += 1,
        }
    }
}

fn io_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "other"
    }
}
