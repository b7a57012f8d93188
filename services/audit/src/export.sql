-- The audit export: every event in the global order with its envelope's fields, after an event
-- ($1 tx_id, $2 global_position; (0, 0) for the start) and recorded at or before $3 (NULL: no
-- bound). Only below the oldest running transaction, so the order is final: an export resumed
-- after its last event never misses an event a concurrent transaction commits later. Every
-- column comes as stored, converted by the client (`xid8`, hashes to hex): payload and metadata
-- are `json`, their stored text, written out without being parsed. The columns are
-- `linkage_store::stored::COLUMNS`, in its order.
SELECT event_id, global_position, tx_id, aggregate_type, aggregate_id, sequence, event_type,
       event_version, recorded_at, payload, metadata, hash, prev_hash
FROM events
WHERE (tx_id, global_position) > ($1::bigint::text::xid8, $2)
  AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
  AND ($3::timestamptz IS NULL OR recorded_at <= $3)
ORDER BY events.tx_id, events.global_position
