-- The ledger (台账): one row per appeal, as it stands after its last event, with every field an
-- analyst filters on. Written only by the ledger projection (services/projector/src/ledger.rs);
-- rebuilt from the event store by `linkage projections rebuild ledger`.
CREATE TABLE IF NOT EXISTS ledger (
    appeal_id                  uuid        PRIMARY KEY,
    -- "C" collation: byte order, so tracking numbers sort and paginate predictably.
    tracking_number            text        COLLATE "C" NOT NULL,
    channel                    text        NOT NULL,
    filer_kind                 text        NOT NULL,
    -- Personal data: masked on read for roles that do not call the filer.
    filer_name                 text        NOT NULL,
    filer_contact_person       text,
    filer_phone                text        NOT NULL,
    category                   text        NOT NULL,
    town                       text        NOT NULL,
    complained_unit            text,
    description                text        NOT NULL,
    -- Current assignment (NULL while waiting for one, e.g. after a decline).
    lead_department            text,
    co_handlers                text[]      NOT NULL DEFAULT '{}',
    -- AppealStatus wire name: filed, assigned, resolved, return_visited, closed, withdrawn, duplicate.
    status                     text        NOT NULL,
    filed_at                   timestamptz NOT NULL,
    -- When the current assignment (assign or transfer) was made; its deadlines follow.
    assigned_at                timestamptz,
    contact_due                timestamptz,
    contacted_at               timestamptz,
    feedback_due               timestamptz,
    feedback_at                timestamptz,
    resolution_due             timestamptz,
    resolved_at                timestamptz,
    resolution_outcome         text,
    -- Working days of a pending extension request.
    extension_pending_days     integer,
    -- Latest return visit of the current resolution: reached / unreachable.
    return_visit_result        text,
    return_visit_solved        boolean,
    return_visit_satisfaction  text,
    return_visited_at          timestamptz,
    closed_at                  timestamptz,
    withdrawn_at               timestamptz,
    duplicate_of               uuid,
    extension_count            integer     NOT NULL DEFAULT 0,
    rework_count               integer     NOT NULL DEFAULT 0,
    transfer_count             integer     NOT NULL DEFAULT 0,
    decline_count              integer     NOT NULL DEFAULT 0,
    supervised                 boolean     NOT NULL DEFAULT false,
    supervision_count          integer     NOT NULL DEFAULT 0,
    supervision_due            timestamptz,
    -- The earliest deadline in force while the appeal is open (filed or assigned): contact and
    -- feedback until met, resolution, supervision. Overdue means `next_due < now()`.
    next_due                   timestamptz,
    accountability_count       integer     NOT NULL DEFAULT 0,
    accountability_kinds       text[]      NOT NULL DEFAULT '{}',
    accountability_departments text[]      NOT NULL DEFAULT '{}',
    -- Deadline kinds recorded as missed at least once: contact / feedback / resolution.
    missed_deadlines           text[]      NOT NULL DEFAULT '{}',
    -- The appeal's last event applied: its stream sequence, global position and instant.
    last_sequence              bigint      NOT NULL,
    last_global_position       bigint      NOT NULL,
    last_event_at              timestamptz NOT NULL,
    -- recorded_at of that event (not the wall clock, so a rebuild equals the live projection).
    updated_at                 timestamptz NOT NULL,
    -- (Columns below were added after the first release; ALTERs at the end add them to older
    -- tables in the same order, because the upsert relies on the column order.)
    -- Calendar version the deadlines in force were computed with, and the assignment's policy.
    calendar                   text,
    sla_policy                 text,
    -- Deadline kinds whose current due instant is recorded as missed.
    missed_in_force            text[]      NOT NULL DEFAULT '{}',
    -- Earliest deadline in force that is neither met nor recorded missed: the SLA watcher's
    -- queue (it records the miss once the instant has passed).
    watch_due                  timestamptz
);

ALTER TABLE ledger ADD COLUMN IF NOT EXISTS calendar text;
ALTER TABLE ledger ADD COLUMN IF NOT EXISTS sla_policy text;
ALTER TABLE ledger ADD COLUMN IF NOT EXISTS missed_in_force text[] NOT NULL DEFAULT '{}';
ALTER TABLE ledger ADD COLUMN IF NOT EXISTS watch_due timestamptz;

-- Sort orders (keyset pagination: the key, then appeal_id) and the filters, each leading to a
-- directly ordered scan for the default sort (filed_at).
CREATE INDEX IF NOT EXISTS ledger_filed_at ON ledger (filed_at, appeal_id);
CREATE INDEX IF NOT EXISTS ledger_resolution_due
    ON ledger ((coalesce(resolution_due, 'infinity'::timestamptz)), appeal_id);
CREATE INDEX IF NOT EXISTS ledger_tracking_number ON ledger (tracking_number, appeal_id);
CREATE INDEX IF NOT EXISTS ledger_lead ON ledger (lead_department, filed_at, appeal_id);
CREATE INDEX IF NOT EXISTS ledger_co_handlers ON ledger USING gin (co_handlers);
CREATE INDEX IF NOT EXISTS ledger_status ON ledger (status, filed_at, appeal_id);
CREATE INDEX IF NOT EXISTS ledger_channel ON ledger (channel, filed_at, appeal_id);
CREATE INDEX IF NOT EXISTS ledger_category ON ledger (category, filed_at, appeal_id);
CREATE INDEX IF NOT EXISTS ledger_town ON ledger (town, filed_at, appeal_id);
-- Town + category by resolution deadline (a common analyst list): without it the deadline order
-- is read through ledger_resolution_due and ~80 rows are fetched per row kept.
CREATE INDEX IF NOT EXISTS ledger_town_category_due
    ON ledger (town, category, (coalesce(resolution_due, 'infinity'::timestamptz)), appeal_id);
CREATE INDEX IF NOT EXISTS ledger_resolved_at ON ledger (resolved_at, appeal_id)
    WHERE resolved_at IS NOT NULL;
-- Overdue lists: few open appeals among many closed ones.
CREATE INDEX IF NOT EXISTS ledger_next_due ON ledger (next_due) WHERE next_due IS NOT NULL;
-- The SLA watcher's queue, and the open appeals a calendar change may move.
CREATE INDEX IF NOT EXISTS ledger_watch_due ON ledger (watch_due) WHERE watch_due IS NOT NULL;
CREATE INDEX IF NOT EXISTS ledger_assigned_calendar ON ledger (calendar)
    WHERE status = 'assigned';

-- One row per event of an appeal, for the appeal's history view.
CREATE TABLE IF NOT EXISTS ledger_timeline (
    appeal_id       uuid        NOT NULL,
    sequence        bigint      NOT NULL,
    global_position bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    at              timestamptz NOT NULL,
    -- From the event's metadata: who acted, in which role, for which department.
    actor           text,
    role            text,
    department      text,
    -- The event's fields without its instant and without the filer's personal data. `json`,
    -- not `jsonb`: written once per event, read only per appeal.
    summary         json        NOT NULL,
    PRIMARY KEY (appeal_id, sequence)
);

-- A rebuild drops both primary keys while it bulk-loads and adds them back at its end
-- (services/projector/src/rebuild.rs); after a rebuild that failed midway, this does.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'ledger'::regclass AND contype = 'p') THEN
        ALTER TABLE ledger ADD PRIMARY KEY (appeal_id);
    END IF;
    IF NOT EXISTS (SELECT FROM pg_constraint
                   WHERE conrelid = 'ledger_timeline'::regclass AND contype = 'p') THEN
        ALTER TABLE ledger_timeline ADD PRIMARY KEY (appeal_id, sequence);
    END IF;
END $$;
