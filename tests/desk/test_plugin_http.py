"""The plugin under a real ``airflow api-server``: listed by the API, mounted, behind Airflow's
login and roles, reading the back office through the Airflow connection."""

from __future__ import annotations

import json
import uuid
from urllib.parse import parse_qs, urlparse

import httpx
import psycopg


def test_the_api_lists_the_passerelle_plugin_with_its_app_and_nav_page(desk_server):
    with desk_server.client() as api:
        r = api.get("/api/v2/plugins")
    assert r.status_code == 200, r.text
    plugins = {p["name"]: p for p in r.json()["plugins"]}
    assert "passerelle" in plugins, sorted(plugins)
    ours = plugins["passerelle"]
    assert [(a["name"], a["url_prefix"]) for a in ours["fastapi_apps"]] == [("Passerelle", "/passerelle")]
    assert [(v["name"], v["href"], v["destination"], v["url_route"]) for v in ours["external_views"]] == [
        ("Passerelle", "/passerelle/", "nav", "passerelle")
    ]


def test_without_a_session_a_browser_is_sent_to_airflows_login_and_a_client_gets_401(desk_server):
    with desk_server.client(user=None) as anonymous:
        page = anonymous.get("/passerelle/quarantine", headers={"Accept": "text/html"})
        api = anonymous.get("/passerelle/quarantine", headers={"Accept": "application/json"})
        post = anonymous.post("/passerelle/quarantine/replay")
        forged = anonymous.get("/passerelle/quarantine", headers={"Authorization": "Bearer not-a-token"})
    assert page.status_code == 307
    login = urlparse(page.headers["location"])
    assert login.path == "/auth/login"
    assert parse_qs(login.query)["next"] == ["/passerelle/quarantine"]
    assert (api.status_code, post.status_code, forged.status_code) == (401, 401, 401)


def test_pages_render_from_the_back_office_and_a_viewer_may_look_but_not_act(desk_server, quarantined):
    with desk_server.client("admin") as admin:
        pages = {
            p: admin.get(f"/passerelle{p}") for p in ("/", "/quarantine", "/orders", "/runs", "/batches", "/reports")
        }
    assert {p: r.status_code for p, r in pages.items()} == dict.fromkeys(pages, 200)
    assert f"Order {quarantined}2" in pages["/quarantine"].text
    assert "signed in to Airflow as admin" in pages["/"].text

    with desk_server.client("viewer") as viewer:
        seen = viewer.get("/passerelle/quarantine")
        ids = _open_ids(desk_server.erp_dsn, f"{quarantined}3")
        refused = viewer.post("/passerelle/quarantine/dismiss", data={"ids": ids, "note": "viewer tries"})
    assert seen.status_code == 200 and f"Order {quarantined}3" in seen.text
    assert refused.status_code == 403
    assert "edit rights on the DAG 'orders_in'" in refused.text
    assert _open_ids(desk_server.erp_dsn, f"{quarantined}3") == ids  # nothing changed


def test_a_form_posted_with_the_session_cookie_from_another_site_is_refused(desk_server, quarantined):
    """The browser's case: Airflow's session cookie, and the Origin header browsers add to a POST."""
    order = f"{quarantined}3"
    ids = _open_ids(desk_server.erp_dsn, order)
    form = {"ids": ids, "note": "entered by hand"}
    with httpx.Client(base_url=desk_server.url, cookies={"_token": desk_server.token("admin")}, timeout=60) as browser:
        forged = browser.post("/passerelle/quarantine/dismiss", data=form, headers={"Origin": "https://shop.example"})
        sandboxed = browser.post("/passerelle/quarantine/dismiss", data=form, headers={"Origin": "null"})
        assert (forged.status_code, sandboxed.status_code) == (403, 403)
        assert "Form posted from another site (https://shop.example): refused" in forged.text
        assert _open_ids(desk_server.erp_dsn, order) == ids  # nothing dismissed

        own = browser.post("/passerelle/quarantine/dismiss", data=form, headers={"Origin": desk_server.url})
    assert own.status_code == 303, own.text
    assert _open_ids(desk_server.erp_dsn, order) == []


