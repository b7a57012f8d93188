//! Rebuilding a projection from the event store (pure Postgres), and every projection's status.
//!
//! A rebuild marks the projection as rebuilding (the live runner waits while the mark is set),
//! empties its tables, drops their secondary indexes (and primary keys, when the projection
//! allows: [`Projection::rebuild_drops_keys`]), and folds the events table into them, one
//! transaction per chunk: in `(tx_id, global_position)` order with the checkpoint advancing per
//! chunk, or stream by stream for projections that allow it ([`RebuildOrder`]; each chunk goes
//! to [`Projection::rebuild_chunk`], which may bulk-load). At the end it recreates the keys and
//! indexes, sets the checkpoint to the last event read and clears the mark; the live runner then
//! drops what the checkpoint covers and goes on from there. A failed rebuild leaves the mark
//! set: run it again.
//!
//! It reads up to the *horizon* taken when it starts: `pg_snapshot_xmin(pg_current_snapshot())`,
//! below which every transaction has ended, so that part of the log is final and gap-free. The
//! relay only publishes below an earlier horizon, so this covers the relay checkpoint and any
//! event published (and perhaps already acked by the projection's consumer) but not yet
//! checkpointed by the relay; reading only up to the relay checkpoint could leave such events
//! out for good.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use linkage_bus::Envelope;
use linkage_bus::envelope::ENVELOPE_VERSION;
use linkage_store::stored::StoredEvent;
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, PgPool, Row};
use tokio::sync::mpsc;

use crate::checkpoint::{self, Position, show};
use crate::{Projection, ProjectionError, RebuildOrder};

/// Events per rebuild transaction.
pub const DEFAULT_CHUNK_SIZE: usize = 5000;

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RebuildSummary {
    pub projection: &'static str,
    /// Events read from the store (of every aggregate type).
    pub events: u64,
    /// The checkpoint the rebuild left.
    pub position: Option<Position>,
    pub elapsed: Duration,
}

/// Where a projection stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProjectionStatus {
    pub name: String,
    /// The last event applied (`None`: nothing yet).
    pub position: Option<Position>,
    /// JetStream sequence of that event (`None` when a rebuild applied it).
    pub stream_sequence: Option<i64>,
    pub updated_at: DateTime<Utc>,
    /// Set while a rebuild runs, or since a rebuild that failed.
    pub rebuilding_since: Option<DateTime<Utc>>,
    /// Events at or before the relay checkpoint the projection has not applied yet; `None` when
    /// the relay has no checkpoint table (it never ran against this database).
    pub behind: Option<i64>,
}

/// The columns of `events` that make an [`Envelope`] (see [`envelope_from_row`]): the stored
/// columns as they are, read by position.
pub const EVENT_COLUMNS: &str = linkage_store::stored::COLUMNS;

/// Rows of a [`RebuildOrder::PerAggregate`] rebuild's chunk, as read from the events table
/// (selected with [`EVENT_COLUMNS`]): whole streams, each in sequence order. Nothing is decoded
/// until the projection asks: [`StoredChunk::events`] borrows the stored text, and
/// [`StoredChunk::envelopes`] makes envelopes as the relay publishes them.
#[derive(Debug, Default)]
pub struct StoredChunk {
    rows: Vec<PgRow>,
}

impl StoredChunk {
    /// Rows selected with [`EVENT_COLUMNS`], whole streams in sequence order.
    pub fn new(rows: Vec<PgRow>) -> Self {
        Self { rows }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The events, borrowing from the rows.
    pub fn events(&self) -> impl Iterator<Item = Result<StoredEvent<'_>, ProjectionError>> {
        self.rows.iter().map(stored_event)
    }

    /// The events as envelopes.
    pub fn envelopes(&self) -> Result<Vec<Envelope>, ProjectionError> {
        self.events().map(|event| envelope_of(&event?)).collect()
    }
}

fn stored_event(row: &PgRow) -> Result<StoredEvent<'_>, ProjectionError> {
    StoredEvent::from_row(row).map_err(|e| ProjectionError::db("decoding an events row", e))
}

