-- The lines of an order that cart did not confirm taking out of the cart when it was placed (its
-- RemoveOrdered failed). The user's next placing takes them out before it reads the cart, and is
-- refused while cart does not: it would otherwise read them again and order them twice.
CREATE TABLE lines_left_in_cart (
    order_id uuid PRIMARY KEY REFERENCES orders (id),
    user_id text NOT NULL,
    lines jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lines_left_in_cart_user ON lines_left_in_cart (user_id);
