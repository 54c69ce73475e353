-- Deliveries as Passerelle sends them to the shop (the order_status flow, entity "delivery"):
-- one row per delivery note with lines (a parcel), for the orders the shop is told about
-- (passerelle_src.shop_order). Same contract as the other views: a text column "key" (the
-- delivery note's number), then the content columns; the differ hashes the whole row, so a
-- corrected tracking number or line sends the parcel again.
--
-- order_status: "partly_shipped" while something of the order remains to ship after this
-- parcel, "shipped" for the parcel that completes it (passerelle_src.delivery_progress).
-- lines: the parcel's lines as JSON, in order line order: line_number, reference (the variant's,
-- else the article's), label, quantity (shipped in this parcel), ordered (the order line's).
-- shipped_at is UTC (ISO 8601, "Z").
CREATE OR REPLACE VIEW passerelle_src.delivery AS
SELECT p.number AS key,
       p.number AS delivery_number,
       so.number AS order_number,
       so.shop_order_id,
       so.customer_code,
       so.customer_email,
       to_char(p.shipped_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS shipped_at,
       coalesce(p.carrier, o.carrier) AS carrier,
       coalesce(p.tracking_number, o.tracking_number) AS tracking_number,
       CASE WHEN p.complete THEN 'shipped' ELSE 'partly_shipped' END AS order_status,
       l.lines
FROM passerelle_src.delivery_progress p
JOIN passerelle_src.shop_order so ON so.id = p.order_id
JOIN erp.sales_order o ON o.id = p.order_id
JOIN LATERAL (
    SELECT json_agg(json_build_object(
               'line_number', dl.line_number,
               'reference', coalesce(v.reference, a.reference),
               'label', ol.label,
               'quantity', dl.quantity,
               'ordered', ol.quantity) ORDER BY dl.line_number)::text AS lines
    FROM erp.delivery_note_line dl
    JOIN erp.sales_order_line ol ON ol.order_id = dl.order_id AND ol.line_number = dl.line_number
    JOIN erp.article a ON a.id = ol.article_id
    LEFT JOIN erp.variant v ON v.id = ol.variant_id
    WHERE dl.delivery_note_id = p.id
) l ON true;

-- Who an order's notices go to, and in which language (erp.customer.language; NULL: the
-- notices' default language): read only when Passerelle mails the notices itself
-- (notices.mail.enabled, passerelle.core.notices).
CREATE OR REPLACE VIEW passerelle_src.order_customer AS
SELECT so.number AS order_number,
       so.shop_order_id,
       so.customer_code,
       so.customer_email,
       c.first_name,
       c.last_name,
       lower(c.language) AS language
FROM passerelle_src.shop_order so
JOIN erp.customer c ON c.id = so.customer_id;
