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
-- family_id, parent_family_id and family_ids (the family's and its parents' ids, root first,
-- comma separated) are the back office's stable numeric ids: shops that match categories by
-- number (PrestaShop, see docs/formats/prestashop.md) derive their category ids from them, so
-- that two families of the same name in different branches stay two categories.
CREATE OR REPLACE VIEW passerelle_src.family AS
WITH RECURSIVE tree AS (
    SELECT f.id, f.code, f.name, f.parent_id, f.position,
           NULL::text AS parent_code, NULL::text AS parent_name, f.name::text AS path, 1 AS depth,
           f.id::text AS id_path
    FROM erp.family f
    WHERE f.parent_id IS NULL AND f.web
    UNION ALL
    SELECT c.id, c.code, c.name, c.parent_id, c.position,
           t.code, t.name, t.path || ' > ' || c.name, t.depth + 1, t.id_path || ',' || c.id
    FROM erp.family c
    JOIN tree t ON c.parent_id = t.id
    WHERE c.web
)
SELECT code AS key, code, name, parent_code, parent_name, path, depth, position,
       id AS family_id, parent_id AS parent_family_id, id_path AS family_ids
FROM tree;

CREATE OR REPLACE VIEW passerelle_src.brand AS
SELECT b.code AS key, b.code, b.name, b.description
FROM erp.brand b;

CREATE OR REPLACE VIEW passerelle_src.supplier AS
SELECT s.code AS key, s.code, s.name, s.email, s.phone, s.address, s.postcode, s.city, s.country
FROM erp.supplier s;

-- Raw web stock per stock row (article and variant) over the locations that serve the web:
-- physical stock, and quantity - reserved (never below zero). Not what the shop is told (see
-- shop_stock below); the reorder proposals (passerelle.core.integrate) and the stock alerts of
-- the daily report read it and make their own deductions.
CREATE OR REPLACE VIEW passerelle_src.stock_level AS
SELECT st.article_id, st.variant_id,
       sum(st.quantity) AS real_qty,
       greatest(sum(st.quantity - st.reserved), 0) AS available_qty
FROM erp.stock st
JOIN erp.location l ON l.code = st.location_code AND l.web
GROUP BY st.article_id, st.variant_id;

-- The functions of these views are PARALLEL SAFE (they read run settings, which parallel workers
-- get from the transaction that starts them): the differ lets the planner read a view with parallel
-- workers (passerelle.core.differ._parallel_diff), and one function without the label would keep
-- every statement reading it to one process.

-- The safety stock kept back from the shop: stock.safety_stock, set by the exporters of the
-- catalog and of the hourly stock file as the transaction-local option passerelle.safety_stock
-- (see 20_exchange.sql for the run settings). Unset (psql, a report): 0.
CREATE OR REPLACE FUNCTION passerelle_src.safety_stock() RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT greatest(coalesce(nullif(current_setting('passerelle.safety_stock', true), '')::numeric, 0), 0)
$$;

-- The run's day (YYYY-MM-DD, shop timezone): which promotions are current or next. Set by the
-- exporters of the catalog and of the hourly exchanges as the transaction-local option
-- passerelle.as_of (see 20_exchange.sql for the run settings). Unset (psql, a report): today.
CREATE OR REPLACE FUNCTION passerelle_src.as_of() RETURNS date
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(current_setting('passerelle.as_of', true), '')::date, current_date)
$$;

-- Whether the article view builds its "variants" column (see shop_stock_article): set to on by the
-- catalog's exporter for the shops whose files need it (WooCommerce, Shopify: the dialect's
-- view_options), as the transaction-local option passerelle.article_variants. Off (PrestaShop,
-- generic, psql): the column is NULL and the JSON is never built, which would cost every catalog
-- diff about as much again as the rest of the article row (measured on the bench).
CREATE OR REPLACE FUNCTION passerelle_src.with_article_variants() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('passerelle.article_variants', true), '') = 'on'
$$;

-- A promotion's price excl. VAT: the fixed one, else the base price less the percentage.
CREATE OR REPLACE FUNCTION passerelle_src.promotional_price(base numeric, discount_pct numeric, fixed numeric)
RETURNS numeric LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(fixed, round(base * (1 - discount_pct / 100), 4))
$$;

-- The stock the shop is told about: the ONE definition behind the catalog's quantities
-- (article.quantity, variant.quantity) and the hourly stock file (passerelle_src.stock), so both
-- files say the same for the same article at the same moment. One row per stock row the shop
-- sees: each active variant (shop_stock_variant), and each article without an active variant
-- (shop_stock_own, variant_id NULL):
--   real_qty      physical stock over the web locations;
--   available_qty back-office available stock (stock_level.available_qty: quantity - reserved),
--                 minus the quantities of shop orders already downloaded but not yet shipped
--                 (open_web_order), minus the safety stock (passerelle_src.safety_stock()),
--                 never below zero.
-- Every sum is computed once per query and then joined (no correlated subquery): the stock per
-- stock row (stock_level), the open orders per article and variant (open_web_order).

