-- One payment per order. The CHECKs are the money invariants, enforced whatever the code does:
-- nothing negative, and 0 <= refunded <= captured <= authorized <= amount.
CREATE TABLE payments (
    order_id text PRIMARY KEY,
    user_id text NOT NULL,
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount bigint NOT NULL CHECK (amount >= 0),
    status text NOT NULL CHECK (status IN ('pending', 'authorized', 'captured', 'voided', 'declined', 'refunded')),
    amount_authorized bigint NOT NULL DEFAULT 0 CHECK (amount_authorized BETWEEN 0 AND amount),
    amount_captured bigint NOT NULL DEFAULT 0 CHECK (amount_captured BETWEEN 0 AND amount_authorized),
    amount_refunded bigint NOT NULL DEFAULT 0 CHECK (amount_refunded BETWEEN 0 AND amount_captured),
    charge_id text,
    decline_reason text,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
