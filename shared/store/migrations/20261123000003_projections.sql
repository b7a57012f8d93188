-- Where each projection (read model) stands in the global event order. Written in the same
-- transaction as the read model's rows, so a projection applies each event exactly once in
-- effect. A projection's own tables are created by the projector from the projection's DDL.
CREATE TABLE projection_checkpoints (
    name            text        PRIMARY KEY,
    -- Position of the last event applied, in the order the relay publishes: (tx_id,
    -- global_position). NULL before the first event (and right after a rebuild starts).
    tx_id           xid8,
    global_position bigint,
    -- JetStream stream sequence of that event when it came from the bus; NULL when it was
    -- applied by a rebuild straight from the events table.
    stream_sequence bigint,
    -- Set while a rebuild runs (and left set if it fails): the live runner does not apply
    -- batches to a projection being rebuilt, it waits.
    rebuilding_since timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((tx_id IS NULL) = (global_position IS NULL))
);
