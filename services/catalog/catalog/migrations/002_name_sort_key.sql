-- Products listed by name as a reader expects, not by code point: "apple" before "Zebra", and
-- "Éclair" among the e's rather than after "zebra". The key folds case and drops accents
-- (NFKD, then the combining marks), so it needs no ICU, which the embedded Postgres lacks.
ALTER TABLE products ADD COLUMN sort_name text NOT NULL
    GENERATED ALWAYS AS (lower(regexp_replace(normalize(name, NFKD), '[\u0300-\u036f]', '', 'g'))) STORED;
CREATE INDEX products_sort_name ON products (sort_name, name, id);
DROP INDEX products_name;
