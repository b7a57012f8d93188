-- The identity of events named by their global positions (for findings of the global chain).
SELECT event_id, aggregate_type, aggregate_id, sequence, global_position,
       tx_id::text::bigint AS tx_id
FROM events
WHERE global_position = ANY($1)
