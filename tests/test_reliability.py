"""Issue #12, the fixes outside the file server: a quote later paid keeps its payment, customers keep
their latest order's address and are matched by one e-mail normalisation, HTML is sanitised in every
dialect, a rerun of an old run never publishes a superseded batch, and publishing keeps the shop's
folders tidy. Against a real PostgreSQL (a seeded back office per test) and a real FTP server."""

from __future__ import annotations

import json
import os
import time

import pendulum
import pytest
import yaml

from passerelle import INCLUDE

HEADER = (
    "shop_order_id,order_date,status,shop_customer_id,email,currency,line_number,sku,label,quantity,"
    "unit_price_excl_vat,vat_rate,line_discount_excl_vat,payment_method,payment_amount,payment_paid,"
    "billing_first_name,billing_last_name,billing_address1,billing_postcode,billing_city,billing_country"
)


def _file(*rows: str) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def _row(
    order: str,
    *,
    status: str = "paid",
    date: str = "2026-11-20T08:00:00+01:00",
    customer: str = "9100",
    email: str = "ana@exemple.fr",
    payment: str = "card,24.00,1",
    address: str = "1 rue Haute",
) -> str:
    return (
        f"{order},{date},{status},{customer},{email},EUR,1,ART-000001,Article,2,10.00,20,0,{payment},"
        f"Ana,Test,{address},75001,Paris,FR"
    )


# -- a quote later reported paid ----------------------------------------------------------------------
def test_a_quote_later_reported_paid_keeps_its_payment_counted_once(erp):
    from passerelle.core.integrate import integrate_file

    quote = integrate_file(erp, "q.csv", _file(_row("Q00001", status="quote", payment=",,")))
    assert quote.counts["quotes_created"] == 1 and quote.counts["payments_created"] == 0
    paid = integrate_file(erp, "p.csv", _file(_row("Q00001", payment="card,24.00,1")))
    assert paid.counts["quotes_confirmed"] == 1
    assert paid.counts["orders_already_integrated"] == 0  # counted once: as a confirmed quote
    assert paid.counts["payments_created"] == 1
    order = erp.execute("SELECT id, kind, status FROM erp.sales_order WHERE shop_order_id = 'Q00001'").fetchone()
    assert order[1:] == ("order", "confirmed")
    assert erp.execute("SELECT method, amount, paid FROM erp.payment WHERE order_id = %s", (order[0],)).fetchall() == [
        ("card", 24, True)
    ]
    erp.commit()
    again = integrate_file(erp, "p2.csv", _file(_row("Q00001", payment="card,24.00,1"), ""))
    assert again.counts["quotes_confirmed"] == 0 and again.counts["payments_created"] == 0
    assert erp.execute("SELECT count(*) FROM erp.payment WHERE order_id = %s", (order[0],)).fetchone()[0] == 1


def test_an_unpaid_payment_of_a_quote_is_completed_not_doubled(erp):
    from passerelle.core.integrate import integrate_file

    integrate_file(erp, "q.csv", _file(_row("Q00002", status="quote", payment="transfer,24.00,0")))
    order_id = erp.execute("SELECT id FROM erp.sales_order WHERE shop_order_id = 'Q00002'").fetchone()[0]
    assert erp.execute("SELECT paid FROM erp.payment WHERE order_id = %s", (order_id,)).fetchall() == [(False,)]
    erp.commit()
    paid = integrate_file(erp, "p.csv", _file(_row("Q00002", payment="transfer,24.00,1")))
    assert paid.counts["quotes_confirmed"] == 1 and paid.counts["payments_completed"] == 1
    assert erp.execute("SELECT method, paid FROM erp.payment WHERE order_id = %s", (order_id,)).fetchall() == [
        ("transfer", True)
    ]


# -- customers ----------------------------------------------------------------------------------------
def test_the_address_kept_is_the_latest_orders_not_the_files_last_line(erp):
    from passerelle.core.integrate import integrate_file

    integrate_file(
        erp,
        "a.csv",
        _file(
            _row(
                "A00002",
                date="2026-11-21T09:00:00+01:00",
                customer="9200",
                email="bea@exemple.fr",
                address="2 rue Neuve",
            ),
            _row(
                "A00001",
                date="2026-11-20T09:00:00+01:00",
                customer="9200",
                email="bea@exemple.fr",
                address="1 rue Vieille",
            ),
        ),
    )
    assert erp.execute(
        "SELECT a.line1 FROM erp.address a JOIN passerelle.customer_link l ON l.customer_id = a.customer_id "
        "WHERE l.shop_customer_id = '9200' AND a.kind = 'billing'"
    ).fetchall() == [("2 rue Neuve",)]