/// Rebuilds `projection` from scratch in chunks of [`DEFAULT_CHUNK_SIZE`] events, calling
/// `progress(done, total)` after each chunk (and once with `done = 0` at the start).
pub async fn rebuild(
    pool: &PgPool,
    projection: &dyn Projection,
    progress: impl Fn(u64, u64),
) -> Result<RebuildSummary, ProjectionError> {
    rebuild_with(pool, projection, DEFAULT_CHUNK_SIZE, progress).await
}

/// Chunks written at once by a per-aggregate rebuild: while one chunk's rows are folded and
/// encoded here, the others' `COPY`s run in Postgres (with two, the cores sat ≈ 20 % idle).
const PARALLEL_CHUNKS: usize = 3;

/// What a per-aggregate chunk writer reports.
enum Step {
    Applied(u64),
    End(Option<Position>),
}

/// What the reader task hands over.
enum Read {
    /// A chunk of a global-order rebuild, decoded by the reader.
    Envelopes(Vec<Envelope>),
    /// A chunk of a per-aggregate rebuild, as read.
    Rows(StoredChunk),
    /// Everything was read; the last event in publication order, if any.
    End(Option<Position>),
}

/// [`rebuild`] with a chosen chunk size.
pub async fn rebuild_with(
    pool: &PgPool,
    projection: &dyn Projection,
    chunk_size: usize,
    progress: impl Fn(u64, u64),
) -> Result<RebuildSummary, ProjectionError> {
    rebuild_until(pool, projection, chunk_size, None, progress).await
}

