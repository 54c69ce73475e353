"""The Passerelle view: a FastAPI app that Airflow's API server mounts under ``/passerelle``
(``plugins/passerelle_plugin.py``), with a link in the UI's navigation.

Server-rendered HTML (Jinja2), plain forms, no JavaScript: it works in any browser and in the
UI's iframe. Every page sits behind Airflow's own login and roles: the user is the one Airflow's
auth manager recognises from its JWT cookie (or a ``Bearer`` token), exactly as for Airflow's own
API; reading needs the right to view plugins, acting (replay, dismiss, map) the right to edit the
``orders_in`` DAG, whose run option the replay is. A browser without a session is sent to
Airflow's login page and back.

The back office is read through the Airflow connection ``shop.erp_conn_id``; settings come from
:func:`passerelle.config.load_settings`. This module imports only FastAPI and Jinja2 at load:
Airflow's plugin loader imports it in every component (scheduler, workers, DAG processor), so
Airflow's API internals, psycopg and pandas are imported when a page is served.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlparse

from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.templating import Jinja2Templates

log = logging.getLogger(__name__)

#: Where Airflow mounts the app (``fastapi_apps[].url_prefix``); links in pages use the request's
#: own root path, so another prefix works too.
URL_PREFIX = "/passerelle"
#: The DAG whose edit right the desk's actions need: its run option "replay quarantine" is the same code.
ACTIONS_DAG = "orders_in"

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _when(value: Any, timezone: str) -> str:
    """A timestamp as the shop reads it: in the shop's timezone (``shop.timezone``), to the minute."""
    if value is None:
        return ""
    from zoneinfo import ZoneInfo

    if getattr(value, "tzinfo", None) is not None:
        value = value.astimezone(ZoneInfo(timezone))
    return value.strftime("%Y-%m-%d %H:%M")


TEMPLATES.env.filters["when"] = _when
_bearer = HTTPBearer(auto_error=False)


class LoginRequired(Exception):
    """No Airflow session: a browser is sent to the login page, an API client gets 401."""


# --------------------------------------------------------------------------------------------
# Auth: Airflow's user, Airflow's roles
# --------------------------------------------------------------------------------------------


async def desk_user(
    request: Request, bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None
) -> Any:
    """The Airflow user of the request (``airflow.api_fastapi.core_api.security.get_user``: JWT from
    the ``Authorization`` header or Airflow's session cookie), allowed to view plugins."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import get_user

    try:
        user = await get_user(request, None, bearer)
    except HTTPException as exc:
        if exc.status_code in (401, 403):
            raise LoginRequired() from exc
        raise
    if not get_auth_manager().is_authorized_view(access_view=AccessView.PLUGINS, user=user):
        raise HTTPException(status_code=403, detail="Your Airflow role may not view plugins' pages")
    return user


def cross_site(request: Request) -> str | None:
    """The foreign origin of a form posted with Airflow's session cookie, else None.

    Airflow's cookie is ``SameSite=Lax``: another site cannot post with it, but a page on a sibling
    domain (same site) could. Browsers send ``Origin`` (else ``Referer``) with every POST; a
    request authenticated by the cookie must come from the host it is sent to (``Host``, or
    ``X-Forwarded-Host`` behind a proxy). A request with a bearer token (an API client, which a
    browser never adds by itself) or without either header (not a browser's form) passes.
    """
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return None
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return None
    own = {h.strip().lower() for h in request.headers.get("x-forwarded-host", "").split(",") if h.strip()}
    own.add(request.headers.get("host", "").lower())
    seen = urlparse(source).netloc.lower()
    return None if seen in own else (source if source != "null" else "an opaque origin")


def desk_actor(request: Request, user: Annotated[Any, Depends(desk_user)]) -> Any:
    """A user who may also act: edit rights on the ``orders_in`` DAG (Airflow's role "User" and
    above), from a form of the desk itself (:func:`cross_site`)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    foreign = cross_site(request)
    if foreign is not None:
        log.warning("passerelle desk: %s refused for %s: posted from %s", request.url.path, user.get_name(), foreign)
        raise HTTPException(status_code=403, detail=f"Form posted from another site ({foreign}): refused")

    if not get_auth_manager().is_authorized_dag(method="PUT", details=DagDetails(id=ACTIONS_DAG), user=user):
        raise HTTPException(
            status_code=403,
            detail=f"Acting on the quarantine needs edit rights on the DAG {ACTIONS_DAG!r}; your Airflow role has not",
        )
    return user


User = Annotated[Any, Depends(desk_user)]
Actor = Annotated[Any, Depends(desk_actor)]


def _login_url(request: Request) -> str:
    from airflow.api_fastapi.app import get_auth_manager

    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return get_auth_manager().get_url_login(next_url=here)


# --------------------------------------------------------------------------------------------
# Back office and settings
# --------------------------------------------------------------------------------------------


def _settings() -> Any:
    from passerelle.config import load_settings

    return load_settings()


@contextmanager
def _erp(settings: Any) -> Iterator[Any]:
    """A psycopg 3 connection to the back office through the Airflow connection ``shop.erp_conn_id``,
    closed after the page (the desk is used a few times an hour: no pool)."""
    from passerelle.db import erp_connection

    conn = erp_connection(settings.shop.erp_conn_id)
    try:
        yield conn
    finally:
        conn.close()


def _page(request: Request, template: str, user: Any, settings: Any = None, **context: Any) -> HTMLResponse:
    base = request.scope.get("root_path", "").rstrip("/")
    tz = (settings or _settings()).shop.timezone
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "base": base,
            "user": user.get_name(),
            "msg": request.query_params.get("msg"),
            "error": request.query_params.get("error"),
            "tz": tz,
            **context,
        },
    )


