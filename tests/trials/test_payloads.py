"""CSV formula and HTML payloads in every text field the shop receives, for every dialect, and
credentials that must never reach a log, an XCom or an exception (issue #12).

The back office gets payloads in every text column that feeds an outbound file (articles,
variants, families, brands, suppliers, the carrier and tracking number of orders); each dialect
builds its catalog, prices/stock and order-status files from it. In every file:

* no ``<script``, no ``onerror``/``onload`` handler, no ``javascript:`` URL (rich text is sanitised; a
  plain-text cell holding markup must not reach the shop either);
* formulas as docs/formats/generic.md says: files read by an importer carry values as written
  (``=HYPERLINK(...)`` stays, no ``'`` added); files a person opens (the inbound rejects file) get
  the ``'`` prefix.
"""

from __future__ import annotations

import re
from pathlib import Path

import pendulum
import psycopg
import pytest
from tests.trials.record import record

from passerelle import INCLUDE

HTML = [
    '<script>alert("pwn")</script>',
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">lien</a>',
    "<svg onload=alert(1)>",
    '"><script src=//evil.example/x.js></script>',
    '<iframe src="javascript:alert(1)">',
    '<p onmouseover="alert(1)">survol</p>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
]
FORMULAS = [
    '=HYPERLINK("http://evil.example","x")',
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "=1+1",
]
#: Markup that must not reach any file (case-insensitive).
FORBIDDEN = re.compile(r"<script|\bon(error|load|mouseover)\s*=|javascript:|<iframe|<svg", re.IGNORECASE)
DIALECTS = ("generic", "prestashop", "woocommerce", "shopify")

#: Rich-text columns (sanitised HTML by design); the others are plain text.
RICH = {"short_description", "long_description", "description"}
#: (table, text columns, row filter): the back office's text that outbound files carry.
TEXT = {
    "erp.article": (
        ["name", "short_description", "long_description", "supplier_reference", "sales_unit"],
        "id IN (SELECT id FROM erp.article WHERE web ORDER BY id LIMIT 60)",
    ),
    "erp.variant": (["size", "colour"], "article_id IN (SELECT id FROM erp.article WHERE web ORDER BY id LIMIT 60)"),
    "erp.family": (["name"], "true"),
    "erp.brand": (["name", "description"], "true"),
    "erp.supplier": (["name", "address", "city"], "true"),
}


def tagged(payload: str, rich: bool) -> str:
    """The payload marked with where it went (``rt``: a rich-text column, ``pt``: plain text), so that a
    file's finding tells which kind of column let it through."""
    return payload.replace("alert(1)", f"alert('{'rt' if rich else 'pt'}')").replace(
        'alert("pwn")', f"alert('{'rt' if rich else 'pt'}')"
    )


def _poison(conn: psycopg.Connection) -> int:
    """Payloads into every listed column: the nth row gets the nth payload, HTML and formulas in turn
    (prefixed to the real value, so that names stay distinct)."""
    n = 0
    for table, (columns, where) in TEXT.items():
        for col in columns:
            payloads = [
                p for pair in zip([tagged(h, col in RICH) for h in HTML] * 2, FORMULAS * 4, strict=False) for p in pair
            ]
            n += conn.execute(
                f"UPDATE {table} t SET {col} = (%s::text[])[1 + (t.ctid::text::point)[1]::int %% %s] || ' ' || "
                f"coalesce(t.{col}, '') WHERE {where}",
                (payloads, len(payloads)),
            ).rowcount
    # Web orders shipped now (the status trigger writes their history): the order-status file carries
    # their carrier and tracking number.
    conn.execute(
        "UPDATE erp.sales_order SET carrier = %s, tracking_number = %s, status = 'shipped', origin = 'web', "
        "shop_order_id = coalesce(shop_order_id, 'PAY-' || id), updated_at = now() "
        "WHERE id IN (SELECT id FROM erp.sales_order WHERE kind = 'order' ORDER BY id LIMIT 20)",
        (tagged(HTML[0], False) + " " + FORMULAS[0], tagged(HTML[1], False)),
    )
    conn.commit()
    return n


