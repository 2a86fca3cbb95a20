-- Charges are listed by metadata (`metadata @> '{"order_id": ...}'`), and containment cannot use
-- the expression index on `metadata ->> 'order_id'`: every list scanned all charges ever made.
CREATE INDEX provider_charges_metadata ON provider_charges USING gin (metadata jsonb_path_ops);
DROP INDEX provider_charges_order;
