-- The payment provider's own records. It is an external system simulated in our database so that
-- a crash of payments loses none of its charges: only payments.provider_fake touches these tables.
CREATE TABLE provider_charges (
    id text PRIMARY KEY,
    amount numeric NOT NULL CHECK (amount > 0),
    amount_captured numeric NOT NULL DEFAULT 0 CHECK (amount_captured IN (0, amount)),
    amount_refunded numeric NOT NULL DEFAULT 0 CHECK (amount_refunded BETWEEN 0 AND amount_captured),
    currency text NOT NULL,
    status text NOT NULL CHECK (status IN ('requires_capture', 'succeeded', 'canceled', 'failed')),
    failure_code text,
    metadata jsonb NOT NULL DEFAULT '{}',
    created bigint NOT NULL
);
CREATE INDEX provider_charges_order ON provider_charges ((metadata ->> 'order_id'));

CREATE TABLE provider_refunds (
    id text PRIMARY KEY,
    charge text NOT NULL REFERENCES provider_charges (id),
    amount numeric NOT NULL CHECK (amount > 0),
    status text NOT NULL,
    created bigint NOT NULL
);

-- Like a real provider: a request repeated with the same Idempotency-Key gets the first answer
-- back (success or error) instead of being performed again.
CREATE TABLE provider_idempotency_keys (
    key text PRIMARY KEY,
    request_fingerprint text NOT NULL,
    http_status integer NOT NULL,
    response jsonb NOT NULL,
    created bigint NOT NULL
);
