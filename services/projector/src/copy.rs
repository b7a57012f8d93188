//! Rows for `COPY … FROM STDIN (FORMAT binary)`: the server takes each field as it stores it
//! (no text parsing of uuids, instants or arrays), which is most of what a bulk load costs it.
//! Format: <https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4>.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

/// `text`'s type oid, for the element type of `text[]` fields.
const TEXT_OID: i32 = 25;

/// Microseconds since 2000-01-01 00:00 UTC, as Postgres stores `timestamptz`, truncated as
/// sqlx's own encoding truncates (so a bulk load equals a bound parameter); `None` out of range.
pub(crate) fn pg_micros(at: DateTime<Utc>) -> Option<i64> {
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 1)?.and_hms_opt(0, 0, 0)?;
    (at.naive_utc() - epoch).num_microseconds()
}

/// One COPY's data, built in memory and sent whole.
pub(crate) struct BinaryCopy {
    buf: Vec<u8>,
}

impl BinaryCopy {
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes + 21);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
        buf.extend_from_slice(&0i32.to_be_bytes()); // no header extension
        Self { buf }
    }

    /// Starts a row of `fields` fields; the caller writes exactly that many.
    pub(crate) fn row(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
    }

    pub(crate) fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn field(&mut self, bytes: &[u8]) {
        // Every field here is far below 2 GiB (Postgres' own limit is 1 GiB).
        self.buf
            .extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        self.buf.extend_from_slice(bytes);
    }

    pub(crate) fn bool(&mut self, v: bool) {
        self.field(&[u8::from(v)]);
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.field(&v.to_be_bytes());
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.field(&v.to_be_bytes());
    }

    pub(crate) fn uuid(&mut self, v: &Uuid) {
        self.field(v.as_bytes());
    }

    /// `text` (or `json`, whose binary form is its text).
    pub(crate) fn text(&mut self, v: &str) {
        self.field(v.as_bytes());
    }

    /// `timestamptz`; `None` when the instant is out of Postgres' range.
    #[must_use]
    pub(crate) fn timestamptz(&mut self, v: DateTime<Utc>) -> Option<()> {
        self.i64(pg_micros(v)?);
        Some(())
    }

    /// A one-dimensional `text[]` without nulls (`'{}'` when empty, as `array_send` writes it).
    pub(crate) fn text_array<'a>(&mut self, items: impl ExactSizeIterator<Item = &'a str>) {
        let start = self.begin_field();
        let n = items.len() as i32;
        self.buf.extend_from_slice(&i32::from(n > 0).to_be_bytes()); // dimensions
        self.buf.extend_from_slice(&0i32.to_be_bytes()); // no nulls
        self.buf.extend_from_slice(&TEXT_OID.to_be_bytes());
        if n > 0 {
            self.buf.extend_from_slice(&n.to_be_bytes());
            self.buf.extend_from_slice(&1i32.to_be_bytes()); // lower bound
            for item in items {
                self.text(item);
            }
        }
        self.end_field(start);
    }

    /// A field written by `write` straight into the buffer (e.g. JSON text by serde).
    pub(crate) fn with<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.begin_field();
        write(&mut self.buf)?;
        self.end_field(start);
        Ok(())
    }

    fn begin_field(&mut self) -> usize {
        self.buf.extend_from_slice(&0i32.to_be_bytes());
        self.buf.len()
    }

    fn end_field(&mut self, start: usize) {
        let len = (self.buf.len() - start) as i32;
        self.buf[start - 4..start].copy_from_slice(&len.to_be_bytes());
    }

    /// The data with its trailer.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}
