-- Style evaluations (作风评议): the evaluation in force per evaluator × department × quarter (a
-- resubmission replaces it). Written only by the style projection
-- (services/projector/src/style.rs); rules in docs/metrics.md.
CREATE TABLE IF NOT EXISTS style_evaluations (
    quarter        text        NOT NULL,
    department     text        NOT NULL,
    evaluator      text        NOT NULL,
    evaluator_role text        NOT NULL,
    -- Dimension → score 1-5.
    scores         jsonb       NOT NULL,
    -- Mean of the scores.
    mean           double precision NOT NULL,
    comment        text,
    revision       integer     NOT NULL,
    submitted_at   timestamptz NOT NULL,
    PRIMARY KEY (quarter, department, evaluator)
);

-- Per department and quarter, the sums the averages come from, kept exact in integers: the
-- number of evaluations in force, their total score points and the points per dimension
-- (`{"evaluations": n, "points": p, "dimensions": {"efficiency": p, …}}`). Mean of the
-- evaluations' means = points / (5 × evaluations).
CREATE TABLE IF NOT EXISTS style_totals (
    quarter    text  NOT NULL,
    department text  NOT NULL,
    totals     jsonb NOT NULL,
    PRIMARY KEY (quarter, department)
);
