//! One relay step: read the next events below the horizon, publish them, store the checkpoint
//! (and an anchor when one is due). Also the catch-up after a crash between acks and checkpoint.

use std::time::Instant;

use chrono::{DateTime, Utc};
use linkage_bus::{Bus, ENVELOPE_VERSION, Envelope};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::chain::chain_step;
use crate::{RelayConfig, RelayError};

/// Where the relay stands: the last published event in `(tx_id, global_position)` order and the
/// chain through it, as stored in `relay_checkpoint`, plus the run of events since the last
/// anchor.
#[derive(Debug, Clone)]
pub struct RelayState {
    pub tx_id: i64,
    pub global_position: i64,
    /// `G_n` over every published event; `None` before the first.
    pub chain_hash: Option<Vec<u8>>,
    pub published_count: i64,
    /// Events published since the last anchor.
    segment: Option<Segment>,
    last_anchor_at: Instant,
    /// What this relay knows of the stream, in memory only (see [`reconcile`]).
    stream: Option<StreamView>,
    /// The batch after this state, read while the previous one was being published.
    prefetched: Option<((i64, i64), Vec<EventRow>)>,
}

/// The stream as [`reconcile`] found it and this relay's publishes since then extended it.
#[derive(Debug, Clone, Copy)]
struct StreamView {
    /// The stream's last sequence: every publish must directly follow it.
    last_sequence: u64,
    /// [`Bus::connection_epoch`] when the stream was looked at.
    epoch: u64,
}

/// What [`reconcile`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Events the stream held beyond the checkpoint: the checkpoint moved past them.
    pub skipped: u64,
    /// Events the checkpoint covers that the stream had lost: published again, in order.
    pub republished: u64,
}

#[derive(Debug, Clone)]
struct Segment {
    from_tx_id: i64,
    from_position: i64,
    count: i64,
    prev_chain_hash: Option<Vec<u8>>,
}

/// A recorded anchor: the chain hash after a run of published events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub from_tx_id: i64,
    pub from_position: i64,
    pub to_tx_id: i64,
    pub to_position: i64,
    /// Events in the run.
    pub event_count: i64,
    /// Events in the whole chain through the run's last event.
    pub chain_length: i64,
    pub prev_chain_hash: Option<Vec<u8>>,
    pub chain_hash: Vec<u8>,
    pub created_at: Option<DateTime<Utc>>,
}

impl RelayState {
    /// The stored checkpoint, and the run since the last anchor.
    pub async fn load(pool: &PgPool) -> Result<Self, RelayError> {
        let row = sqlx::query(
            "SELECT tx_id::text::bigint AS tx_id, global_position, chain_hash, published_count \
             FROM relay_checkpoint",
        )
        .fetch_one(pool)
        .await
        .map_err(|e| RelayError::db("reading the relay checkpoint", e))?;
        let mut state = Self {
            tx_id: row.get("tx_id"),
            global_position: row.get("global_position"),
            chain_hash: row.get("chain_hash"),
            published_count: row.get("published_count"),
            segment: None,
            last_anchor_at: Instant::now(),
            stream: None,
            prefetched: None,
        };
        let last_anchor = sqlx::query(
            "SELECT to_tx_id::text::bigint AS to_tx_id, to_position, chain_length, chain_hash \
             FROM relay_anchors ORDER BY chain_length DESC LIMIT 1",
        )
        .fetch_optional(pool)
        .await
        .map_err(|e| RelayError::db("reading the last relay anchor", e))?;
        let (after, anchored, prev_chain_hash) = match &last_anchor {
            Some(a) => (
                (a.get::<i64, _>("to_tx_id"), a.get::<i64, _>("to_position")),
                a.get::<i64, _>("chain_length"),
                Some(a.get::<Vec<u8>, _>("chain_hash")),
            ),
            None => ((0, 0), 0, None),
        };
        let count = state.published_count - anchored;
        if count < 0 {
            return Err(RelayError::Corrupt(format!(
                "the relay checkpoint ({} events) is behind its last anchor ({anchored} events)",
                state.published_count
            )));
        }
        if count > 0 {
            // Everything between the anchor and the checkpoint was published in order, so the
            // run starts at the first event after the anchor.
            let first = sqlx::query(
                "SELECT tx_id::text::bigint AS tx_id, global_position FROM events \
                 WHERE (tx_id, global_position) > ($1::text::xid8, $2) \
                 ORDER BY events.tx_id, events.global_position LIMIT 1",
            )
            .bind(after.0.to_string())
            .bind(after.1)
            .fetch_optional(pool)
            .await
            .map_err(|e| RelayError::db("finding the first event after the last anchor", e))?
            .ok_or_else(|| {
                RelayError::Corrupt(
                    "no event follows the last anchor, yet some were published".into(),
                )
            })?;
            state.segment = Some(Segment {
                from_tx_id: first.get("tx_id"),
                from_position: first.get("global_position"),
                count,
                prev_chain_hash,
            });
        }
        Ok(state)
    }

