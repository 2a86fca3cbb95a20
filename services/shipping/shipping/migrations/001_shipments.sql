-- One row per order. A row without a consignment is a tombstone: the order was cancelled before
-- shipping heard it was confirmed, so no shipment may ever be created for it.
-- created -> dispatched | cancelled, decided by conditional updates `... WHERE status = 'created'`.
CREATE TABLE shipments (
    order_id text PRIMARY KEY,
    user_id text NOT NULL,
    status text NOT NULL CHECK (status IN ('created', 'dispatched', 'cancelled')),
    carrier text,
    consignment_no text,
    tracking_number text,
    dispatch_at timestamptz,
    dispatch_attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'dispatched') = (tracking_number IS NOT NULL)),
    CHECK (status <> 'created' OR (carrier IS NOT NULL AND consignment_no IS NOT NULL AND dispatch_at IS NOT NULL))
);

CREATE INDEX shipments_due ON shipments (dispatch_at) WHERE status = 'created';
