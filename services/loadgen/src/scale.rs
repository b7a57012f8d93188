//! A ledger at scale for the query benchmark: the rows the real ledger projection wrote for the
//! seeded history (`seed` + `linkage projections rebuild ledger`), copied until the ledger holds
//! the asked number of appeals. Seeding and rebuilding 1M appeals (≈ 7.7M events) does not fit in
//! `make bench`'s budget; copying 130 000 projected appeals eight times takes about a minute and
//! keeps every distribution the queries depend on (filing instants over the same period, so 8×
//! the density; statuses, departments and co-handlers, channels, towns, categories, deadlines),
//! because each copy *is* the projection's output with new identities:
//!
//! - `appeal_id` (and `duplicate_of`, `ledger_timeline.appeal_id` / `event_id`): a uuid hashed
//!   from the original and the copy number;
//! - `tracking_number`: the serial plus `copy × 1 000 000` (`LK-2025-000123` → `LK-2025-1000123`),
//!   still a valid tracking number and unique;
//! - every `timestamptz` column moved by `copy` seconds, so copies do not tie with their original.
//!
//! The ledger's keys and secondary indexes are dropped for the copy and built again afterwards, as
//! a rebuild does; their build times are reported. The copy and the builds run in two lanes, one
//! per core. Only for a scratch benchmark database: after this
//! the ledger is no longer the projection of the event store.

use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

