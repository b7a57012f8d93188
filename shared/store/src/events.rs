//! The Postgres event repository behind cqrs-es: load a stream, append a command's events in one
//! transaction with their hash chain, and detect concurrent writers by the stream's primary key.

use std::collections::HashMap;
use std::marker::PhantomData;

use chrono::{DateTime, SubsecRound, Utc};
use cqrs_es::{Aggregate, AggregateContext, AggregateError, DomainEvent, EventEnvelope};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::StoreError;
use crate::hash::{CanonicalFields, canonical_json, event_hash_canonical};
use crate::idempotency::IdempotentResponse;

/// An aggregate loaded from its stream, with what the next append needs to chain onto it.
#[derive(Debug)]
pub struct LoadedAggregate<A: Aggregate> {
    pub aggregate_id: String,
    pub aggregate: A,
    /// Sequence of the stream's last event (0 for a new stream).
    pub sequence: i64,
    pub last_hash: Option<Vec<u8>>,
}

impl<A: Aggregate> AggregateContext<A> for LoadedAggregate<A> {
    fn aggregate(&mut self) -> &mut A {
        &mut self.aggregate
    }
}

/// An event as it was committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommittedEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub sequence: i64,
    pub global_position: i64,
    pub tx_id: i64,
    pub recorded_at: DateTime<Utc>,
}

/// Where an append takes its event ids and its recording instant from. Without one, the wall
/// clock and random UUIDv7s; a scripted history (the demo data) gives its simulated clock and
/// ids derived from its seed, so the same script records the same events with the same hashes.
pub trait EventStamps: Send + Sync + std::fmt::Debug {
    /// The instant the events of the append are recorded at (truncated to microseconds).
    fn recorded_at(&self) -> DateTime<Utc>;
    /// The id of the event at `sequence` of the stream `aggregate_id`.
    fn event_id(&self, aggregate_id: &str, sequence: i64, recorded_at: DateTime<Utc>) -> Uuid;
}

