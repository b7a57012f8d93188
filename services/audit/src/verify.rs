//! `linkage audit verify`: re-checks the whole history from what is stored.
//!
//! Two passes, each one server-side cursor in constant memory, run at once:
//!
//! - **Streams** (primary-key order): every event's hash is recomputed from its content and its
//!   stored `prev_hash` (`linkage_store::hash::event_hash`), sequences must run 1, 2, 3… and each
//!   `prev_hash` must be the previous event's hash. The first bad event of each stream is named;
//!   the rest of that stream is skipped.
//! - **Global chain** (publication order `(tx_id, global_position)`): the relay's chain
//!   (`linkage_relay::chain_step`) is recomputed over the stored event hashes and compared with
//!   every anchor in `relay_anchors` and with the relay checkpoint. This catches what a stream
//!   cannot show about itself: its last events deleted, or a stream rewritten consistently
//!   (every hash recomputed), or events moved in the global order.
//!
//! What each finding means, with examples, is in docs/audit.md.

use std::fmt;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use linkage_projector::Position;
use linkage_relay::{Anchor, chain_step, load_anchors};
use linkage_store::hash::{CanonicalFields, canonical_json_text, event_hash_canonical};
use serde::{Serialize, Serializer};
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgPool, Row};
use uuid::Uuid;

use crate::AuditError;
use linkage_store::stored::{COLUMNS, StoredEvent, xid8};

const VERIFY_SPLIT: &str = include_str!("verify_split.sql");
const VERIFY_CHAIN: &str = include_str!("verify_chain.sql");
const RELAY_CHECKPOINT: &str = include_str!("relay_checkpoint.sql");
const EVENT_REFS: &str = include_str!("event_refs.sql");

/// Findings kept per pass; the rest are only counted (memory stays bounded on a wrecked log).
pub const MAX_FINDINGS: usize = 1000;

const PROGRESS_EVERY: u64 = 16_384;

/// Which event a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRef {
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub global_position: i64,
    pub tx_id: i64,
}

impl fmt::Display for EventRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event {} ({} {} #{}, global position {}, tx {})",
            self.event_id,
            self.aggregate_type,
            self.aggregate_id,
            self.sequence,
            self.global_position,
            self.tx_id
        )
    }
}

/// Something the stored history does not agree with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// The event's hash does not match its content and its stored `prev_hash`: its payload,
    /// metadata, type, time, sequence or hash was changed in place.
    Edited { event: EventRef },
    /// Sequences `first_missing..=last_missing` of a stream are not stored (deleted): the stream
    /// jumps from `first_missing - 1` to `next`.
    Missing {
        aggregate_type: String,
        aggregate_id: String,
        first_missing: i64,
        last_missing: i64,
        next: EventRef,
    },
    /// The event's `prev_hash` is not the hash of the event stored before it, and its own hash
    /// does not verify either: it was moved (reordered) or rewritten.
    Unlinked { event: EventRef },
    /// The event matches its own hash, but that hash is not the one its successor chained to:
    /// the event was rewritten and its hash recomputed (forged).
    ForgedHash {
        event: EventRef,
        successor: EventRef,
    },
    /// The global chain over an anchor's run of events (`first..=last` in publication order)
    /// does not give the hash (or the event count) the relay recorded: an event in the run was
    /// changed, removed, added or moved, even if its stream verifies.
    AnchorMismatch {
        /// Events in the whole chain through the run's end (the anchor's key).
        anchor_chain_length: i64,
        first: Position,
        last: Position,
        first_event: Option<EventRef>,
        last_event: Option<EventRef>,
        expected_events: i64,
        found_events: i64,
    },
    /// The last event of an anchor's run is not stored (deleted or moved).
    AnchorEventMissing {
        anchor_chain_length: i64,
        position: Position,
    },
    /// The global chain through the relay checkpoint does not match it (the events after the
    /// last anchor were changed, or the checkpoint's last event is gone).
    CheckpointMismatch {
        position: Position,
        expected_events: i64,
        found_events: i64,
    },
}

