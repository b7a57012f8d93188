-- Every event of the streams in one key range (see `verify_stream_range`: none, or a bound on
-- `(aggregate_type, aggregate_id)` appended here), stream after stream, each in sequence order
-- (the primary key's order, so one index scan and constant memory), with everything its hash
-- covers. Columns as stored (`xid8` decoded by the client, payload and metadata as their `json`
-- text).
SELECT aggregate_type, aggregate_id, sequence, event_id, event_type, event_version, payload,
       metadata, recorded_at, prev_hash, hash, global_position, tx_id
FROM events