/// The events table of one database.
#[derive(Debug, Clone)]
pub struct PgEventStore<A> {
    pool: PgPool,
    stamps: Option<std::sync::Arc<dyn EventStamps>>,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate> PgEventStore<A> {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            stamps: None,
            _aggregate: PhantomData,
        }
    }

    /// The same store, stamping appends with `stamps` instead of the wall clock and random ids.
    pub fn with_stamps(mut self, stamps: std::sync::Arc<dyn EventStamps>) -> Self {
        self.stamps = Some(stamps);
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The stream of one aggregate, rebuilt into its state.
    pub async fn load(&self, aggregate_id: &str) -> Result<LoadedAggregate<A>, StoreError> {
        let rows = sqlx::query(
            "SELECT sequence, event_type, payload, hash FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::db(format!("loading stream {aggregate_id}"), e))?;
        let mut loaded = LoadedAggregate {
            aggregate_id: aggregate_id.to_owned(),
            aggregate: A::default(),
            sequence: 0,
            last_hash: None,
        };
        for row in rows {
            let event_type: String = row.get("event_type");
            let payload: Value = row.get("payload");
            loaded.sequence = row.get("sequence");
            loaded.last_hash = Some(row.get("hash"));
            let event =
                decode_event::<A>(&event_type, payload).map_err(|e| StoreError::Decode {
                    aggregate_id: aggregate_id.to_owned(),
                    sequence: loaded.sequence,
                    source: e,
                })?;
            loaded.aggregate.apply(event);
        }
        Ok(loaded)
    }

    /// Appends `events` after the loaded state in one transaction. When `idempotency` is given,
    /// its response (built from the committed events) is recorded in the same transaction; if
    /// another request with the same key committed first, nothing is recorded and
    /// [`StoreError::IdempotencyKeyTaken`] is returned.
    pub async fn append(
        &self,
        loaded: &LoadedAggregate<A>,
        events: &[A::Event],
        metadata: &HashMap<String, String>,
        idempotency: Option<IdempotentResponse<'_>>,
    ) -> Result<Vec<CommittedEvent>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let metadata = serde_json::to_value(metadata).map_err(StoreError::Encode)?;
        // Payload and metadata are stored as the very text the hash covers (their canonical
        // encoding), as `json`: Postgres only checks the text, and readers get it back as is.
        let metadata = json_text(canonical_json(&metadata))?;
        // Postgres keeps microseconds; hash exactly what is stored.
        let recorded_at = match &self.stamps {
            Some(stamps) => stamps.recorded_at(),
            None => Utc::now(),
        }
        .trunc_subsecs(6);
        let mut rows = AppendRows::default();
        let mut prev = loaded.last_hash.clone();
        for (i, event) in events.iter().enumerate() {
            let sequence = loaded.sequence + 1 + i as i64;
            let event_id = match &self.stamps {
                Some(stamps) => stamps.event_id(&loaded.aggregate_id, sequence, recorded_at),
                None => Uuid::now_v7(),
            };
            let event_type = event.event_type();
            let event_version = event.event_version();
            let payload = json_text(canonical_json(&encode_event(event)?))?;
            let hash = event_hash_canonical(
                prev.as_deref(),
                &CanonicalFields {
                    event_id,
                    aggregate_type: A::TYPE,
                    aggregate_id: &loaded.aggregate_id,
                    sequence,
                    event_type: &event_type,
                    event_version: &event_version,
                    payload: payload.as_bytes(),
                    metadata: metadata.as_bytes(),
                    recorded_at,
                },
            );
            rows.event_ids.push(event_id);
            rows.sequences.push(sequence);
            rows.event_types.push(event_type);
            rows.event_versions.push(event_version);
            rows.payloads.push(payload);
            rows.prev_hashes.push(prev.replace(hash.clone()));
            rows.hashes.push(hash);
        }

        // Without an idempotency record the single INSERT is its own transaction: one round trip.
        let mut tx = match idempotency {
            Some(_) => Some(
                self.pool
                    .begin()
                    .await
                    .map_err(|e| StoreError::db("beginning an append", e))?,
            ),
            None => None,
        };
        let insert = sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                                 payload, metadata, event_id, recorded_at, prev_hash, hash) \
             SELECT $1, $2, e.sequence, e.event_type, e.event_version, e.payload::json, \
                    $3::text::json, e.event_id, $4, e.prev_hash, e.hash \
             FROM unnest($5::bigint[], $6::text[], $7::text[], $8::text[], $9::uuid[], \
                         $10::bytea[], $11::bytea[]) \
                  AS e(sequence, event_type, event_version, payload, event_id, prev_hash, hash) \
             ORDER BY e.sequence \
             RETURNING event_id, event_type, sequence, global_position, tx_id::text::bigint AS tx_id",
        )
        .bind(A::TYPE)
        .bind(&loaded.aggregate_id)
        .bind(&metadata)
        .bind(recorded_at)
        .bind(&rows.sequences)
        .bind(&rows.event_types)
        .bind(&rows.event_versions)
        .bind(&rows.payloads)
        .bind(&rows.event_ids)
        .bind(&rows.prev_hashes)
        .bind(&rows.hashes);
        let inserted = match tx.as_mut() {
            Some(tx) => insert.fetch_all(&mut **tx).await,
            None => insert.fetch_all(&self.pool).await,
        };
        let inserted = match inserted {
            Ok(rows) => rows,
            Err(e) if is_unique_violation(&e) => return Err(StoreError::Conflict),
            Err(e) => {
                return Err(StoreError::db(
                    format!("appending to stream {}", loaded.aggregate_id),
                    e,
                ));
            }
        };
        let mut committed: Vec<CommittedEvent> = inserted
            .into_iter()
            .map(|row| CommittedEvent {
                event_id: row.get("event_id"),
                event_type: row.get("event_type"),
                sequence: row.get("sequence"),
                global_position: row.get("global_position"),
                tx_id: row.get("tx_id"),
                recorded_at,
            })
            .collect();
        committed.sort_by_key(|e| e.sequence);

        if let (Some(idem), Some(mut tx)) = (idempotency, tx) {
            idem.record(&mut tx, &committed).await?;
            tx.commit()
                .await
                .map_err(|e| StoreError::db("committing an append", e))?;
        }
        Ok(committed)
    }
}

