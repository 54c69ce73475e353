-- The hourly exchanges as Passerelle reads them: prices, stock, order statuses and invoices.
-- Same contract as 10_catalog.sql: one view per exported entity, a unique text "key" (the
-- shop's identifier) first, then content columns only (no column that changes without meaning).
--
-- Run settings reach these views as transaction-local options, set by the exporter with
-- set_config(name, value, true) in the transaction that diffs and writes the batch
-- (passerelle.core.exchange.exchange_settings):
--   passerelle.as_of         the run's logical date in the shop's timezone (YYYY-MM-DD): which
--                            promotions are current or next, and whether they run. Unset:
--                            current_date. The catalog's exporter sets it too (the article view
--                            carries the promotion, passerelle_src.article_promotion).
--   passerelle.safety_stock  stock.safety_stock from the configuration. Unset: 0. Read through
--                            passerelle_src.safety_stock() (10_catalog.sql): the catalog's
--                            quantities apply it too, and its exporter sets it the same way.
--   passerelle.timezone      shop.timezone: the day an order was placed, on invoices. Unset: UTC.
-- A setting is part of the rows it shapes, so changing it resends exactly the rows it changes.
-- Outside an export (psql, a report) the defaults apply; set them by hand to see what is sent:
--   BEGIN; SELECT set_config('passerelle.safety_stock', '2', true); SELECT * FROM passerelle_src.stock; ROLLBACK;

-- (passerelle_src.as_of() is in 10_catalog.sql: the article view reads the promotions too.)

CREATE OR REPLACE FUNCTION passerelle_src.shop_timezone() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(current_setting('passerelle.timezone', true), ''), 'UTC')
$$;

-- ---------------------------------------------------------------------------------- prices

