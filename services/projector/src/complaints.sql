-- Complaint notices (投诉通报): every appeal filed with a complained-about unit (被投诉单位).
-- Written only by the complaints projection (services/projector/src/complaints.rs); rules in
-- docs/metrics.md.
CREATE TABLE IF NOT EXISTS complaint_appeals (
    appeal_id       uuid        PRIMARY KEY,
    complained_unit text        NOT NULL,
    tracking_number text        COLLATE "C" NOT NULL,
    channel         text        NOT NULL,
    category        text        NOT NULL,
    town            text        NOT NULL,
    filed_at        timestamptz NOT NULL,
    -- Merged into another appeal (重复件): left out of notices.
    duplicate       boolean     NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS complaint_appeals_filed_at ON complaint_appeals (filed_at);
CREATE INDEX IF NOT EXISTS complaint_appeals_unit ON complaint_appeals (complained_unit, filed_at);

-- Complaints per Beijing-time month (of filing) × unit × category, duplicates taken out, so a
-- notice's counts read a few rows per unit however many appeals there are.
CREATE TABLE IF NOT EXISTS complaint_counts (
    month      text   NOT NULL,
    unit       text   NOT NULL,
    category   text   NOT NULL,
    complaints bigint NOT NULL,
    PRIMARY KEY (month, unit, category)
);
