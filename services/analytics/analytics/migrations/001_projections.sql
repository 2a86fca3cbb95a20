-- The projections behind the sales report. Every row is a fact that, once recorded, stays as it
-- is: a flag that only turns true, a row keyed by what it records. So events apply in any order,
-- and applying one twice changes nothing. The replay relies on both (analytics/replay.py).

-- What happened to each order, from the orders stream.
CREATE TABLE orders (
    order_id text PRIMARY KEY CHECK (order_id <> ''),
    confirmed boolean NOT NULL DEFAULT false,
    cancelled boolean NOT NULL DEFAULT false,
    shipped boolean NOT NULL DEFAULT false
);

-- The lines of confirmed orders, as OrderConfirmed lists them (`line` is the position there).
CREATE TABLE order_lines (
    order_id text NOT NULL REFERENCES orders (order_id),
    line integer NOT NULL CHECK (line >= 0),
    product_id text NOT NULL CHECK (product_id <> ''),
    units integer NOT NULL CHECK (units > 0),
    PRIMARY KEY (order_id, line)
);
CREATE INDEX order_lines_product ON order_lines (product_id);

-- Money that moved: one row per PaymentCaptured or PaymentRefunded event. The report is in USD.
CREATE TABLE payments (
    event_id uuid PRIMARY KEY,
    order_id text NOT NULL CHECK (order_id <> ''),
    kind text NOT NULL CHECK (kind IN ('captured', 'refunded')),
    amount bigint NOT NULL CHECK (amount >= 0),
    currency text NOT NULL CHECK (currency = 'USD')
);

-- A product's name as last described, by the event time of the description (an order line or
-- the catalog's ProductCreated), so the latest wins whatever order the events arrive in.
CREATE TABLE product_names (
    product_id text PRIMARY KEY CHECK (product_id <> ''),
    name text NOT NULL,
    described_at timestamptz NOT NULL
);

CREATE TABLE users (
    user_id text PRIMARY KEY CHECK (user_id <> '')
);
