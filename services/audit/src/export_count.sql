-- How many events the export with the same arguments writes (for the progress bar).
SELECT count(*)
FROM events
WHERE (tx_id, global_position) > ($1::bigint::text::xid8, $2)
  AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
  AND ($3::timestamptz IS NULL OR recorded_at <= $3)
