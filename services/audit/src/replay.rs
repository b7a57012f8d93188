//! Replaying a projection as of an instant into a scratch schema, and comparing two copies of a
//! projection table by table.
//!
//! The replay is the projection's own rebuild (`linkage_projector::rebuild::rebuild_until`), on a
//! pool whose `search_path` is `<scratch>, <live schema>`: the projection's unqualified table
//! names and its checkpoint row land in the scratch schema (which gets a `projection_checkpoints`
//! of its own), while `events` is read from the live schema. Any
//! [`linkage_projector::Projection`] replays this way, with no code of its own.

use std::time::Duration;

use chrono::{DateTime, Utc};
use linkage_projector::rebuild::{DEFAULT_CHUNK_SIZE, RebuildSummary, rebuild_until};
use linkage_projector::{Position, Projection};
use linkage_store::db::quote_ident;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::AuditError;

/// What a replay did.
#[derive(Debug, Clone, Serialize)]
pub struct ReplaySummary {
    pub projection: &'static str,
    pub schema: String,
    pub as_of: DateTime<Utc>,
    /// Events folded (every event recorded at or before `as_of`).
    pub events: u64,
    /// The last of them in the global order.
    pub position: Option<Position>,
    #[serde(serialize_with = "crate::verify::serialize_secs")]
    pub elapsed: Duration,
}

/// Rebuilds `projection` from the events recorded at or before `as_of` into the schema `into`
/// (created if missing; its copy of the projection's tables is emptied first). `into` must be a
/// plain lower-case name (`[a-z_][a-z0-9_]*`) other than the live schema and the system ones.
pub async fn replay(
    pool: &PgPool,
    projection: &dyn Projection,
    as_of: DateTime<Utc>,
    into: &str,
    progress: impl Fn(u64, u64),
) -> Result<ReplaySummary, AuditError> {
    check_schema_name("into", into)?;
    let live = live_schema(pool).await?;
    if into == live {
        return Err(AuditError::invalid(
            "into",
            format!("into: {into} is the live schema; replay into a scratch schema"),
        ));
    }
    let scratch = quote_ident(into);
    let setup = format!(
        "CREATE SCHEMA IF NOT EXISTS {scratch};
         CREATE TABLE IF NOT EXISTS {scratch}.projection_checkpoints
             (LIKE {live}.projection_checkpoints INCLUDING ALL);
         COMMENT ON SCHEMA {scratch} IS {comment};",
        live = quote_ident(&live),
        comment = quote_literal(&format!(
            "linkage audit replay of {} as of {}",
            projection.name(),
            as_of.to_rfc3339()
        )),
    );
    // Names are checked above and quoted: no outside input reaches the statement unquoted.
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
        .execute(pool)
        .await
        .map_err(|e| AuditError::db(format!("preparing the scratch schema {into}"), e))?;

    let options = (*pool.connect_options())
        .clone()
        .options([("search_path", format!("{into},{live}"))]);
    let scratch_pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(|e| AuditError::db(format!("connecting with the search path {into}"), e))?;
    let rebuilt = rebuild_until(
        &scratch_pool,
        projection,
        DEFAULT_CHUNK_SIZE,
        Some(as_of),
        progress,
    )
    .await;
    scratch_pool.close().await;
    let RebuildSummary {
        projection: name,
        events,
        position,
        elapsed,
    } = rebuilt?;
    Ok(ReplaySummary {
        projection: name,
        schema: into.to_owned(),
        as_of,
        events,
        position,
        elapsed,
    })
}

/// How one table differs between two schemas.
#[derive(Debug, Clone, Serialize)]
pub struct TableDiff {
    pub table: String,
    /// Rows (as JSON objects) in the left copy and not in the right one, counting duplicates.
    pub only_left: i64,
    pub only_right: i64,
    /// A few of them, to look at.
    pub sample_left: Vec<Value>,
    pub sample_right: Vec<Value>,
}

