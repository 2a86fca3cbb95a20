-- The expiry's BRIN index (002) stopped serving it once the table had turned over: vacuum hands
-- the pages of expired keys to new ones, and a BRIN range, which only ever widens, then spans
-- days, so every hourly expiry read most of the table. A B-tree finds exactly the expired keys.
DROP INDEX idempotency_keys_created_at;
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
