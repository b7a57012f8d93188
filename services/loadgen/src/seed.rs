//! Seeded history: many appeals' lives, decided by the real `Appeal` aggregate in-process (the
//! same scripts as the HTTP driver, at simulated instants), hashed into their chains by the
//! store's own `event_hash`, and written with `COPY` in blocks. Every event is one the command API
//! would have recorded for the same commands at those instants, so the rebuild, the queries and
//! the audit work on real data. Each block is one transaction (the command API writes one per
//! command), which only changes how many events share a `tx_id`.
//!
//! Filings are spread evenly over [`HISTORY_START`, `HISTORY_END`); appeals are written in
//! blocks of consecutive filings, each block's events in the order of their instants.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Datelike, SubsecRound, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use linkage_domain::appeal::*;
use linkage_domain::calendar::{self, WorkingCalendar};
use linkage_domain::clock::FixedClock;
use linkage_domain::sla::SlaPolicy;
use linkage_domain::values::{DepartmentId, TrackingNumber};
use linkage_store::events::encode_event;
use linkage_store::hash::{HashedFields, event_hash};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::lifecycle::{self, Actor, Rng, Step, Timeline};

/// The first filing instant of the seeded history (2025-01-02 09:00 Beijing).
pub const HISTORY_START: &str = "2025-01-02T01:00:00Z";
/// Filings stop here, so every deadline stays inside the calendar's years.
pub const HISTORY_END: &str = "2026-09-01T01:00:00Z";

