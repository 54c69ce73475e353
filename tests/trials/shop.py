"""Helpers the trials share: a shop's order files, the connections' environment, what the shop sees."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

HEADER = (
    "shop_order_id,order_date,status,shop_customer_id,email,currency,line_number,sku,label,quantity,"
    "unit_price_excl_vat,vat_rate,line_discount_excl_vat,payment_method,payment_amount,payment_paid,"
    "billing_first_name,billing_last_name,billing_address1,billing_postcode,billing_city,billing_country"
)


def orders_file(
    prefix: str, n: int, rng: random.Random, *, unknown: int = 1, pending: int = 1, lines: int = 3
) -> tuple[bytes, dict[str, int]]:
    """``n`` orders of 1 to ``lines`` lines; ``unknown`` of them with an unknown SKU (quarantined
    whole), ``pending`` of them not paid (ignored). Returns the bytes and, per order the back office
    must hold, its number of lines."""
    rows, expected = [HEADER], {}
    special = rng.sample(range(n), unknown + pending)
    for i in range(n):
        oid = f"{prefix}-{i:04d}"
        status = "pending" if i in special[unknown:] else "paid"
        k = rng.randint(1, lines)
        total = 0.0
        body = []
        for ln in range(1, k + 1):
            sku = "NO-SUCH-SKU" if i in special[:unknown] and ln == k else f"ART-{rng.randint(1, 200):06d}"
            qty, price = rng.randint(1, 5), rng.randint(100, 9999) / 100
            total += round(qty * price * 1.2, 2)
            body.append((ln, sku, qty, price))
        for ln, sku, qty, price in body:
            rows.append(
                f"{oid},2026-11-20T08:00:00+01:00,{status},{9000 + i % 13},c{i % 13}@exemple.fr,EUR,{ln},"
                f"{sku},Article {ln},{qty},{price:.2f},20,0,card,{total:.2f},1,Ana,Test,1 rue Haute,75001,"
                "Paris,FR"
            )
        if status == "paid" and i not in special[:unknown]:
            expected[oid] = k
    return ("\n".join(rows) + "\n").encode(), expected


def connections_env(erp_dsn: str, ftp_uri: str, config: Path | None = None) -> dict[str, str]:
    env = {
        "AIRFLOW_CONN_PASSERELLE_ERP": erp_dsn.replace("postgresql://", "postgres://", 1),
        "AIRFLOW_CONN_PASSERELLE_SHOP": ftp_uri,
    }
    if config:
        env["PASSERELLE_CONFIG"] = str(config)
    return env


def import_config(folder: Path) -> Path:
    """The project's configuration with ``shop.inbound_settle_seconds`` at 0, for the rounds that
    kill or fault an import at a random moment: the files are written whole before the import starts,
    and the moments drawn should fall on its work (claim, download, integration, archive), not on
    its wait for files still growing (tests/flows/test_orders_import.py tests that wait)."""
    import yaml

    from passerelle import INCLUDE

    cfg = yaml.safe_load((INCLUDE / "config" / "passerelle.yaml").read_text(encoding="utf-8"))
    cfg["shop"] = {**cfg.get("shop", {}), "inbound_settle_seconds": 0}
    path = folder / "passerelle.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def outbox(conn, batch_id: int) -> dict[str, bytes]:
    rows = conn.execute("SELECT name, content FROM passerelle.outbox_file WHERE batch_id = %s", (batch_id,)).fetchall()
    conn.commit()
    return {name: bytes(content) for name, content in rows}


def published_state(conn, root: Path, flow: str) -> dict:
    """What the shop's server holds for a flow, checked against the outbox and the snapshot.

    ``partial``: files under their final name whose bytes are not the outbox's (a partial or
    foreign file), and manifests that are not JSON or list other files; ``ahead``: batches the
    snapshot holds (or calls confirmed) whose manifest is not on the server; ``folders``: batch id
    -> folders holding it.
    """
    from passerelle.core.batches import batch_folder

    base = root / "outbound" / flow
    partial, folders = [], {}
    for folder in sorted(p for p in base.glob("*") if p.is_dir()) if base.exists() else []:
        batch_id = int(folder.name.split("-", 1)[0])
        folders.setdefault(batch_id, []).append(folder.name)
        expected = outbox(conn, batch_id)
        for f in folder.iterdir():
            if f.name.endswith(".part"):
                continue
            data = f.read_bytes()
            if f.name == "manifest.json":
                try:
                    listed = {x["name"]: x["sha256"] for x in json.loads(data)["files"]}
                except (ValueError, KeyError, TypeError):
                    partial.append(f"{folder.name}/{f.name}: not a whole manifest")
                    continue
                if listed != {n: sha(b) for n, b in expected.items()}:
                    partial.append(f"{folder.name}/{f.name}: lists other files than the outbox")
            elif expected.get(f.name) != data:
                partial.append(f"{folder.name}/{f.name}: {len(data)} bytes, not the outbox's")
    ahead = []
    rows = conn.execute(
        "SELECT DISTINCT s.batch_id, b.run_key FROM passerelle.snapshot s JOIN passerelle.batch b "
        "ON b.id = s.batch_id WHERE b.flow = %s UNION SELECT id, run_key FROM passerelle.batch "
        "WHERE flow = %s AND status = 'confirmed'",
        (flow, flow),
    ).fetchall()
    conn.commit()
    for batch_id, run_key in rows:
        if not (base / batch_folder(batch_id, run_key) / "manifest.json").exists():
            ahead.append(batch_id)
    return {"partial": partial, "ahead": sorted(set(ahead)), "folders": folders}
