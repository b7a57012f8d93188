-- The event store: cqrs-es's columns plus a global order, the writing transaction, and a
-- per-stream hash chain for tamper evidence. Rows are only ever inserted.
CREATE TABLE events (
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence >= 1),
    event_type      text        NOT NULL,
    event_version   text        NOT NULL,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    event_id        uuid        NOT NULL UNIQUE,
    -- Global order of insertion. Identity values are handed out before commit, so they are not
    -- the commit order: readers of the global log order by (tx_id, global_position) and only
    -- read below the oldest running transaction.
    global_position bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at     timestamptz NOT NULL,
    prev_hash       bytea,
    hash            bytea       NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence),
    CHECK ((sequence = 1) = (prev_hash IS NULL))
);

CREATE INDEX events_commit_order ON events (tx_id, global_position);

-- Human tracking numbers (LK-2026-000123): one serial per year.
CREATE TABLE tracking_counters (
    year        integer PRIMARY KEY,
    last_serial bigint  NOT NULL
);

-- Idempotency-Key records: the first answer to a command, kept so a retry gets it again.
-- Written in the same transaction as the command's events.
CREATE TABLE idempotency_keys (
    scope           text        NOT NULL,  -- the caller (token subject): keys are per caller
    key             text        NOT NULL,
    request_hash    bytea       NOT NULL,  -- method, path and body of the first request
    response_status smallint    NOT NULL,
    response_body   jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
