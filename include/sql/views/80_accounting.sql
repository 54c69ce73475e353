-- The sales journal for the accountant (passerelle.core.accounting, docs/formats/accounting.md):
-- the invoices and payments of WEB orders only (origin = 'web'; counter and phone sales are the
-- back office's own journal). Another back office: rewrite these views, same columns.

-- The web orders the journal reads, with their customer's account code and name (the company,
-- else the person, else the billing name, else the code).
CREATE OR REPLACE VIEW passerelle_src.journal_order AS
SELECT o.id AS order_id,
       o.number AS order_number,
       o.shop_order_id,
       c.code AS customer_code,
       coalesce(nullif(c.company, ''), nullif(trim(concat_ws(' ', c.first_name, c.last_name)), ''),
                o.billing_name, c.code) AS customer_name,
       o.currency,
       o.shipping_excl_vat,
       o.shipping_vat_rate
FROM erp.sales_order o
JOIN erp.customer c ON c.id = o.customer_id
WHERE o.origin = 'web' AND o.kind = 'order';

-- One row per invoice (a credit note is an invoice whose totals are negative) of a web order.
CREATE OR REPLACE VIEW passerelle_src.journal_invoice AS
SELECT i.number AS invoice_number,
       i.invoice_date,
       o.order_number,
       o.shop_order_id,
       o.customer_code,
       o.customer_name,
       o.currency,
       i.total_excl_vat,
       i.total_vat,
       i.total_incl_vat,
       o.shipping_excl_vat,
       o.shipping_vat_rate
FROM erp.invoice i
JOIN passerelle_src.journal_order o ON o.order_id = i.order_id;

-- The lines an invoice bills (its order's lines), with the line's total excl. VAT.
CREATE OR REPLACE VIEW passerelle_src.journal_invoice_line AS
SELECT i.number AS invoice_number,
       ol.line_number,
       ol.label,
       ol.quantity,
       ol.unit_price_excl_vat,
       ol.discount_excl_vat,
       ol.vat_rate
FROM erp.invoice i
JOIN passerelle_src.journal_order o ON o.order_id = i.order_id
JOIN erp.sales_order_line ol ON ol.order_id = o.order_id;

-- Payments received on web orders (paid, with the moment they were); a refund is a negative amount.
CREATE OR REPLACE VIEW passerelle_src.journal_payment AS
SELECT p.id AS payment_id,
       o.order_number,
       o.shop_order_id,
       o.customer_code,
       o.customer_name,
       o.currency,
       p.method,
       p.amount,
       p.transaction_id,
       p.paid_at
FROM erp.payment p
JOIN passerelle_src.journal_order o ON o.order_id = p.order_id
WHERE p.paid AND p.paid_at IS NOT NULL;