#[derive(Default)]
struct AppendRows {
    event_ids: Vec<Uuid>,
    sequences: Vec<i64>,
    event_types: Vec<String>,
    event_versions: Vec<String>,
    /// The payloads' JSON text (canonical).
    payloads: Vec<String>,
    prev_hashes: Vec<Option<Vec<u8>>>,
    hashes: Vec<Vec<u8>>,
}

/// The canonical encoding as text (serde_json's output: UTF-8 by construction).
fn json_text(canonical: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(canonical)
        .map_err(|e| StoreError::Encode(<serde_json::Error as serde::ser::Error>::custom(e)))
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

/// The stored payload of an event: the variant's fields, without serde's enum wrapper (the
/// variant name is the `event_type` column).
pub fn encode_event<E: DomainEvent>(event: &E) -> Result<Value, StoreError> {
    match serde_json::to_value(event).map_err(StoreError::Encode)? {
        Value::Object(map) if map.len() == 1 => {
            Ok(map.into_iter().next().map(|(_, v)| v).unwrap_or_default())
        }
        // A unit variant serializes as a bare string: it has no fields.
        Value::String(_) => Ok(Value::Object(Default::default())),
        other => Ok(other),
    }
}

/// The inverse of [`encode_event`].
pub fn decode_event<A: Aggregate>(
    event_type: &str,
    payload: Value,
) -> Result<A::Event, serde_json::Error> {
    let mut wrapped = serde_json::Map::with_capacity(1);
    wrapped.insert(event_type.to_owned(), payload);
    serde_json::from_value(Value::Object(wrapped))
}

fn to_aggregate_error<E: std::error::Error>(e: StoreError) -> AggregateError<E> {
    match e {
        StoreError::Conflict => AggregateError::AggregateConflict,
        StoreError::Decode { .. } | StoreError::Encode(_) => {
            AggregateError::DeserializationError(Box::new(e))
        }
        other => AggregateError::DatabaseConnectionError(Box::new(other)),
    }
}

/// The plain cqrs-es interface, so the store also works with `CqrsFramework`.
impl<A: Aggregate> cqrs_es::EventStore<A> for PgEventStore<A> {
    type AC = LoadedAggregate<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let rows = sqlx::query(
            "SELECT sequence, event_type, payload, metadata FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| to_aggregate_error(StoreError::db("loading events", e)))?;
        rows.into_iter()
            .map(|row| {
                let sequence: i64 = row.get("sequence");
                let event_type: String = row.get("event_type");
                let payload = decode_event::<A>(&event_type, row.get("payload"))
                    .map_err(|e| AggregateError::DeserializationError(Box::new(e)))?;
                let metadata: HashMap<String, String> = serde_json::from_value(row.get("metadata"))
                    .map_err(|e| AggregateError::DeserializationError(Box::new(e)))?;
                Ok(EventEnvelope {
                    aggregate_id: aggregate_id.to_owned(),
                    sequence: sequence as usize,
                    payload,
                    metadata,
                })
            })
            .collect()
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<Self::AC, AggregateError<A::Error>> {
        self.load(aggregate_id).await.map_err(to_aggregate_error)
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: Self::AC,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let committed = self
            .append(&context, &events, &metadata, None)
            .await
            .map_err(to_aggregate_error)?;
        Ok(committed
            .into_iter()
            .zip(events)
            .map(|(c, payload)| EventEnvelope {
                aggregate_id: context.aggregate_id.clone(),
                sequence: c.sequence as usize,
                payload,
                metadata: metadata.clone(),
            })
            .collect())
    }
}
