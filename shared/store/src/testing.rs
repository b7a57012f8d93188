//! A fresh database per test, on the server of `DATABASE_URL`, dropped when the test ends.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection, PgPool};

use crate::StoreError;
use crate::db::{MIGRATOR, connect, connect_options, migrate, quote_ident};

/// The server tests use when `DATABASE_URL` is not set (as on a developer machine).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/linkage";

/// Test databases are named `linkage_test_<unix seconds>_<random>`; ones older than this were
/// left by a killed test run and are dropped by the next run.
const STALE_AFTER: Duration = Duration::from_secs(6 * 3600);

/// A migrated database of its own for one test.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
    admin_url: String,
}

impl TestDatabase {
    pub async fn new() -> Result<Self, StoreError> {
        Self::migrated_to(None).await
    }

    /// Runs the migrations not applied yet, then replaces the pool, as processes restart after
    /// a migration: a connection's cached statements fail once a column they return changed
    /// type ("cached plan must not change result type").
    pub async fn migrate_rest(&mut self) -> Result<(), StoreError> {
        migrate(&self.pool).await?;
        self.pool.close().await;
        self.pool = connect(&self.url, 10, Duration::from_secs(10)).await?;
        Ok(())
    }

    /// A database with the migrations up to and including `version` only (`None`: all), as a
    /// store deployed before a later migration had it. [`TestDatabase::migrate_rest`] runs the
    /// others.
    pub async fn migrated_to(version: Option<i64>) -> Result<Self, StoreError> {
        let base = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.into());
        let options = connect_options(&base)?;
        let admin_url = with_database(&base, "postgres");
        let mut admin = PgConnection::connect_with(&options.clone().database("postgres"))
            .await
            .map_err(|e| StoreError::db("connecting to the test Postgres server", e))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        drop_stale(&mut admin, now).await;
        let name = format!("linkage_test_{now}_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {}",
            quote_ident(&name)
        )))
        .execute(&mut admin)
        .await
        .map_err(|e| StoreError::db(format!("creating test database {name}"), e))?;
        let url = with_database(&base, &name);
        let pool = connect(&url, 10, Duration::from_secs(10)).await?;
        match version {
            None => migrate(&pool).await?,
            Some(version) => MIGRATOR
                .run_to(version, &pool)
                .await
                .map_err(|e| StoreError::Migrate(Box::new(e)))?,
        }
        Ok(Self {
            name,
            url,
            pool,
            admin_url,
        })
    }
}

async fn drop_stale(admin: &mut PgConnection, now: u64) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'linkage\\_test\\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap_or_default();
    for name in names {
        let created = name
            .split('_')
            .nth(2)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(now);
        if now.saturating_sub(created) > STALE_AFTER.as_secs() {
            let sql = format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&name)
            );
            let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *admin)
                .await;
        }
    }
}

fn with_database(url: &str, name: &str) -> String {
    // Replace the path (and keep any query string) of a postgres:// URL.
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let authority_end = head
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| head[start..].find('/').map(|j| start + j))
        .unwrap_or(head.len());
    let mut out = format!("{}/{}", &head[..authority_end], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs outside any async context we can rely on: use a thread with its own runtime
        // and wait for it, so the database is gone before the test process exits.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let sql = format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        quote_ident(&name)
                    );
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut admin)
                        .await;
                }
            });
        });
        let _ = handle.join();
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/linkage", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/linkage?sslmode=disable", "t1"),
            "postgres://u:p@h/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "t1"), "postgres://h:1/t1");
    }
}
