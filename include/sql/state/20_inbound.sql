-- Inbound flow (orders_in): what the shop dropped, what it became, and what was set aside.
-- Exactly once: a file is known by its sha256 (whatever its name), an order by the shop's id.

CREATE SCHEMA IF NOT EXISTS passerelle;

-- One row per distinct file content integrated (or being integrated: the row is written in
-- the file's transaction, so a crash leaves no row). integrated -> archived once moved away.
CREATE TABLE IF NOT EXISTS passerelle.inbound_file (
    id             bigserial PRIMARY KEY,
    name           text NOT NULL,
    size           bigint NOT NULL,
    sha256         text NOT NULL UNIQUE,
    kind           text NOT NULL,                 -- orders, customers, shopify_orders, replay
    status         text NOT NULL CHECK (status IN ('integrated', 'archived')),
    header         text,                          -- decoded header, to replay quarantined rows
    delimiter      text,
    decimal        text,
    counts         jsonb NOT NULL DEFAULT '{}',
    received_at    timestamptz NOT NULL DEFAULT now(),
    integrated_at  timestamptz NOT NULL DEFAULT now(),
    archived_at    timestamptz,
    archived_as    text
);

-- One row per shop order the back office holds: the shop's id can only be integrated once.
CREATE TABLE IF NOT EXISTS passerelle.order_ledger (
    shop_order_id  text PRIMARY KEY,
    order_id       integer NOT NULL,
    kind           text NOT NULL,                 -- order or quote
    file_id        bigint REFERENCES passerelle.inbound_file (id),
    integrated_at  timestamptz NOT NULL DEFAULT now()
);

-- The shop's customer id of a back-office customer (the back office has no column for it).
CREATE TABLE IF NOT EXISTS passerelle.customer_link (
    shop_customer_id  text PRIMARY KEY,
    customer_id       integer NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS customer_link_customer_idx ON passerelle.customer_link (customer_id);

-- Rows set aside: file, physical line (header is line 1), field, value, reason, raw text.
-- open -> replayed (integrated by a replay) or resolved (closed by hand).
CREATE TABLE IF NOT EXISTS passerelle.quarantine (
    id             bigserial PRIMARY KEY,
    file_id        bigint REFERENCES passerelle.inbound_file (id),
    file           text NOT NULL,
    line           integer NOT NULL,
    field          text,
    value          text,
    reason         text NOT NULL,
    raw            text,
    shop_order_id  text,
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'replayed', 'resolved')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    replayed_at    timestamptz
);
CREATE INDEX IF NOT EXISTS quarantine_open_idx ON passerelle.quarantine (file_id, line) WHERE status = 'open';