impl Finding {
    /// Where the finding sits in the global order: the event it names (for a run of the global
    /// chain, its end, so that a stream finding inside the run comes first).
    pub fn place(&self) -> (i64, i64) {
        let of = |e: &EventRef| (e.tx_id, e.global_position);
        let at = |p: &Position| (p.tx_id, p.global_position);
        match self {
            Self::Edited { event } | Self::Unlinked { event } | Self::ForgedHash { event, .. } => {
                of(event)
            }
            Self::Missing { next, .. } => of(next),
            Self::AnchorMismatch { last, .. } => at(last),
            Self::AnchorEventMissing { position, .. }
            | Self::CheckpointMismatch { position, .. } => at(position),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Edited { event } => {
                write!(f, "{event}: its content does not match its hash (edited)")
            }
            Self::Missing {
                aggregate_type,
                aggregate_id,
                first_missing,
                last_missing,
                next,
            } => {
                let which = if first_missing == last_missing {
                    format!("#{first_missing} is")
                } else {
                    format!("#{first_missing}..#{last_missing} are")
                };
                write!(
                    f,
                    "{aggregate_type} {aggregate_id}: event {which} missing (deleted); the \
                     stream goes on with {next}"
                )
            }
            Self::Unlinked { event } => write!(
                f,
                "{event}: does not chain to the event stored before it (moved or rewritten)"
            ),
            Self::ForgedHash { event, successor } => write!(
                f,
                "{event}: its hash was recomputed after a change (forged): {successor} chained \
                 to a different hash"
            ),
            Self::AnchorMismatch {
                anchor_chain_length,
                first,
                last,
                first_event,
                expected_events,
                found_events,
                ..
            } => {
                write!(
                    f,
                    "global chain anchor #{anchor_chain_length} (events {first} to {last}) does \
                     not match: an event in that run was changed, removed, added or moved \
                     ({found_events} events found, {expected_events} recorded)"
                )?;
                if let Some(e) = first_event {
                    write!(f, "; the run starts with {e}")?;
                }
                Ok(())
            }
            Self::AnchorEventMissing {
                anchor_chain_length,
                position,
            } => write!(
                f,
                "global chain anchor #{anchor_chain_length}: its last event {position} is not \
                 stored (deleted or moved)"
            ),
            Self::CheckpointMismatch {
                position,
                expected_events,
                found_events,
            } => write!(
                f,
                "the global chain through the relay checkpoint {position} does not match it \
                 ({found_events} events found, {expected_events} published)"
            ),
        }
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// `true` when nothing was found.
    pub ok: bool,
    /// Events whose stream hash chain was checked (all of them).
    pub events: u64,
    pub streams: u64,
    /// Anchors checked against the recomputed global chain.
    pub anchors: u64,
    /// Events covered by the global chain (published by the relay, through its checkpoint).
    pub chained_events: i64,
    /// Findings in global order (at most [`MAX_FINDINGS`] per pass); the first names the first
    /// bad event.
    pub findings: Vec<Finding>,
    /// Findings beyond those kept.
    pub findings_omitted: u64,
    #[serde(serialize_with = "serialize_secs")]
    pub elapsed: Duration,
}

impl VerifyReport {
    pub fn first(&self) -> Option<&Finding> {
        self.findings.first()
    }
}

pub(crate) fn serialize_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Verifies every stream's hash chain and the relay's global chain. `progress(done, total)` is
/// called as events are checked (`total` when `count_first`).
pub async fn verify(
    pool: &PgPool,
    count_first: bool,
    progress: &dyn Fn(u64, Option<u64>),
) -> Result<VerifyReport, AuditError> {
    let started = Instant::now();
    let total = if count_first {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(pool)
            .await
            .map_err(|e| AuditError::db("counting the events to verify", e))?;
        Some(n as u64)
    } else {
        None
    };
    progress(0, total);
    // The global chain runs on its own task (and connection) while this one checks streams.
    let mut chain = AbortOnDrop(tokio::spawn(verify_global_chain(pool.clone())));
    let streams = verify_streams(pool, total, progress).await?;
    let chain = (&mut chain.0)
        .await
        .map_err(|e| AuditError::Task(format!("the global chain check stopped: {e}")))??;
    let mut findings = streams.findings;
    findings.extend(resolve(pool, chain.findings).await?);
    findings.sort_by_key(Finding::place);
    let report = VerifyReport {
        ok: findings.is_empty() && streams.omitted == 0 && chain.omitted == 0,
        events: streams.events,
        streams: streams.streams,
        anchors: chain.anchors,
        chained_events: chain.chained_events,
        findings,
        findings_omitted: streams.omitted + chain.omitted,
        elapsed: started.elapsed(),
    };
    progress(report.events, Some(report.events));
    Ok(report)
}

/// What the stream pass found.
struct StreamsOutcome {
    events: u64,
    streams: u64,
    findings: Vec<Finding>,
    omitted: u64,
}

/// One stored event, borrowed from its row (its stored JSON text: what the store wrote is the
/// canonical encoding the hash covers; other text, as events stored as `jsonb` before the
/// `events_json` migration keep, is re-encoded canonically without being parsed into a
/// `Value`).
struct Stored<'r>(StoredEvent<'r>);