def _back(request: Request, path: str, **query: str) -> RedirectResponse:
    """After a form: back to a page (303, so a reload does not post again), with a message."""
    base = request.scope.get("root_path", "").rstrip("/")
    return RedirectResponse(
        f"{base}{path}" + (f"?{urlencode(query, quote_via=quote)}" if query else ""), status_code=303
    )


# --------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------


def create_app() -> FastAPI:
    app = FastAPI(
        title="Passerelle",
        description="The operator's desk: quarantine, web orders, runs, sends, reports",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, exc: LoginRequired) -> Response:
        if "text/html" in request.headers.get("accept", "") and request.method == "GET":
            return RedirectResponse(_login_url(request), status_code=307)
        return HTMLResponse("Not authenticated: log in to Airflow first", status_code=401)

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request, user: User) -> HTMLResponse:
        from passerelle.core.quarantine import count_open
        from passerelle.dag_settings import report_settings
        from passerelle.desk import queries

        settings = _settings()
        with _erp(settings) as conn:
            open_rows = count_open(conn)
            runs = queries.last_runs(conn, per_flow=1)
        latest = queries.reports(report_settings(settings).get("local_dir"))[:1]
        return _page(
            request, "home.html", user, settings, open_rows=open_rows, runs=runs, report=latest[0] if latest else None
        )

    @app.get("/quarantine", response_class=HTMLResponse)
    def quarantine(request: Request, user: User) -> HTMLResponse:
        from passerelle.core.quarantine import open_groups, sku_aliases

        settings = _settings()
        with _erp(settings) as conn:
            groups = open_groups(conn)
            aliases = sku_aliases(conn)
        return _page(request, "quarantine.html", user, settings, groups=groups, aliases=aliases)

    @app.post("/quarantine/replay")
    def replay(request: Request, user: Actor) -> RedirectResponse:
        from passerelle.core.quarantine import replay as replay_rows
        from passerelle.core.quarantine import summarise_replay

        settings = _settings()
        with _erp(settings) as conn:
            results = replay_rows(conn, settings)
        log.info("passerelle desk: %s replayed the quarantine: %s", user.get_name(), results)
        return _back(request, "/quarantine", msg=summarise_replay(results))

    @app.post("/quarantine/dismiss")
    def dismiss(
        request: Request, user: Actor, ids: Annotated[list[int], Form()], note: Annotated[str, Form()] = ""
    ) -> RedirectResponse:
        from passerelle.core.quarantine import DeskError
        from passerelle.core.quarantine import dismiss as dismiss_rows

        with _erp(_settings()) as conn:
            try:
                done = dismiss_rows(conn, ids, note, by=user.get_name())
            except DeskError as exc:
                return _back(request, "/quarantine", error=str(exc))
        log.info("passerelle desk: %s dismissed quarantined rows %s: %s", user.get_name(), ids, note)
        return _back(request, "/quarantine", msg=f"Dismissed {done} row(s) with your note.")

    @app.post("/quarantine/map")
    def map_label(
        request: Request,
        user: Actor,
        shop_label: Annotated[str, Form()],
        reference: Annotated[str, Form()] = "",
        note: Annotated[str, Form()] = "",
    ) -> RedirectResponse:
        from passerelle.core.quarantine import DeskError
        from passerelle.core.quarantine import map_label as map_one

        with _erp(_settings()) as conn:
            try:
                map_one(conn, shop_label, reference, by=user.get_name(), note=note)
            except DeskError as exc:
                return _back(request, "/quarantine", error=str(exc))
        log.info("passerelle desk: %s mapped shop label %r to %r", user.get_name(), shop_label, reference)
        return _back(
            request,
            "/quarantine",
            msg=f"Shop label “{shop_label.strip()}” now means "
            f"“{reference.strip()}”. Replay to integrate the rows waiting for it.",
        )

    @app.get("/orders", response_class=HTMLResponse)
    def orders(
        request: Request,
        user: User,
        q: str = "",
        status: str = "",
        payment: str = "",
        date_from: Annotated[str, Query(alias="from")] = "",
        date_to: Annotated[str, Query(alias="to")] = "",
    ) -> HTMLResponse:
        from passerelle.core.order_list import PAYMENT_STATES, OrderFilter, quarantined_orders, statuses
        from passerelle.dag_settings import report_settings
        from passerelle.desk import queries

        settings = _settings()
        tz = settings.shop.timezone
        form = {"q": q, "status": status, "payment": payment, "from": date_from, "to": date_to}
        try:
            where = OrderFilter.parse(search=q, status=status, payment=payment, date_from=date_from, date_to=date_to)
            problem = None
        except ValueError as exc:
            where, problem = OrderFilter(search=q.strip()), str(exc)
        with _erp(settings) as conn:
            rows = queries.web_orders(conn, where=where, timezone=tz)
            waiting = quarantined_orders(conn)
            choices = statuses(conn)
        return _page(
            request,
            "orders.html",
            user,
            settings,
            orders=rows,
            q=q,
            form=form,
            problem=problem,
            statuses=choices,
            payment_states=PAYMENT_STATES,
            quarantined=waiting,
            daily=queries.daily_orders_files(report_settings(settings)["local_dir"])[:7],
        )

    @app.get("/orders/daily/{day}")
    def daily_orders(user: User, day: str) -> FileResponse:
        from passerelle.dag_settings import report_settings
        from passerelle.desk import queries

        path = queries.daily_orders_path(report_settings(_settings())["local_dir"], day)
        if path is None:
            raise HTTPException(status_code=404, detail=f"No daily orders file for {day!r} (expected YYYY-MM-DD)")
        return FileResponse(path, media_type="text/csv; charset=utf-8", filename=path.name)

    @app.get("/orders/{order_id}", response_class=HTMLResponse)
    def order(request: Request, user: User, order_id: int) -> HTMLResponse:
        from passerelle.desk import queries

        settings = _settings()
        with _erp(settings) as conn:
            found = queries.web_order(conn, order_id, timezone=settings.shop.timezone)
        if found is None:
            raise HTTPException(status_code=404, detail=f"No web order with id {order_id}")
        return _page(request, "order.html", user, settings, order=found)

    @app.post("/orders/{order_id}/credit-notes/{request_id}")
    def credit_note(
        request: Request,
        user: Actor,
        order_id: int,
        request_id: int,
        outcome: Annotated[str, Form()],
        note: Annotated[str, Form()] = "",
    ) -> RedirectResponse:
        from passerelle.core.order_list import handle_credit_note
        from passerelle.core.quarantine import DeskError

        with _erp(_settings()) as conn:
            try:
                handle_credit_note(conn, order_id, request_id, outcome, note, by=user.get_name())
            except DeskError as exc:
                return _back(request, f"/orders/{order_id}", error=str(exc))
        log.info("passerelle desk: %s marked credit note request %s %s: %s", user.get_name(), request_id, outcome, note)
        return _back(request, f"/orders/{order_id}", msg=f"Credit note request marked {outcome}.")

    @app.get("/runs", response_class=HTMLResponse)
    def runs(request: Request, user: User) -> HTMLResponse:
        from passerelle.desk import queries

        with _erp(_settings()) as conn:
            per_flow = queries.last_runs(conn)
        return _page(request, "runs.html", user, runs=per_flow)

    @app.get("/batches", response_class=HTMLResponse)
    def batches(request: Request, user: User) -> HTMLResponse:
        from passerelle.desk import queries

        with _erp(_settings()) as conn:
            rows = queries.batches(conn)
        return _page(request, "batches.html", user, batches=rows)

    @app.get("/batches/{batch_id}", response_class=HTMLResponse)
    def batch(request: Request, user: User, batch_id: int) -> HTMLResponse:
        from passerelle.desk import queries

        with _erp(_settings()) as conn:
            found = queries.batch(conn, batch_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"No batch {batch_id}")
        return _page(request, "batch.html", user, batch=found)

    @app.get("/reports", response_class=HTMLResponse)
    def reports(request: Request, user: User) -> HTMLResponse:
        from passerelle.dag_settings import report_settings
        from passerelle.desk import queries

        folder = report_settings(_settings())["local_dir"]
        return _page(
            request,
            "reports.html",
            user,
            reports=queries.reports(folder),
            daily=queries.daily_orders_files(folder),
            folder=folder,
        )

    @app.get("/reports/{day}")
    def report(user: User, day: str) -> FileResponse:
        from passerelle.dag_settings import report_settings
        from passerelle.desk import queries

        path = queries.report_path(report_settings(_settings())["local_dir"], day)
        if path is None:
            raise HTTPException(status_code=404, detail=f"No daily report for {day!r} (expected YYYY-MM-DD)")
        return FileResponse(path, media_type="text/html; charset=utf-8")

    return app


app = create_app()

__all__ = ["ACTIONS_DAG", "URL_PREFIX", "app", "create_app"]
