//! The raw ceilings the system is compared with: pgbench doing the same append transaction (its
//! per-transaction logs summarised here), a plain JetStream publish-with-ack loop at the events'
//! message size, and the relay's own rate draining a backlog.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use linkage_bus::{Bus, BusConfig, Envelope};
use serde::Serialize;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::stats::{self, Latency};

#[derive(Debug, Clone, Serialize)]
pub struct PgbenchReport {
    pub clients: usize,
    pub measured_secs: f64,
    pub transactions: u64,
    pub tps: f64,
    pub latency: Latency,
}

/// Summarises pgbench's per-transaction logs (`-l`: files `<prefix>.<pid>[.<thread>]`, lines
/// `client_id transaction_no time_us script_no epoch_s epoch_us`), leaving out the first
/// `warmup` seconds.
pub fn pgbench_logs(prefix: &Path, clients: usize, warmup: Duration) -> Result<PgbenchReport> {
    let dir = prefix.parent().unwrap_or(Path::new("."));
    let stem = prefix
        .file_name()
        .and_then(|s| s.to_str())
        .context("the log prefix has no file name")?;
    let mut samples: Vec<(f64, u64)> = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|s| s.to_str()).unwrap_or("");
        if !name.starts_with(&format!("{stem}.")) {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 6 {
                continue;
            }
            let (Ok(latency), Ok(s), Ok(us)) = (
                f[2].parse::<u64>(),
                f[4].parse::<f64>(),
                f[5].parse::<f64>(),
            ) else {
                continue; // "skipped" or "failed" lines
            };
            samples.push((s + us / 1e6, latency));
        }
    }
    if samples.is_empty() {
        bail!("no pgbench transaction logs at {}*", prefix.display());
    }
    let first = samples.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
    let last = samples.iter().map(|s| s.0).fold(0.0, f64::max);
    let from = first + warmup.as_secs_f64();
    let mut h = stats::histogram();
    let mut n = 0u64;
    for (at, latency) in &samples {
        if *at >= from {
            n += 1;
            stats::record(&mut h, Duration::from_micros(*latency));
        }
    }
    let measured_secs = (last - from).max(1e-3);
    Ok(PgbenchReport {
        clients,
        measured_secs,
        transactions: n,
        tps: n as f64 / measured_secs,
        latency: Latency::of(&h),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct PublishReport {
    pub message_bytes: usize,
    pub batch: usize,
    pub measured_secs: f64,
    pub messages: u64,
    pub messages_per_sec: f64,
    pub megabytes_per_sec: f64,
}

/// The template with `pad` as its payload text and a fresh event id.
fn sized_envelope(template: &Envelope, pad: &str) -> Envelope {
    let mut e = template.clone();
    e.event_id = Uuid::now_v7();
    e.payload = json!({ "text": pad });
    e
}

fn template() -> Envelope {
    Envelope {
        envelope_version: linkage_bus::ENVELOPE_VERSION,
        event_id: Uuid::nil(),
        global_position: 1_000_000,
        tx_id: 1_000_000,
        aggregate_type: "appeal".into(),
        aggregate_id: Uuid::nil().to_string(),
        sequence: 4,
        event_type: "ContactRecorded".into(),
        event_version: "1".into(),
        recorded_at: chrono::Utc::now(),
        payload: json!({}),
        metadata: json!({}),
        hash: "0".repeat(64),
        prev_hash: Some("0".repeat(64)),
    }
}

/// Bytes an envelope takes beyond its payload and metadata JSON.
pub fn envelope_overhead() -> usize {
    template().encode().len() - 4
}

/// Publishes `message_bytes`-sized envelopes in batches of `batch` through the bus's pipelined
/// publish (each awaited to its ack), for `duration`, on a stream of its own that is deleted
/// after.
pub async fn publish_loop(
    nats_url: &str,
    prefix: &str,
    message_bytes: usize,
    batch: usize,
    duration: Duration,
) -> Result<PublishReport> {
    let bus = Bus::connect(BusConfig {
        url: nats_url.to_owned(),
        prefix: prefix.to_owned(),
        ..BusConfig::default()
    })
    .await
    .context("connecting to NATS for the raw publish loop")?;
    let template = template();
    let empty = sized_envelope(&template, "").encode().len();
    let pad = "x".repeat(message_bytes.saturating_sub(empty));
    let message_bytes = sized_envelope(&template, &pad).encode().len();
    let started = Instant::now();
    let mut messages = 0u64;
    let result = async {
        while started.elapsed() < duration {
            let envelopes: Vec<Envelope> = (0..batch)
                .map(|_| sized_envelope(&template, &pad))
                .collect();
            bus.publish(&envelopes).await?;
            messages += envelopes.len() as u64;
        }
        Ok::<_, linkage_bus::BusError>(())
    }
    .await;
    let measured_secs = started.elapsed().as_secs_f64();
    let deleted = bus.delete_stream().await;
    result.context("publishing")?;
    deleted.context("deleting the raw publish stream")?;
    Ok(PublishReport {
        message_bytes,
        batch,
        measured_secs,
        messages,
        messages_per_sec: messages as f64 / measured_secs,
        megabytes_per_sec: (messages as f64 * message_bytes as f64) / measured_secs / 1e6,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct RelayReport {
    pub measured_secs: f64,
    pub events_published: i64,
    pub events_per_sec: f64,
    /// Mean encoded envelope size of the events, estimated from their stored JSON.
    pub mean_envelope_bytes: f64,
}

/// The relay's rate while it drains a backlog: its checkpoint's `published_count`, sampled when
/// it has started publishing and again `window` later.
pub async fn relay_rate(database_url: &str, window: Duration) -> Result<RelayReport> {
    let mut conn = PgConnection::connect(database_url)
        .await
        .context("connecting to the relay's database")?;
    let waiting = Instant::now();
    let from = loop {
        let n = published(&mut conn).await?;
        if n > 0 {
            break n;
        }
        if waiting.elapsed() > Duration::from_secs(60) {
            bail!("the relay published nothing within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let to = published(&mut conn).await?;
    let measured_secs = t0.elapsed().as_secs_f64();
    let mean_json: f64 = sqlx::query_scalar(
        "SELECT coalesce(avg(octet_length(payload::text) + octet_length(metadata::text)), 0)::float8 \
         FROM (SELECT payload, metadata FROM events ORDER BY global_position LIMIT 20000) e",
    )
    .fetch_one(&mut conn)
    .await
    .context("measuring the events' size")?;
    Ok(RelayReport {
        measured_secs,
        events_published: to - from,
        events_per_sec: (to - from) as f64 / measured_secs,
        mean_envelope_bytes: mean_json + envelope_overhead() as f64,
    })
}

async fn published(conn: &mut PgConnection) -> Result<i64> {
    sqlx::query_scalar("SELECT published_count FROM relay_checkpoint")
        .fetch_one(conn)
        .await
        .context("reading the relay checkpoint")
}

/// Deletes the event stream of `prefix` (benchmark clean-up).
pub async fn delete_stream(nats_url: &str, prefix: &str) -> Result<()> {
    let bus = Bus::connect(BusConfig {
        url: nats_url.to_owned(),
        prefix: prefix.to_owned(),
        ..BusConfig::default()
    })
    .await
    .context("connecting to NATS")?;
    bus.delete_stream()
        .await
        .with_context(|| format!("deleting the stream of prefix {prefix}"))
}