/// [`rebuild_with`], folding only the events recorded at or before `until` (`recorded_at <=
/// until`) when given: the projection as it stood then. For the audit's replay, which points the
/// pool's `search_path` at a scratch schema holding the projection's tables and its own
/// `projection_checkpoints`.
pub async fn rebuild_until(
    pool: &PgPool,
    projection: &dyn Projection,
    chunk_size: usize,
    until: Option<DateTime<Utc>>,
    progress: impl Fn(u64, u64),
) -> Result<RebuildSummary, ProjectionError> {
    let started = Instant::now();
    let name = projection.name();
    let order = projection.rebuild_order();
    let chunk_size = chunk_size.max(1);
    create_tables(pool, projection).await?;

    let horizon = read_horizon(pool).await?;
    // The count is for progress only: it runs on a connection of its own while the rebuild
    // starts and the reader begins its scan, instead of before them (it was ~4 % of a rebuild).
    let counting = AbortOnDrop(tokio::spawn({
        let pool = pool.clone();
        async move { count_events(&pool, horizon, until).await }
    }));

    // Start: mark the rebuild (the live runner waits), empty the tables, drop their secondary
    // indexes, reset the checkpoint.
    let mut tx = begin_chunk(pool, name).await?;
    checkpoint::lock(&mut tx, name).await?;
    checkpoint::set_rebuilding(&mut tx, name, true).await?;
    // Indexes first: their sizes before the truncation order their builds at the end.
    let dropped = drop_indexes(&mut tx, projection).await?;
    truncate(&mut tx, projection).await?;
    checkpoint::save(&mut tx, name, None, None).await?;
    commit(tx, name).await?;

    // Reading (and decoding) overlaps with applying: a task streams the events into chunks.
    let (chunks_tx, mut chunks) = mpsc::channel(2);
    let mut read_conn = pool
        .acquire()
        .await
        .map_err(|e| ProjectionError::db("acquiring a connection to read events", e))?;
    let reader = AbortOnDrop(tokio::spawn(async move {
        let order_by = match order {
            RebuildOrder::Global => "tx_id, global_position",
            RebuildOrder::PerAggregate => "aggregate_type, aggregate_id, sequence",
        };
        let until_clause = if until.is_some() {
            "AND recorded_at <= $2"
        } else {
            ""
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE tx_id < $1::bigint::text::xid8 \
             {until_clause} ORDER BY {order_by}"
        ));
        // In a transaction only to scope `jit = off`: compiling this one long scan costs more
        // than it saves.
        let mut read_tx = match read_conn.begin().await {
            Ok(tx) => tx,
            Err(e) => {
                let _ = chunks_tx
                    .send(Err(ProjectionError::db("beginning to read events", e)))
                    .await;
                return;
            }
        };
        if let Err(e) = sqlx::query("SET LOCAL jit = off")
            .execute(&mut *read_tx)
            .await
        {
            let _ = chunks_tx
                .send(Err(ProjectionError::db("configuring the event reader", e)))
                .await;
            return;
        }
        let mut query = sqlx::query(sql).bind(horizon);
        if let Some(until) = until {
            query = query.bind(until);
        }
        let mut rows = query.fetch(&mut *read_tx);
        let mut chunk: Vec<PgRow> = Vec::with_capacity(chunk_size);
        let mut last: Option<Position> = None;
        // The stream of the chunk's last row (per aggregate: a chunk never ends inside one).
        let mut stream: (String, String) = Default::default();
        let send = |rows: Vec<PgRow>| match order {
            RebuildOrder::Global => StoredChunk::new(rows).envelopes().map(Read::Envelopes),
            RebuildOrder::PerAggregate => Ok(Read::Rows(StoredChunk::new(rows))),
        };
        loop {
            let row = match rows.try_next().await {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => {
                    let _ = chunks_tx
                        .send(Err(ProjectionError::db("reading the events table", e)))
                        .await;
                    return;
                }
            };
            let event = match stored_event(&row) {
                Ok(event) => event,
                Err(e) => {
                    let _ = chunks_tx.send(Err(e)).await;
                    return;
                }
            };
            let new_stream = event.aggregate_id != stream.1 || event.aggregate_type != stream.0;
            let full = chunk.len() >= chunk_size && (order == RebuildOrder::Global || new_stream);
            if new_stream && order == RebuildOrder::PerAggregate {
                stream = (
                    event.aggregate_type.to_owned(),
                    event.aggregate_id.to_owned(),
                );
            }
            last = last.max(Some(Position {
                tx_id: event.tx_id,
                global_position: event.global_position,
            }));
            if full {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(chunk_size));
                if chunks_tx.send(send(full)).await.is_err() {
                    return;
                }
            }
            chunk.push(row);
        }
        if !chunk.is_empty() && chunks_tx.send(send(chunk)).await.is_err() {
            return;
        }
        let _ = chunks_tx.send(Ok(Read::End(last))).await;
    }));
    let total = counting.join().await?? as u64;
    progress(0, total);
    tracing::info!(projection = name, total, horizon, ?order, "rebuild started");

    let mut expected: Option<Position> = None;
    let mut done = 0u64;
    let last = match order {
        RebuildOrder::Global => loop {
            let chunk = match chunks.recv().await {
                Some(Ok(Read::Envelopes(chunk))) => chunk,
                Some(Ok(Read::Rows(rows))) => rows.envelopes()?,
                Some(Ok(Read::End(last))) => break last,
                Some(Err(e)) => return Err(e),
                None => return Err(ProjectionError::ReaderStopped),
            };
            let mut tx = begin_chunk(pool, name).await?;
            check_untouched(&mut tx, name, expected).await?;
            projection.apply(&mut tx, &chunk).await?;
            expected = chunk.last().map(Position::of);
            checkpoint::save(&mut tx, name, expected, None).await?;
            commit(tx, name).await?;
            done += chunk.len() as u64;
            progress(done, total);
        },
        // Chunks hold whole, distinct streams and leave the checkpoint alone, so several may
        // be written at once, each on its own connection.
        RebuildOrder::PerAggregate => {
            let messages = futures::stream::unfold(chunks, |mut rx| async move {
                rx.recv().await.map(|m| (m, rx))
            });
            let mut steps = std::pin::pin!(
                messages
                    .map(|message| async move {
                        let chunk = match message? {
                            Read::End(last) => return Ok(Step::End(last)),
                            chunk => chunk,
                        };
                        let mut tx = begin_chunk(pool, name).await?;
                        check_untouched_shared(&mut tx, name).await?;
                        let events = match &chunk {
                            Read::Rows(rows) => {
                                projection.rebuild_chunk(&mut tx, rows).await?;
                                rows.len()
                            }
                            Read::Envelopes(envelopes) => {
                                projection.apply(&mut tx, envelopes).await?;
                                envelopes.len()
                            }
                            Read::End(_) => 0,
                        };
                        commit(tx, name).await?;
                        Ok(Step::Applied(events as u64))
                    })
                    .buffer_unordered(PARALLEL_CHUNKS)
            );
            let mut end = None;
            while let Some(step) = steps.next().await {
                match step? {
                    Step::Applied(n) => {
                        done += n;
                        progress(done, total);
                    }
                    Step::End(last) => end = Some(last),
                }
            }
            end.ok_or(ProjectionError::ReaderStopped)?
        }
    };
    drop(reader);

    // The keys and indexes again, each in one sorted pass, before the live runner may go on
    // (its upserts need the keys).
    if !dropped.is_empty() {
        let started_indexes = Instant::now();
        recreate_indexes(pool, &dropped).await?;
        tracing::info!(
            projection = name,
            indexes = dropped.len(),
            elapsed_ms = started_indexes.elapsed().as_millis() as u64,
            "indexes recreated"
        );
    }
    // The projection's DDL too: it is what defines them (a no-op unless it changed meanwhile).
    create_tables(pool, projection).await?;

    // End: the checkpoint is the last event below the horizon; the live runner may go on.
    let mut tx = begin_chunk(pool, name).await?;
    check_untouched(&mut tx, name, expected).await?;
    checkpoint::save(&mut tx, name, last, None).await?;
    checkpoint::set_rebuilding(&mut tx, name, false).await?;
    commit(tx, name).await?;
    let summary = RebuildSummary {
        projection: name,
        events: done,
        position: last,
        elapsed: started.elapsed(),
    };
    tracing::info!(
        projection = name,
        events = done,
        elapsed_ms = summary.elapsed.as_millis() as u64,
        position = %show(last),
        "rebuild finished"
    );
    Ok(summary)
}

