-- Reference back office, part 2: orders (web and counter), their lines, discounts and
-- payments, status history, delivery notes, invoices and reorder proposals.

CREATE TABLE IF NOT EXISTS erp.sales_order (
    id                serial PRIMARY KEY,
    number            text NOT NULL UNIQUE,                 -- back-office order number
    kind              text NOT NULL DEFAULT 'order' CHECK (kind IN ('order', 'quote')),
    origin            text NOT NULL DEFAULT 'store' CHECK (origin IN ('web', 'store', 'phone')),
    shop_order_id     text UNIQUE,                          -- the shop's id, for web orders
    customer_id       integer NOT NULL REFERENCES erp.customer (id),
    order_date        timestamptz NOT NULL,
    status            text NOT NULL DEFAULT 'confirmed'
                      CHECK (status IN ('quote', 'confirmed', 'prepared', 'shipped', 'invoiced', 'cancelled')),
    currency          char(3) NOT NULL DEFAULT 'EUR',
    shipping_excl_vat numeric(12, 4) NOT NULL DEFAULT 0,
    shipping_vat_rate numeric(5, 2) NOT NULL DEFAULT 20,
    total_excl_vat    numeric(12, 4) NOT NULL DEFAULT 0,
    total_vat         numeric(12, 4) NOT NULL DEFAULT 0,
    total_incl_vat    numeric(12, 4) NOT NULL DEFAULT 0,
    billing_name      text, billing_line1 text, billing_line2 text, billing_postcode text, billing_city text,
    billing_country   char(2),
    delivery_name     text, delivery_line1 text, delivery_line2 text, delivery_postcode text, delivery_city text,
    delivery_country  char(2),
    carrier           text,
    tracking_number   text,
    note              text,
    billing_company   text, billing_region text, billing_phone text,
    delivery_company  text, delivery_region text, delivery_phone text,
    vat_disagreement  text,                                 -- the shop's VAT differs from the articles' (web orders)
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS sales_order_customer_idx ON erp.sales_order (customer_id);
-- Web orders not shipped yet, those the shop's stock counts out (passerelle_src.open_web_order) and
-- the reorder rule reads: through this index each stock send costs as much as the open orders, not
-- as the years of shipped ones (tests/core/test_plans.py).
CREATE INDEX IF NOT EXISTS sales_order_open_web ON erp.sales_order (id)
    WHERE origin = 'web' AND kind = 'order' AND status IN ('awaiting_payment', 'confirmed', 'prepared');

CREATE TABLE IF NOT EXISTS erp.sales_order_line (
    order_id          integer NOT NULL REFERENCES erp.sales_order (id) ON DELETE CASCADE,
    line_number       integer NOT NULL,
    article_id        integer NOT NULL REFERENCES erp.article (id),
    variant_id        integer REFERENCES erp.variant (id),
    label             text NOT NULL,
    quantity          numeric(12, 3) NOT NULL CHECK (quantity > 0),
    unit_price_excl_vat numeric(12, 4) NOT NULL,
    discount_excl_vat numeric(12, 4) NOT NULL DEFAULT 0,    -- line discount, total for the line
    vat_rate          numeric(5, 2) NOT NULL,
    shipped_qty       numeric(12, 3) NOT NULL DEFAULT 0,
    PRIMARY KEY (order_id, line_number)
);

CREATE TABLE IF NOT EXISTS erp.payment (
    id              serial PRIMARY KEY,
    order_id        integer NOT NULL REFERENCES erp.sales_order (id) ON DELETE CASCADE,
    method          text NOT NULL,                           -- card, paypal, transfer, cheque...
    amount          numeric(12, 4) NOT NULL,
    transaction_id  text,
    paid            boolean NOT NULL DEFAULT false,
    paid_at         timestamptz,
    UNIQUE (order_id, method, transaction_id)
);

-- Every status an order went through (the shop is told each change once).
CREATE TABLE IF NOT EXISTS erp.order_status_history (
    id          bigserial PRIMARY KEY,
    order_id    integer NOT NULL REFERENCES erp.sales_order (id) ON DELETE CASCADE,
    status      text NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION erp.log_order_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO erp.order_status_history (order_id, status) VALUES (NEW.id, NEW.status);
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS log_status ON erp.sales_order;
CREATE TRIGGER log_status AFTER INSERT OR UPDATE OF status ON erp.sales_order
    FOR EACH ROW EXECUTE FUNCTION erp.log_order_status();
DROP TRIGGER IF EXISTS touch ON erp.sales_order;
CREATE TRIGGER touch BEFORE UPDATE ON erp.sales_order FOR EACH ROW EXECUTE FUNCTION erp.touch_updated_at();

CREATE TABLE IF NOT EXISTS erp.delivery_note (
    id              serial PRIMARY KEY,
    number          text NOT NULL UNIQUE,
    order_id        integer NOT NULL REFERENCES erp.sales_order (id),
    shipped_at      timestamptz NOT NULL DEFAULT now(),
    carrier         text,
    tracking_number text
);

CREATE TABLE IF NOT EXISTS erp.invoice (
    id              serial PRIMARY KEY,
    number          text NOT NULL UNIQUE,
    order_id        integer NOT NULL REFERENCES erp.sales_order (id),
    invoice_date    date NOT NULL DEFAULT current_date,
    total_excl_vat  numeric(12, 4) NOT NULL,
    total_vat       numeric(12, 4) NOT NULL,
    total_incl_vat  numeric(12, 4) NOT NULL,
    pdf             bytea                                     -- when the back office keeps one
);

-- Reorder proposals made after integration, per supplier, for the buyer to validate.
CREATE TABLE IF NOT EXISTS erp.reorder_proposal (
    id            serial PRIMARY KEY,
    supplier_id   integer REFERENCES erp.supplier (id),
    article_id    integer NOT NULL REFERENCES erp.article (id),
    variant_id    integer REFERENCES erp.variant (id),
    projected_qty numeric(12, 3) NOT NULL,
    min_stock     numeric(12, 3) NOT NULL,
    proposed_qty  numeric(12, 3) NOT NULL,
    status        text NOT NULL DEFAULT 'proposed' CHECK (status IN ('proposed', 'ordered', 'dismissed')),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS reorder_open ON erp.reorder_proposal (article_id, coalesce(variant_id, 0))
    WHERE status = 'proposed';
