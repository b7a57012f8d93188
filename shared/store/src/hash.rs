//! The per-stream hash chain: `hash = SHA-256(prev_hash ‖ canonical encoding of the event)`.
//! The audit tool recomputes it from stored rows, so the encoding depends only on stored values,
//! never on how their JSON text is formatted. The store writes payload and metadata as this very
//! canonical text (`json` columns keep it as written); events stored while the columns were
//! `jsonb` keep the text Postgres printed them as, which encodes the same values.

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

/// [`HashedFields`] with payload and metadata already in their canonical encoding
/// ([`canonical_json`] or [`canonical_json_text`]).
#[derive(Debug, Clone, Copy)]
pub struct CanonicalFields<'a> {
    pub event_id: Uuid,
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub sequence: i64,
    pub event_type: &'a str,
    pub event_version: &'a str,
    pub payload: &'a [u8],
    pub metadata: &'a [u8],
    pub recorded_at: DateTime<Utc>,
}

/// The hash of an event chained to the previous event of its stream (`None` for the first).
pub fn event_hash(prev_hash: Option<&[u8]>, e: &HashedFields<'_>) -> Vec<u8> {
    let payload = canonical_json(e.payload);
    let metadata = canonical_json(e.metadata);
    event_hash_canonical(
        prev_hash,
        &CanonicalFields {
            event_id: e.event_id,
            aggregate_type: e.aggregate_type,
            aggregate_id: e.aggregate_id,
            sequence: e.sequence,
            event_type: e.event_type,
            event_version: e.event_version,
            payload: &payload,
            metadata: &metadata,
            recorded_at: e.recorded_at,
        },
    )
}

/// [`event_hash`] from payload and metadata already encoded canonically.
pub fn event_hash_canonical(prev_hash: Option<&[u8]>, e: &CanonicalFields<'_>) -> Vec<u8> {
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
    field(e.payload);
    field(e.metadata);
    let mut instant = [0u8; 32];
    field(format_instant(e.recorded_at, &mut instant));
    h.finalize().to_vec()
}

/// The format of `recorded_at` in the hash: `%Y-%m-%dT%H:%M:%S%.6fZ` (microseconds, UTC).
pub const INSTANT_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// `at` formatted as [`INSTANT_FORMAT`] into `buf`, without parsing the format string per call
/// (the audit formats every stored event). Instants chrono would print differently (years
/// outside 0–9999, a leap second) go through chrono.
pub fn format_instant(at: DateTime<Utc>, buf: &mut [u8; 32]) -> &[u8] {
    use chrono::{Datelike, Timelike};
    let year = at.year();
    let nanos = at.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        let text = at.format(INSTANT_FORMAT).to_string();
        let n = text.len().min(buf.len());
        buf[..n].copy_from_slice(&text.as_bytes()[..n]);
        return &buf[..n];
    }
    let mut put = |at: usize, value: u32, width: usize| {
        let mut v = value;
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year as u32, 4);
    put(5, at.month(), 2);
    put(8, at.day(), 2);
    put(11, at.hour(), 2);
    put(14, at.minute(), 2);
    put(17, at.second(), 2);
    put(20, nanos / 1000, 6);
    buf[4] = b'-';
    buf[7] = b'-';
    buf[10] = b'T';
    buf[13] = b':';
    buf[16] = b':';
    buf[19] = b'.';
    buf[26] = b'Z';
    &buf[..27]
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

/// Appends the canonical encoding of the JSON `text` to `out`: the same bytes as
/// [`canonical_json`] of the value `text` parses to (duplicate keys: the last one wins, as in
/// `serde_json::Value`), without building that value. The audit re-hashes every stored event
/// from its stored JSON text with this. On an error `out` holds a partial encoding.
pub fn canonical_json_text(text: &str, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    canonical_json_text_without(text.as_bytes(), &[], out)
}

/// [`canonical_json_text`] of the JSON `text` (bytes, UTF-8 checked) with the members of the
/// top-level object named in `skip` left out: the same bytes as serde_json writes for the
/// `serde_json::Value` it parses to with those keys removed (its maps are sorted). The ledger's
/// rebuild writes its timeline summaries from the stored payloads with this.
pub fn canonical_json_text_without(
    text: &[u8],
    skip: &[&str],
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(text);
    Canonical { out, skip }.deserialize(&mut de)?;
    de.end()
}

/// Writes the canonical encoding of whatever it deserializes into `out`, without the members of
/// a top-level object named in `skip`.
struct Canonical<'o, 's> {
    out: &'o mut Vec<u8>,
    skip: &'s [&'s str],
}

