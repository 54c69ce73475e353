"""Failure and retry notices through Airflow's notifiers, as configured in ``alerts:``.

A failed run sends one notice: the DAG's ``on_failure_callback`` (:func:`run_failure_callbacks`)
runs once when the run ends failed, whatever the number of retries before. Each task's own
``on_failure_callback`` (:func:`remember_error`) only keeps the error as an XCom, so that the
run's notice can name the task and its error (the DAG callback runs in the DAG processor,
which knows the failed task instance but not its exception). A notice per task retry is sent
only with ``alerts.on_retry: true``.

The notice is a mail through the SMTP provider's ``SmtpNotifier`` (``alerts.smtp_conn_id`` to
``alerts.to``), or any notifier class named by ``alerts.notifier`` with ``alerts.notifier_kwargs``
(its templates can use ``{{ passerelle_alert.task }}``, ``.error``, ``.dag_id``, ``.run_id``).
Nothing is imported from the providers until a notice is sent: DAG files stay cheap to parse.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from passerelle.config.sections import AlertsSection

#: XCom key under which a failed task keeps its error for the run's notice.
ERROR_KEY = "passerelle_error"


def remember_error(context: Any) -> None:
    """Task ``on_failure_callback``: push the task's error (type and message) as an XCom."""
    error = context.get("exception")
    ti = context.get("ti")
    if ti is None or error is None:
        return
    ti.xcom_push(key=ERROR_KEY, value=f"{type(error).__name__}: {error}"[:2000])


def alert_details(context: Any, kind: str) -> dict[str, str]:
    """What a notice says: the DAG, the run, the task, the error (or the run's end reason), the owner."""
    dag = context.get("dag")
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(dag, "dag_id", None) or getattr(ti, "dag_id", "?")
    run_id = context.get("run_id") or getattr(ti, "run_id", "?")
    task = getattr(ti, "task_id", None) or "(no task: the run itself)"
    error = context.get("exception")
    text = f"{type(error).__name__}: {error}" if error is not None else None
    if text is None and ti is not None:
        text = _kept_error(ti)
    reason = context.get("reason") or ""
    if not text:
        text = {"timed_out": "the run exceeded its dagrun_timeout"}.get(reason, reason or "unknown error")
    try_number = getattr(ti, "try_number", None)
    return {
        "kind": kind,
        "dag_id": str(dag_id),
        "run_id": str(run_id),
        "task": str(task),
        "error": str(text),
        "try_number": "" if try_number is None else str(try_number),
        "reason": str(reason),
    }


def _kept_error(ti: Any) -> str | None:
    """The error :func:`remember_error` kept for *ti*, or None.

    Through the Task SDK (the DAG processor answers XCom requests of a DAG callback); under
    ``dag.test()``, which runs DAG callbacks in the test's own process without that channel,
    from the metadata database.
    """
    map_index = getattr(ti, "map_index", -1)
    try:
        return ti.xcom_pull(task_ids=ti.task_id, key=ERROR_KEY, map_indexes=map_index)
    except ImportError:  # no Task SDK channel: dag.test()
        pass
    except Exception:  # the error is a courtesy: a notice goes out without it
        return None
    try:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = session.execute(
                XComModel.get_many(
                    run_id=ti.run_id, key=ERROR_KEY, task_ids=ti.task_id, dag_ids=ti.dag_id, map_indexes=map_index
                ).with_only_columns(XComModel.value)
            ).first()
        return XComModel.deserialize_value(row) if row else None
    except Exception:
        return None


class RunAlert:
    """A DAG or task callback sending one notice per call through the configured notifier.

    A new notifier is made for each notice: notifiers render their templates in place, and the
    same DAG object may see several runs (``dag.test()``, a long-lived DAG processor).
    """

    def __init__(self, kind: str, alerts: AlertsSection) -> None:
        self.kind = kind  # "failure" (a run failed) or "retry" (a task is retried)
        self.alerts = alerts

    def __repr__(self) -> str:
        return f"RunAlert({self.kind!r}, to={list(self.alerts.to)!r}, notifier={self.alerts.notifier!r})"

    def __call__(self, context: Any) -> None:
        details = alert_details(context, self.kind)
        notifier = self.notifier(details)
        context = {**context, "passerelle_alert": details}
        if not hasattr(context.get("dag"), "get_template_env"):
            # dag.test() hands DAG callbacks the scheduler's serialized DAG, which has no template
            # environment: the notifier then renders with the default one.
            context.pop("dag", None)
        notifier(context)

    def notifier(self, details: dict[str, str]) -> Any:
        """The notifier for one notice: the configured class, else ``SmtpNotifier``."""
        alerts = self.alerts
        if alerts.notifier:
            import importlib

            module, _, name = alerts.notifier.rpartition(".")
            return getattr(importlib.import_module(module), name)(**alerts.notifier_kwargs)
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        subject, body = message(details, contact=alerts.contact)
        # {% raw %}: the texts are final; an error quoting "{{" must not be read as a template.
        return SmtpNotifier(
            to=list(alerts.to),
            from_email=alerts.from_email,
            smtp_conn_id=alerts.smtp_conn_id,
            subject="{% raw %}" + subject + "{% endraw %}",
            html_content="{% raw %}" + body + "{% endraw %}",
        )


def message(details: dict[str, str], *, contact: str = "") -> tuple[str, str]:
    """(subject, HTML body) of a notice."""
    if details["kind"] == "retry":
        subject = f"[Passerelle] {details['dag_id']}: task {details['task']} failed, retrying"
        lead = f"Task {details['task']} failed (try {details['try_number']}) and will be retried."
    else:
        subject = f"[Passerelle] {details['dag_id']} run failed: {details['run_id']}"
        lead = f"The run {details['run_id']} of {details['dag_id']} failed."
    rows = [
        ("DAG", details["dag_id"]),
        ("Run", details["run_id"]),
        ("Task", details["task"]),
        ("Error", details["error"]),
    ]
    if contact:
        rows.append(("Contact", contact))
    table = "".join(f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return subject, f"<p>{html.escape(lead)}</p><table>{table}</table>"


def run_failure_callbacks(alerts: AlertsSection) -> list[Any]:
    """The DAG's ``on_failure_callback``: one notice per failed run (empty when nowhere to send)."""
    return [RunAlert("failure", alerts)] if alerts.active and alerts.on_failure else []


def task_retry_callbacks(alerts: AlertsSection) -> list[Any]:
    """The tasks' ``on_retry_callback``: a notice per retry, only with ``alerts.on_retry: true``."""
    return [RunAlert("retry", alerts)] if alerts.active and alerts.on_retry else []


__all__ = [
    "ERROR_KEY",
    "RunAlert",
    "alert_details",
    "message",
    "remember_error",
    "run_failure_callbacks",
    "task_retry_callbacks",
]
