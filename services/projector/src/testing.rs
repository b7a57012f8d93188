//! Helpers for tests of projections and of the read side: envelopes built by hand from domain
//! events (stored exactly as the event store stores them), and sample events.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use linkage_bus::Envelope;
use linkage_bus::envelope::ENVELOPE_VERSION;
use linkage_domain::appeal::{AppealEvent, Filer};
use linkage_domain::sla::Deadlines;
use linkage_domain::values::{Category, Channel, DepartmentId, FilerKind, TrackingNumber};
use serde_json::json;
use uuid::Uuid;

/// Makes envelopes as the relay would publish them: one transaction per envelope, consecutive
/// global positions, consecutive sequences per appeal.
#[derive(Debug, Default)]
pub struct EnvelopeFactory {
    last_position: i64,
    sequences: HashMap<Uuid, i64>,
}

impl EnvelopeFactory {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next envelope of `appeal_id`, acted by `actor` (`role`, `department`).
    pub fn envelope_by(
        &mut self,
        appeal_id: Uuid,
        event: &AppealEvent,
        actor: &str,
        role: &str,
        department: Option<&str>,
    ) -> Envelope {
        self.last_position += 1;
        let sequence = self.sequences.entry(appeal_id).or_default();
        *sequence += 1;
        Envelope {
            envelope_version: ENVELOPE_VERSION,
            event_id: Uuid::now_v7(),
            global_position: self.last_position,
            tx_id: 1000 + self.last_position,
            aggregate_type: "appeal".into(),
            aggregate_id: appeal_id.to_string(),
            sequence: *sequence,
            event_type: event.name().to_owned(),
            event_version: linkage_domain::appeal::EVENT_VERSION.to_owned(),
            recorded_at: event.at(),
            payload: linkage_store::events::encode_event(event)
                .expect("domain events always encode"),
            metadata: json!({
                "actor": actor,
                "role": role,
                "department": department.unwrap_or(""),
                "request_id": "test",
                "correlation_id": "test",
            }),
            hash: "00".into(),
            prev_hash: None,
        }
    }

    /// The next envelope of `appeal_id`, acted by a dispatcher.
    pub fn envelope(&mut self, appeal_id: Uuid, event: &AppealEvent) -> Envelope {
        self.envelope_by(appeal_id, event, "tester", "dispatcher", None)
    }
}

/// Parses a value the test knows to be valid.
pub fn v<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().expect("valid test value")
}

/// A department id.
pub fn dept(s: &str) -> DepartmentId {
    v(s)
}

/// An `AppealFiled` event with a sample citizen filer (phone 13800138000).
pub fn filed(
    appeal_id: Uuid,
    serial: u64,
    channel: Channel,
    category: Category,
    town: &str,
    at: DateTime<Utc>,
) -> AppealEvent {
    AppealEvent::AppealFiled {
        appeal_id,
        tracking_number: TrackingNumber::new(2026, serial),
        channel,
        filer: Filer {
            kind: FilerKind::Citizen,
            name: v("张三"),
            contact_person: None,
            phone: v("13800138000"),
        },
        category,
        town: v(town),
        description: v("门口道路被占用，影响企业运输"),
        complained_unit: Some(v("某某执法队")),
        at,
    }
}

/// An `AppealAssigned` event with deadlines 2 hours, 1 day and 14 days after `at`.
pub fn assigned(lead: &str, co: &[&str], at: DateTime<Utc>) -> AppealEvent {
    AppealEvent::AppealAssigned {
        lead: dept(lead),
        co_handlers: co.iter().map(|d| dept(d)).collect(),
        deadlines: deadlines(at),
        calendar: "test".into(),
        policy: Default::default(),
        at,
    }
}

/// Deadlines 2 hours, 1 day and 14 days after `at`.
pub fn deadlines(at: DateTime<Utc>) -> Deadlines {
    Deadlines {
        contact_due: at + chrono::Duration::hours(2),
        feedback_due: at + chrono::Duration::days(1),
        resolution_due: at + chrono::Duration::days(14),
    }
}

/// How [`stored_chunk`] stores the JSON columns' text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredText {
    /// The canonical text the event store writes.
    Canonical,
    /// As Postgres prints `jsonb` (spaces after `:` and `,`): events stored before the
    /// `events_json` migration keep this text.
    Jsonb,
}

/// The envelopes as a rebuild reads them from the events table (each selected as an events
/// row with [`crate::rebuild::EVENT_COLUMNS`]' types), payload and metadata stored as `text` says.
pub async fn stored_chunk(
    pool: &sqlx::PgPool,
    envelopes: &[Envelope],
    text: StoredText,
) -> Result<crate::StoredChunk, sqlx::Error> {
    const ROW: &str = "SELECT $1::uuid, $2::bigint, $3::bigint::text::xid8, $4::text, $5::text, \
         $6::bigint, $7::text, $8::text, $9::timestamptz, \
         CASE WHEN $14 THEN $10::jsonb::text::json ELSE $10::json END, \
         CASE WHEN $14 THEN $11::jsonb::text::json ELSE $11::json END, \
         decode($12, 'hex'), decode($13, 'hex')";
    let mut rows = Vec::with_capacity(envelopes.len());
    for e in envelopes {
        let canonical = |v: &serde_json::Value| {
            String::from_utf8(linkage_store::hash::canonical_json(v))
                .expect("canonical JSON is UTF-8")
        };
        rows.push(
            sqlx::query(ROW)
                .bind(e.event_id)
                .bind(e.global_position)
                .bind(e.tx_id)
                .bind(&e.aggregate_type)
                .bind(&e.aggregate_id)
                .bind(e.sequence)
                .bind(&e.event_type)
                .bind(&e.event_version)
                .bind(e.recorded_at)
                .bind(canonical(&e.payload))
                .bind(canonical(&e.metadata))
                .bind(&e.hash)
                .bind(&e.prev_hash)
                .bind(text == StoredText::Jsonb)
                .fetch_one(pool)
                .await?,
        );
    }
    Ok(crate::StoredChunk::new(rows))
}
