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
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out);
    out
}

/// Appends the canonical encoding of `value` to `out` (what [`canonical_json`] returns).
/// Written straight into `out`: the audit re-encodes every stored event with this, so it
/// allocates nothing per string or number.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            out.push(b'{');
            // serde_json's default map is already in key order; only an insertion-ordered one
            // (the `preserve_order` feature) needs sorting.
            let sorted = map
                .keys()
                .zip(map.keys().skip(1))
                .all(|(a, b)| a.as_bytes() <= b.as_bytes());
            if sorted {
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_string(k, out);
                    out.push(b':');
                    write_canonical(v, out);
                }
            } else {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_string(k, out);
                    out.push(b':');
                    write_canonical(v, out);
                }
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
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // serde_json's own number formatting (as `Value::to_string` prints it).
        Value::Number(n) => write_serialized(n, out),
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // serde_json's string escaping is deterministic (the same as `Value::to_string`).
    write_serialized(s, out);
}

fn write_serialized<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Writing a string or a number into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
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

    /// The encoding before it wrote in place: every string and number through
    /// `Value::to_string`, keys always sorted. The hashes of stored events depend on it.
    fn reference(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                let inner: Vec<String> = entries
                    .into_iter()
                    .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), reference(v)))
                    .collect();
                format!("{{{}}}", inner.join(","))
            }
            Value::Array(items) => {
                let inner: Vec<String> = items.iter().map(reference).collect();
                format!("[{}]", inner.join(","))
            }
            scalar => scalar.to_string(),
        }
    }

    /// Xorshift: deterministic pseudo-random numbers for the encoding test.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn text(&mut self) -> String {
            const CHARS: &[char] = &[
                'a', 'Z', '_', '"', '\\', '/', '\n', '\u{0}', '\u{1f}', '\u{7f}', 'é', '中',
                '\u{2028}', '😀',
            ];
            let n = self.below(6);
            (0..n)
                .map(|_| CHARS[self.below(CHARS.len() as u64) as usize])
                .collect()
        }

        /// A JSON value reaching escapes, non-ASCII, odd floats and keys out of byte order.
        fn json(&mut self, depth: u32) -> Value {
            match self.below(if depth == 0 { 6 } else { 8 }) {
                0 => Value::Null,
                1 => Value::Bool(self.below(2) == 0),
                2 => Value::from(self.next() as i64),
                3 => Value::from(f64::from_bits(self.next())),
                4 => Value::from(self.below(10_000) as f64 / 7.0),
                5 => Value::String(self.text()),
                6 => Value::Array((0..self.below(5)).map(|_| self.json(depth - 1)).collect()),
                _ => Value::Object(
                    (0..self.below(5))
                        .map(|_| (self.text(), self.json(depth - 1)))
                        .collect(),
                ),
            }
        }
    }

    #[test]
    fn canonical_json_is_the_reference_encoding() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let value = rng.json(4);
            assert_eq!(
                String::from_utf8(canonical_json(&value)).unwrap(),
                reference(&value),
                "{value:?}"
            );
        }
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
