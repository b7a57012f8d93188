-- Stream keys from about 50 of the events table's pages (all of them when it is small), sorted:
-- their median splits the stream check into two ranges of about the same size.
SELECT aggregate_type, aggregate_id
FROM events TABLESAMPLE SYSTEM (least(100, 5000.0 / greatest(pg_relation_size('events') / 8192, 1)))
ORDER BY aggregate_type, aggregate_id