-- Shop orders in the back office, not shipped yet (web orders awaiting their payment, confirmed or
-- prepared: quantity -
-- shipped_qty per line, per article and variant): the shop no longer counts them.
CREATE OR REPLACE VIEW passerelle_src.open_web_order AS
SELECT ol.article_id, ol.variant_id, sum(greatest(ol.quantity - ol.shipped_qty, 0)) AS qty
FROM erp.sales_order o
JOIN erp.sales_order_line ol ON ol.order_id = o.id
WHERE o.origin = 'web' AND o.kind = 'order' AND o.status IN ('awaiting_payment', 'confirmed', 'prepared')
GROUP BY ol.article_id, ol.variant_id;

-- The stock the shop is told of each active variant, with the variant's own columns (for
-- shop_stock_article's "variants" JSON, which then reads erp.variant once).
CREATE OR REPLACE VIEW passerelle_src.shop_stock_variant AS
SELECT v.article_id, v.id AS variant_id,
       coalesce(sl.real_qty, 0) AS real_qty,
       greatest(coalesce(sl.available_qty, 0) - coalesce(d.qty, 0) - passerelle_src.safety_stock(), 0)
           AS available_qty,
       v.reference, v.ean, v.size, v.colour, v.price_impact, v.weight_impact, v.position
FROM erp.variant v
-- (IS NOT NULL, implied by the equality, lets stock_level filter its rows before it groups)
LEFT JOIN passerelle_src.stock_level sl ON sl.variant_id = v.id AND sl.variant_id IS NOT NULL
LEFT JOIN passerelle_src.open_web_order d ON d.article_id = v.article_id AND d.variant_id = v.id
WHERE v.active;

-- The stock the shop would be told of every article's own stock row (variant_id NULL); it is
-- the article's stock when the article has no active variant (shop_stock, shop_stock_article).
CREATE OR REPLACE VIEW passerelle_src.shop_stock_own AS
SELECT a.id AS article_id,
       coalesce(sl.real_qty, 0) AS real_qty,
       greatest(coalesce(sl.available_qty, 0) - coalesce(d.qty, 0) - passerelle_src.safety_stock(), 0)
           AS available_qty
FROM erp.article a
LEFT JOIN passerelle_src.stock_level sl ON sl.article_id = a.id AND sl.variant_id IS NULL
LEFT JOIN passerelle_src.open_web_order d ON d.article_id = a.id AND d.variant_id IS NULL;

CREATE OR REPLACE VIEW passerelle_src.shop_stock AS
SELECT s.article_id, s.variant_id, s.real_qty, s.available_qty
FROM passerelle_src.shop_stock_variant s
UNION ALL
SELECT o.article_id, NULL::integer, o.real_qty, o.available_qty
FROM passerelle_src.shop_stock_own o
WHERE NOT EXISTS (SELECT 1 FROM erp.variant v WHERE v.article_id = o.article_id AND v.active);

-- The same per article: an article with active variants (has_variants) holds the sums of their
-- rows (shop_stock_variant's, per article), any other its own row (shop_stock_own's), both joined
-- to the article by its id, so that a view joining this one by article and read without its stock
-- columns (the selection checks of other entities) skips it.
-- "variants": the article's active variants as a JSON array in position order, with the stock
-- the shop is told (NULL for an article without any, and for every article unless
-- passerelle_src.with_article_variants()). The WooCommerce and Shopify files write a product and
-- its variations together from the article's row (docs/formats/woocommerce.md, "Input columns"),
-- and the article's row changes whenever one of its variants does. Its text, not json or jsonb:
-- the differ hashes a row by its values (hash_record_extended), json has no hash function, and
-- jsonb's hash XORs its keys and values together, blind to two variants' colours swapped.
-- The sums come from one of the two branches of "vs", the other's filter being false before it
-- reads a row:
--   without the JSON (PrestaShop, generic), the stock rows of active variants (joined to them as
--     they are read, in parallel) grouped per variant (and per the stock rows' article, as
--     stock_level groups them) then per the variant's article, with hashed aggregates; a
--     variant without a stock row adds nothing (its available stock is greatest(0 - orders -
--     safety, 0) = 0), so the variants are read whole only for has_variants (hv). At 1,000,000
--     articles this computed the view's stock in 12 s instead of 16.5 s.
--   with it (WooCommerce, Shopify), the rows of shop_stock_variant grouped per article, in
--     position order for the JSON (an aggregate ordering its input is a sort, never hashed), in
--     the same pass as the sums, so the stock rows are read once.
-- The own row is computed here as shop_stock_own computes it, without joining the articles again.
CREATE OR REPLACE VIEW passerelle_src.shop_stock_article AS
SELECT a.id AS article_id,
       hv.article_id IS NOT NULL AS has_variants,
       CASE WHEN hv.article_id IS NOT NULL THEN coalesce(vs.real_qty, 0) ELSE coalesce(sl.real_qty, 0) END AS real_qty,
       CASE WHEN hv.article_id IS NOT NULL THEN coalesce(vs.available_qty, 0)
            ELSE greatest(coalesce(sl.available_qty, 0) - coalesce(d.qty, 0) - passerelle_src.safety_stock(), 0)
       END AS available_qty,
       vs.variants
