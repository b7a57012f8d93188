//! Events rows for the audit: places in the global order, and a stored event (read by
//! `linkage_store::stored`) written out as its envelope without parsing the stored JSON.

use std::io::Write;

use chrono::SecondsFormat;
use linkage_bus::envelope::ENVELOPE_VERSION;
use linkage_projector::Position;
use linkage_store::stored::StoredEvent;
use sqlx::PgPool;
use uuid::Uuid;

use crate::AuditError;

const POSITION: &str = include_str!("position.sql");

/// The place in the global order `(tx_id, global_position)` of the event at `global_position`.
pub(crate) async fn position_of(
    pool: &PgPool,
    field: &'static str,
    global_position: i64,
) -> Result<Position, AuditError> {
    let row: Option<(i64, i64)> = sqlx::query_as(POSITION)
        .bind(global_position)
        .fetch_optional(pool)
        .await
        .map_err(|e| AuditError::db("looking up an event by its global position", e))?;
    row.map(|(tx_id, global_position)| Position {
        tx_id,
        global_position,
    })
    .ok_or_else(|| {
        AuditError::invalid(
            field,
            format!("{field}: no event has the global position {global_position}"),
        )
    })
}

/// The event as one line of JSON (what `serde_json` writes for a `linkage_bus::Envelope`
/// of it, except that payload and metadata keep their stored text), then `\n`.
pub(crate) fn write_ndjson(e: &StoredEvent<'_>, out: &mut impl Write) -> std::io::Result<()> {
    write!(
        out,
        "{{\"envelope_version\":{ENVELOPE_VERSION},\"event_id\":\""
    )?;
    out.write_all(
        e.event_id
            .hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    )?;
    out.write_all(b"\",\"global_position\":")?;
    json_value(out, &e.global_position)?;
    out.write_all(b",\"tx_id\":")?;
    json_value(out, &e.tx_id)?;
    out.write_all(b",\"aggregate_type\":")?;
    json_value(out, e.aggregate_type)?;
    out.write_all(b",\"aggregate_id\":")?;
    json_value(out, e.aggregate_id)?;
    out.write_all(b",\"sequence\":")?;
    json_value(out, &e.sequence)?;
    out.write_all(b",\"event_type\":")?;
    json_value(out, e.event_type)?;
    out.write_all(b",\"event_version\":")?;
    json_value(out, e.event_version)?;
    // As chrono serializes a `DateTime<Utc>` (RFC 3339, only the fraction digits needed).
    out.write_all(b",\"recorded_at\":\"")?;
    out.write_all(
        e.recorded_at
            .to_rfc3339_opts(SecondsFormat::AutoSi, true)
            .as_bytes(),
    )?;
    out.write_all(b"\",\"payload\":")?;
    one_line_json(out, e.payload)?;
    out.write_all(b",\"metadata\":")?;
    one_line_json(out, e.metadata)?;
    out.write_all(b",\"hash\":\"")?;
    write_hex(out, e.hash)?;
    out.write_all(b"\",\"prev_hash\":")?;
    match e.prev_hash {
        Some(prev) => {
            out.write_all(b"\"")?;
            write_hex(out, prev)?;
            out.write_all(b"\"}\n")
        }
        None => out.write_all(b"null}\n"),
    }
}

/// A number or a string as `serde_json` writes it (strings quoted and escaped).
fn json_value<T: serde::Serialize + ?Sized>(out: &mut impl Write, v: &T) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, v).map_err(std::io::Error::from)
}

/// Lower-case hex of `bytes` (a hash: 32 bytes; longer input goes through `hex::encode`).
pub(crate) fn write_hex(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let mut buf = [0u8; 64];
    match buf.get_mut(..bytes.len() * 2) {
        Some(buf) => {
            // The buffer is exactly twice the input: encoding cannot fail.
            let _ = hex::encode_to_slice(bytes, buf);
            out.write_all(buf)
        }
        None => out.write_all(hex::encode(bytes).as_bytes()),
    }
}

