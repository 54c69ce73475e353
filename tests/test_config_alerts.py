"""The ``alerts:`` and ``timeouts:`` sections: checked at parse with messages naming the file,
the key and the value, and turned into DAG arguments (owner, contact, notifiers, timeouts)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from passerelle.config import ConfigError
from passerelle.config.model import parse_settings
from passerelle.dag_settings import flow_settings, owner_link
from passerelle.notify import RunAlert, message, remember_error


def test_defaults_send_nothing_and_keep_the_former_owner():
    settings = parse_settings({})
    alerts, limits = settings.alerts, settings.timeouts
    assert (alerts.on_failure, alerts.on_retry, alerts.to, alerts.notifier) == (True, False, (), None)
    assert alerts.owner == "passerelle" and not alerts.active
    assert limits.task_minutes_of("prices_stock") == 30 and limits.run_minutes_of("prices_stock") == 120
    assert limits.task_minutes_of("catalog") == 120 and limits.run_minutes_of("catalog") == 240  # photos
    args = flow_settings("prices_stock", settings)
    assert "on_failure_callback" not in args and "on_retry_callback" not in args["default_args"]
    assert args["default_args"]["owner"] == "passerelle"


def test_alerts_become_dag_and_task_arguments():
    settings = parse_settings(
        {
            "alerts": {
                "to": "ops@example.com",
                "on_retry": True,
                "smtp_conn_id": "mail",
                "owner": "Data team",
                "contact": "data@example.com",
            },
            "timeouts": {
                "task_minutes": 10,
                "run_minutes": 50,
                "retry_delay_seconds": 30,
                "flows": {"catalog": {"task_minutes": 90}},
            },
        }
    )
    args = flow_settings("orders_in", settings)
    default = args["default_args"]
    assert default["owner"] == "Data team"
    assert default["execution_timeout"] == timedelta(minutes=10)
    assert default["retry_delay"] == timedelta(seconds=30)
    assert default["on_failure_callback"] == [remember_error]  # keeps the error; sends nothing
    [retry] = default["on_retry_callback"]
    assert isinstance(retry, RunAlert) and retry.kind == "retry"
    [failure] = args["on_failure_callback"]  # one notice per failed run
    assert isinstance(failure, RunAlert) and failure.kind == "failure" and failure.alerts.to == ("ops@example.com",)
    assert args["dagrun_timeout"] == timedelta(minutes=50)
    assert args["owner_links"] == {"Data team": "mailto:data@example.com"}
    assert args["description"].endswith("; contact: data@example.com")
    # A flow's own limit over the section's (set in the file, so it wins over the catalog's default).
    catalog = flow_settings("catalog", settings)
    assert catalog["default_args"]["execution_timeout"] == timedelta(minutes=90)
    assert catalog["dagrun_timeout"] == timedelta(minutes=50)


def test_on_failure_false_and_other_notifiers():
    off = parse_settings({"alerts": {"to": ["ops@example.com"], "on_failure": False}})
    assert "on_failure_callback" not in flow_settings("report", off)
    other = parse_settings(
        {
            "alerts": {
                "notifier": "airflow.providers.smtp.notifications.smtp.SmtpNotifier",
                "notifier_kwargs": {"to": "x@example.com", "from_email": "p@example.com"},
            }
        }
    )
    [failure] = flow_settings("report", other)["on_failure_callback"]
    notifier = failure.notifier(
        {
            "kind": "failure",
            "dag_id": "report",
            "run_id": "r",
            "task": "t",
            "error": "e",
            "try_number": "1",
            "reason": "",
        }
    )
    assert type(notifier).__name__ == "SmtpNotifier" and notifier.to == "x@example.com"


def test_contact_links():
    assert owner_link("data@example.com") == "mailto:data@example.com"
    assert owner_link("https://wiki.example.com/passerelle") == "https://wiki.example.com/passerelle"
    assert owner_link("Jeanne, 06 12 34 56 78") is None
    settings = parse_settings({"alerts": {"owner": "Jeanne", "contact": "Jeanne, 06 12 34 56 78"}})
    args = flow_settings("catalog", settings)
    assert "owner_links" not in args and "contact: Jeanne, 06 12 34 56 78" in args["description"]


def test_message_names_dag_run_task_and_error_escaped():
    subject, body = message(
        {
            "kind": "failure",
            "dag_id": "catalog",
            "run_id": "scheduled__2026",
            "task": "publish",
            "error": "TransferError: <refused>",
            "try_number": "3",
            "reason": "task_failure",
        },
        contact="data@example.com",
    )
    assert subject == "[Passerelle] catalog run failed: scheduled__2026"
    assert "<td>publish</td>" in body and "TransferError: &lt;refused&gt;" in body and "data@example.com" in body
    subject, _ = message(
        {
            "kind": "retry",
            "dag_id": "catalog",
            "run_id": "r",
            "task": "publish",
            "error": "x",
            "try_number": "1",
            "reason": "",
        }
    )
    assert subject == "[Passerelle] catalog: task publish failed, retrying"


@pytest.mark.parametrize(
    ("raw", "key", "words"),
    [
        ({"alerts": {"to": ["ops@example.com", "nobody"]}}, "alerts.to[1]", "'nobody' is not an e-mail address"),
        ({"alerts": {"too": "ops@example.com"}}, "alerts.too", "did you mean 'to'?"),
        ({"alerts": {"on_retry": "yes"}}, "alerts.on_retry", "expected true or false, got 'yes'"),
        ({"alerts": {"notifier": "not a class"}}, "alerts.notifier", "expected a notifier class path"),
        ({"alerts": {"notifier_kwargs": {"channel": "#ops"}}}, "alerts.notifier_kwargs", "without alerts.notifier"),
        ({"alerts": {"owner": ""}}, "alerts.owner", "expected a non-empty text"),
        ({"timeouts": {"task_minutes": 0}}, "timeouts.task_minutes", "from 1 to 1440, got 0"),
        ({"timeouts": {"retry_delay_seconds": "5m"}}, "timeouts.retry_delay_seconds", "got '5m'"),
        (
            {"timeouts": {"flows": {"catalgo": {"task_minutes": 5}}}},
            "timeouts.flows.catalgo",
            "did you mean 'catalog'?",
        ),
        (
            {"timeouts": {"flows": {"catalog": {"run_minute": 5}}}},
            "timeouts.flows.catalog.run_minute",
            "did you mean 'run_minutes'?",
        ),
    ],
)
def test_mistakes_name_file_key_and_value(raw, key, words):
    with pytest.raises(ConfigError) as info:
        parse_settings(raw, "site.yaml")
    text = str(info.value)
    assert f"site.yaml: {key}" in text and words in text, text