#[derive(Debug, Clone)]
pub struct ScaleConfig {
    pub database_url: String,
    /// Appeals the ledger should hold at least (whole copies: it may end a little above).
    pub appeals: u64,
    /// Copy `ledger_timeline` too, so appeal details of copies show their history.
    pub timeline: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct IndexBuild {
    pub index: String,
    pub secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScaleReport {
    pub original_appeals: i64,
    pub copies: i64,
    pub appeals: i64,
    pub timeline_rows: i64,
    pub copy_secs: f64,
    pub index_secs: f64,
    pub analyze_secs: f64,
    pub elapsed_secs: f64,
    pub index_builds: Vec<IndexBuild>,
}

/// The select list copying `table`'s columns for copy `k` (a column of the query), with the
/// identity columns given in `rewrite` replaced and every timestamptz column shifted.
async fn select_list(
    conn: &mut PgConnection,
    table: &str,
    rewrite: &[(&str, &str)],
) -> Result<(String, String)> {
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 \
           AND is_generated = 'NEVER' ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .with_context(|| format!("reading the columns of {table}"))?;
    if columns.is_empty() {
        bail!("no table {table} in the current schema");
    }
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    let exprs: Vec<String> = columns
        .iter()
        .map(|(name, ty)| {
            if let Some((_, e)) = rewrite.iter().find(|(c, _)| c == name) {
                (*e).to_owned()
            } else if ty == "timestamp with time zone" {
                format!("t.{name} + k * interval '1 second'")
            } else {
                format!("t.{name}")
            }
        })
        .collect();
    Ok((names.join(", "), exprs.join(", ")))
}

/// One `INSERT … SELECT` of a copy lane: copies `from..=to` of the ledger or its timeline.
struct CopyStatement<'a> {
    sql: &'a str,
    copies: (i64, i64),
    timeline: bool,
}

/// A connection for the copy's long statements.
async fn connect(database_url: &str) -> Result<PgConnection> {
    // Every statement here is slow on purpose: no slow-statement warnings.
    PgConnectOptions::from_str(database_url)
        .context("parsing the database URL")?
        .disable_statement_logging()
        .connect()
        .await
        .context("connecting to Postgres")
}

/// A copy's uuid for an original one.
const NEW_ID: &str = "md5(t.appeal_id::text || ':' || k)::uuid";

pub async fn scale(config: ScaleConfig) -> Result<ScaleReport> {
    let started = Instant::now();
    let mut conn = connect(&config.database_url).await?;
    let original: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger")
        .fetch_one(&mut conn)
        .await
        .context("counting the ledger")?;
    if original == 0 {
        bail!("the ledger is empty: seed and rebuild it first");
    }
    let copies = (config.appeals as i64 + original - 1) / original - 1;
    let tables: &[&str] = if config.timeline {
        &["ledger", "ledger_timeline"]
    } else {
        &["ledger"]
    };
    // The secondary indexes, as the rebuild finds them (not those backing constraints).
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i \
         WHERE i.indrelid = ANY($1::text[]::regclass[]) AND NOT i.indisprimary \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) \
         ORDER BY 1",
    )
    .bind(tables)
    .fetch_all(&mut conn)
    .await
    .context("listing the ledger's indexes")?;

    // Primary keys too: inserting millions of random uuids into a btree costs far more than
    // building it once (the timeline's 7M rows: 125 s with it, a fraction without).
    let keys: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, quote_ident(c.conname), pg_get_constraintdef(c.oid) \
         FROM pg_constraint c WHERE c.conrelid = ANY($1::text[]::regclass[]) \
           AND c.contype IN ('p', 'u') ORDER BY 1, 2",
    )
    .bind(tables)
    .fetch_all(&mut conn)
    .await
    .context("listing the ledger's keys")?;

    let copy_started = Instant::now();
    let mut timeline_rows = 0;
    if copies > 0 {
        let mut tx = conn.begin().await?;
        for (table, name, _) in &keys {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE {table} DROP CONSTRAINT {name}"
            )))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("dropping {name}"))?;
        }
        for (name, _) in &indexes {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX {name}")))
                .execute(&mut *tx)
                .await
                .with_context(|| format!("dropping {name}"))?;
        }
        // A scratch copy for reads only: nothing here needs to survive a crash, so neither the
        // copy nor the index builds write WAL (≈ 3 GB of it, which made the copy disk-bound).
        // Reads of an unlogged table are those of any other.
        for table in tables {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE {table} SET UNLOGGED"
            )))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("making {table} unlogged"))?;
        }
        tx.commit()
            .await
            .context("committing the dropped indexes")?;

        let (ledger_names, ledger_exprs) = select_list(
            &mut conn,
            "ledger",
            &[
                ("appeal_id", NEW_ID),
                (
                    "tracking_number",
                    "split_part(t.tracking_number, '-', 1) || '-' || \
                     split_part(t.tracking_number, '-', 2) || '-' || \
                     (split_part(t.tracking_number, '-', 3)::bigint + k * 1000000)::text",
                ),
                (
                    "duplicate_of",
                    "CASE WHEN t.duplicate_of IS NOT NULL \
                     THEN md5(t.duplicate_of::text || ':' || k)::uuid END",
                ),
            ],
        )
        .await?;
        let copy_ledger = format!(
            "INSERT INTO ledger ({ledger_names}) SELECT {ledger_exprs} \
             FROM ledger t CROSS JOIN generate_series($1::bigint, $2::bigint) k"
        );
        let copy_timeline = if config.timeline {
            let (names, exprs) = select_list(
                &mut conn,
                "ledger_timeline",
                &[
                    ("appeal_id", NEW_ID),
                    ("event_id", "md5(t.event_id::text || ':' || k)::uuid"),
                ],
            )
            .await?;
            Some(format!(
                "INSERT INTO ledger_timeline ({names}) SELECT {exprs} \
                 FROM ledger_timeline t CROSS JOIN generate_series($1::bigint, $2::bigint) k"
            ))
        } else {
            None
        };

        // Two lanes, one per core: the first copies the ledger and the timeline's first third of
        // the copies (ledger rows are wide), the second the rest of the timeline. Each lane is a
        // repeatable-read transaction whose snapshot is taken before either inserts, so both
        // read only the original rows.
        let split = copies / 3;
        let mut lanes = Vec::new();
        for lane in 0..2 {
            let mut other = connect(&config.database_url).await?;
            sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut other)
                .await
                .context("beginning a copy lane")?;
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut other)
                .await?;
            // The snapshot: the first statement of a repeatable-read transaction takes it.
            sqlx::query("SELECT 1").execute(&mut other).await?;
            let mut statements: Vec<CopyStatement> = Vec::new();
            if lane == 0 {
                statements.push(CopyStatement {
                    sql: &copy_ledger,
                    copies: (1, copies),
                    timeline: false,
                });
            }
            if let Some(copy_timeline) = &copy_timeline {
                let (from, to) = if lane == 0 {
                    (1, split)
                } else {
                    (split + 1, copies)
                };
                if from <= to {
                    statements.push(CopyStatement {
                        sql: copy_timeline,
                        copies: (from, to),
                        timeline: true,
                    });
                }
            }
            lanes.push((other, statements));
        }
        let results =
            futures::future::try_join_all(lanes.iter_mut().map(|(lane, statements)| async move {
                let mut timeline = 0;
                for statement in statements.iter() {
                    let (from, to) = statement.copies;
                    let done = sqlx::query(sqlx::AssertSqlSafe(statement.sql.to_owned()))
                        .bind(from)
                        .bind(to)
                        .execute(&mut *lane)
                        .await
                        .with_context(|| {
                            let table = if statement.timeline {
                                "timeline"
                            } else {
                                "ledger"
                            };
                            format!("copying {table} rows (copies {from} to {to})")
                        })?;
                    if statement.timeline {
                        timeline += done.rows_affected() as i64;
                    }
                }
                sqlx::query("COMMIT")
                    .execute(&mut *lane)
                    .await
                    .context("committing a copy lane")?;
                anyhow::Ok(timeline)
            }))
            .await?;
        timeline_rows = results.iter().sum();
    }
    let copy_secs = copy_started.elapsed().as_secs_f64();

    // Keys first (the largest builds), then the indexes, two at a time (one per core), each
    // sorting in memory.
    let index_started = Instant::now();
    let mut index_builds = Vec::new();
    if copies > 0 {
        let builds: Vec<(String, String)> = keys
            .iter()
            .map(|(table, name, def)| {
                (
                    name.clone(),
                    format!("ALTER TABLE {table} ADD CONSTRAINT {name} {def}"),
                )
            })
            .chain(indexes.iter().cloned())
            .collect();
        let mut builders = Vec::new();
        for _ in 0..2 {
            let mut builder = connect(&config.database_url).await?;
            sqlx::query("SET maintenance_work_mem = '1GB'")
                .execute(&mut builder)
                .await?;
            builders.push(builder);
        }
        let queue = std::sync::Mutex::new(builds.into_iter());
        let done = futures::future::try_join_all(builders.iter_mut().map(|builder| {
            let queue = &queue;
            async move {
                let mut done = Vec::new();
                loop {
                    let next = queue.lock().map(|mut q| q.next()).unwrap_or(None);
                    let Some((name, sql)) = next else {
                        return anyhow::Ok(done);
                    };
                    let t = Instant::now();
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut *builder)
                        .await
                        .with_context(|| format!("building {name}"))?;
                    done.push(IndexBuild {
                        index: name,
                        secs: t.elapsed().as_secs_f64(),
                    });
                }
            }
        }))
        .await?;
        index_builds = done.into_iter().flatten().collect();
    }
    let index_secs = index_started.elapsed().as_secs_f64();
    let analyze_started = Instant::now();
    for table in tables {
        sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("analyzing {table}"))?;
    }
    let analyze_secs = analyze_started.elapsed().as_secs_f64();
    let appeals: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger")
        .fetch_one(&mut conn)
        .await?;
    Ok(ScaleReport {
        original_appeals: original,
        copies,
        appeals,
        timeline_rows,
        copy_secs,
        index_secs,
        analyze_secs,
        elapsed_secs: started.elapsed().as_secs_f64(),
        index_builds,
    })
}
