//! Throughput of `linkage audit export` and `verify` over a large history.
//!
//! ```sh
//! eval "$(bash deploy/local/services.sh env)"
//! cargo run --release -p linkage-audit --example audit_bench -- --events 1000000
//! ```
//!
//! Seeds a fresh database (dropped at the end) with `--events` events: appeals of five events
//! each (filed, assigned, contacted, feedback, resolved), hashed and chained as the store does,
//! with the relay's global chain anchored every 10 000 events and its checkpoint at the end. Then
//! times an NDJSON export, a CSV export (both written to /dev/null through a buffer) and a
//! verify, and prints one JSON line per measurement. With `--database-url` the database is kept
//! (created and seeded if it has no events; reused as it is otherwise).

use std::collections::HashMap;
use std::io::BufWriter;
use std::time::{Duration, Instant};

use chrono::{SubsecRound, TimeDelta, Utc};
use clap::Parser;
use linkage_audit::{ExportFormat, ExportOptions};
use linkage_domain::appeal::AppealEvent;
use linkage_domain::values::{Category, Channel, ContactMethod, ResolutionOutcome};
use linkage_projector::testing::{assigned, dept, filed, v};
use linkage_relay::chain_step;
use linkage_store::events::encode_event;
use linkage_store::hash::{CanonicalFields, canonical_json, event_hash_canonical};
use linkage_store::testing::TestDatabase;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Parser)]
struct Args {
    /// Events to seed (a multiple of 5 is used).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Keep the history in this database (seeded only if it has no events) instead of a fresh
    /// database dropped at the end.
    #[arg(long)]
    database_url: Option<String>,
}

const EVENTS_PER_APPEAL: usize = 5;
const INSERT_BATCH: usize = 10_000;
const ANCHOR_EVERY: i64 = 10_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (_db, pool) = match &args.database_url {
        Some(url) => {
            linkage_store::db::ensure_database(url).await?;
            let pool = linkage_store::db::connect(url, 4, Duration::from_secs(10)).await?;
            linkage_store::db::migrate(&pool).await?;
            (None, pool)
        }
        None => {
            let db = TestDatabase::new().await?;
            let pool = db.pool.clone();
            (Some(db), pool)
        }
    };
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await?;
    if stored == 0 {
        let started = Instant::now();
        seed(&pool, args.events).await?;
        report("seed", args.events, started.elapsed());
    }
    sqlx::query("VACUUM ANALYZE events").execute(&pool).await?;

    for (name, format) in [
        ("export_ndjson", ExportFormat::Ndjson),
        ("export_csv", ExportFormat::Csv),
    ] {
        let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create("/dev/null")?);
        let options = ExportOptions {
            format,
            ..ExportOptions::default()
        };
        let summary = linkage_audit::export(&pool, &options, &mut out, &|_, _| {}).await?;
        report(name, summary.events, summary.elapsed);
    }
    let verified = linkage_audit::verify(&pool, false, &|_, _| {}).await?;
    anyhow::ensure!(
        verified.ok,
        "the seeded history does not verify: {:?}",
        verified.first()
    );
    report("verify", verified.events, verified.elapsed);
    Ok(())
}

fn report(name: &str, events: u64, elapsed: Duration) {
    println!(
        "{}",
        json!({
            "bench": name,
            "events": events,
            "seconds": elapsed.as_secs_f64(),
            "events_per_second": (events as f64 / elapsed.as_secs_f64()).round(),
        })
    );
}

/// The five events of one appeal.
fn lifecycle(appeal_id: Uuid, serial: u64, at: chrono::DateTime<Utc>) -> [AppealEvent; 5] {
    let department = dept("market-supervision");
    [
        filed(
            appeal_id,
            serial,
            Channel::Hotline12345,
            Category::ArbitraryInspections,
            "经济开发区",
            at,
        ),
        assigned("market-supervision", &["tax"], at),
        AppealEvent::ContactRecorded {
            department: department.clone(),
            method: ContactMethod::Phone,
            note: Some(v("已电话联系诉求人，约定上门核实")),
            at,
        },
        AppealEvent::InitialFeedbackGiven {
            department: department.clone(),
            text: v("已约定周三上门核实"),
            at,
        },
        AppealEvent::AppealResolved {
            department,
            outcome: ResolutionOutcome::Resolved,
            text: v("已协调相关部门合并检查，企业表示满意"),
            at,
        },
    ]
}