/// The horizon the rebuild reads up to: every transaction below it has ended, so the log below
/// it is final.
async fn read_horizon(pool: &PgPool) -> Result<i64, ProjectionError> {
    sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        .fetch_one(pool)
        .await
        .map_err(|e| ProjectionError::db("reading the transaction horizon", e))
}

/// How many events a rebuild up to `horizon` (and `until`) reads.
async fn count_events(
    pool: &PgPool,
    horizon: i64,
    until: Option<DateTime<Utc>>,
) -> Result<i64, ProjectionError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| ProjectionError::db("beginning to count events", e))?;
    sqlx::query("SET LOCAL jit = off")
        .execute(&mut *tx)
        .await
        .map_err(|e| ProjectionError::db("configuring the event count", e))?;
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE tx_id < $1::bigint::text::xid8 \
           AND ($2::timestamptz IS NULL OR recorded_at <= $2)",
    )
    .bind(horizon)
    .bind(until)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| ProjectionError::db("counting the events to rebuild from", e))?;
    tx.commit()
        .await
        .map_err(|e| ProjectionError::db("finishing the event count", e))?;
    Ok(total)
}

/// A rebuild transaction. The checkpoint moves with the rows (or the rebuild mark stays set),
/// so a chunk lost to a crash is lost consistently: no need to wait for each commit to reach
/// disk.
async fn begin_chunk(
    pool: &PgPool,
    name: &'static str,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, ProjectionError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| ProjectionError::db(format!("beginning a rebuild chunk of {name}"), e))?;
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await
        .map_err(|e| ProjectionError::db("relaxing commit durability for a rebuild", e))?;
    Ok(tx)
}

async fn commit(
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    name: &'static str,
) -> Result<(), ProjectionError> {
    tx.commit()
        .await
        .map_err(|e| ProjectionError::db(format!("committing a rebuild chunk of {name}"), e))
}