impl<'r> std::ops::Deref for Stored<'r> {
    type Target = StoredEvent<'r>;

    fn deref(&self) -> &StoredEvent<'r> {
        &self.0
    }
}

impl<'r> Stored<'r> {
    fn event_ref(&self) -> EventRef {
        EventRef {
            event_id: self.event_id,
            aggregate_type: self.aggregate_type.to_owned(),
            aggregate_id: self.aggregate_id.to_owned(),
            sequence: self.sequence,
            global_position: self.global_position,
            tx_id: self.tx_id,
        }
    }

    /// The fields the hash covers, with payload and metadata as given.
    fn fields<'a>(&'a self, payload: &'a [u8], metadata: &'a [u8]) -> CanonicalFields<'a> {
        CanonicalFields {
            event_id: self.event_id,
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            sequence: self.sequence,
            event_type: self.event_type,
            event_version: self.event_version,
            payload,
            metadata,
            recorded_at: self.recorded_at,
        }
    }

    /// Whether this event chained to `prev` has the hash `expected`: the hash over the canonical
    /// encoding of its stored payload and metadata.
    ///
    /// The store writes that encoding itself as the stored text, so the stored text is hashed
    /// first, as it is: if that gives `expected`, the text *is* the canonical encoding that was
    /// hashed when the event was written (SHA-256 is collision resistant), and re-encoding it
    /// would give the same bytes. Otherwise (other JSON text, as events stored as `jsonb` have,
    /// or an edit) the text is re-encoded and hashed again. `encoding` remembers which way the
    /// last events went, so a run of re-encoded events does not hash twice.
    fn matches(&self, prev: Option<&[u8]>, expected: &[u8], encoding: &mut Encoding) -> bool {
        let mut hashed_as_stored = false;
        if encoding.stored_is_canonical {
            if event_hash_canonical(prev, &self.fields(self.payload, self.metadata)) == expected {
                return true;
            }
            hashed_as_stored = true;
        }
        let Encoding {
            payload, metadata, ..
        } = encoding;
        payload.clear();
        metadata.clear();
        // Stored JSON that does not parse (the `json` type only holds JSON) matches no hash:
        // the event is reported as edited.
        let parsed = std::str::from_utf8(self.payload)
            .ok()
            .zip(std::str::from_utf8(self.metadata).ok())
            .is_some_and(|(p, m)| {
                canonical_json_text(p, payload).is_ok() && canonical_json_text(m, metadata).is_ok()
            });
        if !parsed {
            return false;
        }
        let canonical = payload.as_slice() == self.payload && metadata.as_slice() == self.metadata;
        encoding.stored_is_canonical = canonical;
        if canonical && hashed_as_stored {
            return false;
        }
        event_hash_canonical(prev, &self.fields(&encoding.payload, &encoding.metadata)) == expected
    }
}

/// Scratch space for re-encoding stored JSON, and whether the last event's stored text was
/// already canonical (see [`Stored::matches`]).
struct Encoding {
    payload: Vec<u8>,
    metadata: Vec<u8>,
    stored_is_canonical: bool,
}

