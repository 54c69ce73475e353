-- Reference back office, part 4: payments seen after the order (issue #14, item 4).
--
-- * An order integrated before its payment (bank transfer, cheque: the shop's statuses in
--   inbound.awaiting_payment) waits in the status 'awaiting_payment'; the file saying it is paid
--   completes its payment and makes it 'confirmed', once (core/integrate/writes.py).
-- * A refund in the shop never changes the order: it becomes a credit note request here, for the
--   staff to issue the credit note (or refuse it).

-- 'awaiting_payment' added to the order statuses, keeping whatever values the constraint holds
-- (another part may have added its own): idempotent, and whatever the order the files run in.
DO $$
DECLARE
    vals text[];
BEGIN
    SELECT array_agg(m[1]) INTO vals
      FROM pg_constraint c, regexp_matches(pg_get_constraintdef(c.oid), '''([^'']+)''', 'g') AS m
     WHERE c.conrelid = 'erp.sales_order'::regclass AND c.conname = 'sales_order_status_check';
    IF vals IS NULL OR NOT 'awaiting_payment' = ANY (vals) THEN
        ALTER TABLE erp.sales_order DROP CONSTRAINT IF EXISTS sales_order_status_check;
        vals := coalesce(vals, ARRAY['quote', 'confirmed', 'prepared', 'shipped', 'invoiced', 'cancelled'])
                || ARRAY['awaiting_payment'];
        EXECUTE format('ALTER TABLE erp.sales_order ADD CONSTRAINT sales_order_status_check CHECK (status IN (%s))',
                       (SELECT string_agg(quote_literal(v), ', ') FROM unnest(vals) AS v));
    END IF;
END $$;

-- A refund the shop made, waiting for the back office's credit note. One row per refund seen:
-- "refunded_total" is the shop's cumulative refunded amount when it was seen, "amount" what it
-- adds to the requests before it (a second partial refund asks for the difference only).
CREATE TABLE IF NOT EXISTS erp.credit_note_request (
    id              serial PRIMARY KEY,
    order_id        integer NOT NULL REFERENCES erp.sales_order (id) ON DELETE CASCADE,
    amount          numeric(12, 4) NOT NULL CHECK (amount > 0),   -- incl. VAT, the order's currency
    refunded_total  numeric(12, 4) NOT NULL,
    reason          text NOT NULL,
    shop_status     text,                                         -- the shop's own status in the file
    source_file     text NOT NULL,                                -- the inbound file that said so
    status          text NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'issued', 'refused')),
    requested_at    timestamptz NOT NULL DEFAULT now(),
    handled_at      timestamptz,
    note            text,
    UNIQUE (order_id, refunded_total)
);
-- Who answered the request from the Passerelle view (issued or refused, with handled_at and note).
ALTER TABLE erp.credit_note_request ADD COLUMN IF NOT EXISTS handled_by text;
CREATE INDEX IF NOT EXISTS credit_note_request_open_idx ON erp.credit_note_request (status) WHERE status = 'requested';
