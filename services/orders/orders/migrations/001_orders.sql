-- Orders and their saga state. Lines, address and history are values owned by the order and
-- always read and written with it, so they live in the order's row.
CREATE TABLE orders (
    id uuid PRIMARY KEY,
    user_id text NOT NULL,
    status text NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'SHIPPED', 'CANCELLED')),
    status_reason text CHECK (status_reason IN ('out_of_stock', 'payment_declined', 'customer_request')),
    stock text CHECK (stock IN ('reserved', 'rejected')),
    payment text CHECK (payment IN ('authorized', 'declined')),
    items jsonb NOT NULL,
    total_amount bigint NOT NULL CHECK (total_amount >= 0),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    shipping_address jsonb NOT NULL,
    history jsonb NOT NULL,
    carrier text,
    tracking_number text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CHECK ((status = 'CANCELLED') = (status_reason IS NOT NULL)),
    CHECK (status NOT IN ('CONFIRMED', 'SHIPPED') OR (stock = 'reserved' AND payment = 'authorized')),
    CHECK (status <> 'SHIPPED' OR tracking_number IS NOT NULL)
);
CREATE INDEX orders_newest_per_user ON orders (user_id, created_at DESC, id DESC);

-- Idempotency keys of PlaceOrder, per user, with a digest of the request they were first used
-- for. Claimed in the transaction that stores the order; kept (at least the 24 hours promised).
CREATE TABLE idempotency_keys (
    user_id text NOT NULL,
    key text NOT NULL,
    fingerprint text NOT NULL,
    order_id uuid NOT NULL REFERENCES orders (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
