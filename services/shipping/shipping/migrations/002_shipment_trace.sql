-- The trace context (W3C `traceparent`, `tracestate`) of the OrderConfirmed that created the
-- shipment. The dispatcher finds a shipment due by polling, with no trace of its own; it continues
-- this one, so a checkout stays one trace through SHIPPED.
ALTER TABLE shipments ADD COLUMN trace jsonb NOT NULL DEFAULT '{}';