def test_an_integrated_web_order_shows_lines_payment_and_history(desk_server, quarantined):
    with psycopg.connect(desk_server.erp_dsn) as conn:
        order_id = conn.execute(
            "SELECT id FROM erp.sales_order WHERE shop_order_id = %s", (f"{quarantined}1",)
        ).fetchone()[0]
    with desk_server.client() as admin:
        listed = admin.get("/passerelle/orders", params={"q": f"{quarantined}1"})
        page = admin.get(f"/passerelle/orders/{order_id}")
        missing = admin.get("/passerelle/orders/999999999")
    assert listed.status_code == 200 and f'href="/passerelle/orders/{order_id}"' in listed.text
    assert page.status_code == 200
    for text in ("ART-000001", "card", "24.00", "confirmed", "Not shipped yet."):
        assert text in page.text, text
    assert missing.status_code == 404


def test_the_daily_report_is_listed_and_served(desk_server):
    (desk_server.reports / "report-2026-11-30.html").write_text("<h1>Report of 30 November</h1>", encoding="utf-8")
    with desk_server.client() as admin:
        listing = admin.get("/passerelle/reports")
        report = admin.get("/passerelle/reports/2026-11-30")
        outside = admin.get("/passerelle/reports/..%2F..%2Fpasswords.json")
    assert 'href="/passerelle/reports/2026-11-30"' in listing.text
    assert report.status_code == 200 and "Report of 30 November" in report.text
    assert report.headers["content-type"].startswith("text/html")
    assert outside.status_code == 404


def _open_ids(dsn: str, order: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT id FROM passerelle.quarantine WHERE shop_order_id = %s AND status = 'open' ORDER BY id",
                (order,),
            )
        ]


def test_runs_and_a_sends_batch_with_its_manifest(desk_server):
    key = uuid.uuid4().hex[:8]
    with psycopg.connect(desk_server.erp_dsn) as conn:
        batch_id = conn.execute(
            "INSERT INTO passerelle.batch (flow, run_key, mode, status, entities, counts, manifest, published_at) "
            "VALUES ('catalog', %s, 'delta', 'published', '{article}', %s, %s, now()) RETURNING id",
            (
                f"2026-11-30-{key}",
                json.dumps({"article": {"created": 3, "changed": 1}}),
                json.dumps({"batch": key, "files": [{"name": f"articles-{key}.csv", "rows": 4}]}),
            ),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO passerelle.outbox_file (batch_id, position, name, entity, rows, bytes, sha256, "
            "content) VALUES (%s, 1, %s, 'article', 4, 120, 'x', '\\x00')",
            (batch_id, f"articles-{key}.csv"),
        )
        conn.execute(
            "INSERT INTO passerelle.run_summary (flow, dag_run_id, run_key, mode, counts, rejects, note) "
            "VALUES ('orders_in', %s, %s, 'delta', %s, 2, %s)",
            (
                f"manual__{key}",
                key,
                json.dumps({"orders": {"created": 5, "rejected": 2}}),
                f"integrated 7 rows in 1 file; 2 rows quarantined {key}",
            ),
        )
    with desk_server.client() as admin:
        runs = admin.get("/passerelle/runs")
        sends = admin.get("/passerelle/batches")
        one = admin.get(f"/passerelle/batches/{batch_id}")
        home = admin.get("/passerelle/")
    assert f"manual__{key}" in runs.text and "orders: created 5, rejected 2" in runs.text
    assert f'href="/passerelle/batches/{batch_id}"' in sends.text
    assert "article: changed 1, created 3" in sends.text  # in jsonb's key order
    assert one.status_code == 200
    assert f"articles-{key}.csv" in one.text and f"&#34;batch&#34;: &#34;{key}&#34;" in one.text
    assert f"integrated 7 rows in 1 file; 2 rows quarantined {key}" in runs.text  # the run's note
    assert f"integrated 7 rows in 1 file; 2 rows quarantined {key}" in home.text
