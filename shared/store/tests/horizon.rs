//! `linkage_horizon()` (migration `…_horizon.sql`): a running write in another database of the
//! cluster does not hold the horizon back, one in this database does.

use linkage_store::testing::TestDatabase;
use sqlx::{Connection, PgConnection};

async fn horizons(pool: &sqlx::PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, \
                linkage_horizon()::text::bigint",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Opens a transaction on `url` that writes (so it has an id) and stays open; returns its id.
async fn open_write(url: &str) -> (PgConnection, i64) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
    sqlx::query("CREATE TEMP TABLE held (x int)")
        .execute(&mut conn)
        .await
        .unwrap();
    let xid: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    (conn, xid)
}

/// A transaction that commits after `xid` was taken, so `xid` is below the snapshot's xmax.
async fn commit_a_later_write(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_write_in_another_database_does_not_hold_the_horizon() {
    let ours = TestDatabase::new().await.unwrap();
    let other = TestDatabase::new().await.unwrap();

    let (foreign, foreign_xid) = open_write(&other.url).await;
    let later = commit_a_later_write(&ours.pool).await;
    let (xmin, horizon) = horizons(&ours.pool).await;
    assert!(
        xmin <= foreign_xid,
        "the plain xmin is held by the other database"
    );
    assert!(
        horizon > later,
        "the horizon passes the other database's write ({foreign_xid}) and our committed {later}: {horizon}"
    );
    foreign.close().await.unwrap();

    let (own, own_xid) = open_write(&ours.url).await;
    commit_a_later_write(&ours.pool).await;
    let (_, horizon) = horizons(&ours.pool).await;
    assert!(
        horizon <= own_xid,
        "a running write in this database holds the horizon: {horizon} > {own_xid}"
    );
    own.close().await.unwrap();
}
