//! The per-stream hash chain: `hash = SHA-256(prev_hash ‖ canonical encoding of the event)`.
//! The audit tool recomputes it from stored rows, so the encoding depends only on stored values,
//! never on how Postgres formats jsonb.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The fields of an event that its hash covers. `tx_id` and `global_position` are assigned by
/// Postgres at insert time and are covered by the relay's global anchors instead.
#[derive(Debug, Clone, Copy)]
pub struct HashedFields<'a> {
    pub event_id: Uuid,
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub sequence: i64,
    pub event_type: &'a str,
    pub event_version: &'a str,
    pub payload: &'a Value,
    pub metadata: &'a Value,
    pub recorded_at: DateTime<Utc>,
}

/// The hash of an event chained to the previous event of its stream (`None` for the first).
pub fn event_hash(prev_hash: Option<&[u8]>, e: &HashedFields<'_>) -> Vec<u8> {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        // Length prefixes make the encoding unambiguous.
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(b"linkage-event-v1");
    field(prev_hash.unwrap_or_default());
    field(e.event_id.as_bytes());
    field(e.aggregate_type.as_bytes());
    field(e.aggregate_id.as_bytes());
    field(&e.sequence.to_be_bytes());
    field(e.event_type.as_bytes());
    field(e.event_version.as_bytes());
    field(&canonical_json(e.payload));
    field(&canonical_json(e.metadata));
    field(
        e.recorded_at
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
            .as_bytes(),
    );
    h.finalize().to_vec()
}

/// Compact JSON with object keys sorted by their UTF-8 bytes, whatever map type serde_json uses.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_string(s, out),
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // serde_json's string escaping is deterministic.
    out.extend_from_slice(Value::String(s.to_owned()).to_string().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let v = json!({"b": 1, "a": {"z": [true, null], "y": "é\"x"}, "aa": -2});
        assert_eq!(
            String::from_utf8(canonical_json(&v)).unwrap(),
            r#"{"a":{"y":"é\"x","z":[true,null]},"aa":-2,"b":1}"#
        );
    }

    #[test]
    fn hash_changes_with_any_field_and_with_the_chain() {
        let payload = json!({"x": 1});
        let metadata = json!({});
        let base = HashedFields {
            event_id: Uuid::nil(),
            aggregate_type: "appeal",
            aggregate_id: "a",
            sequence: 1,
            event_type: "AppealFiled",
            event_version: "1",
            payload: &payload,
            metadata: &metadata,
            recorded_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        let h = event_hash(None, &base);
        assert_eq!(h.len(), 32);
        assert_eq!(h, event_hash(None, &base), "deterministic");
        assert_ne!(h, event_hash(Some(&h), &base), "chained");
        let other_payload = json!({"x": 2});
        assert_ne!(
            h,
            event_hash(
                None,
                &HashedFields {
                    payload: &other_payload,
                    ..base
                }
            )
        );
        assert_ne!(
            h,
            event_hash(
                None,
                &HashedFields {
                    sequence: 2,
                    ..base
                }
            )
        );
    }
}
