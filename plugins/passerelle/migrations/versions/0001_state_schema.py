"""The state schema as it was before migrations: include/sql/state/*.sql of release 0.1.0.

Revision ID: 0001
Revises:
Create Date: 2026-12-01

The statements are those files' own, kept verbatim (``IF NOT EXISTS`` included), so a fresh
database gets exactly the schema earlier releases created. An installation made before
migrations has these tables but no version table: ``passerelle.migrate`` checks their columns
against ``TABLES`` and stamps it at 0001 instead of running this.
"""

from __future__ import annotations

from passerelle.migrate import forward_only, run_statements

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: The columns of every table of this revision: how ``passerelle.migrate`` recognises an
#: installation made before migrations (tests/test_migrations.py checks it against the database).
TABLES: dict[str, tuple[str, ...]] = {
    "snapshot": ("entity", "key", "hash", "label", "batch_id"),
    "batch": (
        "id",
        "flow",
        "run_key",
        "mode",
        "status",
        "entities",
        "counts",
        "manifest",
        "created_at",
        "published_at",
        "confirmed_at",
    ),
    "batch_row": ("batch_id", "entity", "key", "hash", "label", "op"),
    "outbox_file": ("batch_id", "position", "name", "entity", "rows", "bytes", "sha256", "content"),
    "outbound_reject": ("batch_id", "entity", "key", "field", "value", "reason"),
    "run_summary": (
        "id",
        "flow",
        "dag_run_id",
        "run_key",
        "mode",
        "dry_run",
        "counts",
        "rejects",
        "bytes_sent",
        "bytes_received",
        "started_at",
        "finished_at",
    ),
    "inbound_file": (
        "id",
        "name",
        "size",
        "sha256",
        "kind",
        "status",
        "header",
        "delimiter",
        "decimal",
        "counts",
        "received_at",
        "integrated_at",
        "archived_at",
        "archived_as",
    ),
    "order_ledger": ("shop_order_id", "order_id", "kind", "file_id", "integrated_at"),
    "customer_link": ("shop_customer_id", "customer_id", "updated_at"),
    "quarantine": (
        "id",
        "file_id",
        "file",
        "line",
        "field",
        "value",
        "reason",
        "raw",
        "shop_order_id",
        "status",
        "created_at",
        "replayed_at",
    ),
    "image_snapshot": (
        "reference",
        "position",
        "key",
        "source_hash",
        "path",
        "stat_signature",
        "names",
        "settings",
        "updated_at",
    ),
}

STATE_SQL = """
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

-- What renders the shop holds: one row per photo slot (reference, position) last uploaded.
-- source_hash is the hash of the source those renders were made from; settings the
-- fingerprint of the rendering settings (passerelle.core.images.ImageSettings.fingerprint):
-- a row made with other settings is rendered again. path and stat_signature let
-- fingerprint_files skip re-reading unchanged file sources; names are the files on the server
-- (deleted when the photo leaves the back office).
CREATE TABLE IF NOT EXISTS passerelle.image_snapshot (
    reference       text NOT NULL,
    position        integer NOT NULL,
    key             text NOT NULL,
    source_hash     text NOT NULL,
    path            text,
    stat_signature  text,
    names           text[] NOT NULL DEFAULT '{}',
    settings        text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (reference, position)
);
"""


def statements(sql: str = STATE_SQL) -> list[str]:
    """The statements of ``sql`` one by one (no function bodies here, so ``;`` at a line's end ends one)."""
    out, current = [], []
    for line in sql.splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            out.append("\n".join(current).strip())
            current = []
    if "\n".join(current).strip(" \n-"):
        raise ValueError("STATE_SQL ends without a ';'")
    return out


def upgrade() -> None:
    run_statements(statements())


downgrade = forward_only
