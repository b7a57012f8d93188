-- The event store's horizon: every event with `tx_id` below it is committed (or rolled back),
-- and no transaction can still add one below it. Readers that must never skip a late commit
-- (the relay, projection rebuilds, audit exports) read only below it.
--
-- It is `pg_snapshot_xmin(pg_current_snapshot())` except that running transactions which
-- provably belong to *other* databases of the cluster are passed over: transaction ids are
-- cluster-wide, so without this a long write in any other database (a migration, a batch load,
-- another test's database) would hold every reader here back. A running transaction is passed
-- over only when `pg_stat_activity` names another database for it; anything unknown (ended
-- since, a prepared transaction, a role without pg_read_all_stats, which sees NULL ids) still
-- holds the horizon, so the rule is never looser than the plain xmin. With no
-- running transaction of ours below the snapshot's xmax, the horizon is xmax: every id below it
-- has ended, and any running one is at or above it.
--
-- STABLE: it sees the calling statement's snapshot, so the horizon and the rows read below it
-- come from one snapshot. PL/pgSQL so the plan is cached per session (the relay asks often).
CREATE OR REPLACE FUNCTION linkage_horizon() RETURNS xid8
LANGUAGE plpgsql STABLE AS $$
DECLARE
    snap pg_snapshot := pg_current_snapshot();
    horizon xid8;
BEGIN
    IF pg_snapshot_xmin(snap) = pg_snapshot_xmax(snap) THEN
        RETURN pg_snapshot_xmax(snap);
    END IF;
    SELECT min(running) INTO horizon
    FROM pg_snapshot_xip(snap) AS running
    -- xid8 carries the epoch in its high 32 bits; pg_stat_activity shows the 32-bit xid.
    WHERE running::text::bigint % 4294967296 NOT IN (
        SELECT backend_xid::text::bigint
        FROM pg_stat_activity
        WHERE backend_xid IS NOT NULL
          AND datid IS DISTINCT FROM (SELECT oid FROM pg_database WHERE datname = current_database())
    );
    RETURN coalesce(horizon, pg_snapshot_xmax(snap));
END
$$;