impl<'o> Canonical<'o, '_> {
    /// The encoder of a value inside this one (skipping applies to the top level only).
    fn nested(&mut self) -> Canonical<'_, 'static> {
        Canonical {
            out: self.out,
            skip: &[],
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Canonical<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Canonical<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }

    // Numbers reach the visitor as they reach `serde_json::Value`'s, and are printed as a
    // `Value::Number` of them is.
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        write_serialized(&v, self.out);
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        write_serialized(&v, self.out);
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        match serde_json::Number::from_f64(v) {
            Some(n) => write_serialized(&n, self.out),
            None => self.out.extend_from_slice(b"null"),
        }
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        write_string(v, self.out);
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.out.push(b'[');
        let mut first = true;
        loop {
            let mark = self.out.len();
            if !first {
                self.out.push(b',');
            }
            if seq.next_element_seed(self.nested())?.is_none() {
                self.out.truncate(mark);
                break;
            }
            first = false;
        }
        self.out.push(b']');
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        // Members are encoded in document order after `start`, then written back sorted by key.
        let start = self.out.len();
        let mut members: Vec<(std::borrow::Cow<'de, str>, std::ops::Range<usize>)> = Vec::new();
        while let Some(key) = map.next_key_seed(Key)? {
            if self.skip.contains(&key.as_ref()) {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            }
            let from = self.out.len() - start;
            map.next_value_seed(self.nested())?;
            members.push((key, from..self.out.len() - start));
        }
        let values = self.out.split_off(start);
        // Stable: of equal keys the last one stays (as a map insert would keep it).
        members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        self.out.push(b'{');
        let mut written = 0;
        for (i, (key, range)) in members.iter().enumerate() {
            if members.get(i + 1).is_some_and(|next| next.0 == *key) {
                continue;
            }
            if written > 0 {
                self.out.push(b',');
            }
            write_string(key, self.out);
            self.out.push(b':');
            self.out.extend_from_slice(&values[range.clone()]);
            written += 1;
        }
        self.out.push(b'}');
        Ok(())
    }
}

/// An object key, borrowed from the text when it has no escapes.
struct Key;

impl<'de> serde::de::DeserializeSeed<'de> for Key {
    type Value = std::borrow::Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Key {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v))
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

    /// Without top-level keys: what serde_json writes for the parsed value with them removed.
    #[test]
    fn canonical_text_without_keys_is_the_value_without_them() {
        let skip = ["at", "filer"];
        for text in [
            r#"{"filer":{"at":1,"name":"x"},"b":[{"at":2}],"at":"2026","a":1.5e3,"at":0}"#,
            r#"{"lead": "market", "text": "\u00e9\"中", "at": null, "n": -0.0}"#,
            r#"[{"at": 1}]"#,
            r#""at""#,
            "{}",
        ] {
            let mut value: Value = serde_json::from_str(text).unwrap();
            if let Value::Object(map) = &mut value {
                map.retain(|k, _| !skip.contains(&k.as_str()));
            }
            let mut out = Vec::new();
            canonical_json_text_without(text.as_bytes(), &skip, &mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), value.to_string(), "{text}");
        }
        assert!(canonical_json_text_without(b"{\"a\":1} x", &skip, &mut Vec::new()).is_err());
    }

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
    fn canonical_json_text_equals_canonical_json_of_the_parsed_value() {
        let mut rng = Rng(0x0DDB_A11C_AFE5_EED5);
        let mut out = Vec::new();
        for _ in 0..20_000 {
            let value = rng.json(4);
            for text in [
                value.to_string(),
                serde_json::to_string_pretty(&value).unwrap(),
            ] {
                out.clear();
                canonical_json_text(&text, &mut out).unwrap();
                assert_eq!(
                    String::from_utf8(out.clone()).unwrap(),
                    String::from_utf8(canonical_json(&value)).unwrap(),
                    "{text}"
                );
            }
        }
        // As Postgres prints jsonb (keys by length, then bytes; spaces), with escapes, numbers
        // written in other ways, and a duplicate key (the last one wins, as when parsed).
        for text in [
            r#"{"b": 1, "aa": {"z": [1.50, -0, 1e2, 12345678901234567890123], "y": "\u00e9\n"}, "a": null}"#,
            r#"{"k": 1, "k": 2, "\u006b": 3, "j": true}"#,
            r#"[]"#,
            r#"{}"#,
        ] {
            out.clear();
            canonical_json_text(text, &mut out).unwrap();
            let parsed: Value = serde_json::from_str(text).unwrap();
            assert_eq!(out, canonical_json(&parsed), "{text}");
        }
        assert!(canonical_json_text("{\"a\": 1} x", &mut out).is_err());
        assert!(canonical_json_text("{\"a\": ", &mut out).is_err());
    }

    #[test]
    fn instants_format_as_chrono_does() {
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        let mut buf = [0u8; 32];
        let mut instants: Vec<DateTime<Utc>> = vec![
            DateTime::from_timestamp(0, 0).unwrap(),
            DateTime::from_timestamp(253_402_300_799, 999_999_999).unwrap(),
            DateTime::from_timestamp(253_402_300_800, 0).unwrap(),
            DateTime::from_timestamp(-62_167_219_201, 0).unwrap(),
            DateTime::from_timestamp(1_483_228_799, 1_500_000_000).unwrap(),
        ];
        for _ in 0..20_000 {
            let secs = (rng.next() % 4_000_000_000) as i64 - 100_000_000;
            let nanos = (rng.next() % 1_000_000_000) as u32;
            instants.push(DateTime::from_timestamp(secs, nanos).unwrap());
        }
        for at in instants {
            assert_eq!(
                std::str::from_utf8(format_instant(at, &mut buf)).unwrap(),
                at.format(INSTANT_FORMAT).to_string(),
                "{at:?}"
            );
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