impl Default for Encoding {
    fn default() -> Self {
        Self {
            payload: Vec::with_capacity(4096),
            metadata: Vec::with_capacity(1024),
            stored_is_canonical: true,
        }
    }
}

/// The last good event of the stream being checked.
struct Previous {
    event: EventRef,
    hash: Vec<u8>,
}

/// Walks events stream by stream, in sequence order, and names the first bad event of each
/// stream.
#[derive(Default)]
struct StreamChecker {
    aggregate_type: String,
    aggregate_id: String,
    streams: u64,
    previous: Option<Previous>,
    /// The stream already has a finding: the rest of it is not checked.
    broken: bool,
    encoding: Encoding,
}

impl StreamChecker {
    fn check(&mut self, e: &Stored<'_>) -> Option<Finding> {
        if self.streams == 0
            || e.aggregate_id != self.aggregate_id
            || e.aggregate_type != self.aggregate_type
        {
            self.streams += 1;
            e.aggregate_type.clone_into(&mut self.aggregate_type);
            e.aggregate_id.clone_into(&mut self.aggregate_id);
            self.previous = None;
            self.broken = false;
        }
        if self.broken {
            return None;
        }
        let finding = self.finding(e);
        if finding.is_some() {
            self.broken = true;
            self.previous = None;
        } else {
            let event = match self.previous.take() {
                // Reuse the allocations: only the numbers change within a stream.
                Some(Previous { mut event, .. }) => {
                    event.event_id = e.event_id;
                    event.sequence = e.sequence;
                    event.global_position = e.global_position;
                    event.tx_id = e.tx_id;
                    event
                }
                None => e.event_ref(),
            };
            self.previous = Some(Previous {
                event,
                hash: e.hash.to_vec(),
            });
        }
        finding
    }

    fn finding(&mut self, e: &Stored<'_>) -> Option<Finding> {
        let expected = self.previous.as_ref().map_or(1, |p| p.event.sequence + 1);
        if e.sequence != expected {
            return Some(Finding::Missing {
                aggregate_type: e.aggregate_type.to_owned(),
                aggregate_id: e.aggregate_id.to_owned(),
                first_missing: expected,
                last_missing: e.sequence - 1,
                next: e.event_ref(),
            });
        }
        let prev_hash = self.previous.as_ref().map(|p| p.hash.as_slice());
        if e.prev_hash != prev_hash {
            // Whom to blame: if this event matches its own stored `prev_hash`, that link is
            // authentic and the event before it is the one whose hash changed.
            return Some(match &self.previous {
                Some(p) if e.matches(e.prev_hash, e.hash, &mut self.encoding) => {
                    Finding::ForgedHash {
                        event: p.event.clone(),
                        successor: e.event_ref(),
                    }
                }
                _ => Finding::Unlinked {
                    event: e.event_ref(),
                },
            });
        }
        (!e.matches(prev_hash, e.hash, &mut self.encoding)).then(|| Finding::Edited {
            event: e.event_ref(),
        })
    }
}

/// A stream key: `(aggregate_type, aggregate_id)`.
type StreamKey = (String, String);

/// Checks every stream in two key ranges at once, each on its own connection and checker thread:
/// one index scan keeps one Postgres backend busy and leaves the other core mostly idle. Streams
/// never straddle the split, and the first range's findings all come before the second's in key
/// order, so the result is the single pass's.
async fn verify_streams(
    pool: &PgPool,
    total: Option<u64>,
    progress: &dyn Fn(u64, Option<u64>),
) -> Result<StreamsOutcome, AuditError> {
    let sample: Vec<StreamKey> = sqlx::query_as(VERIFY_SPLIT)
        .fetch_all(pool)
        .await
        .map_err(|e| AuditError::db("sampling stream keys to split the stream check", e))?;
    let split = sample.get(sample.len() / 2).filter(|_| sample.len() >= 2);
    let read = std::sync::atomic::AtomicU64::new(0);
    let lane = |range| verify_stream_range(pool, range, &read, total, progress);
    let mut outcome = match split {
        Some(split) => {
            let (first, second) =
                futures::future::try_join(lane(Range::Below(split)), lane(Range::From(split)))
                    .await?;
            let mut outcome = first;
            outcome.events += second.events;
            outcome.streams += second.streams;
            outcome.omitted += second.omitted;
            outcome.findings.extend(second.findings);
            outcome
        }
        None => lane(Range::All).await?,
    };
    if outcome.findings.len() > MAX_FINDINGS {
        outcome.omitted += (outcome.findings.len() - MAX_FINDINGS) as u64;
        outcome.findings.truncate(MAX_FINDINGS);
    }
    Ok(outcome)
}

