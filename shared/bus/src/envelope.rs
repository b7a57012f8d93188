//! The envelope: how one stored event travels on NATS. A public contract (see
//! docs/envelope.md): other teams consume it, so fields are only ever added.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Version of the envelope's own shape (not of the payload, which has `event_version`).
pub const ENVELOPE_VERSION: u32 = 1;

/// One event as published. The message body is this struct as JSON; `Nats-Msg-Id` is
/// `event_id`, so JetStream drops a republished event inside its duplicate window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub envelope_version: u32,
    /// Unique id of the event (UUIDv7).
    pub event_id: Uuid,
    /// Position in the event store's insertion order. Publication order is
    /// `(tx_id, global_position)`: the commit order, never skipping a late commit.
    pub global_position: i64,
    /// The Postgres transaction that wrote the event (`xid8`).
    pub tx_id: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// 1-based position of the event in its aggregate's stream.
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub recorded_at: DateTime<Utc>,
    /// The event's fields (the shape named by `event_type` and `event_version`).
    pub payload: Value,
    /// actor, role, department, request_id, correlation_id, command.
    pub metadata: Value,
    /// Hex SHA-256 of the event chained to its stream's previous event.
    pub hash: String,
    pub prev_hash: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the message is not a Linkage envelope: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(u32),
}

impl Envelope {
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let envelope: Self = serde_json::from_slice(bytes)?;
        if envelope.envelope_version > ENVELOPE_VERSION || envelope.envelope_version == 0 {
            return Err(EnvelopeError::UnsupportedVersion(envelope.envelope_version));
        }
        Ok(envelope)
    }

    /// The correlation id from the metadata, if any.
    pub fn correlation_id(&self) -> Option<&str> {
        self.metadata.get("correlation_id").and_then(Value::as_str)
    }
}

/// `<prefix>.events.<aggregate_type>.<event_type>`.
pub fn subject(prefix: &str, aggregate_type: &str, event_type: &str) -> String {
    format!("{prefix}.events.{aggregate_type}.{event_type}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            envelope_version: ENVELOPE_VERSION,
            event_id: Uuid::nil(),
            global_position: 7,
            tx_id: 1234,
            aggregate_type: "appeal".into(),
            aggregate_id: "a".into(),
            sequence: 1,
            event_type: "AppealFiled".into(),
            event_version: "1".into(),
            recorded_at: DateTime::from_timestamp(1_780_000_000, 0).unwrap(),
            payload: serde_json::json!({"x": 1}),
            metadata: serde_json::json!({"correlation_id": "c-1"}),
            hash: "00".into(),
            prev_hash: None,
        }
    }

    #[test]
    fn round_trips_and_rejects_garbage() {
        let e = sample();
        assert_eq!(Envelope::decode(&e.encode()).unwrap(), e);
        assert_eq!(e.correlation_id(), Some("c-1"));
        assert!(Envelope::decode(b"{}").is_err());
        assert!(Envelope::decode(b"\xff\xfe").is_err());
        let mut future = sample();
        future.envelope_version = 99;
        assert!(matches!(
            Envelope::decode(&future.encode()),
            Err(EnvelopeError::UnsupportedVersion(99))
        ));
        assert_eq!(
            subject("linkage", "appeal", "AppealFiled"),
            "linkage.events.appeal.AppealFiled"
        );
    }
}
