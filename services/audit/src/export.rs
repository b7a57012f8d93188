//! `linkage audit export`: every event in the global order `(tx_id, global_position)` with its
//! envelope, streamed from one server-side cursor and written through the caller's buffered
//! writer. Memory stays constant whatever the history's length.

use std::io::Write;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use linkage_projector::Position;
use serde::Serialize;
use sqlx::{Connection, PgPool};

use crate::AuditError;
use crate::row::{position_of, write_hex, write_ndjson};
use linkage_store::stored::StoredEvent;

const EXPORT: &str = include_str!("export.sql");
const EXPORT_COUNT: &str = include_str!("export_count.sql");

/// How often the progress callback is called, in events.
const PROGRESS_EVERY: u64 = 16_384;

/// The export's output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExportFormat {
    /// One envelope (docs/envelope.md) per line, as JSON.
    #[default]
    Ndjson,
    /// A header line, then one line per event: the envelope's fields in [`CSV_COLUMNS`] order,
    /// payload and metadata as JSON text (RFC 4180 quoting).
    Csv,
}

impl std::str::FromStr for ExportFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ndjson" => Ok(Self::Ndjson),
            "csv" => Ok(Self::Csv),
            other => Err(format!("unknown format {other:?}; expected ndjson or csv")),
        }
    }
}

/// The CSV header.
pub const CSV_COLUMNS: &[&str] = &[
    "global_position",
    "tx_id",
    "event_id",
    "aggregate_type",
    "aggregate_id",
    "sequence",
    "event_type",
    "event_version",
    "recorded_at",
    "hash",
    "prev_hash",
    "payload",
    "metadata",
];

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Start at the event with this global position (inclusive), in the global order: that
    /// event and every one after it. `None`: from the start.
    pub from_position: Option<i64>,
    /// Only events recorded at or before this instant.
    pub until: Option<DateTime<Utc>>,
    pub format: ExportFormat,
    /// Count the events first, so progress knows the total (one extra scan).
    pub count_first: bool,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    pub events: u64,
    /// The last event written.
    pub last: Option<Position>,
    #[serde(serialize_with = "crate::verify::serialize_secs")]
    pub elapsed: Duration,
}

/// Writes the events `options` selects to `out` and flushes it. `progress(done, total)` is called
/// every few thousand events and at the end (`total` when `count_first`).
pub async fn export(
    pool: &PgPool,
    options: &ExportOptions,
    out: &mut impl Write,
    progress: &dyn Fn(u64, Option<u64>),
) -> Result<ExportSummary, AuditError> {
    let started = Instant::now();
    let after = match options.from_position {
        None => Position {
            tx_id: 0,
            global_position: 0,
        },
        // Just before the event: nothing lies between (tx, n - 1) and (tx, n) in the order.
        Some(n) => {
            let at = position_of(pool, "from_position", n).await?;
            Position {
                tx_id: at.tx_id,
                global_position: at.global_position - 1,
            }
        }
    };
    let total = if options.count_first {
        let n: i64 = sqlx::query_scalar(EXPORT_COUNT)
            .bind(after.tx_id)
            .bind(after.global_position)
            .bind(options.until)
            .fetch_one(pool)
            .await
            .map_err(|e| AuditError::db("counting the events to export", e))?;
        Some(n as u64)
    } else {
        None
    };
    progress(0, total);

    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| AuditError::db("acquiring a connection to export events", e))?;
    // A transaction only to scope `jit = off`: compiling one long scan costs more than it saves.
    let mut tx = conn
        .begin()
        .await
        .map_err(|e| AuditError::db("beginning the export", e))?;
    sqlx::query("SET LOCAL jit = off")
        .execute(&mut *tx)
        .await
        .map_err(|e| AuditError::db("configuring the export", e))?;
    let mut rows = sqlx::query(EXPORT)
        .bind(after.tx_id)
        .bind(after.global_position)
        .bind(options.until)
        .fetch(&mut *tx);

    if options.format == ExportFormat::Csv {
        writeln!(out, "{}", CSV_COLUMNS.join(",")).map_err(AuditError::Write)?;
    }
    let mut done = 0u64;
    let mut last = None;
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(|e| AuditError::db("reading events to export", e))?
    {
        let envelope =
            StoredEvent::from_row(&row).map_err(|e| AuditError::db("decoding an events row", e))?;
        match options.format {
            ExportFormat::Ndjson => write_ndjson(&envelope, out).map_err(AuditError::Write)?,
            ExportFormat::Csv => write_csv(out, &envelope).map_err(AuditError::Write)?,
        }
        last = Some(Position {
            tx_id: envelope.tx_id,
            global_position: envelope.global_position,
        });
        done += 1;
        if done.is_multiple_of(PROGRESS_EVERY) {
            progress(done, total);
        }
    }
    drop(rows);
    tx.commit()
        .await
        .map_err(|e| AuditError::db("finishing the export", e))?;
    out.flush().map_err(AuditError::Write)?;
    progress(done, total.or(Some(done)));
    Ok(ExportSummary {
        events: done,
        last,
        elapsed: started.elapsed(),
    })
}

fn write_csv(out: &mut impl Write, e: &StoredEvent<'_>) -> std::io::Result<()> {
    write!(out, "{},{},{},", e.global_position, e.tx_id, e.event_id)?;
    csv_field(out, e.aggregate_type.as_bytes())?;
    out.write_all(b",")?;
    csv_field(out, e.aggregate_id.as_bytes())?;
    write!(out, ",{},", e.sequence)?;
    csv_field(out, e.event_type.as_bytes())?;
    out.write_all(b",")?;
    csv_field(out, e.event_version.as_bytes())?;
    // The same instant format the hash covers.
    out.write_all(b",")?;
    out.write_all(linkage_store::hash::format_instant(
        e.recorded_at,
        &mut [0; 32],
    ))?;
    out.write_all(b",")?;
    write_hex(out, e.hash)?;
    out.write_all(b",")?;
    if let Some(prev) = e.prev_hash {
        write_hex(out, prev)?;
    }
    out.write_all(b",")?;
    csv_field(out, e.payload)?;
    out.write_all(b",")?;
    csv_field(out, e.metadata)?;
    out.write_all(b"\n")
}

/// A CSV field (RFC 4180): quoted, with inner quotes doubled, when it holds a comma, a quote or
/// a line break.
fn csv_field(out: &mut impl Write, s: &[u8]) -> std::io::Result<()> {
    if !s.iter().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        return out.write_all(s);
    }
    out.write_all(b"\"")?;
    for (i, part) in s.split(|&b| b == b'"').enumerate() {
        if i > 0 {
            out.write_all(b"\"\"")?;
        }
        out.write_all(part)?;
    }
    out.write_all(b"\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(s: &str) -> String {
        let mut out = Vec::new();
        csv_field(&mut out, s.as_bytes()).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(field("appeal"), "appeal");
        assert_eq!(
            field(r#"{"a": 1, "b": "x"}"#),
            r#""{""a"": 1, ""b"": ""x""}""#
        );
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field(""), "");
    }
}
