//! Events rows read as they come over the wire, for the long scans (a rebuild, the audit's
//! export and verification): every column by position, the JSON columns as their stored text,
//! `xid8` and hashes as bytes, nothing parsed or copied until a reader asks for it.

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgRow, PgValueFormat};
use sqlx::{Row, TypeInfo, ValueRef};
use uuid::Uuid;

/// The columns [`StoredEvent::from_row`] reads, in its order (select them as they are: no
/// casts, so `tx_id` comes as `xid8` and the hashes as `bytea`).
pub const COLUMNS: &str = "event_id, global_position, tx_id, aggregate_type, aggregate_id, \
     sequence, event_type, event_version, recorded_at, payload, metadata, hash, prev_hash";

/// An events row selected with [`COLUMNS`], borrowing from the row.
#[derive(Debug, Clone, Copy)]
pub struct StoredEvent<'r> {
    pub event_id: Uuid,
    pub global_position: i64,
    pub tx_id: i64,
    pub aggregate_type: &'r str,
    pub aggregate_id: &'r str,
    pub sequence: i64,
    pub event_type: &'r str,
    pub event_version: &'r str,
    pub recorded_at: DateTime<Utc>,
    /// The stored JSON text (see [`json_bytes`]).
    pub payload: &'r [u8],
    pub metadata: &'r [u8],
    /// SHA-256, as stored.
    pub hash: &'r [u8],
    pub prev_hash: Option<&'r [u8]>,
}

impl<'r> StoredEvent<'r> {
    /// Reads the row by position: one long scan reads every row, and looking columns up by
    /// name was a tenth of a reader's time.
    pub fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            event_id: row.try_get(0)?,
            global_position: row.try_get(1)?,
            tx_id: xid8(row, 2)?,
            aggregate_type: row.try_get(3)?,
            aggregate_id: row.try_get(4)?,
            sequence: row.try_get(5)?,
            event_type: row.try_get(6)?,
            event_version: row.try_get(7)?,
            recorded_at: row.try_get(8)?,
            payload: json_bytes(row, 9)?,
            metadata: json_bytes(row, 10)?,
            hash: row.try_get(11)?,
            prev_hash: row.try_get(12)?,
        })
    }
}

fn decode_error(
    column: usize,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: source.into(),
    }
}

/// The stored JSON text of a `json` column, as it came over the wire: Postgres checked it is
/// JSON when it was written, and it is not parsed again here. (A `jsonb` column, as before the
/// `events_json` migration, sends a format version byte first: it is skipped.)
pub fn json_bytes(row: &PgRow, column: usize) -> Result<&[u8], sqlx::Error> {
    let value = row.try_get_raw(column)?;
    let jsonb_binary =
        value.format() == PgValueFormat::Binary && value.type_info().name() == "JSONB";
    let bytes = value.as_bytes().map_err(|e| decode_error(column, e))?;
    Ok(match bytes.split_first() {
        Some((1, text)) if jsonb_binary => text,
        _ => bytes,
    })
}

/// An `xid8` column selected as is (8 bytes, big-endian, in the binary format), without the
/// `::text::bigint` conversion on the server.
pub fn xid8(row: &PgRow, column: usize) -> Result<i64, sqlx::Error> {
    let value = row.try_get_raw(column)?;
    let format = value.format();
    let bytes = value.as_bytes().map_err(|e| decode_error(column, e))?;
    match format {
        PgValueFormat::Binary => <[u8; 8]>::try_from(bytes)
            .map(i64::from_be_bytes)
            .map_err(|_| decode_error(column, format!("an xid8 of {} bytes", bytes.len()))),
        PgValueFormat::Text => std::str::from_utf8(bytes)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| decode_error(column, "an xid8 that is not a number")),
    }
}