-- Each family's ids (its own and its parents', root first, as passerelle_src.family.family_ids)
-- among the families the shop has: those whose catalog row it confirmed (passerelle.snapshot,
-- entity "family"; the shop's category id derives from the family id). A family created or moved
-- since the last catalog send is left out until that send. Families are few: computed once per
-- statement, hash-joined with the articles.
-- (The snapshot is read through a PL/pgSQL function: the views are made before Passerelle's
-- state schema in a new installation, and without that schema the shop has no family.)
CREATE OR REPLACE FUNCTION passerelle_src.shop_has_family(family_code text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM passerelle.snapshot s WHERE s.entity = 'family' AND s.key = family_code);
EXCEPTION WHEN undefined_table THEN
    RETURN false;
END
$$;

CREATE OR REPLACE VIEW passerelle_src.shop_family AS
SELECT fam.family_id, string_agg(u.id, ',' ORDER BY u.n) AS family_ids
FROM passerelle_src.family fam
CROSS JOIN LATERAL unnest(string_to_array(fam.family_ids, ',')) WITH ORDINALITY AS u(id, n)
JOIN erp.family f ON f.id = u.id::integer
WHERE passerelle_src.shop_has_family(f.code)
GROUP BY fam.family_id;

-- One row per article: base price excl. and incl. VAT and the promotion for every customer
-- (no price list, no variant) that is current or comes next on the as-of date
-- (passerelle_src.article_promotion, 10_catalog.sql). A shop such as PrestaShop holds one such
-- promotion per product: when it ends, the next one replaces it.
-- "name" is there because PrestaShop's product import blanks a product's name when the cell
-- is empty (multilingual fields are written even when empty).
-- promo_active: the promotion runs on the as-of date, so the row changes (and is sent again) the
-- day it starts (Shopify has no scheduled sale: its price file sets the sale price that day).
-- has_variants: the article has active variants (Shopify's price file leaves those to the catalog).
-- family_ids: the article's family and its parents (passerelle_src.family) that the shop already
-- has (passerelle_src.shop_family): PrestaShop's product import keeps one category of a product
-- whose Categories cell is empty, so its price and stock rows restate them; a category the
-- catalog has not sent yet would be created by that import under a number for a name.
CREATE OR REPLACE VIEW passerelle_src.price AS
SELECT a.reference AS key,
       a.reference,
       a.name,
       a.vat_rate,
       a.price_excl_vat,
       round(a.price_excl_vat * (1 + a.vat_rate / 100), 2) AS price_incl_vat,
       pr.discount_pct AS promo_discount_pct,
       passerelle_src.promotional_price(a.price_excl_vat, pr.discount_pct, pr.price_excl_vat) AS promo_price_excl_vat,
       round(passerelle_src.promotional_price(a.price_excl_vat, pr.discount_pct, pr.price_excl_vat)
             * (1 + a.vat_rate / 100), 2) AS promo_price_incl_vat,
       pr.starts_on AS promo_starts_on,
       pr.ends_on AS promo_ends_on,
       pr.active AS promo_active,
       hv.article_id IS NOT NULL AS has_variants,
       fam.family_ids
FROM erp.article a
LEFT JOIN passerelle_src.shop_family fam ON fam.family_id = a.family_id
LEFT JOIN passerelle_src.article_promotion pr ON pr.article_id = a.id
-- set-wise (one grouped pass, hashed), not a subquery per article
LEFT JOIN (SELECT DISTINCT v.article_id FROM erp.variant v WHERE v.active) hv ON hv.article_id = a.id;

-- Prices for a customer group (a price list), a variant or from a quantity: the price lists'
-- items, and the promotions restricted to a price list or to a variant (current or next).
-- from_quantity is a whole number of units as shops count them. A price list's default
-- discount (erp.price_list.discount_pct) is a group setting, made once in the shop.
CREATE OR REPLACE VIEW passerelle_src.specific_price AS
SELECT 'list:' || pli.price_list || ':' || coalesce(v.reference, a.reference) || ':' || trim_scale(pli.min_qty) AS key,
       'price_list'::text AS kind,
       a.reference AS article_reference,
       v.reference AS variant_reference,
       pli.price_list,
       pl.name AS price_list_name,
       greatest(ceil(pli.min_qty), 1)::integer AS from_quantity,
       pli.price_excl_vat,
       round(pli.price_excl_vat * (1 + a.vat_rate / 100), 2) AS price_incl_vat,
       NULL::numeric AS discount_pct,
       NULL::date AS starts_on,
       NULL::date AS ends_on
FROM erp.price_list_item pli
JOIN erp.article a ON a.id = pli.article_id
JOIN erp.price_list pl ON pl.code = pli.price_list
LEFT JOIN erp.variant v ON v.id = pli.variant_id
WHERE pli.variant_id IS NULL OR v.active
UNION ALL
SELECT 'promotion:' || p.id AS key,
       'promotion'::text,
       a.reference,
       v.reference,
       p.price_list,
       pl.name,
       1,
       p.price_excl_vat,
       round(p.price_excl_vat * (1 + a.vat_rate / 100), 2),
       p.discount_pct,
       p.starts_on,
       p.ends_on
FROM erp.promotion p
JOIN erp.article a ON a.id = p.article_id
LEFT JOIN erp.price_list pl ON pl.code = p.price_list
LEFT JOIN erp.variant v ON v.id = p.variant_id
WHERE (p.price_list IS NOT NULL OR p.variant_id IS NOT NULL)
  AND (p.variant_id IS NULL OR v.active)
  AND p.ends_on >= passerelle_src.as_of();

-- ----------------------------------------------------------------------------------- stock

-- Stock per article (level = 'article'; for an article with variants, has_variants is true and
-- the quantities are the sums of its variants') and per variant (level = 'variant'): the rows of
-- passerelle_src.shop_stock_article and passerelle_src.shop_stock (10_catalog.sql), the one
-- definition of the stock the shop is told about, which the catalog's quantities read too:
--   real_qty      physical stock over the locations that serve the web;
--   available_qty back-office available stock (quantity - reserved), minus the quantities of
--                 shop orders already downloaded but not yet shipped, minus the safety stock,
--                 never below zero.
-- Variant rows carry the columns of passerelle_src.variant (attributes, EAN, impacts, position):
-- PrestaShop's combination import resets what a row leaves empty, so a stock update must restate
-- the whole combination as the catalog sends it. Article rows carry family_ids, as the price view.
CREATE OR REPLACE VIEW passerelle_src.stock AS
SELECT a.reference AS key,
       'article'::text AS level,
       a.reference AS article_reference,
       NULL::text AS variant_reference,
       a.name,
       sa.has_variants,
       NULL::text AS size, NULL::text AS colour, NULL::text AS ean,
       NULL::numeric AS price_impact, NULL::numeric AS weight_impact, NULL::integer AS position,
       trim_scale(sa.real_qty) AS real_qty,
       trim_scale(sa.available_qty) AS available_qty,
       fam.family_ids
FROM passerelle_src.shop_stock_article sa
JOIN erp.article a ON a.id = sa.article_id
LEFT JOIN passerelle_src.shop_family fam ON fam.family_id = a.family_id
UNION ALL
SELECT v.reference,
       'variant',
       a.reference,
       v.reference,
       a.name,
       false,
       v.size, v.colour, v.ean, v.price_impact, v.weight_impact, v.position,
       trim_scale(ss.real_qty),
       trim_scale(ss.available_qty),
       NULL::text   -- a combination has no categories of its own
FROM passerelle_src.shop_stock ss
JOIN erp.variant v ON v.id = ss.variant_id
JOIN erp.article a ON a.id = v.article_id
WHERE ss.variant_id IS NOT NULL;   -- leaves shop_stock's rows of articles without variants uncomputed

-- ---------------------------------------------------------------------- orders and invoices

-- Orders the shop is told about: web orders, and orders entered in the back office for web
-- customers (those have no shop order id; the shop shows them in the customer's area by number).
CREATE OR REPLACE VIEW passerelle_src.shop_order AS
SELECT o.id, o.number, o.shop_order_id, o.origin, o.customer_id, c.code AS customer_code, c.email AS customer_email
FROM erp.sales_order o
JOIN erp.customer c ON c.id = o.customer_id
WHERE o.kind = 'order' AND (o.origin = 'web' OR c.web);

-- Each delivery note with lines (erp.delivery_note_line, include/sql/erp/30_deliveries.sql) and
-- whether its order is complete with it: every order line covered by what the notes up to this
-- one (in shipping order) shipped and what was cancelled of it before this note left.
CREATE OR REPLACE VIEW passerelle_src.delivery_progress AS
SELECT dn.id, dn.number, dn.order_id, dn.shipped_at, dn.carrier, dn.tracking_number,
       bool_and(coalesce(s.shipped, 0) + coalesce(c.quantity, 0) >= ol.quantity) AS complete
FROM erp.delivery_note dn
JOIN erp.sales_order_line ol ON ol.order_id = dn.order_id
LEFT JOIN LATERAL (
    SELECT sum(l.quantity) AS shipped
    FROM erp.delivery_note_line l
    JOIN erp.delivery_note d ON d.id = l.delivery_note_id
    WHERE l.order_id = ol.order_id AND l.line_number = ol.line_number
      AND (d.shipped_at, d.id) <= (dn.shipped_at, dn.id)
) s ON true
LEFT JOIN erp.order_line_cancellation c
       ON c.order_id = ol.order_id AND c.line_number = ol.line_number AND c.cancelled_at <= dn.shipped_at
WHERE EXISTS (SELECT 1 FROM erp.delivery_note_line x WHERE x.delivery_note_id = dn.id)
GROUP BY dn.id;

-- One row per order and status it went through (from the status history): the key is
-- "<order number>:<status>", so each change is sent once; an order coming back to a status
-- later changes that row's changed_at and is sent again. Shipped rows carry the carrier and the
-- tracking number (the order's, else its last delivery note's): adding or correcting a
-- tracking number changes that row only. Invoiced rows carry the invoice number.
-- Orders whose delivery notes have lines (shipped in parcels) take their shipping statuses from
-- those notes instead: one "partly_shipped" row per parcel that leaves something to ship (key
-- "<order number>:partly_shipped:<delivery note number>", with that parcel's carrier and
-- tracking number), then "shipped" at the parcel that completes the order (its carrier and
-- tracking number). "remainder_cancelled": what remained of the order will not be shipped
-- (erp.order_line_cancellation), at the last cancellation.
-- changed_at is UTC (ISO 8601, "Z"), whatever the session's TimeZone.
CREATE OR REPLACE VIEW passerelle_src.order_status AS
WITH last_note AS (
    SELECT DISTINCT ON (dn.order_id) dn.order_id, dn.carrier, dn.tracking_number
    FROM erp.delivery_note dn
    ORDER BY dn.order_id, dn.shipped_at DESC, dn.id DESC
),
last_invoice AS (
    SELECT DISTINCT ON (i.order_id) i.order_id, i.number
    FROM erp.invoice i
    ORDER BY i.order_id, i.invoice_date DESC, i.id DESC
),
parcels AS (SELECT * FROM passerelle_src.delivery_progress),
history AS (
    SELECT h.order_id, h.status, max(h.changed_at) AS changed_at
    FROM erp.order_status_history h
    WHERE h.status IN ('confirmed', 'prepared', 'shipped', 'invoiced', 'cancelled')
      AND NOT (h.status = 'shipped' AND EXISTS (SELECT 1 FROM parcels p WHERE p.order_id = h.order_id))
    GROUP BY h.order_id, h.status
),
events AS (
    SELECT h.order_id, h.status, h.changed_at, NULL::text AS parcel, NULL::text AS carrier,
           NULL::text AS tracking_number
    FROM history h
    UNION ALL
    SELECT p.order_id, 'partly_shipped', p.shipped_at, p.number, p.carrier, p.tracking_number
    FROM parcels p WHERE NOT p.complete
    UNION ALL
    SELECT * FROM (
        SELECT DISTINCT ON (p.order_id) p.order_id, 'shipped', p.shipped_at, NULL::text, p.carrier, p.tracking_number
        FROM parcels p WHERE p.complete
        ORDER BY p.order_id, p.shipped_at, p.id
    ) first_complete
    UNION ALL
    SELECT c.order_id, 'remainder_cancelled', max(c.cancelled_at), NULL, NULL, NULL
    FROM erp.order_line_cancellation c GROUP BY c.order_id
)
SELECT so.number || ':' || e.status || coalesce(':' || e.parcel, '') AS key,
       so.number AS order_number,
       so.shop_order_id,
       so.origin,
       so.customer_code,
       so.customer_email,
       e.status,
       to_char(e.changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS changed_at,
       CASE WHEN e.status IN ('shipped', 'partly_shipped')
            THEN coalesce(e.carrier, o.carrier, ln.carrier) END AS carrier,
       CASE WHEN e.status IN ('shipped', 'partly_shipped')
            THEN coalesce(e.tracking_number, o.tracking_number, ln.tracking_number) END AS tracking_number,
       CASE WHEN e.status = 'invoiced' THEN li.number END AS invoice_number
FROM events e
JOIN passerelle_src.shop_order so ON so.id = e.order_id
JOIN erp.sales_order o ON o.id = e.order_id
LEFT JOIN last_note ln ON ln.order_id = e.order_id
LEFT JOIN last_invoice li ON li.order_id = e.order_id;

-- The seller printed on rendered invoices: ONE row. Replace these values with the retailer's
-- own (or read them from the back office's company table) before rendering real invoices.
CREATE OR REPLACE VIEW passerelle_src.seller AS
SELECT 'Maison Passerelle SAS'::text AS name,
       '12 rue des Tanneurs'::text AS line1,
       NULL::text AS line2,
       '69002'::text AS postcode,
       'Lyon'::text AS city,
       'FR'::text AS country,
       '123 456 789 00012'::text AS siret,
       'FR32123456789'::text AS vat_number,
       'contact@maison-passerelle.example'::text AS email,
       '04 72 00 00 00'::text AS phone,
       'SAS au capital de 50 000 EUR - RCS Lyon 123 456 789. Paiement à réception. Pénalités de retard : '
       '3 fois le taux d''intérêt légal ; indemnité forfaitaire pour frais de recouvrement : 40 EUR.'::text
           AS legal_mentions;

-- Everything an invoice PDF shows, for invoices of the orders above; "pdf" holds the back
-- office's own PDF when it keeps one (then it is sent as it is). Addresses: the order's, else
-- the customer's billing address.
CREATE OR REPLACE VIEW passerelle_src.invoice_document AS
SELECT i.number AS key,
       i.number AS invoice_number,
       i.invoice_date,
       so.number AS order_number,
       so.shop_order_id,
       (o.order_date AT TIME ZONE passerelle_src.shop_timezone())::date AS order_date,
       o.currency,
       so.customer_code,
       so.customer_email,
       c.vat_number AS customer_vat_number,
       coalesce(o.billing_name, ba.name, nullif(concat_ws(' ', c.first_name, c.last_name), ''), c.company) AS billing_name,
       coalesce(o.billing_line1, ba.line1) AS billing_line1,
       CASE WHEN o.billing_line1 IS NOT NULL THEN o.billing_line2 ELSE ba.line2 END AS billing_line2,
       coalesce(o.billing_postcode, ba.postcode) AS billing_postcode,
       coalesce(o.billing_city, ba.city) AS billing_city,
       coalesce(o.billing_country, ba.country) AS billing_country,
       o.delivery_name, o.delivery_line1, o.delivery_line2, o.delivery_postcode, o.delivery_city, o.delivery_country,
       o.shipping_excl_vat,
       o.shipping_vat_rate,
       i.total_excl_vat,
       i.total_vat,
       i.total_incl_vat,
       i.pdf
FROM erp.invoice i
JOIN passerelle_src.shop_order so ON so.id = i.order_id
JOIN erp.sales_order o ON o.id = i.order_id
JOIN erp.customer c ON c.id = o.customer_id
LEFT JOIN erp.address ba ON ba.customer_id = c.id AND ba.kind = 'billing';

-- The lines an invoice bills: its order's lines.
CREATE OR REPLACE VIEW passerelle_src.invoice_line AS
SELECT i.number AS invoice_key,
       ol.line_number,
       coalesce(v.reference, a.reference) AS reference,
       ol.label,
       ol.quantity,
       ol.unit_price_excl_vat,
       ol.discount_excl_vat,
       ol.vat_rate
FROM erp.invoice i
JOIN erp.sales_order_line ol ON ol.order_id = i.order_id
JOIN erp.article a ON a.id = ol.article_id
LEFT JOIN erp.variant v ON v.id = ol.variant_id;

-- Invoices for the shop's customer area: the index row of each PDF. content_hash changes when
-- what the PDF shows changes (the document, its lines, or the stored PDF's size), so a changed
-- invoice is sent again; the stored PDF's bytes are not read here (only their length).
CREATE OR REPLACE VIEW passerelle_src.invoice AS
SELECT d.key,
       d.invoice_number,
       d.order_number,
       d.shop_order_id,
       d.customer_code,
       d.customer_email,
       d.invoice_date,
       d.currency,
       d.total_excl_vat,
       d.total_vat,
       d.total_incl_vat,
       CASE WHEN d.pdf IS NULL THEN 'rendered' ELSE 'back_office' END AS pdf_source,
       md5(concat_ws('|',
           (d.billing_name, d.billing_line1, d.billing_line2, d.billing_postcode, d.billing_city, d.billing_country,
            d.delivery_name, d.delivery_line1, d.delivery_line2, d.delivery_postcode, d.delivery_city,
            d.delivery_country, d.shipping_excl_vat, d.shipping_vat_rate, d.customer_vat_number, d.order_date)::text,
           octet_length(d.pdf),
           l.lines)) AS content_hash
FROM passerelle_src.invoice_document d
LEFT JOIN (SELECT invoice_key, string_agg(il::text, '|' ORDER BY line_number) AS lines
           FROM passerelle_src.invoice_line il GROUP BY invoice_key) l ON l.invoice_key = d.key;
