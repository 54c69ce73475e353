"""What a run says, from inside its tasks: the run note, one WARNING per reject reason, extra
links to what a task produced, asset events carrying the batch and its counts.

An operator mixes in :class:`OutcomeMixin` and, at the end of ``execute``, calls
:meth:`~OutcomeMixin.say` (note and reasons), :meth:`~OutcomeMixin.link` (addresses of the batch
folder, manifest, rejects file, report under ``shop.public_base_url``) and
:meth:`~OutcomeMixin.announce` (extra of the outlets' asset events). The texts are
:mod:`passerelle.core.outcome`.

The run note: a task cannot write its run's note through the Task SDK (Airflow 3.3's execution
API sets a note only on a run it triggers, ``POST /execution/dag-runs/{dag_id}/{run_id}``, and tasks
have no database access; Airflow's maintainers point to the public REST API for it,
apache/airflow#28232). The note is therefore kept in three places: the run's summary
(``passerelle.run_summary.note``, shown by the Passerelle view, whatever the Airflow set-up), the
XCom ``run_note`` of the task that ends the run, and its log. With ``alerts.api_conn_id`` (an HTTP
connection to the Airflow API server, with a user's login and password; ``make airflow`` defines
``airflow_api`` and the project's configuration names it) it is also written as the DAG run's note
through the public REST API, where the grid and the run page show it. A connection that is not
defined is not an error: one INFO line says the note stays in the summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

#: XCom key of the run's note (the task that ends the run pushes it).
NOTE_KEY = "run_note"


class _OutcomeLink(BaseOperatorLink):
    """A link set by the task while it ran (:meth:`OutcomeMixin.link`); "" when it has none.

    Airflow asks for the link at the end of the task, in the task's own process, and keeps it as
    an XCom (``_link_<class name>``) that the UI reads: the address is known then.
    """

    name = "outcome"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return getattr(operator, "_outcome_links", {}).get(self.name, "")


class BatchFolderLink(_OutcomeLink):
    name = "Batch folder"


class ManifestLink(_OutcomeLink):
    name = "Manifest"


class RejectsLink(_OutcomeLink):
    name = "Rejects file"


class ReportLink(_OutcomeLink):
    name = "Report"


class OutcomeMixin:
    """Note, reject reasons, links and asset event extras for an operator (see the module)."""

    log: Any
    settings: Any  # passerelle.config.Settings, from ConfigMixin

    def link(self, **paths: str | None) -> dict[str, str]:
        """Set the task's extra links from paths on the shop's server: ``batch_folder``,
        ``manifest``, ``rejects``, ``report``; returns the addresses set (none without
        ``shop.public_base_url``)."""
        from passerelle.core.outcome import public_url

        base = self.settings.shop.public_base_url
        names = {
            "batch_folder": BatchFolderLink.name,
            "manifest": ManifestLink.name,
            "rejects": RejectsLink.name,
            "report": ReportLink.name,
        }
        links = getattr(self, "_outcome_links", {})
        for key, path in paths.items():
            url = public_url(base, path or "")
            if url:
                links[names[key]] = url
        self._outcome_links = links
        return dict(links)

    def say(self, context: Any, note: str, reasons: Mapping[str, int] | None = None, *, where: str = "") -> str:
        """One WARNING line per reject reason with its count, then the run's note (logged, kept as
        the XCom ``run_note``, and written as the DAG run's note when the connection
        ``alerts.api_conn_id`` exists). The operator keeps it in the run summary itself."""
        self.warn(reasons, where=where)
        self.log.info("run note: %s", note)
        ti = context.get("ti")
        if ti is not None:
            ti.xcom_push(key=NOTE_KEY, value=note)
        conn_id = self.settings.alerts.api_conn_id
        if conn_id:
            from airflow.sdk.exceptions import AirflowNotFoundException

            try:
                write_run_note(conn_id, context["dag"].dag_id, context["run_id"], note)
            except AirflowNotFoundException:
                self.log.info(
                    "run note kept in the run summary and this log, not on the DAG run: no Airflow connection %r "
                    "(alerts.api_conn_id)",
                    conn_id,
                )
            except Exception as exc:  # the note is a courtesy: the run's outcome stands without it
                self.log.warning("run note not written to the Airflow API (%s): %s", conn_id, exc)
        return note

    def warn(self, reasons: Mapping[str, int] | None, *, where: str = "") -> None:
        """One WARNING line per reject reason, with its count of rows (most frequent first)."""
        for reason, rows in (reasons or {}).items():
            self.log.warning(
                "%d row%s rejected%s: %s", rows, "" if rows == 1 else "s", f" in {where}" if where else "", reason
            )

    def announce(self, context: Any, extra: Mapping[str, Any]) -> None:
        """Put *extra* (batch id, counts...) on the asset event of each of the task's outlets."""
        outlets = getattr(self, "outlets", None) or []
        events = context.get("outlet_events")
        if events is None:
            return
        for outlet in outlets:
            events[outlet].extra.update(extra)


def write_run_note(conn_id: str, dag_id: str, run_id: str, note: str, *, timeout: float = 10.0) -> None:
    """Set the note of DAG run *run_id* through Airflow's public REST API.

    *conn_id* is an HTTP connection to the API server (host, port, schema http/https) with the
    login and password of a user allowed to edit DAG runs; a token is asked at ``/auth/token``.
    """
    from urllib.parse import quote

    import httpx
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    scheme = conn.schema or "http"
    base = f"{scheme}://{conn.host}" + (f":{conn.port}" if conn.port else "")
    with httpx.Client(base_url=base, timeout=timeout) as client:
        token = client.post("/auth/token", json={"username": conn.login, "password": conn.password})
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        path = f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"
        response = client.patch(path, params={"update_mask": "note"}, json={"note": note}, headers=headers)
        response.raise_for_status()


#: The links each kind of task may show.
BATCH_LINKS = (BatchFolderLink(), ManifestLink())
INBOUND_LINKS = (RejectsLink(),)
REPORT_LINKS = (ReportLink(),)

__all__ = [
    "BATCH_LINKS",
    "INBOUND_LINKS",
    "NOTE_KEY",
    "REPORT_LINKS",
    "BatchFolderLink",
    "ManifestLink",
    "OutcomeMixin",
    "RejectsLink",
    "ReportLink",
    "write_run_note",
]