/// Which streams a pass of the stream check reads, by key.
#[derive(Debug, Clone, Copy)]
enum Range<'k> {
    All,
    Below(&'k StreamKey),
    From(&'k StreamKey),
}

/// The streams in `range`.
async fn verify_stream_range(
    pool: &PgPool,
    range: Range<'_>,
    read: &std::sync::atomic::AtomicU64,
    total: Option<u64>,
    progress: &dyn Fn(u64, Option<u64>),
) -> Result<StreamsOutcome, AuditError> {
    use std::sync::atomic::Ordering;
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| AuditError::db("acquiring a connection to verify streams", e))?;
    let mut tx = conn
        .begin()
        .await
        .map_err(|e| AuditError::db("beginning the stream check", e))?;
    // One long scan: compiling it costs more than it saves; and walk the primary key rather
    // than sorting the whole table.
    sqlx::raw_sql("SET LOCAL jit = off; SET LOCAL enable_sort = off")
        .execute(&mut *tx)
        .await
        .map_err(|e| AuditError::db("configuring the stream check", e))?;
    // Reading (the protocol) and checking (JSON decoding, canonical encoding, SHA-256) run on
    // two threads, handing over bounded batches of rows: memory stays constant.
    let (batches, inbox) = tokio::sync::mpsc::channel::<Vec<PgRow>>(4);
    let mut checker = AbortOnDrop(tokio::task::spawn_blocking(move || check_streams(inbox)));
    // A row comparison with the key's leading columns: an index condition of the scan.
    let (bound, key) = match range {
        Range::All => ("", None),
        Range::Below(key) => ("WHERE (aggregate_type, aggregate_id) < ($1, $2)", Some(key)),
        Range::From(key) => (
            "WHERE (aggregate_type, aggregate_id) >= ($1, $2)",
            Some(key),
        ),
    };
    // Every event of the range, stream after stream, each in sequence order (the primary key's
    // order: one index scan, constant memory), its columns as stored.
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM events {bound} ORDER BY aggregate_type, aggregate_id, sequence"
    ));
    let mut query = sqlx::query(sql);
    if let Some((aggregate_type, aggregate_id)) = key {
        query = query.bind(aggregate_type).bind(aggregate_id);
    }
    let mut rows = query.fetch(&mut *tx);
    let mut batch = Vec::with_capacity(CHECK_BATCH);
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(|e| AuditError::db("reading events to verify", e))?
    {
        batch.push(row);
        if batch.len() == CHECK_BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(CHECK_BATCH));
            if batches.send(full).await.is_err() {
                // The checker stopped on an error: it is returned below.
                break;
            }
            let before = read.fetch_add(CHECK_BATCH as u64, Ordering::Relaxed);
            if (before + CHECK_BATCH as u64) / PROGRESS_EVERY > before / PROGRESS_EVERY {
                progress(before + CHECK_BATCH as u64, total);
            }
        }
    }
    if !batch.is_empty() {
        read.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let _ = batches.send(batch).await;
    }
    drop(batches);
    drop(rows);
    tx.commit()
        .await
        .map_err(|e| AuditError::db("finishing the stream check", e))?;
    (&mut checker.0)
        .await
        .map_err(|e| AuditError::Task(format!("the stream check stopped: {e}")))?
}

/// Rows handed from the reader to the checker at once.
const CHECK_BATCH: usize = 512;

