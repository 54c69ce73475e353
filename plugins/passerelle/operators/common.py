"""What every Passerelle operator shares: the typed settings, the two connections, the run's key and day.

Nothing here connects or reads a file at import or in an operator's ``__init__`` (it runs at
every DAG parse): the settings are read (:func:`passerelle.config.load_settings`, once per file
version), and the back office's connection and the shop server's hook are made, the first time
a running task asks for them (``cached_property``). A connection id left to ``None`` is the
configuration's (``shop.erp_conn_id``, ``shop.shop_conn_id``).
"""

from __future__ import annotations

from datetime import date
from functools import cached_property
from typing import Any

import pendulum

from passerelle.config import Settings, load_settings


def run_key(context: Any) -> str:
    """The logical date (what a backfill or a rerun reproduces), else the run id."""
    logical_date = context.get("logical_date")
    if logical_date is not None:
        return logical_date.isoformat()
    return context["run_id"]


def run_day(context: Any, timezone: str) -> date:
    """The run's day in the shop's timezone: the logical date's, else (a manual or asset-triggered
    run without one) the day the run was due."""
    when = context.get("logical_date")
    if when is None:
        dag_run = context.get("dag_run")
        when = getattr(dag_run, "run_after", None) or pendulum.now("UTC")
    return pendulum.instance(when).in_timezone(timezone).date()


def check_mode(mode: Any) -> str:
    """*mode* if it is ``delta``, ``new`` or ``full``; else a ValueError naming the value."""
    from passerelle.core.differ import check_mode as check

    return check(mode)


class ConfigMixin:
    """``settings``: the configuration file (``config_path``, default ``PASSERELLE_CONFIG`` or the
    project's) as typed :class:`~passerelle.config.Settings`, read when a running task first asks."""

    config_path: str | None

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_path)


class ErpMixin(ConfigMixin):
    """``erp``: a psycopg connection to the back office (``erp_conn_id``), made on first use."""

    erp_conn_id: str | None

    @cached_property
    def erp(self):
        from passerelle.db import erp_connection

        return erp_connection(self.erp_conn_id or self.settings.shop.erp_conn_id)


class ShopMixin(ConfigMixin):
    """``shop``: the hook of the shop's FTP/FTPS/SFTP server (``shop_conn_id``), made on first use."""

    shop_conn_id: str | None

    @cached_property
    def shop(self):
        from passerelle.hooks.shop import ShopFilesHook

        return ShopFilesHook(self.shop_conn_id or self.settings.shop.shop_conn_id)


__all__ = ["ConfigMixin", "ErpMixin", "ShopMixin", "check_mode", "run_day", "run_key"]
