//! An appeal as it stood at an instant, folded from its own events by the domain's `Appeal`
//! (`cqrs_es::Aggregate::apply`), and pages of the global event order for the HTTP audit reads.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use linkage_bus::Envelope;
use linkage_domain::Appeal;
use linkage_domain::values::TrackingNumber;
use linkage_projector::Position;
use linkage_store::events::decode_event;
use linkage_store::verify::verify_stream;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::AuditError;
use crate::row::position_of;

const BY_TRACKING_NUMBER: &str = include_str!("appeal_by_tracking_number.sql");
const LEDGER_TRACKING_NUMBER: &str = include_str!("ledger_tracking_number.sql");

/// An appeal's state and timeline as they stood at `as_of`.
#[derive(Debug, Clone, Serialize)]
pub struct AppealAsOf {
    pub appeal_id: String,
    /// `None`: now (every event).
    pub as_of: Option<DateTime<Utc>>,
    /// What the events up to `as_of` add up to (the domain's own state: status, assignment,
    /// deadlines, when each step happened…).
    pub state: Appeal,
    /// The events up to `as_of`, in sequence order, as envelopes (docs/envelope.md).
    pub timeline: Vec<Envelope>,
    /// Events of the appeal recorded after `as_of`.
    pub later_events: usize,
    /// The hash chain of the appeal's whole stream.
    pub chain: ChainCheck,
}

/// The result of re-checking one stream's hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainCheck {
    pub ok: bool,
    pub events: usize,
    /// The first bad event, when not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<String>,
}

/// The appeal `key` (its id, or its tracking number `LK-YYYY-NNNNNN`) as it stood at `as_of`:
/// its events recorded at or before `as_of` (`recorded_at <= as_of`; all of them when `None`),
/// in sequence order, folded into the domain's `Appeal`. [`AuditError::NotFound`] when no such
/// appeal existed then.
pub async fn appeal_as_of(
    pool: &PgPool,
    key: &str,
    as_of: Option<DateTime<Utc>>,
) -> Result<AppealAsOf, AuditError> {
    let appeal_id = resolve(pool, key).await?;
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
         ORDER BY sequence",
        linkage_projector::rebuild::EVENT_COLUMNS
    ));
    let rows = sqlx::query(sql)
        .bind(Appeal::TYPE)
        .bind(&appeal_id)
        .fetch_all(pool)
        .await
        .map_err(|e| AuditError::db(format!("reading the events of appeal {appeal_id}"), e))?;
    let mut state = Appeal::default();
    let mut timeline = Vec::new();
    let mut later_events = 0;
    for row in &rows {
        let envelope = linkage_projector::rebuild::envelope_from_row(row)?;
        // The stream's prefix recorded by then (a later event never comes back into view).
        if later_events > 0 || as_of.is_some_and(|t| envelope.recorded_at > t) {
            later_events += 1;
            continue;
        }
        let event = decode_event::<Appeal>(&envelope.event_type, envelope.payload.clone())
            .map_err(|source| AuditError::Decode {
                event_id: envelope.event_id,
                event_type: envelope.event_type.clone(),
                aggregate_id: envelope.aggregate_id.clone(),
                sequence: envelope.sequence,
                source,
            })?;
        state.apply(event);
        timeline.push(envelope);
    }
    if timeline.is_empty() {
        return Err(AuditError::NotFound(match as_of {
            Some(t) => format!("appeal {key} was not filed yet at {t}"),
            None => format!("no appeal has the id {key:?}"),
        }));
    }
    let chain = match verify_stream(pool, Appeal::TYPE, &appeal_id).await? {
        Ok(events) => ChainCheck {
            ok: true,
            events,
            finding: None,
        },
        Err(brk) => ChainCheck {
            ok: false,
            events: rows.len(),
            finding: Some(brk.to_string()),
        },
    };
    Ok(AppealAsOf {
        appeal_id,
        as_of,
        state,
        timeline,
        later_events,
        chain,
    })
}

/// The stream id of an appeal given by id or tracking number, from the event store.
async fn resolve(pool: &PgPool, key: &str) -> Result<String, AuditError> {
    if let Ok(id) = Uuid::parse_str(key) {
        return Ok(id.to_string());
    }
    let tracking_number: TrackingNumber = key.parse().map_err(|_| {
        AuditError::invalid(
            "id",
            format!("{key:?} is neither an appeal id nor a tracking number (LK-YYYY-NNNNNN)"),
        )
    })?;
    let number = tracking_number.as_str();
    let not_found = || AuditError::NotFound(format!("no appeal has the tracking number {number}"));
    // The ledger's index first; whatever it says is checked against the event store, which
    // alone is trusted (a scan of the streams' first events otherwise).
    let ledger: bool = sqlx::query_scalar("SELECT to_regclass('ledger') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(|e| AuditError::db("looking for the ledger", e))?;
    if ledger {
        let hint: Option<String> = sqlx::query_scalar(LEDGER_TRACKING_NUMBER)
            .bind(number)
            .fetch_optional(pool)
            .await
            .map_err(|e| AuditError::db("looking up a tracking number in the ledger", e))?;
        if let Some(hint) = hint {
            let confirmed: Option<String> = sqlx::query_scalar(BY_TRACKING_NUMBER)
                .bind(number)
                .bind(&hint)
                .fetch_optional(pool)
                .await
                .map_err(|e| AuditError::db("confirming a tracking number", e))?;
            if let Some(id) = confirmed {
                return Ok(id);
            }
        }
    }
    let found: Option<String> = sqlx::query_scalar(BY_TRACKING_NUMBER)
        .bind(number)
        .bind(None::<String>)
        .fetch_optional(pool)
        .await
        .map_err(|e| AuditError::db("finding a tracking number in the event store", e))?;
    found.ok_or_else(not_found)
}

/// A page of the global order, for `GET /api/v1/audit/events`.
#[derive(Debug, Clone, Serialize)]
pub struct EventsPage {
    pub events: Vec<Envelope>,
    /// Pass as `after` for the next page: the last event's global position (or `after` again
    /// when the page is empty: nothing newer yet).
    pub next_after: i64,
}

/// Up to `limit` events after the event at global position `after` (0: from the start), in
/// the global order, below the oldest running transaction (so paging never skips an event a
/// concurrent transaction commits later).
pub async fn events_page(pool: &PgPool, after: i64, limit: i64) -> Result<EventsPage, AuditError> {
    let from = if after == 0 {
        None::<Position>
    } else {
        Some(position_of(pool, "after", after).await?)
    };
    let events = linkage_projector::read_events(pool, from, limit).await?;
    let next_after = events.last().map_or(after, |e| e.global_position);
    Ok(EventsPage { events, next_after })
}