EMAILS = [
    "ΟΔΟΣ@exemple.gr",
    "Ὀδυσσεύς.ΣΟΦΟΣ@exemple.gr",
    "İNCİ@exemple.tr",
    "İnci.I\u0307@exemple.tr",
    "Jean.DUPONT@Exemple.FR",
    "straße@exemple.de",
    "ǅemal@exemple.ba",
    "  Ana@exemple.fr",
]


def test_email_key_is_the_same_in_python_and_postgresql(erp):
    from passerelle.core.emails import email_key, email_key_sql

    for value in EMAILS:
        in_sql = erp.execute(f"SELECT {email_key_sql('%s::text')}", (value,)).fetchone()[0]
        assert in_sql == email_key(value), value
    assert email_key("ΟΔΟΣ@x.gr") == email_key("οδοσ@x.gr") == email_key("οδος@x.gr")
    assert email_key("İNCİ@x.tr") == email_key("inci@x.tr")


@pytest.mark.parametrize(
    "back_office, in_file",
    [
        ("ΟΔΟΣ@exemple.gr", "ΟΔΟΣ@exemple.gr"),  # final sigma: Python ς, PostgreSQL σ
        ("İNCİ@exemple.tr", "İnci@exemple.tr"),  # dotted capital I: Python i + dot, PostgreSQL i
    ],
)
def test_an_email_whose_lower_case_differs_between_python_and_postgresql_matches_one_customer(
    erp, back_office, in_file
):
    from passerelle.core.integrate import integrate_file

    customer_id = erp.execute(
        "INSERT INTO erp.customer (code, email, first_name, last_name) "
        "VALUES ('T-INTL', %s, 'Test', 'Intl') RETURNING id",
        (back_office,),
    ).fetchone()[0]
    erp.commit()
    before = erp.execute("SELECT count(*) FROM erp.customer").fetchone()[0]
    erp.commit()
    result = integrate_file(erp, "e.csv", _file(_row("E00001", customer="9300", email=in_file)))
    assert result.counts["orders_created"] == 1 and result.counts["customers_created"] == 0
    assert erp.execute("SELECT count(*) FROM erp.customer").fetchone()[0] == before
    assert (
        erp.execute("SELECT customer_id FROM erp.sales_order WHERE shop_order_id = 'E00001'").fetchone()[0]
        == customer_id
    )
    assert (
        erp.execute("SELECT customer_id FROM passerelle.customer_link WHERE shop_customer_id = '9300'").fetchone()[0]
        == customer_id
    )


# -- HTML in every dialect ----------------------------------------------------------------------------
PAYLOADS = [
    '<script>alert("x")</script>',
    '<img src=x onerror="alert(1)">',
    '<a href="javascript:alert(1)">lien</a>',
    '<p onclick="alert(1)">clic</p>',
    "<svg onload=alert(1)>",
    '<a href="JaVaScRiPt:alert(1)">x</a>',
]
FORBIDDEN = ("<script", "onerror", "javascript:", "onclick", "onload")


def _every_dialect() -> dict:
    """Every catalog dialect of the package: the registered ones, and every Dialect class of its shop
    modules (a dialect not registered yet is still tested)."""
    import importlib
    import inspect
    import pkgutil

    import passerelle.core.dialects as package
    from passerelle.core.dialects import dialect, names
    from passerelle.core.dialects.base import Dialect

    out = {name: dialect(name) for name in names()}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, Dialect)
                and cls is not Dialect
                and cls.__module__ == module.__name__
                and "Exchange" not in cls.__name__
            ):
                out.setdefault(cls.name, cls())
    return out


