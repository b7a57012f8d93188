-- Assessment (考核评议) inputs besides the rates: the assessment policy's versions and the
-- penalty occurrences per department. Written only by the assessment projection
-- (services/projector/src/assessment.rs); rules in docs/metrics.md.

-- Every version of the assessment policy, with when it was set (the ranking of a period uses
-- the latest version set before the period's end, or the current one).
CREATE TABLE IF NOT EXISTS assessment_policies (
    version bigint      PRIMARY KEY,
    policy  jsonb       NOT NULL,
    reason  text        NOT NULL,
    set_at  timestamptz NOT NULL,
    -- Who set it (the event's metadata).
    set_by  text
);

-- The lead department of each appeal (penalties for reworks and missed deadlines go to it).
CREATE TABLE IF NOT EXISTS assessment_appeals (
    appeal_id     uuid   PRIMARY KEY,
    last_sequence bigint NOT NULL,
    lead          jsonb  NOT NULL
);

-- One row per event that costs a department points: accountability (问责) by kind, rework
-- (退回重办), missed deadline. `kind` is a linkage_domain PenaltyKind wire name.
CREATE TABLE IF NOT EXISTS assessment_penalties (
    event_id   uuid        PRIMARY KEY,
    appeal_id  uuid        NOT NULL,
    department text        NOT NULL,
    kind       text        NOT NULL,
    at         timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS assessment_penalties_at ON assessment_penalties (at);

-- The same occurrences counted per Beijing-time month × department × kind, so a ranking reads
-- at most months × departments × kinds rows however many appeals there are.
CREATE TABLE IF NOT EXISTS assessment_penalty_counts (
    month       text   NOT NULL,
    department  text   NOT NULL,
    kind        text   NOT NULL,
    occurrences bigint NOT NULL,
    PRIMARY KEY (month, department, kind)
);
