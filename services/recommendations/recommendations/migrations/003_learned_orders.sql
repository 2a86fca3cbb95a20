-- Each order's part in the counts: 'learned' from its confirmation, 'cancelled' once the
-- customer cancelled it (what it taught is then taken back) or when its cancel overtook its
-- confirmation (a retried delivery), so that the late confirmation learns nothing. Kept as long
-- as an order's events can come back, then forgotten hourly.
CREATE TABLE learned_orders (
    order_id text PRIMARY KEY CHECK (order_id <> ''),
    state text NOT NULL CHECK (state IN ('learned', 'cancelled')),
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX learned_orders_recorded_at ON learned_orders (recorded_at);
