-- The relay: publishes the events table to NATS JetStream in commit order (tx_id, global_position),
-- reading only below the oldest running transaction, and keeps a global hash chain over what it
-- published, anchored periodically for the audit tool.

-- No NOTIFY trigger on events, on purpose: a transaction that notifies takes a cluster-wide lock
-- from its pre-commit until its commit record is flushed, which serializes every appending commit
-- (measured: one-event appends from 8 clients fell from ~1 850 to ~335 per second). The relay
-- polls, fast while events keep coming, and also wakes on `NOTIFY linkage_events` sent by
-- anyone after their commit, in a transaction of its own, which costs nothing measurable.

-- Where the relay stopped: the last published event in (tx_id, global_position) order and the
-- global chain hash through it. One row, written after JetStream acked the events.
CREATE TABLE relay_checkpoint (
    singleton       boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    tx_id           xid8        NOT NULL,
    global_position bigint      NOT NULL,
    -- G_n over every published event (NULL before the first): see linkage_relay::chain_step.
    chain_hash      bytea,
    published_count bigint      NOT NULL CHECK (published_count >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

INSERT INTO relay_checkpoint (tx_id, global_position, chain_hash, published_count)
VALUES ('0'::xid8, 0, NULL, 0);

-- Global chain anchors: the chain hash after a run of published events, so an auditor can check
-- the published log (and the events table) against a value recorded at the time.
CREATE TABLE relay_anchors (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- First and last event of the run, inclusive, in (tx_id, global_position) order.
    from_tx_id       xid8        NOT NULL,
    from_position    bigint      NOT NULL,
    to_tx_id         xid8        NOT NULL,
    to_position      bigint      NOT NULL,
    -- Events in the run, and in the whole chain through its last event.
    event_count      bigint      NOT NULL CHECK (event_count > 0),
    chain_length     bigint      NOT NULL CHECK (chain_length >= event_count),
    -- The chain hash before the run's first event (NULL at the start of the chain) and after
    -- its last.
    prev_chain_hash  bytea,
    chain_hash       bytea       NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (chain_length)
);
