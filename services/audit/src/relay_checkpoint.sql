-- Where the relay stands: the last published event, the global chain hash through it and how
-- many events the chain holds.
SELECT tx_id::text::bigint AS tx_id, global_position, chain_hash, published_count
FROM relay_checkpoint