    fn after(&self) -> (i64, i64) {
        (self.tx_id, self.global_position)
    }

    /// Whether the stream must be looked at again before publishing: never looked at, or the
    /// bus connected to a server again since (it may have lost messages).
    pub fn stream_unverified(&self, bus: &Bus) -> bool {
        self.stream
            .is_none_or(|view| view.epoch != bus.connection_epoch())
    }

    /// The state after publishing `events` (in order, right after this state).
    fn advanced(&self, events: &[EventRow]) -> Self {
        let mut next = Self {
            prefetched: None,
            ..self.clone()
        };
        for e in events {
            next.chain_hash = Some(chain_step(
                next.chain_hash.as_deref(),
                &e.hash,
                e.global_position,
                e.tx_id,
            ));
            let segment = next.segment.get_or_insert_with(|| Segment {
                from_tx_id: e.tx_id,
                from_position: e.global_position,
                count: 0,
                prev_chain_hash: self.chain_hash.clone(),
            });
            segment.count += 1;
            next.tx_id = e.tx_id;
            next.global_position = e.global_position;
            next.published_count += 1;
        }
        next
    }

    /// Closes the run since the last anchor when it is long or old enough.
    fn take_anchor_if_due(&mut self, config: &RelayConfig) -> Option<Anchor> {
        let segment = self.segment.as_ref()?;
        let due = segment.count as u64 >= config.anchor_every_events.max(1)
            || self.last_anchor_at.elapsed() >= config.anchor_every;
        if !due {
            return None;
        }
        let segment = self.segment.take()?;
        self.last_anchor_at = Instant::now();
        Some(Anchor {
            from_tx_id: segment.from_tx_id,
            from_position: segment.from_position,
            to_tx_id: self.tx_id,
            to_position: self.global_position,
            event_count: segment.count,
            chain_length: self.published_count,
            prev_chain_hash: segment.prev_chain_hash,
            chain_hash: self.chain_hash.clone().unwrap_or_default(),
            created_at: None,
        })
    }
}

/// An event row as the relay reads it.
#[derive(Debug, Clone)]
struct EventRow {
    tx_id: i64,
    global_position: i64,
    hash: Vec<u8>,
    envelope: Envelope,
}

impl EventRow {
    fn from_row(row: &PgRow) -> Self {
        let hash: Vec<u8> = row.get("hash");
        let prev_hash: Option<Vec<u8>> = row.get("prev_hash");
        let tx_id = row.get("tx_id");
        let global_position = row.get("global_position");
        Self {
            tx_id,
            global_position,
            envelope: Envelope {
                envelope_version: ENVELOPE_VERSION,
                event_id: row.get("event_id"),
                global_position,
                tx_id,
                aggregate_type: row.get("aggregate_type"),
                aggregate_id: row.get("aggregate_id"),
                sequence: row.get("sequence"),
                event_type: row.get("event_type"),
                event_version: row.get("event_version"),
                recorded_at: row.get("recorded_at"),
                payload: row.get("payload"),
                metadata: row.get("metadata"),
                hash: hex::encode(&hash),
                prev_hash: prev_hash.map(hex::encode),
            },
            hash,
        }
    }
}

