-- The ledger's appeal id for a tracking number: only a hint, confirmed against the event store.
SELECT appeal_id::text FROM ledger WHERE tracking_number = $1
