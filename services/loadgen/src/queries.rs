//! Query latency: closed-loop readers on the query API over the seeded history, a mix of the
//! ledger lists analysts and supervisors use, the next page of a list, and appeal details by
//! tracking number, plus any extra routes given (rates, rankings where they exist).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use linkage_auth::{Role, TokenKeys};
use serde::Serialize;
use serde_json::Value;

use crate::lifecycle::{self, Rng};
use crate::stats::{self, Latency};

#[derive(Debug, Clone)]
pub struct QueryConfig {
    pub query_url: String,
    pub keys: Arc<TokenKeys>,
    pub clients: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub seed: u64,
    /// Extra `(name, path and query)` routes measured alongside the ledger mix.
    pub extra: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueryReport {
    pub clients: usize,
    pub measured_secs: f64,
    pub queries_ok: u64,
    pub queries_per_sec: f64,
    pub latency: Latency,
    pub by_kind: BTreeMap<String, Latency>,
    pub errors: BTreeMap<String, u64>,
}

/// The ledger-shaped kinds (name, query string built from the generator).
const LEDGER_KINDS: &[&str] = &[
    "ledger_department_status",
    "ledger_channel_month",
    "ledger_overdue",
    "ledger_town_category_due",
    "ledger_latest",
    "ledger_next_page",
    "appeal_by_tracking_number",
];

struct State {
    h: Histogram<u64>,
    by_kind: BTreeMap<String, Histogram<u64>>,
    errors: BTreeMap<String, u64>,
    ok: u64,
    /// Next pages and tracking numbers seen in answers, for the follow-up kinds.
    next_pages: Vec<String>,
    tracking_numbers: Vec<String>,
}

pub async fn run(config: QueryConfig) -> Result<QueryReport> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let token = config.keys.issue(
        "loadgen-analyst",
        Role::Analyst,
        None,
        chrono::Utc::now(),
        chrono::Duration::hours(2),
    )?;
    let state = Arc::new(Mutex::new(State {
        h: stats::histogram(),
        by_kind: BTreeMap::new(),
        errors: BTreeMap::new(),
        ok: 0,
        next_pages: Vec::new(),
        tracking_numbers: Vec::new(),
    }));
    let started = Instant::now();
    let measure_from = started + config.warmup;
    let end = measure_from + config.duration;
    let kinds: Vec<String> = LEDGER_KINDS
        .iter()
        .map(|k| (*k).to_owned())
        .chain(config.extra.iter().map(|(name, _)| name.clone()))
        .collect();
    let mut workers = tokio::task::JoinSet::new();
    for c in 0..config.clients.max(1) {
        let (client, token, state, config, kinds) = (
            client.clone(),
            token.clone(),
            state.clone(),
            config.clone(),
            kinds.clone(),
        );
        workers.spawn(async move {
            let mut rng = Rng::new(config.seed ^ (c as u64 + 1).wrapping_mul(0x9E37_79B9));
            let mut i = c;
            while Instant::now() < end {
                let kind = &kinds[i % kinds.len()];
                i += 1;
                let Some(path) = path_for(kind, &mut rng, &state, &config) else {
                    continue;
                };
                let sent = Instant::now();
                let result = async {
                    let response = client
                        .get(format!("{}{path}", config.query_url))
                        .bearer_auth(&token)
                        .send()
                        .await?;
                    let status = response.status();
                    Ok::<_, reqwest::Error>((status, response.json::<Value>().await.ok()))
                }
                .await;
                let took = sent.elapsed();
                let measuring = Instant::now() >= measure_from;
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                match result {
                    Ok((status, body)) if status.is_success() => {
                        if let Some(body) = body {
                            remember(&mut s, &body, &path, &mut rng);
                        }
                        if measuring {
                            s.ok += 1;
                            stats::record(&mut s.h, took);
                            let h = s
                                .by_kind
                                .entry(kind.clone())
                                .or_insert_with(stats::histogram);
                            stats::record(h, took);
                        }
                    }
                    Ok((status, _)) => {
                        *s.errors
                            .entry(format!("{} {kind}", status.as_u16()))
                            .or_default() += 1;
                    }
                    Err(_) => *s.errors.entry(format!("io {kind}")).or_default() += 1,
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let s = state.lock().unwrap_or_else(|p| p.into_inner());
    let measured_secs = config.duration.as_secs_f64();
    Ok(QueryReport {
        clients: config.clients,
        measured_secs,
        queries_ok: s.ok,
        queries_per_sec: s.ok as f64 / measured_secs,
        latency: Latency::of(&s.h),
        by_kind: s
            .by_kind
            .iter()
            .map(|(k, h)| (k.clone(), Latency::of(h)))
            .collect(),
        errors: s.errors.clone(),
    })
}

/// Keeps a bounded sample of next pages (the list's own path and its cursor: a cursor is only
/// valid with its list's sort) and tracking numbers from an answer.
fn remember(s: &mut State, body: &Value, path: &str, rng: &mut Rng) {
    const KEEP: usize = 1000;
    let mut keep = |list: &mut Vec<String>, v: &str| {
        if list.len() < KEEP {
            list.push(v.to_owned());
        } else {
            let i = rng.below(KEEP as u64) as usize;
            list[i] = v.to_owned();
        }
    };
    if let (Some(cursor), false) = (body["next_cursor"].as_str(), path.contains("cursor=")) {
        keep(&mut s.next_pages, &format!("{path}&cursor={cursor}"));
    }
    if let Some(items) = body["items"].as_array() {
        for item in items.iter().take(3) {
            if let Some(tn) = item["tracking_number"].as_str() {
                keep(&mut s.tracking_numbers, tn);
            }
        }
    }
}

fn path_for(
    kind: &str,
    rng: &mut Rng,
    state: &Mutex<State>,
    config: &QueryConfig,
) -> Option<String> {
    Some(match kind {
        "ledger_department_status" => format!(
            "/api/v1/ledger?department={}&status={}&limit=50",
            rng.pick(lifecycle::DEPARTMENTS),
            rng.pick(&["assigned", "resolved", "closed", "return_visited"]),
        ),
        "ledger_channel_month" => {
            // Seeded filings run from 2025-01 to 2026-08.
            let k = rng.below(20) as u32;
            let (y, m) = (2025 + (k / 12) as i32, k % 12 + 1);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            format!(
                "/api/v1/ledger?channel={}&filed_from={y}-{m:02}-01&filed_to={ny}-{nm:02}-01&limit=50",
                rng.pick(&["110", "12345", "online"]),
            )
        }
        "ledger_overdue" => format!(
            "/api/v1/ledger?overdue=true&department={}&limit=50",
            rng.pick(lifecycle::DEPARTMENTS)
        ),
        "ledger_town_category_due" => format!(
            "/api/v1/ledger?town={}&category={}&sort=resolution_due&limit=50",
            rng.pick(lifecycle::TOWNS),
            rng.pick(lifecycle::CATEGORIES),
        ),
        "ledger_latest" => "/api/v1/ledger?sort=-filed_at&limit=50".to_owned(),
        "ledger_next_page" => {
            let s = state.lock().unwrap_or_else(|p| p.into_inner());
            if s.next_pages.is_empty() {
                return None;
            }
            s.next_pages[rng.below(s.next_pages.len() as u64) as usize].clone()
        }
        "appeal_by_tracking_number" => {
            let s = state.lock().unwrap_or_else(|p| p.into_inner());
            if s.tracking_numbers.is_empty() {
                return None;
            }
            let tn = &s.tracking_numbers[rng.below(s.tracking_numbers.len() as u64) as usize];
            format!("/api/v1/appeals/{tn}")
        }
        other => config
            .extra
            .iter()
            .find(|(name, _)| name == other)
            .map(|(_, path)| path.clone())?,
    })
}