/// Inserts `events` events as the store would (per-stream hash chains), one transaction per
/// batch, and records the relay's global chain over them (anchors and checkpoint) as if it had
/// published them.
async fn seed(pool: &PgPool, events: u64) -> anyhow::Result<()> {
    let appeals = (events as usize).div_ceil(EVENTS_PER_APPEAL);
    let start = Utc::now().trunc_subsecs(6) - TimeDelta::days(30);
    let metadata = serde_json::to_value(HashMap::from([
        ("actor", "bench"),
        ("role", "dispatcher"),
        ("department", ""),
        ("request_id", "bench"),
        ("correlation_id", "bench"),
        ("command", "bench"),
    ]))?;
    let metadata = String::from_utf8(canonical_json(&metadata))?;
    let mut chain: Option<Vec<u8>> = None;
    let mut chain_length = 0i64;
    let mut run: Option<Run> = None;
    let mut batch = Batch::default();
    let mut serial = 0u64;
    for chunk_start in (0..appeals).step_by(INSERT_BATCH / EVENTS_PER_APPEAL) {
        let chunk = (chunk_start..appeals.min(chunk_start + INSERT_BATCH / EVENTS_PER_APPEAL))
            .map(|_| Uuid::now_v7())
            .collect::<Vec<_>>();
        batch.clear();
        // Streams interleave: every appeal's first event, then every second event…
        let lifecycles: Vec<_> = chunk
            .iter()
            .map(|id| {
                serial += 1;
                let at = start + TimeDelta::seconds(serial as i64);
                (id, at, lifecycle(*id, serial, at))
            })
            .collect();
        let mut prev: HashMap<Uuid, Vec<u8>> = HashMap::with_capacity(chunk.len());
        for step in 0..EVENTS_PER_APPEAL {
            for (id, at, events) in &lifecycles {
                let event = &events[step];
                let aggregate_id = id.to_string();
                let payload = canonical_json(&encode_event(event)?);
                let event_id = Uuid::now_v7();
                let recorded_at = *at + TimeDelta::minutes(step as i64);
                let event_type = event.name();
                let prev_hash = prev.get(id).cloned();
                let hash = event_hash_canonical(
                    prev_hash.as_deref(),
                    &CanonicalFields {
                        event_id,
                        aggregate_type: "appeal",
                        aggregate_id: &aggregate_id,
                        sequence: step as i64 + 1,
                        event_type,
                        event_version: "1",
                        payload: &payload,
                        metadata: metadata.as_bytes(),
                        recorded_at,
                    },
                );
                prev.insert(**id, hash.clone());
                batch.aggregate_ids.push(aggregate_id);
                batch.sequences.push(step as i64 + 1);
                batch.event_types.push(event_type.to_owned());
                // Stored as the store stores it: the canonical text, as `json`.
                batch.payloads.push(String::from_utf8(payload)?);
                batch.event_ids.push(event_id);
                batch.recorded_ats.push(recorded_at);
                batch.prev_hashes.push(prev_hash);
                batch.hashes.push(hash);
            }
        }
        let inserted: Vec<(i64, i64)> = sqlx::query_as(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                                 payload, metadata, event_id, recorded_at, prev_hash, hash) \
             SELECT 'appeal', e.aggregate_id, e.sequence, e.event_type, '1', e.payload::json, \
                    $1::text::json, e.event_id, e.recorded_at, e.prev_hash, e.hash \
             FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::uuid[], \
                         $7::timestamptz[], $8::bytea[], $9::bytea[]) WITH ORDINALITY \
                  AS e(aggregate_id, sequence, event_type, payload, event_id, recorded_at, \
                       prev_hash, hash, n) \
             ORDER BY e.n \
             RETURNING tx_id::text::bigint, global_position",
        )
        .bind(&metadata)
        .bind(&batch.aggregate_ids)
        .bind(&batch.sequences)
        .bind(&batch.event_types)
        .bind(&batch.payloads)
        .bind(&batch.event_ids)
        .bind(&batch.recorded_ats)
        .bind(&batch.prev_hashes)
        .bind(&batch.hashes)
        .fetch_all(pool)
        .await?;
        // The relay's chain in publication order (one transaction: by position).
        let mut order: Vec<(i64, i64, usize)> = inserted
            .iter()
            .enumerate()
            .map(|(i, (tx, pos))| (*tx, *pos, i))
            .collect();
        order.sort_unstable();
        for (tx, pos, i) in order {
            // RETURNING keeps the insert order, which is the batch order (ORDER BY e.n).
            let r = run.get_or_insert_with(|| Run {
                from_tx: tx,
                from_position: pos,
                count: 0,
                prev: chain.clone(),
            });
            chain = Some(chain_step(chain.as_deref(), &batch.hashes[i], pos, tx));
            chain_length += 1;
            r.count += 1;
            if r.count == ANCHOR_EVERY {
                anchor(pool, r, tx, pos, chain_length, chain.as_deref()).await?;
                run = None;
            }
        }
        let last = inserted.iter().max().copied().unwrap_or_default();
        sqlx::query(
            "UPDATE relay_checkpoint SET tx_id = $1::text::xid8, global_position = $2, \
             chain_hash = $3, published_count = $4",
        )
        .bind(last.0.to_string())
        .bind(last.1)
        .bind(&chain)
        .bind(chain_length)
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// A run of events since the last anchor.
struct Run {
    from_tx: i64,
    from_position: i64,
    count: i64,
    /// The chain hash before the run.
    prev: Option<Vec<u8>>,
}

async fn anchor(
    pool: &PgPool,
    run: &Run,
    to_tx: i64,
    to_position: i64,
    chain_length: i64,
    chain: Option<&[u8]>,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO relay_anchors (from_tx_id, from_position, to_tx_id, to_position, \
                                    event_count, chain_length, prev_chain_hash, chain_hash) \
         VALUES ($1::text::xid8, $2, $3::text::xid8, $4, $5, $6, $7, $8)",
    )
    .bind(run.from_tx.to_string())
    .bind(run.from_position)
    .bind(to_tx.to_string())
    .bind(to_position)
    .bind(run.count)
    .bind(chain_length)
    .bind(&run.prev)
    .bind(chain)
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(Default)]
struct Batch {
    aggregate_ids: Vec<String>,
    sequences: Vec<i64>,
    event_types: Vec<String>,
    payloads: Vec<String>,
    event_ids: Vec<Uuid>,
    recorded_ats: Vec<chrono::DateTime<Utc>>,
    prev_hashes: Vec<Option<Vec<u8>>>,
    hashes: Vec<Vec<u8>>,
}

impl Batch {
    fn clear(&mut self) {
        *self = Self::default();
    }
}