/// The comparison of a projection's tables in two schemas.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub projection: &'static str,
    pub left: String,
    pub right: String,
    /// `true` when every table holds the same rows in both.
    pub equal: bool,
    pub tables: Vec<TableDiff>,
}

/// Compares the tables of `projection` in schema `left` with those in `right` (the live schema
/// when `None`), row for row (as multisets of rows, whatever their order), showing up to
/// `sample` differing rows per side and table.
pub async fn diff(
    pool: &PgPool,
    projection: &dyn Projection,
    left: &str,
    right: Option<&str>,
    sample: i64,
) -> Result<DiffReport, AuditError> {
    check_schema_name("schema", left)?;
    let right = match right {
        Some(r) => {
            check_schema_name("against", r)?;
            r.to_owned()
        }
        None => live_schema(pool).await?,
    };
    let mut tables = Vec::new();
    for table in projection.tables() {
        let l = format!("{}.{}", quote_ident(left), quote_ident(table));
        let r = format!("{}.{}", quote_ident(&right), quote_ident(table));
        let (only_left, sample_left) = except(pool, &l, &r, sample).await?;
        let (only_right, sample_right) = except(pool, &r, &l, sample).await?;
        tables.push(TableDiff {
            table: (*table).to_owned(),
            only_left,
            only_right,
            sample_left,
            sample_right,
        });
    }
    Ok(DiffReport {
        projection: projection.name(),
        left: left.to_owned(),
        right,
        equal: tables.iter().all(|t| t.only_left == 0 && t.only_right == 0),
        tables,
    })
}

/// Rows of `a` not in `b` (as `jsonb`, so every column type compares, `json` included): how
/// many, and up to `sample` of them.
async fn except(
    pool: &PgPool,
    a: &str,
    b: &str,
    sample: i64,
) -> Result<(i64, Vec<Value>), AuditError> {
    // `a` and `b` are quoted identifiers built above.
    let rows =
        format!("SELECT to_jsonb(t) AS r FROM {a} t EXCEPT ALL SELECT to_jsonb(t) FROM {b} t");
    let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM ({rows}) d"
    )))
    .fetch_one(pool)
    .await
    .map_err(|e| AuditError::db(format!("comparing {a} with {b}"), e))?;
    let sample = if count > 0 && sample > 0 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT r FROM ({rows}) d ORDER BY r::text LIMIT $1"
        )))
        .bind(sample)
        .fetch_all(pool)
        .await
        .map_err(|e| AuditError::db(format!("sampling rows of {a} missing from {b}"), e))?
    } else {
        Vec::new()
    };
    Ok((count, sample))
}

/// The schema the pool's unqualified names resolve to (where the live projections are).
async fn live_schema(pool: &PgPool) -> Result<String, AuditError> {
    sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(pool)
        .await
        .map_err(|e| AuditError::db("reading the current schema", e))
}

/// Scratch schema names are plain lower-case identifiers, and never a system schema.
fn check_schema_name(field: &'static str, name: &str) -> Result<(), AuditError> {
    let plain = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !plain {
        return Err(AuditError::invalid(
            field,
            format!("{field}: {name:?} is not a plain schema name ([a-z_][a-z0-9_]*, ≤ 63 bytes)"),
        ));
    }
    if name.starts_with("pg_") || name == "information_schema" {
        return Err(AuditError::invalid(
            field,
            format!("{field}: {name} is a system schema"),
        ));
    }
    Ok(())
}

/// `'text'` with inner quotes doubled.
fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_schema_names_are_plain_and_not_system_ones() {
        assert!(check_schema_name("into", "asof_2026q3").is_ok());
        assert!(check_schema_name("into", "_scratch").is_ok());
        for bad in [
            "",
            "Upper",
            "a-b",
            "a b",
            "1abc",
            "pg_catalog",
            "information_schema",
        ] {
            assert!(check_schema_name("into", bad).is_err(), "{bad:?}");
        }
        assert!(check_schema_name("into", &"a".repeat(64)).is_err());
    }
}