/// Checks the rows the reader hands over, in order.
fn check_streams(
    mut inbox: tokio::sync::mpsc::Receiver<Vec<PgRow>>,
) -> Result<StreamsOutcome, AuditError> {
    let mut checker = StreamChecker::default();
    let mut outcome = StreamsOutcome {
        events: 0,
        streams: 0,
        findings: Vec::new(),
        omitted: 0,
    };
    while let Some(batch) = inbox.blocking_recv() {
        for row in &batch {
            let stored = StoredEvent::from_row(row)
                .map(Stored)
                .map_err(|e| AuditError::db("decoding an events row", e))?;
            if let Some(finding) = checker.check(&stored) {
                if outcome.findings.len() < MAX_FINDINGS {
                    outcome.findings.push(finding);
                } else {
                    outcome.omitted += 1;
                }
            }
            outcome.events += 1;
        }
    }
    outcome.streams = checker.streams;
    Ok(outcome)
}

/// A finding of the global chain, its events named by position only (resolved afterwards).
enum ChainFinding {
    AnchorMismatch {
        anchor: Anchor,
        found_events: i64,
    },
    AnchorEventMissing(Anchor),
    CheckpointMismatch {
        position: Position,
        expected_events: i64,
        found_events: i64,
    },
}

struct ChainOutcome {
    anchors: u64,
    chained_events: i64,
    findings: Vec<ChainFinding>,
    omitted: u64,
}

/// The relay checkpoint: `None` before the relay published anything.
async fn relay_checkpoint(pool: &PgPool) -> Result<Option<(Position, Vec<u8>, i64)>, AuditError> {
    let row: Option<(i64, i64, Option<Vec<u8>>, i64)> = sqlx::query_as(RELAY_CHECKPOINT)
        .fetch_optional(pool)
        .await
        .map_err(|e| AuditError::db("reading the relay checkpoint", e))?;
    Ok(row.and_then(|(tx_id, global_position, chain_hash, count)| {
        chain_hash.filter(|_| count > 0).map(|hash| {
            (
                Position {
                    tx_id,
                    global_position,
                },
                hash,
                count,
            )
        })
    }))
}

/// Recomputes the relay's global chain and compares it with each anchor, resynchronising on
/// the anchor after a mismatch so that later runs are judged on their own.
async fn verify_global_chain(pool: PgPool) -> Result<ChainOutcome, AuditError> {
    // Anchors and checkpoint first: everything they cover was committed before the scan starts.
    let anchors = load_anchors(&pool).await?;
    let checkpoint = relay_checkpoint(&pool).await?;
    let mut outcome = ChainOutcome {
        anchors: 0,
        chained_events: 0,
        findings: Vec::new(),
        omitted: 0,
    };
    let Some((through, checkpoint_hash, published)) = checkpoint else {
        return Ok(outcome);
    };
    let push = |outcome: &mut ChainOutcome, f: ChainFinding| {
        if outcome.findings.len() < MAX_FINDINGS {
            outcome.findings.push(f);
        } else {
            outcome.omitted += 1;
        }
    };
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| AuditError::db("acquiring a connection to verify the global chain", e))?;
    let mut tx = conn
        .begin()
        .await
        .map_err(|e| AuditError::db("beginning the global chain check", e))?;
    sqlx::query("SET LOCAL jit = off")
        .execute(&mut *tx)
        .await
        .map_err(|e| AuditError::db("configuring the global chain check", e))?;
    let mut rows = sqlx::query(VERIFY_CHAIN)
        .bind(through.tx_id)
        .bind(through.global_position)
        .fetch(&mut *tx);
    let mut pending = anchors.into_iter().peekable();
    let mut chain: Option<Vec<u8>> = None;
    let mut count: i64 = 0;
    // Events in the chain before the current anchor's run.
    let mut run_start: i64 = 0;
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(|e| AuditError::db("reading events to verify the global chain", e))?
    {
        // By position, as `verify_chain.sql` selects them.
        let tx_id = xid8(&row, 0)
            .map_err(|e| AuditError::db("decoding an events row of the global chain", e))?;
        let global_position: i64 = row.get(1);
        let hash: &[u8] = row.get(2);
        let here = (tx_id, global_position);
        // Anchors whose last event should have come before this one: it is gone.
        while let Some(a) = pending.next_if(|a| (a.to_tx_id, a.to_position) < here) {
            count = a.chain_length;
            chain = Some(a.chain_hash.clone());
            run_start = count;
            outcome.anchors += 1;
            push(&mut outcome, ChainFinding::AnchorEventMissing(a));
        }
        chain = Some(chain_step(chain.as_deref(), hash, global_position, tx_id));
        count += 1;
        if let Some(a) = pending.next_if(|a| (a.to_tx_id, a.to_position) == here) {
            outcome.anchors += 1;
            if count != a.chain_length || chain.as_deref() != Some(a.chain_hash.as_slice()) {
                let found_events = count - run_start;
                // Judge the next run on its own: start from what the relay recorded.
                count = a.chain_length;
                chain = Some(a.chain_hash.clone());
                push(
                    &mut outcome,
                    ChainFinding::AnchorMismatch {
                        anchor: a,
                        found_events,
                    },
                );
            }
            run_start = count;
        }
    }
    drop(rows);
    tx.commit()
        .await
        .map_err(|e| AuditError::db("finishing the global chain check", e))?;
    for a in pending {
        outcome.anchors += 1;
        push(&mut outcome, ChainFinding::AnchorEventMissing(a));
    }
    if count != published || chain.as_deref() != Some(checkpoint_hash.as_slice()) {
        push(
            &mut outcome,
            ChainFinding::CheckpointMismatch {
                position: through,
                expected_events: published,
                found_events: count,
            },
        );
    }
    outcome.chained_events = published;
    Ok(outcome)
}

