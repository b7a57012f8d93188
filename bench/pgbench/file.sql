-- Filing an appeal, as the command API does it: take the year's next tracking number (its own
-- statement, outside the append), load the (empty) stream, insert the first event.
INSERT INTO tracking_counters (year, last_serial) VALUES (2026, 1)
    ON CONFLICT (year) DO UPDATE SET last_serial = tracking_counters.last_serial + 1
    RETURNING last_serial \gset
SELECT sequence, event_type, payload, hash FROM events
 WHERE aggregate_type = 'appeal' AND aggregate_id = 'pgbench-filed-' || :last_serial::text
 ORDER BY sequence;
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                    payload, metadata, event_id, recorded_at, prev_hash, hash)
SELECT 'appeal', s.id, 1, 'AppealFiled', '1', :filed_payload::json, :metadata::json,
       gen_random_uuid(), now(), NULL,
       sha256(convert_to(s.id || :filed_payload::text || :metadata::text, 'UTF8'))
  FROM (SELECT 'pgbench-filed-' || :last_serial::text AS id) s
RETURNING event_id, event_type, sequence, global_position, tx_id::text::bigint AS tx_id;
