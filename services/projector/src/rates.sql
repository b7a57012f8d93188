-- The rates (响应率, 办结率, 解决率, 满意率): written only by the rates projection
-- (services/projector/src/rates.rs); definitions in docs/metrics.md.

-- What the rates remember of each appeal between its events (linkage_domain::rates::RateTracker).
CREATE TABLE IF NOT EXISTS rate_appeals (
    appeal_id     uuid   PRIMARY KEY,
    last_sequence bigint NOT NULL,
    tracker       jsonb  NOT NULL
);

-- Outcome counters per Beijing-time month × lead department × channel × town. Outcomes never
-- change once known, so counters only increase; a query adds up one month's cells.
CREATE TABLE IF NOT EXISTS rate_counts (
    month               text   NOT NULL,
    department          text   NOT NULL,
    channel             text   NOT NULL,
    town                text   NOT NULL,
    contacts            bigint NOT NULL,
    contacts_on_time    bigint NOT NULL,
    completions         bigint NOT NULL,
    completions_on_time bigint NOT NULL,
    -- Return visits that reached the filer (unreachable ones count nowhere).
    visits              bigint NOT NULL,
    solved              bigint NOT NULL,
    satisfied           bigint NOT NULL,
    basically_satisfied bigint NOT NULL,
    PRIMARY KEY (month, department, channel, town)
);
