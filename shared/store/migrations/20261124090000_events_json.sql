-- Event payloads and metadata as `json` (the text as written) instead of `jsonb`.
--
-- The event log is append-only and Postgres never queries it by content, except
-- `payload->>'tracking_number'` for one appeal (which `json` supports). Every reader wants the
-- JSON back as text: the command side to load a stream, the relay and rebuilds to publish and
-- project it, the audit to export it and recompute its hash. `jsonb` prints itself anew on every
-- read (`jsonb_out`, `escape_json`: most of the server's time in an export of the whole log);
-- `json` keeps the text the store wrote, so a read is a copy. Writers send text and Postgres only
-- checks that it is JSON.
--
-- The hash covers the canonical encoding re-derived from the stored text
-- (`linkage_store::hash`), not the text itself, so events stored as `jsonb` before this migration
-- still verify: they keep Postgres's `jsonb` text, which encodes the same values.
--
-- Deploying: the ALTER rewrites the table under an exclusive lock (about 25 s for 1M events on
-- the 2-core development machine), and a connection that prepared a statement returning these
-- columns before fails it afterwards ("cached plan must not change result type"): migrate with
-- the roles stopped (`linkage run` migrates before it starts them) or restart them after.
ALTER TABLE events
    ALTER COLUMN payload TYPE json USING payload::json,
    ALTER COLUMN metadata TYPE json USING metadata::json;
