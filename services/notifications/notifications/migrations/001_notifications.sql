-- Who our customers are, learned from identity's UserRegistered (a local projection: no call
-- to identity is ever needed to address an email).
CREATE TABLE customers (
    user_id text PRIMARY KEY,
    email text NOT NULL,
    name text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now()
);

-- One row per email sent, written in the transaction of the consumer's inbox claim: a row here
-- means the email was handed to the SMTP server and that transaction committed.
CREATE TABLE sent_emails (
    event_id text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('welcome', 'order_confirmed', 'order_cancelled', 'order_shipped')),
    user_id text NOT NULL,
    recipient text NOT NULL,
    message_id text NOT NULL UNIQUE,
    subject text NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, kind)
);