#[derive(Debug, Clone)]
pub struct SeedConfig {
    pub database_url: String,
    pub appeals: u64,
    /// Appeals per block (one `COPY` transaction each).
    pub block: u64,
    /// Threads deciding and hashing events.
    pub threads: usize,
    pub seed: u64,
    pub calendar: Arc<dyn WorkingCalendar>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeedReport {
    pub appeals: u64,
    pub events: u64,
    pub elapsed_secs: f64,
    pub events_per_sec: f64,
    /// Mean size of the events' payload + metadata JSON (what the envelope carries).
    pub mean_event_json_bytes: f64,
    pub events_by_type: std::collections::BTreeMap<String, u64>,
}

const COPY_EVENTS: &str = "COPY events (aggregate_type, aggregate_id, sequence, event_type, \
     event_version, payload, metadata, event_id, recorded_at, prev_hash, hash) \
     FROM STDIN WITH (FORMAT csv)";

/// What a COPY lane wrote.
#[derive(Default)]
struct Totals {
    events: u64,
    json_bytes: u64,
    by_type: HashMap<String, u64>,
}

/// One block: CSV rows ready for `COPY`, and what they hold.
struct Block {
    csv: Vec<u8>,
    events: u64,
    json_bytes: u64,
    by_type: HashMap<String, u64>,
}

pub async fn seed(config: SeedConfig) -> Result<SeedReport> {
    let started = Instant::now();
    let start: DateTime<Utc> = HISTORY_START.parse().context("HISTORY_START")?;
    let end: DateTime<Utc> = HISTORY_END.parse().context("HISTORY_END")?;
    let appeals = config.appeals.max(1);
    let spacing = (end - start) / i32::try_from(appeals).context("too many appeals")?;
    let filed_at = move |i: u64| start + spacing * i as i32;
    let years = YearStarts::new(appeals, filed_at);

    let mut conn = PgConnection::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "connecting to {}",
                linkage_store::db::redact(&config.database_url)
            )
        })?;
    // A fresh database holds only the rules' own streams (calendar, SLA policy), no appeals.
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = $1")
        .bind(Appeal::TYPE)
        .fetch_one(&mut conn)
        .await
        .context("counting existing appeal events")?;
    if existing > 0 {
        bail!("the database already holds {existing} appeal events; seed a fresh one");
    }

    // Each of `threads` lanes decides and hashes every `threads`-th block on a thread of its
    // own and COPYs it on a connection of its own, so Postgres parses and indexes on as many
    // cores as the generators use. Lanes run side by side through time, so the log is nearly
    // chronological.
    let blocks = appeals.div_ceil(config.block);
    let threads = config.threads.max(1);
    let mut lanes = tokio::task::JoinSet::new();
    for t in 0..threads {
        let (tx, mut rx) = mpsc::channel::<Result<Block>>(1);
        let generator_config = config.clone();
        let years = years.clone();
        tokio::task::spawn_blocking(move || {
            let config = generator_config;
            let mut b = t as u64;
            while b < blocks {
                let first = b * config.block;
                let last = (first + config.block).min(appeals);
                let block = futures::executor::block_on(generate_block(
                    &config, first, last, &filed_at, &years,
                ));
                if tx.blocking_send(block).is_err() {
                    return;
                }
                b += threads as u64;
            }
        });
        let url = config.database_url.clone();
        lanes.spawn(async move {
            let mut conn = PgConnection::connect(&url)
                .await
                .context("connecting a COPY lane")?;
            let mut totals = Totals::default();
            while let Some(block) = rx.recv().await {
                let block = block?;
                let mut copy = conn
                    .copy_in_raw(COPY_EVENTS)
                    .await
                    .context("starting COPY into events")?;
                copy.send(block.csv)
                    .await
                    .context("sending a block to COPY")?;
                copy.finish().await.context("finishing a block's COPY")?;
                totals.events += block.events;
                totals.json_bytes += block.json_bytes;
                for (t, n) in block.by_type {
                    *totals.by_type.entry(t).or_default() += n;
                }
                tracing::info!(lane = t, events = totals.events, "seeded a block");
            }
            Ok::<_, anyhow::Error>(totals)
        });
    }

    let mut report = SeedReport {
        appeals,
        events: 0,
        elapsed_secs: 0.0,
        events_per_sec: 0.0,
        mean_event_json_bytes: 0.0,
        events_by_type: Default::default(),
    };
    let mut json_bytes = 0u64;
    while let Some(lane) = lanes.join_next().await {
        let totals = lane.context("a COPY lane panicked")??;
        report.events += totals.events;
        json_bytes += totals.json_bytes;
        for (t, n) in totals.by_type {
            *report.events_by_type.entry(t).or_default() += n;
        }
    }

    // The tracking counters continue after the seeded numbers, as if those were issued.
    for (year, serial) in years.last_serials(appeals) {
        sqlx::query(
            "INSERT INTO tracking_counters (year, last_serial) VALUES ($1, $2) \
             ON CONFLICT (year) DO UPDATE SET last_serial = greatest(tracking_counters.last_serial, $2)",
        )
        .bind(year)
        .bind(serial as i64)
        .execute(&mut conn)
        .await
        .context("setting the tracking counters")?;
    }
    sqlx::query("ANALYZE events")
        .execute(&mut conn)
        .await
        .context("analyzing events")?;
    report.elapsed_secs = started.elapsed().as_secs_f64();
    report.events_per_sec = report.events as f64 / report.elapsed_secs;
    report.mean_event_json_bytes = json_bytes as f64 / report.events.max(1) as f64;
    Ok(report)
}

/// Where each Beijing-time year's filings start, for the per-year tracking serials.
#[derive(Debug, Clone)]
struct YearStarts(Vec<(i32, u64)>);

