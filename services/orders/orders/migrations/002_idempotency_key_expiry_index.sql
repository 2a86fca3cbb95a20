-- The hourly expiry deletes the keys claimed more than a day ago. Keys are claimed in time order,
-- so a BRIN index finds them without reading every key, at almost no cost to each order placed.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys USING brin (created_at);