def test_no_script_event_handler_or_javascript_url_in_any_rich_text_field_of_any_dialect(erp):
    """Every rich-text column of the views (article short and long descriptions, brand descriptions)
    holds every payload; every dialect's files carry the text around them and none of them."""
    import pandas as pd

    from passerelle.core.dialects.base import Rejects
    from passerelle.db import read_query_chunks

    payload = " ".join(PAYLOADS)
    articles = erp.execute(
        "SELECT a.id FROM erp.article a WHERE a.web AND a.price_excl_vat > 0 AND a.name <> '' ORDER BY a.id LIMIT 5"
    ).fetchall()
    ids = [a[0] for a in articles]
    erp.execute(
        "UPDATE erp.article SET short_description = %s, long_description = %s WHERE id = ANY(%s)",
        (f"<p>Court SAFE-SHORT</p>{payload}", f"<p>Long SAFE-LONG</p>{payload}", ids),
    )
    erp.execute("UPDATE erp.brand SET description = %s", (f"<p>Marque SAFE-BRAND</p>{payload}",))
    erp.commit()
    # The article rows as the export reads them, with the variants column some shops need (the
    # view builds it under their view option, as core.export sets it for them).
    erp.execute("SELECT set_config('passerelle.article_variants', 'on', false)")
    views = {
        "article": f"SELECT v.* FROM passerelle_src.article v JOIN erp.article a ON a.reference = v.key "
        f"WHERE v.web AND a.id = ANY(ARRAY{ids}) ORDER BY v.key",
        "brand": "SELECT * FROM passerelle_src.brand ORDER BY key",
    }
    frames = {entity: pd.concat(list(read_query_chunks(erp, sql)), ignore_index=True) for entity, sql in views.items()}
    erp.commit()
    shops = _every_dialect()
    assert {"generic", "prestashop", "woocommerce", "shopify"} <= set(shops)
    for name, shop in shops.items():
        written = {}
        for entity, frame in frames.items():
            try:
                out = shop.live(entity, frame.copy(), Rejects())
            except ValueError as exc:  # a shop without this file (e.g. no brands file)
                assert "no" in str(exc).lower(), f"{name}/{entity}: {exc}"
                continue
            if out is None or not len(out):
                continue
            written[entity] = shop.to_bytes(out).decode("utf-8", "replace")
        text = "\n".join(written.values())
        assert "SAFE-LONG" in text or "SAFE-SHORT" in text, f"{name}: the descriptions are not exported"
        found = [f for f in FORBIDDEN if f in text.lower()]
        assert not found, f"{name}: {found} in its files ({sorted(written)})"
        if "SAFE-BRAND" not in text:
            assert "brand" not in written or "Marque" not in written["brand"], name
    generic = shops["generic"]
    brands = generic.to_bytes(generic.live("brand", frames["brand"].copy(), Rejects())).decode()
    assert "SAFE-BRAND" in brands and "<script" not in brands.lower()


# -- publish only what is current, housekeeping ---------------------------------------------------------
def _config(tmp_path, monkeypatch, **sections):
    cfg = yaml.safe_load((INCLUDE / "config" / "passerelle.yaml").read_text(encoding="utf-8"))
    for section, values in sections.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    path = tmp_path / "passerelle.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("PASSERELLE_CONFIG", str(path))


def _ten_oclock_left_unpublished(erp, ftp_server, monkeypatch, tmp_path):
    """The prices_stock flow (no retries) whose 10:00 run built its batch but could not publish it
    (the server down), leaving a folder with a ``.part`` two days old (a kill mid-upload), its batch
    as old; then a price changes in the back office. Returns the DAG, 10:00, 11:00 and that folder."""
    from passerelle.core.batches import batch_folder

    flows = yaml.safe_load((INCLUDE / "config" / "passerelle.yaml").read_text(encoding="utf-8"))["flows"]
    _config(tmp_path, monkeypatch, flows={**flows, "prices_stock": {"cron": "0 * * * *", "retries": 0}})
    from passerelle.flows.exchange import prices_stock_dag

    dag = prices_stock_dag()
    ten, eleven = (pendulum.datetime(2026, 11, 20, h, 0, tz="Europe/Paris") for h in (10, 11))
    shop = os.environ["AIRFLOW_CONN_PASSERELLE_SHOP"]
    monkeypatch.setenv("AIRFLOW_CONN_PASSERELLE_SHOP", shop.replace(f":{ftp_server.port}", ":1"))
    assert dag.test(logical_date=ten).state == "failed"
    monkeypatch.setenv("AIRFLOW_CONN_PASSERELLE_SHOP", shop)
    first = erp.execute("SELECT id, run_key, status FROM passerelle.batch WHERE flow = 'prices_stock'").fetchall()
    assert len(first) == 1 and first[0][2] == "built"
    stale = ftp_server.path(f"/outbound/prices_stock/{batch_folder(first[0][0], first[0][1])}")
    stale.mkdir(parents=True)
    (stale / "prices.csv.part").write_bytes(b"half")
    old = time.time() - 2 * 86400
    os.utime(stale / "prices.csv.part", (old, old))
    erp.execute("UPDATE passerelle.batch SET created_at = now() - interval '2 days' WHERE id = %s", (first[0][0],))
    erp.execute("UPDATE erp.article SET price_excl_vat = price_excl_vat + 1 WHERE reference = 'ART-000010'")
    erp.commit()
    return dag, ten, eleven, stale


