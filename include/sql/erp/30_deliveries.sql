-- Reference back office, part 3: what each delivery note shipped, what was cancelled of an
-- order before it was shipped, and the customer's language (for the notices).
--
-- An order shipped in several parcels has one delivery note per parcel (erp.delivery_note,
-- part 2), each with its lines here: which order line, how many. An order is shipped once every
-- line's shipped quantity (its notes' lines) and cancelled quantity cover what was ordered;
-- until then it is partly shipped (passerelle_src.order_status and passerelle_src.delivery).

CREATE TABLE IF NOT EXISTS erp.delivery_note_line (
    delivery_note_id  integer NOT NULL REFERENCES erp.delivery_note (id) ON DELETE CASCADE,
    order_id          integer NOT NULL,
    line_number       integer NOT NULL,                     -- the order line shipped
    quantity          numeric(12, 3) NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (delivery_note_id, line_number),
    FOREIGN KEY (order_id, line_number) REFERENCES erp.sales_order_line (order_id, line_number)
);
CREATE INDEX IF NOT EXISTS delivery_note_line_order_idx ON erp.delivery_note_line (order_id);

-- What remains of an order line and will not be shipped (out of stock for good, the customer
-- gave up): the order is then complete with what was shipped ("remainder cancelled").
CREATE TABLE IF NOT EXISTS erp.order_line_cancellation (
    order_id      integer NOT NULL,
    line_number   integer NOT NULL,
    quantity      numeric(12, 3) NOT NULL CHECK (quantity > 0),
    cancelled_at  timestamptz NOT NULL DEFAULT now(),
    reason        text,
    PRIMARY KEY (order_id, line_number),
    FOREIGN KEY (order_id, line_number) REFERENCES erp.sales_order_line (order_id, line_number) ON DELETE CASCADE
);

-- The language the customer reads (ISO 639-1, e.g. "fr", "en"); NULL: the notices' default.
ALTER TABLE erp.customer ADD COLUMN IF NOT EXISTS language char(2);