/// The relay's select over `events`, after `($1, $2)` in publication order, then `$tail`.
macro_rules! select_events {
    ($tail:literal) => {
        concat!(
            "SELECT event_id, global_position, tx_id::text::bigint AS tx_id, aggregate_type, \
                    aggregate_id, sequence, event_type, event_version, recorded_at, payload, \
                    metadata, hash, prev_hash \
             FROM events WHERE (tx_id, global_position) > ($1::text::xid8, $2) ",
            $tail
        )
    };
}

/// Up to `limit` events after `after` in `(tx_id, global_position)` order: all of them below
/// the oldest running transaction, or (`through`) up to and including a given event.
async fn read_events(
    pool: &PgPool,
    after: (i64, i64),
    limit: usize,
    through: Option<(i64, i64)>,
) -> Result<Vec<EventRow>, RelayError> {
    let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
    let rows = match through {
        // The horizon is taken from the statement's own snapshot: every transaction below it
        // has ended, so its rows are all visible (or rolled back) and none can appear later.
        None => {
            sqlx::query(select_events!(
                "AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
                 ORDER BY events.tx_id, events.global_position LIMIT $3"
            ))
            .bind(after.0.to_string())
            .bind(after.1)
            .bind(limit)
            .fetch_all(pool)
            .await
        }
        Some((tx_id, position)) => {
            sqlx::query(select_events!(
                "AND (tx_id, global_position) <= ($4::text::xid8, $5) \
                 ORDER BY events.tx_id, events.global_position LIMIT $3"
            ))
            .bind(after.0.to_string())
            .bind(after.1)
            .bind(limit)
            .bind(tx_id.to_string())
            .bind(position)
            .fetch_all(pool)
            .await
        }
    }
    .map_err(|e| RelayError::db("reading events to publish", e))?;
    Ok(rows.iter().map(EventRow::from_row).collect())
}

/// Stores `next` over `current` (only if the stored checkpoint is still `current`) and the
/// anchor, in one transaction.
async fn store_checkpoint(
    pool: &PgPool,
    current: &RelayState,
    next: &RelayState,
    anchor: Option<&Anchor>,
) -> Result<(), RelayError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| RelayError::db("beginning the checkpoint update", e))?;
    // No need to wait for the flush: a checkpoint lost in a crash only makes the next relay
    // start earlier, and it moves past what the stream already holds first (`reconcile`).
    // Spares the appends' commits an fsync per relay step.
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await
        .map_err(|e| RelayError::db("beginning the checkpoint update", e))?;
    let updated = sqlx::query(
        "UPDATE relay_checkpoint \
         SET tx_id = $1::text::xid8, global_position = $2, chain_hash = $3, \
             published_count = $4, updated_at = now() \
         WHERE tx_id = $5::text::xid8 AND global_position = $6 AND published_count = $7",
    )
    .bind(next.tx_id.to_string())
    .bind(next.global_position)
    .bind(&next.chain_hash)
    .bind(next.published_count)
    .bind(current.tx_id.to_string())
    .bind(current.global_position)
    .bind(current.published_count)
    .execute(&mut *tx)
    .await
    .map_err(|e| RelayError::db("updating the relay checkpoint", e))?;
    if updated.rows_affected() != 1 {
        return Err(RelayError::CheckpointMoved);
    }
    if let Some(a) = anchor {
        sqlx::query(
            "INSERT INTO relay_anchors (from_tx_id, from_position, to_tx_id, to_position, \
                                        event_count, chain_length, prev_chain_hash, chain_hash) \
             VALUES ($1::text::xid8, $2, $3::text::xid8, $4, $5, $6, $7, $8)",
        )
        .bind(a.from_tx_id.to_string())
        .bind(a.from_position)
        .bind(a.to_tx_id.to_string())
        .bind(a.to_position)
        .bind(a.event_count)
        .bind(a.chain_length)
        .bind(&a.prev_chain_hash)
        .bind(&a.chain_hash)
        .execute(&mut *tx)
        .await
        .map_err(|e| RelayError::db("recording a relay anchor", e))?;
    }
    tx.commit()
        .await
        .map_err(|e| RelayError::db("committing the relay checkpoint", e))?;
    Ok(())
}