/// [`check_untouched`] for concurrent per-aggregate chunks: a shared lock (the runner's
/// exclusive one still waits), and the checkpoint must still be the rebuild's empty one.
async fn check_untouched_shared(
    conn: &mut PgConnection,
    name: &'static str,
) -> Result<(), ProjectionError> {
    let row: Option<(Option<i64>, bool)> = sqlx::query_as(
        "SELECT global_position, rebuilding_since IS NOT NULL FROM projection_checkpoints \
         WHERE name = $1 FOR SHARE",
    )
    .bind(name)
    .fetch_optional(conn)
    .await
    .map_err(|e| ProjectionError::db(format!("locking the checkpoint of {name}"), e))?;
    match row {
        Some((None, true)) => Ok(()),
        other => Err(ProjectionError::RebuildInterrupted {
            projection: name,
            expected: "an empty checkpoint marked as rebuilding".into(),
            found: format!("{other:?}"),
        }),
    }
}

/// Locks the checkpoint and checks nobody else wrote since the rebuild's last chunk (the mark
/// keeps the runner out; another rebuild would not be kept out).
async fn check_untouched(
    conn: &mut PgConnection,
    name: &'static str,
    expected: Option<Position>,
) -> Result<(), ProjectionError> {
    let current = checkpoint::lock(conn, name).await?;
    if current.rebuilding && current.position == expected {
        Ok(())
    } else {
        Err(ProjectionError::RebuildInterrupted {
            projection: name,
            expected: show(expected),
            found: if current.rebuilding {
                show(current.position)
            } else {
                format!("{} (rebuild mark cleared)", show(current.position))
            },
        })
    }
}

/// Aborts the task when dropped, so an early return does not leave a reader streaming.
struct AbortOnDrop<T = ()>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    /// The task's result; a task that panicked stopped the rebuild.
    async fn join(mut self) -> Result<T, ProjectionError> {
        (&mut self.0)
            .await
            .map_err(|e| ProjectionError::TaskStopped(e.to_string()))
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn create_tables(pool: &PgPool, projection: &dyn Projection) -> Result<(), ProjectionError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| ProjectionError::db("beginning the projection schema transaction", e))?;
    crate::create_tables(&mut tx, projection).await?;
    tx.commit()
        .await
        .map_err(|e| ProjectionError::db("committing the projection schema", e))
}

async fn truncate(
    conn: &mut PgConnection,
    projection: &dyn Projection,
) -> Result<(), ProjectionError> {
    if projection.tables().is_empty() {
        return Ok(());
    }
    let tables: Vec<String> = projection
        .tables()
        .iter()
        .map(|t| linkage_store::db::quote_ident(t))
        .collect();
    // Table names come from the projection's code, quoted: no outside input reaches this string.
    let sql = sqlx::AssertSqlSafe(format!("TRUNCATE {}", tables.join(", ")));
    sqlx::query(sql).execute(conn).await.map_err(|e| {
        ProjectionError::db(format!("truncating the tables of {}", projection.name()), e)
    })?;
    Ok(())
}

/// An index or primary key a rebuild dropped, and the statement that makes it again.
#[derive(Debug)]
struct DroppedIndex {
    name: String,
    create: String,
}

/// Index builds running at once at the end of a rebuild (each on its own connection).
const INDEX_BUILDERS: usize = 2;