FROM erp.article a
LEFT JOIN (SELECT DISTINCT v.article_id FROM erp.variant v WHERE v.active) hv ON hv.article_id = a.id
LEFT JOIN (SELECT g.article_id, sum(g.real_qty) AS real_qty,
                  sum(greatest(g.available_qty - coalesce(o.qty, 0) - passerelle_src.safety_stock(), 0)) AS available_qty,
                  NULL::text AS variants
           FROM (SELECT v.article_id, st.variant_id, sum(st.quantity) AS real_qty,
                        greatest(sum(st.quantity - st.reserved), 0) AS available_qty
                 FROM erp.stock st
                 JOIN erp.location l ON l.code = st.location_code AND l.web
                 JOIN erp.variant v ON v.id = st.variant_id AND v.active
                 GROUP BY st.article_id, st.variant_id, v.article_id) g
           LEFT JOIN passerelle_src.open_web_order o ON o.article_id = g.article_id AND o.variant_id = g.variant_id
           WHERE NOT passerelle_src.with_article_variants()
           GROUP BY g.article_id
           UNION ALL
           SELECT s.article_id, sum(s.real_qty), sum(s.available_qty),
                  json_agg(json_build_object(
                               'reference', s.reference, 'ean', s.ean, 'size', s.size, 'colour', s.colour,
                               'price_impact', s.price_impact, 'weight_impact', s.weight_impact,
                               'position', s.position, 'quantity', s.available_qty) ORDER BY s.position, s.reference)::text
           FROM passerelle_src.shop_stock_variant s
           WHERE passerelle_src.with_article_variants()
           GROUP BY s.article_id) vs ON vs.article_id = a.id
LEFT JOIN passerelle_src.stock_level sl ON sl.article_id = a.id AND sl.variant_id IS NULL
LEFT JOIN passerelle_src.open_web_order d ON d.article_id = a.id AND d.variant_id IS NULL;

-- The promotion for every customer (no price list, no variant) that is current or comes next on
-- the as-of date, one per article (earliest start first): a shop such as PrestaShop holds one
-- such promotion per product, and when it ends the next one replaces it. "active": it runs on the
-- as-of date (a row reading it changes the day the promotion starts). Its price excl. VAT is
-- passerelle_src.promotional_price() over the article's price, in the views that read it: the
-- article view (Shopify's products carry the running sale) and the price view (20_exchange.sql).
CREATE OR REPLACE VIEW passerelle_src.article_promotion AS
SELECT DISTINCT ON (p.article_id)
       p.article_id, p.id, p.discount_pct, p.price_excl_vat, p.starts_on, p.ends_on,
       p.starts_on <= passerelle_src.as_of() AS active
FROM erp.promotion p
WHERE p.variant_id IS NULL AND p.price_list IS NULL AND p.ends_on >= passerelle_src.as_of()
ORDER BY p.article_id, p.starts_on, p.id;

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
       ss.available_qty AS quantity,   -- shop_stock_article has a row for every article
       img.images,
       a.web,
       fam.family_ids,                 -- the family's and its parents' ids, root first (see family)
       ss.variants,                    -- active variants as JSON (WooCommerce, Shopify; see shop_stock_article)
       -- The promotion current or next (article_promotion): Shopify's product rows carry the running
       -- sale (else a catalog send during a promotion would reset the price to the regular one).
       passerelle_src.promotional_price(a.price_excl_vat, pr.discount_pct, pr.price_excl_vat) AS promo_price_excl_vat,
       pr.starts_on AS promo_starts_on,
       pr.ends_on AS promo_ends_on,
       pr.active AS promo_active
FROM erp.article a
LEFT JOIN erp.family f ON f.id = a.family_id
LEFT JOIN passerelle_src.family fam ON fam.code = f.code
LEFT JOIN erp.brand b ON b.id = a.brand_id
LEFT JOIN erp.supplier s ON s.id = a.supplier_id
LEFT JOIN passerelle_src.shop_stock_article ss ON ss.article_id = a.id
LEFT JOIN passerelle_src.article_promotion pr ON pr.article_id = a.id
-- The article's own photos as "position:version,..." (version changes when a photo does),
-- so that a new, changed or removed photo makes the article's row change too.
LEFT JOIN (SELECT article_id,
                  string_agg(position || ':' || extract(epoch FROM updated_at)::bigint, ',' ORDER BY position) AS images
           FROM erp.image WHERE variant_id IS NULL
           GROUP BY article_id) img ON img.article_id = a.id;

-- Variants (combinations) with their own reference, EAN and available stock (shop_stock).
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
       ss.available_qty AS quantity,   -- shop_stock has a row for every active variant
       -- What the shop needs to find this combination once it is removed (see the differ).
       a.reference || E'\t' || coalesce(v.size, '') || E'\t' || coalesce(v.colour, '') AS removal_label
FROM erp.variant v
JOIN erp.article a ON a.id = v.article_id
-- (IS NOT NULL leaves shop_stock's rows of articles without variants uncomputed)
LEFT JOIN passerelle_src.shop_stock ss ON ss.variant_id = v.id AND ss.variant_id IS NOT NULL
WHERE v.active;