/// One step: publishes up to `batch_size` events below the horizon, after the acks stores the
/// checkpoint (with an anchor when due), and advances `state`. Returns how many were published;
/// with none, still records a time-due anchor. On error `state` is unchanged and the step can
/// be retried: JetStream drops what it already has.
pub async fn publish_pending(
    pool: &PgPool,
    bus: &Bus,
    config: &RelayConfig,
    state: &mut RelayState,
) -> Result<usize, RelayError> {
    step(pool, bus, config, state).await
}

#[tracing::instrument(skip_all, fields(after_tx = state.tx_id, after_position = state.global_position))]
async fn step(
    pool: &PgPool,
    bus: &Bus,
    config: &RelayConfig,
    state: &mut RelayState,
) -> Result<usize, RelayError> {
    let events = match state.prefetched.take() {
        Some((after, events)) if after == state.after() => events,
        _ => read_events(pool, state.after(), config.batch_size, None).await?,
    };
    let mut next = state.advanced(&events);
    if !events.is_empty() {
        // A full batch says more is waiting: read the next one while this one's acks come in
        // (it starts where this batch ends; it is used only if this step succeeds).
        let more = events.len() >= config.batch_size;
        let envelopes: Vec<Envelope> = events.into_iter().map(|e| e.envelope).collect();
        // Once the stream was reconciled, every message must land right after the one before:
        // a server that lost acknowledged messages refuses the batch instead of taking it
        // after a gap, and the relay reconciles again.
        let publish = async {
            match next.stream {
                Some(view) => bus
                    .publish_after(view.last_sequence, &envelopes)
                    .await
                    .map(|sequences| sequences.last().copied()),
                None => bus.publish(&envelopes).await.map(|_| None),
            }
        };
        let prefetch = async {
            if more {
                read_events(pool, next.after(), config.batch_size, None)
                    .await
                    .map(Some)
            } else {
                Ok(None)
            }
        };
        let (published, prefetched) = tokio::join!(publish, prefetch);
        if let (Some(view), Some(last)) = (next.stream.as_mut(), published?) {
            view.last_sequence = last;
        }
        // A failed read ahead costs nothing: the next step reads again.
        if let Ok(Some(events)) = prefetched
            && !events.is_empty()
        {
            next.prefetched = Some((next.after(), events));
        }
    }
    let anchor = next.take_anchor_if_due(config);
    let published = usize::try_from(next.published_count - state.published_count).unwrap_or(0);
    if published > 0 || anchor.is_some() {
        store_checkpoint(pool, state, &next, anchor.as_ref()).await?;
        if let Some(a) = &anchor {
            tracing::info!(
                chain_length = a.chain_length,
                event_count = a.event_count,
                chain_hash = %hex::encode(&a.chain_hash),
                "recorded a relay anchor"
            );
        }
        *state = next;
    }
    Ok(published)
}