/// Stored JSON text on one line. The store writes compact JSON, but the `json` type keeps any
/// whitespace it was given, and a line break would split an NDJSON record: whitespace outside
/// strings is dropped then (JSON strings cannot hold a raw line break, so that is all of it).
pub(crate) fn one_line_json(out: &mut impl Write, text: &[u8]) -> std::io::Result<()> {
    // `contains` of a byte is a word-at-a-time search (memchr).
    if !text.contains(&b'\n') && !text.contains(&b'\r') {
        return out.write_all(text);
    }
    let mut compact = Vec::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in text {
        if in_string {
            compact.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            in_string = b == b'"';
            compact.push(b);
        }
    }
    out.write_all(&compact)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use linkage_bus::Envelope;
    use serde_json::json;

    #[test]
    fn json_text_with_line_breaks_is_written_on_one_line() {
        let text = "{\n  \"a\": \"x \\\" \\n y\",\r\n  \"b\": [1,\t2]\n}";
        let mut out = Vec::new();
        one_line_json(&mut out, text.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            r#"{"a":"x \" \n y","b":[1,2]}"#
        );
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            parsed,
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
        // Without a line break the text is written as stored, spaces included.
        let mut out = Vec::new();
        one_line_json(&mut out, br#"{"a": 1}"#).unwrap();
        assert_eq!(out, br#"{"a": 1}"#);
    }

    #[test]
    fn the_written_envelope_is_the_bus_envelope() {
        let payload = r#"{"lead": "market", "text": "\u00e9\"中"}"#.as_bytes();
        let metadata = br#"{"actor":"a\\b"}"#;
        for (nanos, prev) in [
            (0, None),
            (123_000_000, Some([7u8; 32])),
            (123_456_000, None),
        ] {
            let e = StoredEvent {
                event_id: Uuid::now_v7(),
                global_position: 42,
                tx_id: 1_000_000_007,
                aggregate_type: "appeal",
                aggregate_id: "id \"quoted\"",
                sequence: 3,
                event_type: "AppealAssigned",
                event_version: "1",
                recorded_at: DateTime::from_timestamp(1_790_000_000, nanos).unwrap(),
                payload,
                metadata,
                hash: &[0xab; 32],
                prev_hash: prev.as_ref().map(|p| p.as_slice()),
            };
            let expected = Envelope {
                envelope_version: ENVELOPE_VERSION,
                event_id: e.event_id,
                global_position: e.global_position,
                tx_id: e.tx_id,
                aggregate_type: e.aggregate_type.to_owned(),
                aggregate_id: e.aggregate_id.to_owned(),
                sequence: e.sequence,
                event_type: e.event_type.to_owned(),
                event_version: e.event_version.to_owned(),
                recorded_at: e.recorded_at,
                payload: json!({"lead": "market", "text": "é\"中"}),
                metadata: json!({"actor": "a\\b"}),
                hash: "ab".repeat(32),
                prev_hash: prev.map(hex::encode),
            };
            let mut line = Vec::new();
            write_ndjson(&e, &mut line).unwrap();
            assert_eq!(line.pop(), Some(b'\n'));
            assert!(!line.contains(&b'\n'));
            assert_eq!(Envelope::decode(&line).unwrap(), expected);
            // Field for field the bytes serde writes, but for the stored JSON text.
            let reencoded = String::from_utf8(expected.encode()).unwrap().replace(
                &format!(
                    "\"payload\":{},\"metadata\":{}",
                    expected.payload, expected.metadata
                ),
                &format!(
                    "\"payload\":{},\"metadata\":{}",
                    std::str::from_utf8(payload).unwrap(),
                    std::str::from_utf8(metadata).unwrap()
                ),
            );
            assert_eq!(String::from_utf8(line).unwrap(), reencoded);
        }
    }
}
