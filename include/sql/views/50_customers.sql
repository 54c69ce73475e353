-- Customers as Passerelle sends them to the shop (the customers flow), in schema passerelle_src.
-- Same contract as 10_catalog.sql: a text column "key" (unique, stable), then the content
-- columns; the differ hashes the whole row. Which customers go to the shop (web flag, an
-- e-mail, not created by the shop itself) is the selection of passerelle.core.differ.customer_entities.
-- E-mails are given as the back office holds them: the writer normalises them as the inbound
-- integration does (trimmed, lower case) and refuses, with a reason, those that are not one.

-- One row per customer. The default address (delivery, else billing) is repeated here because
-- some shops (Shopify) take one address per customer row: an address change must resend the
-- customer there. customer_id is the back office's internal id (the selection reads it).
CREATE OR REPLACE VIEW passerelle_src.customer AS
SELECT c.code AS key, c.code, c.email, c.first_name, c.last_name, c.company, c.phone,
       c.customer_family, f.name AS customer_family_name, c.price_list, c.vat_territory, c.vat_number,
       c.web, d.name AS address_name, d.line1 AS address1, d.line2 AS address2, d.postcode, d.city,
       d.country, d.phone AS address_phone, c.id AS customer_id
FROM erp.customer c
LEFT JOIN erp.customer_family f ON f.code = c.customer_family
LEFT JOIN LATERAL (
    SELECT a.* FROM erp.address a WHERE a.customer_id = c.id
    ORDER BY (a.kind = 'delivery') DESC LIMIT 1
) d ON true;

-- One row per address kind of a customer (billing, delivery). The customer's e-mail and names
-- travel with the address: PrestaShop's addresses import finds the customer by e-mail and
-- requires a first and last name on every address. "recipient" is the address's own name line.
CREATE OR REPLACE VIEW passerelle_src.customer_address AS
SELECT c.code || ':' || a.kind AS key, c.code AS customer, c.email AS customer_email, a.kind,
       a.name AS recipient, c.first_name, c.last_name, c.company, a.line1 AS address1, a.line2 AS address2,
       a.postcode, a.city, a.country, a.phone, c.vat_number, c.id AS customer_id
FROM erp.address a
JOIN erp.customer c ON c.id = a.customer_id;