/// Drops the projection's indexes, except those backing constraints (which the projection's
/// own writes may rely on), and its primary keys too when its [`Projection::rebuild_chunk`]
/// does not need them: maintaining indexes row by row is most of a bulk load's cost, building
/// them once at the end is cheap. Returns how to make them again: [`recreate_indexes`] does
/// at the end of the rebuild; after a failed one, the projection's DDL does at the projector's
/// next start (a DDL whose keys may be dropped must add them back when missing).
async fn drop_indexes(
    conn: &mut PgConnection,
    projection: &dyn Projection,
) -> Result<Vec<DroppedIndex>, ProjectionError> {
    let tables: Vec<String> = projection
        .tables()
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    let mut dropped = Vec::new();
    if projection.rebuild_drops_keys() {
        // Keys first: their tables are the largest, so their builds start first at the end.
        let keys: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT c.conrelid::regclass::text, quote_ident(c.conname), \
                    pg_get_constraintdef(c.oid) \
             FROM pg_constraint c \
             WHERE c.conrelid = ANY($1::text[]::regclass[]) AND c.contype = 'p' \
             ORDER BY pg_relation_size(c.conrelid) DESC",
        )
        .bind(&tables)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| {
            ProjectionError::db(format!("listing the keys of {}", projection.name()), e)
        })?;
        for (table, key, definition) in keys {
            // Names and definitions come from the catalog, quoted by Postgres.
            let sql = sqlx::AssertSqlSafe(format!("ALTER TABLE {table} DROP CONSTRAINT {key}"));
            sqlx::query(sql).execute(&mut *conn).await.map_err(|e| {
                ProjectionError::db(format!("dropping key {key} of {table} for a rebuild"), e)
            })?;
            dropped.push(DroppedIndex {
                create: format!("ALTER TABLE {table} ADD CONSTRAINT {key} {definition}"),
                name: key,
            });
        }
    }
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i \
         WHERE i.indrelid = ANY($1::text[]::regclass[]) AND NOT i.indisprimary \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) \
         ORDER BY pg_relation_size(i.indexrelid) DESC",
    )
    .bind(&tables)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| ProjectionError::db(format!("listing the indexes of {}", projection.name()), e))?;
    for (index, create) in indexes {
        // `regclass::text` is already quoted where needed; the names come from the catalog.
        let sql = sqlx::AssertSqlSafe(format!("DROP INDEX {index}"));
        sqlx::query(sql)
            .execute(&mut *conn)
            .await
            .map_err(|e| ProjectionError::db(format!("dropping index {index} for a rebuild"), e))?;
        dropped.push(DroppedIndex {
            name: index,
            create,
        });
    }
    Ok(dropped)
}

/// Makes the dropped keys and indexes again, [`INDEX_BUILDERS`] at a time (Postgres builds
/// each on one core; the rebuild has nothing else left to do).
async fn recreate_indexes(pool: &PgPool, dropped: &[DroppedIndex]) -> Result<(), ProjectionError> {
    futures::stream::iter(dropped)
        .map(|index| async move {
            let mut tx = pool.begin().await.map_err(|e| {
                ProjectionError::db(format!("beginning to recreate {}", index.name), e)
            })?;
            sqlx::query("SET LOCAL maintenance_work_mem = '256MB'")
                .execute(&mut *tx)
                .await
                .map_err(|e| ProjectionError::db("sizing memory for index builds", e))?;
            // As for the chunks (`begin_chunk`): the transaction that clears the rebuild mark
            // comes after, and WAL is flushed in order, so an index lost to a crash is lost with
            // the mark still set. Waiting for each build's WAL to reach disk was ≈ 50 ms apiece.
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    ProjectionError::db("relaxing commit durability for index builds", e)
                })?;
            // The statement was written by Postgres (`pg_get_indexdef`, `pg_get_constraintdef`).
            sqlx::raw_sql(sqlx::AssertSqlSafe(index.create.clone()))
                .execute(&mut *tx)
                .await
                .map_err(|e| ProjectionError::db(format!("recreating {}", index.name), e))?;
            tx.commit()
                .await
                .map_err(|e| ProjectionError::db(format!("committing {}", index.name), e))
        })
        .buffer_unordered(INDEX_BUILDERS)
        .try_collect()
        .await
}

/// An events-table row (selected with [`EVENT_COLUMNS`]) as the relay would publish it.
pub fn envelope_from_row(row: &PgRow) -> Result<Envelope, ProjectionError> {
    envelope_of(&stored_event(row)?)
}

/// A stored event as the relay would publish it: payload and metadata parsed, hashes in
/// lowercase hex (as Postgres' `encode(…, 'hex')` gives them).
pub fn envelope_of(event: &StoredEvent<'_>) -> Result<Envelope, ProjectionError> {
    let json = |text: &[u8]| {
        serde_json::from_slice(text).map_err(|e| ProjectionError::decode_stored(event, e))
    };
    Ok(Envelope {
        envelope_version: ENVELOPE_VERSION,
        event_id: event.event_id,
        global_position: event.global_position,
        tx_id: event.tx_id,
        aggregate_type: event.aggregate_type.to_owned(),
        aggregate_id: event.aggregate_id.to_owned(),
        sequence: event.sequence,
        event_type: event.event_type.to_owned(),
        event_version: event.event_version.to_owned(),
        recorded_at: event.recorded_at,
        payload: json(event.payload)?,
        metadata: json(event.metadata)?,
        hash: hex::encode(event.hash),
        prev_hash: event.prev_hash.map(hex::encode),
    })
}

