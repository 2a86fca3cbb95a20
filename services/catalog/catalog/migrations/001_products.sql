CREATE TABLE categories (
    slug text PRIMARY KEY CHECK (slug ~ '^[a-z0-9-]+$'),
    name text NOT NULL CHECK (name <> '')
);

CREATE TABLE products (
    id uuid PRIMARY KEY,
    sku text NOT NULL UNIQUE CHECK (sku <> ''),
    name text NOT NULL CHECK (name <> ''),
    description text NOT NULL DEFAULT '',
    price_amount bigint NOT NULL CHECK (price_amount >= 0),
    currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    image_url text,
    created_at timestamptz NOT NULL DEFAULT now(),
    search tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', name), 'A') || setweight(to_tsvector('english', description), 'B')
    ) STORED
);
CREATE INDEX products_search ON products USING gin (search);
CREATE INDEX products_name ON products (name, id);

CREATE TABLE product_categories (
    product_id uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    category text NOT NULL REFERENCES categories (slug),
    PRIMARY KEY (product_id, category)
);
CREATE INDEX product_categories_category ON product_categories (category, product_id);
