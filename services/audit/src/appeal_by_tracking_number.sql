-- The appeal a tracking number was filed under, from the event store: the filing event is the
-- stream's first and carries the number. $2: the ledger's answer, if the ledger has the table
-- (an index to try first); NULL scans every stream's first event.
SELECT aggregate_id
FROM events
WHERE aggregate_type = 'appeal' AND sequence = 1 AND event_type = 'AppealFiled'
  AND payload->>'tracking_number' = $1
  AND ($2::text IS NULL OR aggregate_id = $2)