def _build(conn: psycopg.Connection, dialect_name: str, flow: str, run_key: str) -> int | None:
    """A full build of ``flow`` for the dialect, as the build operators do it (the configuration's
    typed settings, the dialect chosen by name: the core takes every registered one)."""
    from passerelle.config import load_settings
    from passerelle.core.dialects import dialect, exchange_dialect
    from passerelle.core.differ import catalog_entities
    from passerelle.core.exchange import (
        build_exchange,
        catalog_settings,
        exchange_settings,
        order_status_entities,
        prices_stock_entities,
    )
    from passerelle.core.export import build_catalog
    from passerelle.core.photos import image_url_enricher

    settings = load_settings()
    if dialect_name == "shopify":  # the inventory file names the location whose stock it sets
        settings = settings.model_copy(update={"shopify": settings.shopify.model_copy(update={"location": "Lyon"})})
    day = pendulum.parse(run_key).date()
    if flow == "catalog":
        batch, _ = build_catalog(
            conn,
            flow=flow,
            run_key=run_key,
            entities=catalog_entities(settings.catalog.selection_rule, settings.catalog.entities),
            dialect=dialect(dialect_name, settings, as_of=day),
            mode="full",
            dry_run=False,
            rows_per_file=settings.shop.rows_per_file,
            enrich=image_url_enricher(settings),
            settings=catalog_settings(settings, day),
        )
    else:
        ex = exchange_dialect(dialect_name, settings, as_of=day)
        entities = (
            prices_stock_entities(
                settings.catalog.selection_rule,
                variant_display=settings.stock.variant_display,
                filter_variants=ex.filters_variant_display,
            )
            if flow == "prices_stock"
            else order_status_entities(None)
        )
        batch, _ = build_exchange(
            conn,
            flow=flow,
            run_key=run_key,
            entities=entities,
            dialect=ex,
            settings=exchange_settings(settings, day),
            mode="full",
            dry_run=False,
            rows_per_file=settings.shop.rows_per_file,
        )
    conn.commit()
    return batch.id


def _text(data: bytes) -> str:
    for codec in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


@pytest.fixture(scope="module")
def payload_run(pg_server, erp_template):
    """One run over every dialect, on a back office of its own, shared by the checks below."""
    from tests.trials.test_fuzz import _back_office

    for dsn in _back_office(pg_server, erp_template):
        return _payload_run(dsn)


def _payload_run(erp_dsn: str) -> dict:
    with psycopg.connect(erp_dsn) as conn:
        poisoned = _poison(conn)
    found, plain, formulas, files, formulas_kept, built = [], [], [], 0, {}, {}
    for i, name in enumerate(DIALECTS):
        run_key = pendulum.datetime(2026, 11, 20, 10 + i, tz="Europe/Paris").isoformat()
        with psycopg.connect(erp_dsn) as conn:
            batches = [_build(conn, name, flow, run_key) for flow in ("catalog", "prices_stock", "order_status")]
            rows = conn.execute(
                "SELECT b.flow, f.name, f.content FROM passerelle.outbox_file f JOIN "
                "passerelle.batch b ON b.id = f.batch_id WHERE b.id = ANY(%s)",
                ([b for b in batches if b],),
            ).fetchall()
            built[name] = sorted({r[0] for r in rows})
        kept = 0
        for flow, fname, content in rows:
            if fname.endswith(".pdf"):
                continue
            files += 1
            text = _text(bytes(content))
            for m in FORBIDDEN.finditer(text):
                where = text[max(0, m.start() - 40) : m.end() + 30]
                kind = "rich" if "'rt'" in where else "plain"
                (found if kind == "rich" else plain).append(f"{name} {flow}/{fname}: {where!r}")
            for f in FORMULAS:
                if "'" + f in text:
                    formulas.append(f"{name} {flow}/{fname}: formula neutralised in a file an importer reads: '{f}")
                kept += text.count(f)
        formulas_kept[name] = kept
        if not kept:
            formulas.append(f"{name}: no formula payload reached its files as written (names are data)")
    record(
        "payloads: formulas in every text field, every dialect (written as they are)",
        "ok" if not formulas else "; ".join(formulas[:4])[:600],
        poisoned_cells=poisoned,
        files_checked=files,
        flows_built=" ".join(f"{k}:{'+'.join(v)}" for k, v in built.items()),
        **{f"formulas_as_written_{k}": v for k, v in formulas_kept.items()},
    )
    record(
        "payloads: HTML in rich text (descriptions), every dialect",
        "ok" if not found else f"{len(found)} unsanitised: " + "; ".join(found[:3])[:600],
        findings=len(found),
    )
    by_dialect = {d: sum(1 for p in plain if p.startswith(d + " ")) for d in DIALECTS}
    record(
        "payloads: HTML in plain-text cells (names, sizes, cities...), every dialect",
        "ok" if not plain else f"markup written as it is in {len(plain)} places, e.g. " + plain[0][:200],
        findings=len(plain),
        **{f"in_{k}": v for k, v in by_dialect.items()},
    )
    return {"rich": found, "plain": plain, "formulas": formulas, "files": files}


def test_formulas_reach_the_importers_as_written_in_every_dialect(payload_run):
    assert payload_run["files"] > 0
    assert payload_run["formulas"] == []