/// Up to `limit` events after `after`, in publication order, below the current horizon (so the
/// answer never skips a transaction that commits later). For tools and tests.
pub async fn read_events(
    pool: &PgPool,
    after: Option<Position>,
    limit: i64,
) -> Result<Vec<Envelope>, ProjectionError> {
    let after = after.unwrap_or(Position {
        tx_id: 0,
        global_position: 0,
    });
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {EVENT_COLUMNS} FROM events \
         WHERE (tx_id, global_position) > ($1::bigint::text::xid8, $2) \
           AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY tx_id, global_position LIMIT $3"
    ));
    let rows = sqlx::query(sql)
        .bind(after.tx_id)
        .bind(after.global_position)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(|e| ProjectionError::db("reading events", e))?;
    rows.iter().map(envelope_from_row).collect()
}

/// Every projection's checkpoint, and how far behind the relay it is.
pub async fn status(pool: &PgPool) -> Result<Vec<ProjectionStatus>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT name, tx_id::text::bigint AS tx_id, global_position, stream_sequence, \
                updated_at, rebuilding_since \
         FROM projection_checkpoints ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| ProjectionError::db("reading projection checkpoints", e))?;
    let relay = relay_position(pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let tx_id: Option<i64> = row.get("tx_id");
        let global_position: Option<i64> = row.get("global_position");
        let position = tx_id
            .zip(global_position)
            .map(|(tx_id, global_position)| Position {
                tx_id,
                global_position,
            });
        let behind = match relay {
            None => None,
            Some(None) => Some(0),
            Some(Some(relay)) => Some(count_between(pool, position, relay).await?),
        };
        out.push(ProjectionStatus {
            name: row.get("name"),
            position,
            stream_sequence: row.get("stream_sequence"),
            updated_at: row.get("updated_at"),
            rebuilding_since: row.get("rebuilding_since"),
            behind,
        });
    }
    Ok(out)
}

/// The relay's checkpoint: `None` without a relay table, `Some(None)` before it published.
async fn relay_position(pool: &PgPool) -> Result<Option<Option<Position>>, ProjectionError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('relay_checkpoint') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(|e| ProjectionError::db("looking for the relay checkpoint", e))?;
    if !exists {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT tx_id::text::bigint AS tx_id, global_position FROM relay_checkpoint \
         ORDER BY tx_id DESC NULLS LAST, global_position DESC NULLS LAST LIMIT 1",
    )
    .fetch_optional(pool)
    .await
    .map_err(|e| ProjectionError::db("reading the relay checkpoint", e))?;
    Ok(Some(row.and_then(|row| {
        let tx_id: Option<i64> = row.get("tx_id");
        let global_position: Option<i64> = row.get("global_position");
        tx_id
            .zip(global_position)
            .map(|(tx_id, global_position)| Position {
                tx_id,
                global_position,
            })
    })))
}

async fn count_between(
    pool: &PgPool,
    after: Option<Position>,
    upto: Position,
) -> Result<i64, ProjectionError> {
    let after = after.unwrap_or(Position {
        tx_id: 0,
        global_position: 0,
    });
    sqlx::query_scalar(
        "SELECT count(*) FROM events \
         WHERE (tx_id, global_position) > ($1::bigint::text::xid8, $2) \
           AND (tx_id, global_position) <= ($3::bigint::text::xid8, $4)",
    )
    .bind(after.tx_id)
    .bind(after.global_position)
    .bind(upto.tx_id)
    .bind(upto.global_position)
    .fetch_one(pool)
    .await
    .map_err(|e| ProjectionError::db("counting events behind the relay", e))
}