/// Names the events of the global chain's findings.
async fn resolve(pool: &PgPool, findings: Vec<ChainFinding>) -> Result<Vec<Finding>, AuditError> {
    let positions: Vec<i64> = findings
        .iter()
        .flat_map(|f| match f {
            ChainFinding::AnchorMismatch { anchor, .. } => {
                vec![anchor.from_position, anchor.to_position]
            }
            _ => Vec::new(),
        })
        .collect();
    let refs: Vec<EventRef> = if positions.is_empty() {
        Vec::new()
    } else {
        sqlx::query(EVENT_REFS)
            .bind(&positions)
            .fetch_all(pool)
            .await
            .map_err(|e| AuditError::db("naming the events of global chain findings", e))?
            .iter()
            .map(|r| EventRef {
                event_id: r.get("event_id"),
                aggregate_type: r.get("aggregate_type"),
                aggregate_id: r.get("aggregate_id"),
                sequence: r.get("sequence"),
                global_position: r.get("global_position"),
                tx_id: r.get("tx_id"),
            })
            .collect()
    };
    // Only an event still at the recorded place in the order is the anchor's event.
    let at = |tx_id: i64, global_position: i64| {
        refs.iter()
            .find(|r| r.global_position == global_position && r.tx_id == tx_id)
            .cloned()
    };
    Ok(findings
        .into_iter()
        .map(|f| match f {
            ChainFinding::AnchorMismatch {
                anchor,
                found_events,
            } => Finding::AnchorMismatch {
                anchor_chain_length: anchor.chain_length,
                first: Position {
                    tx_id: anchor.from_tx_id,
                    global_position: anchor.from_position,
                },
                last: Position {
                    tx_id: anchor.to_tx_id,
                    global_position: anchor.to_position,
                },
                first_event: at(anchor.from_tx_id, anchor.from_position),
                last_event: at(anchor.to_tx_id, anchor.to_position),
                expected_events: anchor.event_count,
                found_events,
            },
            ChainFinding::AnchorEventMissing(anchor) => Finding::AnchorEventMissing {
                anchor_chain_length: anchor.chain_length,
                position: Position {
                    tx_id: anchor.to_tx_id,
                    global_position: anchor.to_position,
                },
            },
            ChainFinding::CheckpointMismatch {
                position,
                expected_events,
                found_events,
            } => Finding::CheckpointMismatch {
                position,
                expected_events,
                found_events,
            },
        })
        .collect())
}

/// Aborts the task when dropped, so an early return does not leave a scan running.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