def test_rich_text_is_sanitised_in_every_dialect(payload_run):
    assert payload_run["rich"] == [], payload_run["rich"][:10]


def test_no_markup_in_plain_text_cells_either(payload_run):
    assert payload_run["plain"] == [], payload_run["plain"][:10]


def test_formulas_are_neutralised_in_the_rejects_file_a_person_opens():
    import pandas as pd

    from passerelle.core.inbound import REJECT_COLUMNS, rejects_csv

    rows = [
        {"file": f, "line": 2, "field": "label", "value": f, "reason": "unknown SKU", "raw": f, "shop_order_id": "W1"}
        for f in FORMULAS
    ]
    text = rejects_csv(pd.DataFrame(rows, columns=REJECT_COLUMNS)).decode("utf-8-sig")
    cells = [c for line in text.splitlines()[1:] for c in re.split(r";(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", line)]
    risky = [c for c in cells if c.lstrip('"')[:1] in ("=", "+", "-", "@")]
    record("payloads: formulas in the inbound rejects file", "ok" if not risky else f"not neutralised: {risky[:3]}")
    assert risky == [] and text.count("'=HYPERLINK") == 3


def test_credentials_never_in_logs_xcom_or_exceptions(
    monkeypatch, airflow_db, erp_dsn, ftp_shop, tmp_path, capfd, caplog
):
    """orders_in with passwords in both connections (PostgreSQL trusts loopback, so the back office's
    password is carried but not checked; the shop's is the server's real one), then the import against
    a wrong FTP password: neither password appears in the captured output, the log records, the log
    files, Airflow's XCom table or the exception."""
    import logging
    import os
    import secrets
    import shutil
    import sqlite3
    import traceback

    import yaml

    from passerelle.flows.orders import orders_in_dag
    from passerelle.operators.inbound import ImportOrdersOperator

    caplog.set_level(logging.DEBUG)
    erp_secret = "Erp-" + secrets.token_urlsafe(12)
    ftp_secret = ftp_shop.password
    cfg = yaml.safe_load((INCLUDE / "config" / "passerelle.yaml").read_text(encoding="utf-8"))
    cfg["shop"].update(
        inbound_dir="/shop/inbound",
        archive_dir="/shop/inbound/archive",
        errors_dir="/shop/errors",
        outbound_dir="/shop/outbound",
    )
    config = tmp_path / "passerelle.yaml"
    config.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("PASSERELLE_CONFIG", str(config))
    inbound = ftp_shop.make_folder("/shop/inbound")
    shutil.copy(INCLUDE / "sample" / "inbound" / "orders_20261120_0900.csv", inbound / "orders.csv")
    monkeypatch.setenv(
        "AIRFLOW_CONN_PASSERELLE_ERP",
        erp_dsn.replace("postgresql://postgres@", f"postgres://postgres:{erp_secret}@", 1),
    )
    monkeypatch.setenv("AIRFLOW_CONN_PASSERELLE_SHOP", ftp_shop.connection())

    dr = orders_in_dag().test(logical_date=pendulum.datetime(2026, 11, 20, 10, tz="Europe/Paris"))
    assert dr.state == "success"
    assert not (inbound / "orders.csv").exists()  # the run really logged in and imported

    monkeypatch.setenv("AIRFLOW_CONN_PASSERELLE_SHOP", ftp_shop.connection(password=ftp_secret + "x"))
    with pytest.raises(Exception) as refused:  # a refused login: the exception and its log
        ImportOrdersOperator(task_id="import_files").execute({})

    out, err = capfd.readouterr()
    texts = {
        "stdout/stderr": out + err,
        "log records": "\n".join(r.getMessage() for r in caplog.records),
        "exception": "".join(traceback.format_exception(refused.value)),
    }
    with sqlite3.connect(airflow_db.removeprefix("sqlite:///")) as db:
        texts["xcom"] = "\n".join(str(r) for r in db.execute("SELECT * FROM xcom"))
    home = Path(os.environ["AIRFLOW_HOME"])
    texts["log files"] = "\n".join(p.read_text(errors="replace") for p in home.rglob("*.log"))
    leaks = [
        f"{where}: {secret[:4]}..."
        for where, text in texts.items()
        for secret in (ftp_secret, erp_secret)
        if secret in text
    ]
    record(
        "credentials: passwords in both connections, a refused login",
        "ok" if not leaks else "leaked in " + ", ".join(leaks),
        leaks=len(leaks),
        refused_with=str(refused.value)[:160],
    )
    assert "orders.csv" in texts["xcom"], "the run pushed no XCom to search"
    assert leaks == []