/// Makes the stream and the checkpoint agree, before this relay publishes (when it becomes
/// active, after a failed step, and after the bus connected to a server again):
///
/// - **The stream holds more** (a relay crashed after the acks and before storing the
///   checkpoint): the checkpoint moves past those events, so they are not published twice.
/// - **The stream holds less** (the server lost messages it had acknowledged, e.g. a crash
///   before its fsync, or the stream was deleted): the events after the stream's last one, up
///   to the checkpoint, are published again in order, without moving the checkpoint or the
///   global chain (they are in it already).
///
/// From then on every publish must directly follow the stream's last sequence (see
/// [`Bus::publish_after`]). If the stream's last message is not an event of this database (a
/// reused stream), nothing is skipped or republished.
#[tracing::instrument(skip_all)]
pub async fn reconcile(
    pool: &PgPool,
    bus: &Bus,
    config: &RelayConfig,
    state: &mut RelayState,
) -> Result<Reconciled, RelayError> {
    // Read before looking: a reconnection during the look shows as a changed epoch later.
    let epoch = bus.connection_epoch();
    let tail = bus.tail().await?;
    let mut view = StreamView {
        last_sequence: tail.last_sequence,
        epoch,
    };
    let mut done = Reconciled::default();
    let stream_after = match tail.last {
        None => (0, 0),
        Some((sequence, Err(error))) => {
            tracing::warn!(stream_sequence = sequence, %error, "the stream's last message is not an envelope; not reconciling");
            state.stream = Some(view);
            return Ok(done);
        }
        Some((_, Ok(last))) => {
            let ours: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM events WHERE event_id = $1 AND global_position = $2 \
                                AND tx_id = $3::text::xid8)",
            )
            .bind(last.event_id)
            .bind(last.global_position)
            .bind(last.tx_id.to_string())
            .fetch_one(pool)
            .await
            .map_err(|e| RelayError::db("looking up the stream's last event", e))?;
            if !ours {
                tracing::warn!(
                    event_id = %last.event_id,
                    "the stream's last event is not in this database; not reconciling"
                );
                state.stream = Some(view);
                return Ok(done);
            }
            (last.tx_id, last.global_position)
        }
    };
    let checkpoint = state.after();
    if stream_after > checkpoint {
        loop {
            let events =
                read_events(pool, state.after(), config.batch_size, Some(stream_after)).await?;
            if events.is_empty() {
                break;
            }
            let mut next = state.advanced(&events);
            let anchor = next.take_anchor_if_due(config);
            store_checkpoint(pool, state, &next, anchor.as_ref()).await?;
            done.skipped += events.len() as u64;
            *state = next;
        }
        tracing::info!(
            skipped = done.skipped,
            "moved the checkpoint past events already in the stream"
        );
    } else if stream_after < checkpoint {
        tracing::warn!(
            stream_last_sequence = tail.last_sequence,
            stream_after_tx = stream_after.0,
            stream_after_position = stream_after.1,
            checkpoint_tx = checkpoint.0,
            checkpoint_position = checkpoint.1,
            "the stream lost events it had acknowledged; publishing them again"
        );
        let mut after = stream_after;
        loop {
            let events = read_events(pool, after, config.batch_size, Some(checkpoint)).await?;
            let Some(last) = events.last() else { break };
            after = (last.tx_id, last.global_position);
            let envelopes: Vec<Envelope> = events.into_iter().map(|e| e.envelope).collect();
            let sequences = bus.publish_after(view.last_sequence, &envelopes).await?;
            if let Some(&last) = sequences.last() {
                view.last_sequence = last;
            }
            done.republished += envelopes.len() as u64;
        }
        tracing::warn!(
            republished = done.republished,
            "republished the events the stream had lost"
        );
    }
    state.stream = Some(view);
    Ok(done)
}

/// Every recorded anchor, in chain order.
pub async fn load_anchors(pool: &PgPool) -> Result<Vec<Anchor>, RelayError> {
    let rows = sqlx::query(
        "SELECT from_tx_id::text::bigint AS from_tx_id, from_position, \
                to_tx_id::text::bigint AS to_tx_id, to_position, event_count, chain_length, \
                prev_chain_hash, chain_hash, created_at \
         FROM relay_anchors ORDER BY chain_length",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| RelayError::db("reading the relay anchors", e))?;
    Ok(rows
        .iter()
        .map(|r| Anchor {
            from_tx_id: r.get("from_tx_id"),
            from_position: r.get("from_position"),
            to_tx_id: r.get("to_tx_id"),
            to_position: r.get("to_position"),
            event_count: r.get("event_count"),
            chain_length: r.get("chain_length"),
            prev_chain_hash: r.get("prev_chain_hash"),
            chain_hash: r.get("chain_hash"),
            created_at: r.get("created_at"),
        })
        .collect())
}
