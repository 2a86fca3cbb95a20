-- The hourly expiry deletes the oldest claims. Claims are written in time order, so a BRIN index
-- finds them without reading the whole table, and costs an event almost nothing to maintain,
-- where a B-tree would add an index insert to every claim.
CREATE INDEX inbox_processed_at ON inbox USING brin (processed_at);
