-- The catalog as Passerelle reads it: one view per exported entity, in schema passerelle_src.
-- These views are the ONE place to change to plug Passerelle into another back office:
-- keep the column names and meanings, rewrite the FROM clauses.
--
-- Contract for every view: a text column "key" (unique, stable: the shop's identifier),
-- then the content columns. The differ hashes the whole row, so a column that changes
-- without meaning (a timestamp) must not appear here.

-- Views hold no data: the schema is rebuilt from scratch, so a changed column list applies.
DROP SCHEMA IF EXISTS passerelle_src CASCADE;
CREATE SCHEMA passerelle_src;

-- Families as a category tree: full path and parent, web families only.
CREATE OR REPLACE VIEW passerelle_src.family AS
WITH RECURSIVE tree AS (
    SELECT f.id, f.code, f.name, f.parent_id, f.position,
           NULL::text AS parent_code, NULL::text AS parent_name, f.name::text AS path, 1 AS depth
    FROM erp.family f
    WHERE f.parent_id IS NULL AND f.web
    UNION ALL
    SELECT c.id, c.code, c.name, c.parent_id, c.position,
           t.code, t.name, t.path || ' > ' || c.name, t.depth + 1
    FROM erp.family c
    JOIN tree t ON c.parent_id = t.id
    WHERE c.web
)
SELECT code AS key, code, name, parent_code, parent_name, path, depth, position
FROM tree;

CREATE OR REPLACE VIEW passerelle_src.brand AS
SELECT b.code AS key, b.code, b.name, b.description
FROM erp.brand b;

CREATE OR REPLACE VIEW passerelle_src.supplier AS
SELECT s.code AS key, s.code, s.name, s.email, s.phone, s.address, s.postcode, s.city, s.country
FROM erp.supplier s;

-- Available stock per article and variant over the locations that serve the web.
CREATE OR REPLACE VIEW passerelle_src.stock_level AS
SELECT st.article_id, st.variant_id,
       sum(st.quantity) AS real_qty,
       greatest(sum(st.quantity - st.reserved), 0) AS available_qty
FROM erp.stock st
JOIN erp.location l ON l.code = st.location_code AND l.web
GROUP BY st.article_id, st.variant_id;

-- Articles. "web" is the back office's web flag; the configurable selection rule
-- (catalog.selection_rule, alias a) is applied on top of it by the differ.
CREATE OR REPLACE VIEW passerelle_src.article AS
SELECT a.reference AS key,
       a.reference,
       a.name,
       a.short_description,
       a.long_description,
       f.code AS family_code,
       fam.path AS family_path,
       b.name AS brand,
       s.name AS supplier,
       a.supplier_reference,
       a.sales_unit,
       a.weight_kg,
       a.vat_rate,
       a.price_excl_vat,
       round(a.price_excl_vat * (1 + a.vat_rate / 100), 2) AS price_incl_vat,
       a.purchase_price,
       a.ean,
       coalesce(sl.available_qty, vs.available_qty, 0) AS quantity,
       img.images,
       a.web
FROM erp.article a
LEFT JOIN erp.family f ON f.id = a.family_id
LEFT JOIN passerelle_src.family fam ON fam.code = f.code
LEFT JOIN erp.brand b ON b.id = a.brand_id
LEFT JOIN erp.supplier s ON s.id = a.supplier_id
LEFT JOIN passerelle_src.stock_level sl ON sl.article_id = a.id AND sl.variant_id IS NULL
LEFT JOIN (SELECT article_id, sum(available_qty) AS available_qty
           FROM passerelle_src.stock_level WHERE variant_id IS NOT NULL
           GROUP BY article_id) vs ON vs.article_id = a.id
-- The article's own photos as "position:version,..." (version changes when a photo does),
-- so that a new, changed or removed photo makes the article's row change too.
LEFT JOIN (SELECT article_id,
                  string_agg(position || ':' || extract(epoch FROM updated_at)::bigint, ',' ORDER BY position) AS images
           FROM erp.image WHERE variant_id IS NULL
           GROUP BY article_id) img ON img.article_id = a.id;

-- Variants (combinations) with their own reference, EAN and available stock.
CREATE OR REPLACE VIEW passerelle_src.variant AS
SELECT v.reference AS key,
       a.reference AS article_reference,
       v.reference,
       v.ean,
       v.size,
       v.colour,
       v.price_impact,
       v.weight_impact,
       v.position,
       coalesce(sl.available_qty, 0) AS quantity,
       -- What the shop needs to find this combination once it is removed (see the differ).
       a.reference || E'\t' || coalesce(v.size, '') || E'\t' || coalesce(v.colour, '') AS removal_label
FROM erp.variant v
JOIN erp.article a ON a.id = v.article_id
LEFT JOIN passerelle_src.stock_level sl ON sl.variant_id = v.id
WHERE v.active;