impl YearStarts {
    fn new(appeals: u64, filed_at: impl Fn(u64) -> DateTime<Utc>) -> Self {
        let year = |i: u64| filed_at(i).with_timezone(&calendar::TZ).year();
        let mut starts = vec![(year(0), 0)];
        // Filing instants increase with the index: find each year's first index by bisection.
        loop {
            let (current, _) = *starts.last().unwrap_or(&(0, 0));
            if year(appeals - 1) == current {
                break;
            }
            let (mut lo, mut hi) = (starts.last().map_or(0, |s| s.1), appeals - 1);
            while lo + 1 < hi {
                let mid = (lo + hi) / 2;
                if year(mid) == current {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            starts.push((year(hi), hi));
        }
        Self(starts)
    }

    fn tracking_number(&self, i: u64) -> TrackingNumber {
        let (year, first) = self
            .0
            .iter()
            .rev()
            .find(|(_, first)| *first <= i)
            .copied()
            .unwrap_or((0, 0));
        TrackingNumber::new(year, i - first + 1)
    }

    /// Each year's last serial once all `appeals` are filed.
    fn last_serials(&self, appeals: u64) -> Vec<(i32, u64)> {
        self.0
            .iter()
            .enumerate()
            .map(|(k, (year, first))| {
                let next = self.0.get(k + 1).map_or(appeals, |n| n.1);
                (*year, next - first)
            })
            .collect()
    }
}

struct Row {
    at: DateTime<Utc>,
    appeal: u64,
    sequence: i64,
    line: String,
}

async fn generate_block(
    config: &SeedConfig,
    first: u64,
    last: u64,
    filed_at: &impl Fn(u64) -> DateTime<Utc>,
    years: &YearStarts,
) -> Result<Block> {
    let clock = Arc::new(FixedClock::new(filed_at(first)));
    let services =
        AppealServices::fixed(clock.clone(), config.calendar.clone(), SlaPolicy::default());
    let mut rows = Vec::new();
    let mut block = Block {
        csv: Vec::new(),
        events: 0,
        json_bytes: 0,
        by_type: HashMap::new(),
    };
    let mut previous: Option<Uuid> = None;
    for i in first..last {
        // Each appeal's draw depends only on the seed and its index, whatever the thread.
        let mut rng = Rng::new(config.seed ^ i.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let script = lifecycle::draw(&mut rng, previous, Timeline::History);
        let mut at = filed_at(i);
        let appeal_id = uuid_at(at);
        let aggregate_id = appeal_id.to_string();
        let mut appeal = Appeal::default();
        let mut sequence = 0i64;
        let mut prev_hash: Option<Vec<u8>> = None;
        for step in &script.steps {
            at += step.after;
            let at = at.trunc_subsecs(6);
            clock.set(at);
            let command = domain_command(step, appeal_id, years.tracking_number(i))?;
            let sink = EventSink::<Appeal>::default();
            appeal
                .handle(command, &services, &sink)
                .await
                .map_err(|e| anyhow!("appeal {i}: {} refused: {e}", step.command))?;
            let metadata = metadata(step, at);
            let metadata_json = serde_json::to_string(&metadata).context("encoding metadata")?;
            for event in sink.collect().await {
                sequence += 1;
                let event_id = uuid_at(at);
                let event_type = event.event_type();
                let event_version = event.event_version();
                let payload = encode_event(&event)?;
                let hash = event_hash(
                    prev_hash.as_deref(),
                    &HashedFields {
                        event_id,
                        aggregate_type: Appeal::TYPE,
                        aggregate_id: &aggregate_id,
                        sequence,
                        event_type: &event_type,
                        event_version: &event_version,
                        payload: &payload,
                        metadata: &metadata,
                        recorded_at: at,
                    },
                );
                let payload_json = serde_json::to_string(&payload).context("encoding payload")?;
                block.json_bytes += (payload_json.len() + metadata_json.len()) as u64;
                *block.by_type.entry(event_type.clone()).or_default() += 1;
                let mut line = String::with_capacity(payload_json.len() + 400);
                let _ = writeln!(
                    line,
                    "{},{aggregate_id},{sequence},{event_type},{event_version},{},{},{event_id},{},{},\\x{}",
                    Appeal::TYPE,
                    csv_quote(&payload_json),
                    csv_quote(&metadata_json),
                    at.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
                    prev_hash
                        .as_ref()
                        .map(|h| format!("\\x{}", hex::encode(h)))
                        .unwrap_or_default(),
                    hex::encode(&hash),
                );
                rows.push(Row {
                    at,
                    appeal: i,
                    sequence,
                    line,
                });
                prev_hash = Some(hash);
            }
        }
        if script.steps.len() > 1 {
            previous = Some(appeal_id);
        }
    }
    rows.sort_by_key(|r| (r.at, r.appeal, r.sequence));
    block.events = rows.len() as u64;
    block.csv.reserve(rows.iter().map(|r| r.line.len()).sum());
    for row in rows {
        block.csv.extend_from_slice(row.line.as_bytes());
    }
    Ok(block)
}

/// A UUIDv7 carrying the instant, as if made then.
fn uuid_at(at: DateTime<Utc>) -> Uuid {
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        at.timestamp() as u64,
        at.timestamp_subsec_nanos(),
    );
    Uuid::new_v7(ts)
}

/// The metadata the command API records: actor, role, department, request and correlation id,
/// command.
fn metadata(step: &Step, at: DateTime<Utc>) -> Value {
    let (role, department) = match &step.actor {
        Actor::Dispatcher => ("dispatcher", ""),
        Actor::Handler(d) => ("handler", *d),
        Actor::Supervisor => ("supervisor", ""),
        Actor::Evaluator => ("evaluator", ""),
        Actor::Watcher => ("admin", ""),
    };
    let request_id = uuid_at(at).to_string();
    json!({
        "actor": format!("seed-{role}"),
        "role": role,
        "department": department,
        "request_id": request_id,
        "correlation_id": request_id,
        "command": step.command,
    })
}

/// The domain command a step's body becomes, as the command API builds it.
fn domain_command(
    step: &Step,
    appeal_id: Uuid,
    tracking_number: TrackingNumber,
) -> Result<AppealCommand> {
    fn body<T: serde::de::DeserializeOwned>(step: &Step) -> Result<T> {
        serde_json::from_value(step.body.clone())
            .with_context(|| format!("the {} body does not parse", step.command))
    }
    let by = || -> Result<DepartmentId> {
        match &step.actor {
            Actor::Handler(d) => d.parse().map_err(|e| anyhow!("department {d}: {e}")),
            other => bail!("{} is sent by a handler, not {other:?}", step.command),
        }
    };
    Ok(match step.command {
        "file" => AppealCommand::File {
            appeal_id,
            tracking_number,
            body: body(step)?,
        },
        "assign" => AppealCommand::Assign(body(step)?),
        "transfer" => AppealCommand::Transfer(body(step)?),
        "decline" => AppealCommand::Decline {
            by: by()?,
            body: body(step)?,
        },
        "contact" => AppealCommand::RecordContact {
            by: by()?,
            body: body(step)?,
        },
        "feedback" => AppealCommand::GiveInitialFeedback {
            by: by()?,
            body: body(step)?,
        },
        "resolve" => AppealCommand::Resolve {
            by: by()?,
            body: body(step)?,
        },
        "request-extension" => AppealCommand::RequestExtension {
            by: by()?,
            body: body(step)?,
        },
        "approve-extension" => AppealCommand::ApproveExtension(body(step)?),
        "reject-extension" => AppealCommand::RejectExtension(body(step)?),
        "rework" => AppealCommand::ReturnForRework(body(step)?),
        "return-visit" => AppealCommand::RecordReturnVisit(body(step)?),
        "close" => AppealCommand::Close(body(step)?),
        "withdraw" => AppealCommand::Withdraw(body(step)?),
        "mark-duplicate" => AppealCommand::MarkDuplicate(body(step)?),
        "supervise" => AppealCommand::Supervise(body(step)?),
        "accountability" => AppealCommand::RecordAccountability(body(step)?),
        "deadline-missed" => AppealCommand::RecordDeadlineMissed(body(step)?),
        other => bail!("the seeder does not know the command {other:?}"),
    })
}

fn csv_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}
