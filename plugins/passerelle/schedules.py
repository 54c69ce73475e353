"""Former home of the flows' rhythms, kept so that existing imports keep working.

The concepts now live apart: checks in :mod:`passerelle.config.flows`, timetables in
:mod:`passerelle.timetables`, assets in :mod:`passerelle.assets`, the run form in
:mod:`passerelle.params`, DAG arguments in :mod:`passerelle.dag_settings`. Import from there.
"""

from __future__ import annotations

from typing import Any

from passerelle.config.base import FlowConfigError
from passerelle.config.flows import (
    DEFAULT_ENTITIES,
    DEFAULT_RHYTHMS,
    FLOW_NAMES,
    NO_CHANGE_FLOWS,
    PUBLISHING_FLOWS,
    REPLAY_FLOWS,
    FlowSettings,
    FlowSpec,
    parse_flow,
    parse_time_of_day,
)
from passerelle.dag_settings import (
    OWNER,
    RETRY_DELAY,
    check_flows,
    check_timezone,
    flow_entities,
    flow_schedule,
    flow_settings,
    flow_spec,
    ftp_pool,
    report_settings,
    schedule_for,
    start_datetime,
    watched_tables,
)
from passerelle.params import flow_params
from passerelle.timetables import every_minutes_to_crons, flow_timetable, next_runs, times_to_crons


def __getattr__(attr: str) -> Any:
    """The assets (built with Airflow's classes) are looked up on first use."""
    from passerelle import assets

    if attr in ("CATALOG_PUBLISHED", "flow_change_asset", "published_asset", "change_watch_asset"):
        return getattr(assets, attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


__all__ = [
    "DEFAULT_ENTITIES", "DEFAULT_RHYTHMS", "FLOW_NAMES", "NO_CHANGE_FLOWS", "OWNER", "PUBLISHING_FLOWS",
    "REPLAY_FLOWS", "RETRY_DELAY", "FlowConfigError", "FlowSettings", "FlowSpec", "check_flows", "check_timezone",
    "every_minutes_to_crons", "flow_entities", "flow_params", "flow_schedule", "flow_settings", "flow_spec",
    "flow_timetable", "ftp_pool", "next_runs", "parse_flow", "parse_time_of_day", "report_settings", "schedule_for",
    "start_datetime", "times_to_crons", "watched_tables",
]