def test_a_rerun_of_an_old_failed_run_does_not_republish_its_superseded_batch(
    airflow_db, connections, erp, ftp_server, monkeypatch, tmp_path
):
    """10:00 builds prices, cannot publish (the server is down) and fails; 11:00 publishes newer prices;
    then 10:00 is run again: its batch is superseded, nothing is uploaded, the task ends skipped,
    the run succeeds, the snapshot keeps 11:00's prices. Published files are readable by a web server,
    and the abandoned 10:00 folder is reported with its old ``.part`` deleted."""
    dag, ten, eleven, stale = _ten_oclock_left_unpublished(erp, ftp_server, monkeypatch, tmp_path)
    (stale / "stock.csv").write_bytes(b"whole, but no manifest")

    assert dag.test(logical_date=eleven).state == "success"
    assert not (stale / "prices.csv.part").exists() and (stale / "stock.csv").exists()
    folders = sorted(p.parent for p in ftp_server.path("/outbound/prices_stock").glob("*/manifest.json"))
    assert len(folders) == 1
    for path in folders[0].iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, path  # readable by the web server
    snapshot = erp.execute("SELECT entity, key, hash, batch_id FROM passerelle.snapshot ORDER BY 1, 2").fetchall()
    erp.commit()

    rerun = dag.test(logical_date=ten)
    assert rerun.state == "success"
    assert rerun.get_task_instance("publish").state == "skipped"
    assert sorted(p.parent for p in ftp_server.path("/outbound/prices_stock").glob("*/manifest.json")) == folders
    assert sorted(p.name for p in stale.iterdir()) == ["stock.csv"]  # nothing uploaded for the old batch
    statuses = erp.execute("SELECT status FROM passerelle.batch WHERE flow = 'prices_stock' ORDER BY id").fetchall()
    assert statuses == [("superseded",), ("confirmed",)]
    assert (
        erp.execute("SELECT entity, key, hash, batch_id FROM passerelle.snapshot ORDER BY 1, 2").fetchall() == snapshot
    )
    manifest = json.loads((folders[0] / "manifest.json").read_text())
    assert pendulum.parse(manifest["run_key"]) == eleven
    # The rerun's summary says it sent nothing: the runs page and the daily report count no rows for it.
    summary = erp.execute(
        "SELECT dag_run_id, counts, bytes_sent, note FROM passerelle.run_summary WHERE flow = 'prices_stock' "
        "ORDER BY finished_at"
    ).fetchall()
    erp.commit()
    old_id, new_id = (
        r[0] for r in erp.execute("SELECT id FROM passerelle.batch WHERE flow = 'prices_stock' ORDER BY id")
    )
    erp.commit()
    assert len(summary) == 2 and summary[1][0] == rerun.run_id
    assert summary[0][1] and summary[0][2] > 0  # 11:00 sent its rows
    assert summary[1][1:] == (
        {},
        0,
        f"sent 0 rows in 0 files; nothing uploaded: batch {old_id} is overtaken by batch {new_id}; nothing quarantined",
    )


def test_a_server_refusing_to_delete_old_uploads_does_not_fail_a_publication(
    airflow_db, connections, erp, ftp_server, monkeypatch, tmp_path
):
    """The housekeeping of abandoned uploads runs after the publication is committed: a server
    that refuses the deletion (550 on DELE) leaves the old ``.part`` where it is, and the run still
    succeeds, its batch confirmed, rather than failing publish and sending the rows again."""
    from pyftpdlib.handlers import FTPHandler

    dag, _ten, eleven, stale = _ten_oclock_left_unpublished(erp, ftp_server, monkeypatch, tmp_path)
    # The real server, answering every deletion with a refusal.
    monkeypatch.setattr(FTPHandler, "ftp_DELE", lambda self, path: self.respond("550 Deleting is not allowed here."))

    run = dag.test(logical_date=eleven)
    assert run.state == "success"
    assert run.get_task_instance("publish").state == "success"
    assert (stale / "prices.csv.part").exists()  # refused: left, said in the task's log
    statuses = erp.execute("SELECT status FROM passerelle.batch WHERE flow = 'prices_stock' ORDER BY id").fetchall()
    erp.commit()
    assert statuses[-1] == ("confirmed",)
    assert len(list(ftp_server.path("/outbound/prices_stock").glob("*/manifest.json"))) == 1
