-- What the daily report (passerelle.core.report) reads of the back office.

-- Orders counted as sales: confirmed orders and later states; quotes and cancelled ones left
-- out. The report groups them by day in the shop's time zone.
CREATE OR REPLACE VIEW passerelle_src.sale AS
SELECT o.id, o.order_date, o.origin = 'web' AS web, o.total_incl_vat
FROM erp.sales_order o
WHERE o.kind = 'order' AND o.status <> 'cancelled';

-- Articles whose available stock (web locations, net of reservations) is below their minimum.
CREATE OR REPLACE VIEW passerelle_src.stock_alert AS
SELECT a.reference, a.name, a.web, coalesce(sum(sl.available_qty), 0) AS available, a.min_stock
FROM erp.article a
LEFT JOIN passerelle_src.stock_level sl ON sl.article_id = a.id
WHERE a.min_stock > 0
GROUP BY a.id
HAVING coalesce(sum(sl.available_qty), 0) < a.min_stock;
