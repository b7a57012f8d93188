-- The relay's global chain, recomputed: every event up to and including the relay checkpoint
-- ($1 tx_id, $2 global_position), in publication order, with the per-stream hash it chains.
SELECT tx_id, global_position, hash
FROM events
WHERE (tx_id, global_position) <= ($1::bigint::text::xid8, $2)
ORDER BY events.tx_id, events.global_position
