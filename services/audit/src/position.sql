-- The place in the global order of the event at a global position.
SELECT tx_id::text::bigint AS tx_id, global_position FROM events WHERE global_position = $1
