-- An order's emails tell one story. A confirmation handled after the order's cancellation (it
-- was retried, or another replica took it) would contradict it, so the handlers look up what
-- each order was already told.
ALTER TABLE sent_emails ADD COLUMN order_id text;
CREATE INDEX sent_emails_order ON sent_emails (order_id) WHERE order_id IS NOT NULL;
