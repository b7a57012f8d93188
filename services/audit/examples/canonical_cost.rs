//! The client-side cost of re-hashing stored events in `linkage audit verify`, before and after
//! the allocation-free canonical encoder, on stored JSON text. Counted in instructions with
//! callgrind, which is repeatable on a busy machine (wall time is not):
//!
//! ```sh
//! psql -At -F $'\t' -c "SELECT payload, metadata FROM events LIMIT 20000" "$DATABASE_URL" > rows.tsv
//! cargo build --release -p linkage-audit --example canonical_cost
//! valgrind --tool=callgrind target/release/examples/canonical_cost before rows.tsv
//! valgrind --tool=callgrind target/release/examples/canonical_cost after rows.tsv
//! ```
//!
//! `before`: parse into `serde_json::Value`, encode canonically as `linkage_store::hash` did
//! until commit 2459833 (a `String` and a `Value` per string, a sorted `Vec` per object), and
//! format `recorded_at` with chrono's format string. `after`: what verify does now
//! (`canonical_json_text` and `format_instant`). The SHA-256 over the result (the same in both) is left out.

use chrono::{DateTime, Utc};
use serde_json::Value;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(path)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: canonical_cost before|after ROWS.tsv");
    };
    let text = std::fs::read_to_string(path)?;
    let at = DateTime::<Utc>::from_timestamp(1_790_000_000, 123_456_789).unwrap_or_default();
    let mut bytes = 0usize;
    let mut rows = 0u64;
    let mut buf = Vec::new();
    for line in text.lines() {
        let Some((payload, metadata)) = line.split_once('\t') else {
            continue;
        };
        match mode.as_str() {
            "before" => {
                for json in [payload, metadata] {
                    let value: Value = serde_json::from_str(json)?;
                    bytes += std::hint::black_box(old_canonical_json(&value)).len();
                }
                bytes +=
                    std::hint::black_box(at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()).len();
            }
            "after" => {
                for json in [payload, metadata] {
                    buf.clear();
                    buf.reserve(json.len());
                    linkage_store::hash::canonical_json_text(json, &mut buf)?;
                    bytes += std::hint::black_box(&buf).len();
                }
                let mut instant = [0u8; 32];
                bytes +=
                    std::hint::black_box(linkage_store::hash::format_instant(at, &mut instant))
                        .len();
            }
            other => anyhow::bail!("unknown mode {other:?}"),
        }
        rows += 1;
    }
    println!("{rows} rows, {bytes} canonical bytes");
    Ok(())
}

/// `linkage_store::hash::canonical_json` as it was before commit 2459833.
fn old_canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    old_write(value, &mut out);
    out
}

fn old_write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String(k.to_owned()).to_string().as_bytes());
                out.push(b':');
                old_write(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                old_write(v, out);
            }
            out.push(b']');
        }
        Value::String(s) => {
            out.extend_from_slice(Value::String(s.to_owned()).to_string().as_bytes());
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}
