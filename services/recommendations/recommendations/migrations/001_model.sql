-- How many confirmed orders held both products. Each pair is stored in both directions, so the
-- products bought with one are a single index range, best first.
CREATE TABLE bought_together (
    product_id text NOT NULL CHECK (product_id <> ''),
    other_id text NOT NULL CHECK (other_id <> ''),
    orders integer NOT NULL CHECK (orders > 0),
    PRIMARY KEY (product_id, other_id),
    CHECK (product_id <> other_id)
);
CREATE INDEX bought_together_best_first ON bought_together (product_id, orders DESC, other_id);

-- Units sold per product over confirmed orders: the best sellers that fill a cold answer.
CREATE TABLE sales (
    product_id text PRIMARY KEY CHECK (product_id <> ''),
    units bigint NOT NULL CHECK (units > 0)
);
CREATE INDEX sales_best_first ON sales (units DESC, product_id);
