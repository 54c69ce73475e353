-- Reference back office: a small French-style "gestion commerciale".
-- Schema erp. Later files (20_orders.sql, ...) add orders, deliveries and invoices.
-- Every table carries updated_at, maintained by a trigger, so that change detection
-- (max(updated_at) plus a row count) works whatever program writes to it.

CREATE SCHEMA IF NOT EXISTS erp;

CREATE OR REPLACE FUNCTION erp.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE TABLE IF NOT EXISTS erp.family (
    id          serial PRIMARY KEY,
    code        text NOT NULL UNIQUE,
    name        text NOT NULL,
    parent_id   integer REFERENCES erp.family (id),
    position    integer NOT NULL DEFAULT 0,
    web         boolean NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (parent_id IS DISTINCT FROM id)
);

CREATE TABLE IF NOT EXISTS erp.brand (
    id          serial PRIMARY KEY,
    code        text NOT NULL UNIQUE,
    name        text NOT NULL,
    description text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS erp.supplier (
    id          serial PRIMARY KEY,
    code        text NOT NULL UNIQUE,
    name        text NOT NULL,
    email       text,
    phone       text,
    address     text,
    postcode    text,
    city        text,
    country     char(2) NOT NULL DEFAULT 'FR',
    lead_days   integer NOT NULL DEFAULT 7,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS erp.article (
    id                serial PRIMARY KEY,
    reference         text NOT NULL UNIQUE,
    name              text NOT NULL,
    short_description text,              -- rich text (HTML) as typed in the back office
    long_description  text,              -- rich text (HTML)
    family_id         integer REFERENCES erp.family (id),
    brand_id          integer REFERENCES erp.brand (id),
    supplier_id       integer REFERENCES erp.supplier (id),
    supplier_reference text,
    sales_unit        text NOT NULL DEFAULT 'U',       -- U, KG, M, L...
    weight_kg         numeric(10, 3),
    vat_rate          numeric(5, 2) NOT NULL,          -- 20.00, 10.00, 5.50, 2.10
    price_excl_vat    numeric(12, 4) NOT NULL,
    purchase_price    numeric(12, 4),
    ean               text,
    web               boolean NOT NULL DEFAULT false,  -- selected for the shop
    min_stock         numeric(12, 3) NOT NULL DEFAULT 0,
    reorder_qty       numeric(12, 3) NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS article_family_idx ON erp.article (family_id);

CREATE TABLE IF NOT EXISTS erp.variant (
    id            serial PRIMARY KEY,
    article_id    integer NOT NULL REFERENCES erp.article (id) ON DELETE CASCADE,
    reference     text NOT NULL UNIQUE,
    ean           text,
    size          text,
    colour        text,
    price_impact  numeric(12, 4) NOT NULL DEFAULT 0,   -- excl. VAT, added to the article's price
    weight_impact numeric(10, 3) NOT NULL DEFAULT 0,
    active        boolean NOT NULL DEFAULT true,
    position      integer NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS variant_article_idx ON erp.variant (article_id);

CREATE TABLE IF NOT EXISTS erp.location (
    code        text PRIMARY KEY,
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('store', 'warehouse')),
    web         boolean NOT NULL DEFAULT true      -- its stock counts for the shop
);

-- Stock per location, article and variant (variant_id NULL: an article without variants).
CREATE TABLE IF NOT EXISTS erp.stock (
    location_code text NOT NULL REFERENCES erp.location (code),
    article_id    integer NOT NULL REFERENCES erp.article (id) ON DELETE CASCADE,
    variant_id    integer REFERENCES erp.variant (id) ON DELETE CASCADE,
    quantity      numeric(12, 3) NOT NULL DEFAULT 0,  -- real (physical) stock
    reserved      numeric(12, 3) NOT NULL DEFAULT 0,  -- promised to back-office orders
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS stock_key ON erp.stock (location_code, article_id, coalesce(variant_id, 0));
CREATE INDEX IF NOT EXISTS stock_article_idx ON erp.stock (article_id);  -- per-article lookups, cascades

-- Photos per article or variant, ordered (position 1 is the cover). Bytes or a path.
CREATE TABLE IF NOT EXISTS erp.image (
    id          serial PRIMARY KEY,
    article_id  integer NOT NULL REFERENCES erp.article (id) ON DELETE CASCADE,
    variant_id  integer REFERENCES erp.variant (id) ON DELETE CASCADE,
    position    integer NOT NULL DEFAULT 1,
    filename    text,
    content     bytea,
    path        text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (content IS NOT NULL OR path IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS image_article_idx ON erp.image (article_id);

CREATE TABLE IF NOT EXISTS erp.customer_family (
    code text PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE IF NOT EXISTS erp.price_list (
    code         text PRIMARY KEY,
    name         text NOT NULL,
    discount_pct numeric(5, 2) NOT NULL DEFAULT 0   -- default discount on the base price
);

CREATE TABLE IF NOT EXISTS erp.customer (
    id              serial PRIMARY KEY,
    code            text NOT NULL UNIQUE,
    email           text,
    first_name      text,
    last_name       text,
    company         text,
    phone           text,
    customer_family text REFERENCES erp.customer_family (code),
    price_list      text REFERENCES erp.price_list (code),
    vat_territory   text NOT NULL DEFAULT 'FR' CHECK (vat_territory IN ('FR', 'EU', 'EXPORT')),
    vat_number      text,
    web             boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS customer_email ON erp.customer (lower(email)) WHERE email IS NOT NULL;
-- The integration matches a shop's customer by e-mail as passerelle.core.emails.email_key_sql
-- writes it (trimmed, lower case, two Unicode folds): without this index each file's matching reads
-- every customer, 4 times (tests/core/test_plans.py checks no statement of a file reads a whole table).
CREATE INDEX IF NOT EXISTS customer_email_key
    ON erp.customer ((replace(replace(lower(btrim(email)), U&'\03c2', U&'\03c3'), U&'\0069\0307', U&'\0069')));

CREATE TABLE IF NOT EXISTS erp.address (
    id          serial PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES erp.customer (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('billing', 'delivery')),
    name        text,
    line1       text NOT NULL,
    line2       text,
    postcode    text NOT NULL,
    city        text NOT NULL,
    country     char(2) NOT NULL DEFAULT 'FR',
    phone       text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (customer_id, kind)
);

-- Price of an article (or a variant) in a price list, from a quantity.
CREATE TABLE IF NOT EXISTS erp.price_list_item (
    price_list     text NOT NULL REFERENCES erp.price_list (code),
    article_id     integer NOT NULL REFERENCES erp.article (id) ON DELETE CASCADE,
    variant_id     integer REFERENCES erp.variant (id) ON DELETE CASCADE,
    min_qty        numeric(12, 3) NOT NULL DEFAULT 1,
    price_excl_vat numeric(12, 4) NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS price_list_item_key
    ON erp.price_list_item (price_list, article_id, coalesce(variant_id, 0), min_qty);

-- A promotion: a percentage or a fixed price, for a date range, optionally for one price list.
CREATE TABLE IF NOT EXISTS erp.promotion (
    id             serial PRIMARY KEY,
    article_id     integer NOT NULL REFERENCES erp.article (id) ON DELETE CASCADE,
    variant_id     integer REFERENCES erp.variant (id) ON DELETE CASCADE,
    price_list     text REFERENCES erp.price_list (code),
    discount_pct   numeric(5, 2),
    price_excl_vat numeric(12, 4),
    starts_on      date NOT NULL,
    ends_on        date NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_on >= starts_on),
    CHECK ((discount_pct IS NULL) <> (price_excl_vat IS NULL))
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['family', 'brand', 'supplier', 'article', 'variant', 'stock', 'image',
                             'customer', 'address', 'price_list_item', 'promotion']
    LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS touch ON erp.%I', t);
        EXECUTE format('CREATE TRIGGER touch BEFORE UPDATE ON erp.%I FOR EACH ROW '
                       'EXECUTE FUNCTION erp.touch_updated_at()', t);
    END LOOP;
END $$;
