-- One command on an existing appeal, as the command API runs it (shared/store/src/events.rs):
-- load the appeal's stream, then append one event chained by hash to the stream's last event,
-- in one autocommit INSERT that returns what the API answers. Each pgbench client has its own
-- :appeals appeals ("pgbench-<client>-<n>"), so appends never conflict, like the load generator's
-- callers, which never send two commands to one appeal at once.
\set appeal random(1, :appeals)
SELECT sequence, event_type, payload, hash FROM events
 WHERE aggregate_type = 'appeal' AND aggregate_id = 'pgbench-' || :client_id::text || '-' || :appeal::text
 ORDER BY sequence;
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                    payload, metadata, event_id, recorded_at, prev_hash, hash)
SELECT 'appeal', s.id, coalesce(last.sequence, 0) + 1, 'ContactRecorded', '1',
       :payload::json, :metadata::json, gen_random_uuid(), now(), last.hash,
       sha256(coalesce(last.hash, ''::bytea) || convert_to(s.id || :payload::text || :metadata::text, 'UTF8'))
  FROM (SELECT 'pgbench-' || :client_id::text || '-' || :appeal::text AS id) s
  LEFT JOIN LATERAL (SELECT sequence, hash FROM events
                      WHERE aggregate_type = 'appeal' AND aggregate_id = s.id
                      ORDER BY sequence DESC LIMIT 1) last ON true
RETURNING event_id, event_type, sequence, global_position, tx_id::text::bigint AS tx_id;
