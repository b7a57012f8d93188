//! The rates projection: folds each appeal's events through
//! [`linkage_domain::rates::RateTracker`] and adds the outcomes it makes known to counters per
//! month in three dimensions: lead department, channel, town (`rates.sql`). The query API adds up a month's
//! counters; the definitions are in `docs/metrics.md`.
//!
//! Also the per-appeal state machinery the assessment projection shares ([`AppealStates`]): a
//! state row per appeal with the sequence of its last event, loaded and saved once per batch.

use std::collections::HashMap;

use cqrs_es::Aggregate as _;
use linkage_bus::Envelope;
use linkage_domain::appeal::{Appeal, AppealEvent};
use linkage_domain::rates::{RateCounts, RateTracker};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::ledger::decode;
use crate::{Projection, ProjectionError};

pub const NAME: &str = "rates";

/// The rates projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rates;

/// The appeal events of a batch, decoded, with their appeal ids.
pub(crate) fn appeal_events<'a>(
    projection: &'static str,
    batch: &'a [Envelope],
) -> Result<Vec<(&'a Envelope, Uuid, AppealEvent)>, ProjectionError> {
    batch
        .iter()
        .filter(|e| e.aggregate_type == Appeal::TYPE)
        .map(|envelope| {
            let id = Uuid::parse_str(&envelope.aggregate_id).map_err(|_| {
                ProjectionError::Inconsistent {
                    projection,
                    detail: format!(
                        "event {} belongs to appeal {:?}, which is not a uuid",
                        envelope.event_id, envelope.aggregate_id
                    ),
                }
            })?;
            Ok((envelope, id, decode(envelope)?))
        })
        .collect()
}

/// Per-appeal state rows `(appeal_id, last_sequence, <state column> jsonb)` of one projection,
/// for the appeals of one batch.
pub(crate) struct AppealStates<S> {
    projection: &'static str,
    rows: HashMap<Uuid, (i64, S)>,
    changed: Vec<Uuid>,
}

