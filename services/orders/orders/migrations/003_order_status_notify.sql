-- Wakes the streams following an order (WatchOrder) when a transaction that changed its status
-- commits, on every instance of orders: NOTIFY is delivered on commit only. A hint, never the
-- record: a follower re-reads the order when woken.
CREATE FUNCTION order_status_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('order_status_changed', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER order_status_notify AFTER UPDATE OF status ON orders
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION order_status_notify();
