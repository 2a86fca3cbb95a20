-- Units of a product are in exactly one bucket: available for sale, reserved by a pending order,
-- or sold. The CHECKs are the last line against overselling: a conditional update that slipped
-- would fail here instead of going negative.
CREATE TABLE stock (
    product_id text PRIMARY KEY CHECK (product_id <> ''),
    available integer NOT NULL DEFAULT 0 CHECK (available >= 0),
    reserved integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    sold integer NOT NULL DEFAULT 0 CHECK (sold >= 0)
);

-- Every change to a stock row, as deltas per bucket. Per product the deltas sum to the row, and
-- the `adjust` rows (an admin setting the stock) sum to available + reserved + sold: the audit
-- behind "initial + restocks = available + reserved + sold".
CREATE TABLE stock_movements (
    id bigserial PRIMARY KEY,
    product_id text NOT NULL REFERENCES stock (product_id),
    order_id text,
    kind text NOT NULL CHECK (kind IN ('adjust', 'reserve', 'sell', 'release', 'restock')),
    available_delta integer NOT NULL,
    reserved_delta integer NOT NULL,
    sold_delta integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stock_movements_product ON stock_movements (product_id);

-- What inventory did for each order it has heard of. `cancelled_unplaced` is a tombstone: the
-- cancellation arrived first, so a late OrderPlaced must reserve nothing.
CREATE TABLE reservations (
    order_id text PRIMARY KEY CHECK (order_id <> ''),
    state text NOT NULL CHECK (state IN ('reserved', 'rejected', 'sold', 'released', 'restocked', 'cancelled_unplaced')),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reservation_lines (
    order_id text NOT NULL REFERENCES reservations (order_id),
    product_id text NOT NULL,
    quantity integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, product_id)
);