impl<S> AppealStates<S>
where
    S: Default + Serialize + DeserializeOwned + Send + Unpin + 'static,
{
    /// Loads the rows of the appeals in `events`. `load` is `SELECT appeal_id, last_sequence,
    /// <state> FROM <table> WHERE appeal_id = ANY($1)`. Appeals filed in this very batch are
    /// loaded too: a redelivered filing must find its row, or its outcomes would count twice.
    pub(crate) async fn load(
        conn: &mut PgConnection,
        projection: &'static str,
        load: &'static str,
        events: &[(&Envelope, Uuid, AppealEvent)],
    ) -> Result<Self, ProjectionError> {
        let mut ids: Vec<Uuid> = events.iter().map(|(_, id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        let loaded: Vec<(Uuid, i64, Json<S>)> = sqlx::query_as(load)
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| {
                ProjectionError::db(format!("loading the {projection} appeal states"), e)
            })?;
        Ok(Self {
            projection,
            rows: loaded
                .into_iter()
                .map(|(id, seq, Json(state))| (id, (seq, state)))
                .collect(),
            changed: Vec::new(),
        })
    }

    /// The state `envelope` applies to, or `None` when it was applied already; refuses a gap in
    /// the appeal's stream.
    pub(crate) fn next(
        &mut self,
        envelope: &Envelope,
        id: Uuid,
    ) -> Result<Option<&mut S>, ProjectionError> {
        let projection = self.projection;
        let inconsistent = |detail| ProjectionError::Inconsistent { projection, detail };
        match self.rows.get(&id).map(|(last, _)| *last) {
            Some(last) if envelope.sequence <= last => return Ok(None),
            Some(last) if envelope.sequence != last + 1 => {
                return Err(inconsistent(format!(
                    "appeal {id}: event #{} follows #{last} (a gap in its stream)",
                    envelope.sequence
                )));
            }
            Some(_) => {}
            None if envelope.sequence == 1 => {}
            None => {
                return Err(inconsistent(format!(
                    "appeal {id}: event #{} ({}) arrived before the appeal was filed",
                    envelope.sequence, envelope.event_type
                )));
            }
        }
        let (last, state) = self.rows.entry(id).or_insert((0, S::default()));
        *last = envelope.sequence;
        self.changed.push(id);
        Ok(Some(state))
    }

    /// Saves the changed rows. `save` takes `$1::uuid[], $2::bigint[], $3::text[]` (the states as
    /// JSON text) and upserts them, never moving a row back.
    pub(crate) async fn save(
        mut self,
        conn: &mut PgConnection,
        save: &'static str,
    ) -> Result<(), ProjectionError> {
        self.changed.sort_unstable();
        self.changed.dedup();
        let mut ids = Vec::with_capacity(self.changed.len());
        let mut sequences = Vec::with_capacity(self.changed.len());
        let mut states = Vec::with_capacity(self.changed.len());
        for id in &self.changed {
            if let Some((seq, state)) = self.rows.get(id) {
                ids.push(*id);
                sequences.push(*seq);
                states.push(serde_json::to_string(state).map_err(|source| {
                    ProjectionError::Encode {
                        projection: self.projection,
                        source,
                    }
                })?);
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(save)
            .bind(&ids)
            .bind(&sequences)
            .bind(&states)
            .execute(&mut *conn)
            .await
            .map_err(|e| {
                ProjectionError::db(format!("saving the {} appeal states", self.projection), e)
            })?;
        Ok(())
    }
}

const LOAD_TRACKERS: &str =
    "SELECT appeal_id, last_sequence, tracker FROM rate_appeals WHERE appeal_id = ANY($1)";

const SAVE_TRACKERS: &str = "INSERT INTO rate_appeals (appeal_id, last_sequence, tracker) \
     SELECT u.id, u.seq, u.state::jsonb FROM unnest($1::uuid[], $2::bigint[], $3::text[]) \
          AS u(id, seq, state) \
     ON CONFLICT (appeal_id) DO UPDATE SET last_sequence = EXCLUDED.last_sequence, \
         tracker = EXCLUDED.tracker \
     WHERE rate_appeals.last_sequence < EXCLUDED.last_sequence";

const ADD_COUNTS: &str = "INSERT INTO rate_totals AS c (month, dimension, key, \
         contacts, contacts_on_time, completions, completions_on_time, visits, solved, \
         satisfied, basically_satisfied) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], \
         $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[]) \
     ON CONFLICT (month, dimension, key) DO UPDATE SET \
         contacts = c.contacts + EXCLUDED.contacts, \
         contacts_on_time = c.contacts_on_time + EXCLUDED.contacts_on_time, \
         completions = c.completions + EXCLUDED.completions, \
         completions_on_time = c.completions_on_time + EXCLUDED.completions_on_time, \
         visits = c.visits + EXCLUDED.visits, \
         solved = c.solved + EXCLUDED.solved, \
         satisfied = c.satisfied + EXCLUDED.satisfied, \
         basically_satisfied = c.basically_satisfied + EXCLUDED.basically_satisfied";

/// A counter row: month, dimension (`department`, `channel` or `town`), key.
type Cell = (String, &'static str, String);

async fn add_counts(
    conn: &mut PgConnection,
    cells: HashMap<Cell, RateCounts>,
) -> Result<(), ProjectionError> {
    if cells.is_empty() {
        return Ok(());
    }
    let n = cells.len();
    let (mut month, mut dimension, mut key) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut columns: [Vec<i64>; 8] = Default::default();
    for ((m, d, k), counts) in cells {
        month.push(m);
        dimension.push(d);
        key.push(k);
        for (column, value) in columns.iter_mut().zip([
            counts.contacts,
            counts.contacts_on_time,
            counts.completions,
            counts.completions_on_time,
            counts.visits,
            counts.solved,
            counts.satisfied,
            counts.basically_satisfied,
        ]) {
            column.push(value);
        }
    }
    let mut q = sqlx::query(ADD_COUNTS)
        .bind(&month)
        .bind(&dimension)
        .bind(&key);
    for column in &columns {
        q = q.bind(column);
    }
    q.execute(&mut *conn)
        .await
        .map_err(|e| ProjectionError::db("adding to the rate counters", e))?;
    Ok(())
}

#[async_trait::async_trait]
impl Projection for Rates {
    fn name(&self) -> &'static str {
        NAME
    }

    fn schema(&self) -> &'static str {
        include_str!("rates.sql")
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rate_appeals", "rate_totals"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        batch: &[Envelope],
    ) -> Result<(), ProjectionError> {
        let events = appeal_events(NAME, batch)?;
        if events.is_empty() {
            return Ok(());
        }
        let mut trackers =
            AppealStates::<RateTracker>::load(conn, NAME, LOAD_TRACKERS, &events).await?;
        let mut cells: HashMap<Cell, RateCounts> = HashMap::new();
        for (envelope, id, event) in &events {
            let Some(tracker) = trackers.next(envelope, *id)? else {
                continue;
            };
            for outcome in tracker.observe(event) {
                let month = outcome.month().to_string();
                let keys = [
                    ("department", outcome.department.to_string()),
                    (
                        "channel",
                        tracker
                            .channel
                            .map(|c| c.as_str().to_owned())
                            .unwrap_or_default(),
                    ),
                    ("town", tracker.town.clone().unwrap_or_default()),
                ];
                for (dimension, key) in keys {
                    cells
                        .entry((month.clone(), dimension, key))
                        .or_default()
                        .add(&outcome.result);
                }
            }
        }
        trackers.save(conn, SAVE_TRACKERS).await?;
        add_counts(conn, cells).await
    }
}
