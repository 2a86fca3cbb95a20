-- The categories of every product the catalog announced, so that a product nobody has bought yet
-- still gets neighbours from its own department.
CREATE TABLE product_categories (
    product_id text NOT NULL CHECK (product_id <> ''),
    category text NOT NULL CHECK (category <> ''),
    PRIMARY KEY (product_id, category)
);
CREATE INDEX product_categories_by_category ON product_categories (category, product_id);
