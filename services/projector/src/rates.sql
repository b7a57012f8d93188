-- The rates (响应率, 办结率, 解决率, 满意率): written only by the rates projection
-- (services/projector/src/rates.rs); definitions in docs/metrics.md.

-- What the rates remember of each appeal between its events (linkage_domain::rates::RateTracker).
CREATE TABLE IF NOT EXISTS rate_appeals (
    appeal_id     uuid   PRIMARY KEY,
    last_sequence bigint NOT NULL,
    tracker       jsonb  NOT NULL
);

-- Outcome counters per Beijing-time month, in each of three dimensions: every outcome is added
-- once to its lead department's row, once to its channel's and once to its town's, so any one
-- dimension adds up to the district. Outcomes never change once known, so counters only
-- increase; a query reads one month's rows of one dimension (a few dozen).
CREATE TABLE IF NOT EXISTS rate_totals (
    month               text   NOT NULL,
    -- department, channel or town.
    dimension           text   NOT NULL,
    key                 text   NOT NULL,
    contacts            bigint NOT NULL,
    contacts_on_time    bigint NOT NULL,
    completions         bigint NOT NULL,
    completions_on_time bigint NOT NULL,
    -- Return visits that reached the filer (unreachable ones count nowhere).
    visits              bigint NOT NULL,
    solved              bigint NOT NULL,
    satisfied           bigint NOT NULL,
    basically_satisfied bigint NOT NULL,
    PRIMARY KEY (month, dimension, key)
);
