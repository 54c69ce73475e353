-- Passerelle's own state, in schema passerelle beside the back office (or in its own database).

CREATE SCHEMA IF NOT EXISTS passerelle;

-- What the shop last received and confirmed: one content hash per exported row.
CREATE TABLE IF NOT EXISTS passerelle.snapshot (
    entity    text NOT NULL,
    key       text NOT NULL,
    hash      text NOT NULL,
    label     text,                       -- what names a removed row to the shop (see differ)
    batch_id  bigint NOT NULL,
    PRIMARY KEY (entity, key)
);

-- One outbound send: a flow's delta (or full send) for one logical date or run.
-- built -> published -> confirmed; a built batch never confirmed is superseded by the next.
CREATE TABLE IF NOT EXISTS passerelle.batch (
    id            bigserial PRIMARY KEY,
    flow          text NOT NULL,
    run_key       text NOT NULL,          -- logical date (ISO) or, without one, the run id
    mode          text NOT NULL CHECK (mode IN ('full', 'delta')),
    status        text NOT NULL CHECK (status IN ('built', 'published', 'confirmed', 'superseded', 'dry_run')),
    entities      text[] NOT NULL,
    counts        jsonb NOT NULL DEFAULT '{}',
    manifest      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    confirmed_at  timestamptz,
    UNIQUE (flow, run_key)
);

-- The rows of a batch: key, hash and operation (C created, U changed, D removed).
CREATE TABLE IF NOT EXISTS passerelle.batch_row (
    batch_id  bigint NOT NULL REFERENCES passerelle.batch (id) ON DELETE CASCADE,
    entity    text NOT NULL,
    key       text NOT NULL,
    hash      text,
    label     text,
    op        char(1) NOT NULL CHECK (op IN ('C', 'U', 'D')),
    PRIMARY KEY (batch_id, entity, key)
);

-- The files a batch publishes, kept so that a rerun of the same logical date republishes
-- exactly the same bytes, and so that no local file passes from one task to the next.
CREATE TABLE IF NOT EXISTS passerelle.outbox_file (
    batch_id  bigint NOT NULL REFERENCES passerelle.batch (id) ON DELETE CASCADE,
    position  integer NOT NULL,           -- publishing order: the shop imports in this order
    name      text NOT NULL,
    entity    text NOT NULL,
    rows      integer NOT NULL,
    bytes     bigint NOT NULL,
    sha256    text NOT NULL,
    content   bytea NOT NULL,
    PRIMARY KEY (batch_id, name)
);

-- Outbound rows refused (a value the shop cannot take), with the reason.
CREATE TABLE IF NOT EXISTS passerelle.outbound_reject (
    batch_id  bigint NOT NULL REFERENCES passerelle.batch (id) ON DELETE CASCADE,
    entity    text NOT NULL,
    key       text NOT NULL,
    field     text NOT NULL,
    value     text,
    reason    text NOT NULL
);

-- One line per finished flow run: what it did, for the UI, the report and the staff.
CREATE TABLE IF NOT EXISTS passerelle.run_summary (
    id          bigserial PRIMARY KEY,
    flow        text NOT NULL,
    dag_run_id  text NOT NULL,
    run_key     text NOT NULL,
    mode        text,
    dry_run     boolean NOT NULL DEFAULT false,
    counts      jsonb NOT NULL DEFAULT '{}',
    rejects     integer NOT NULL DEFAULT 0,
    bytes_sent  bigint NOT NULL DEFAULT 0,
    bytes_received bigint NOT NULL DEFAULT 0,
    started_at  timestamptz,
    finished_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (flow, dag_run_id)
);
