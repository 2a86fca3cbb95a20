-- The expiry's BRIN index (002) stopped serving it once the table had turned over: vacuum hands
-- the pages of expired claims to new ones, and a BRIN range, which only ever widens, then spans
-- months, so every hourly expiry read most of the table. A B-tree finds exactly the expired
-- claims; appended at its right edge in time order, it costs a claim little.
DROP INDEX inbox_processed_at;
CREATE INDEX inbox_processed_at ON inbox (processed_at);
