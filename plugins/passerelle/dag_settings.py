"""The DAG arguments of a flow, from its checked settings (:mod:`passerelle.config`).

A DAG factory splats them::

    settings = load_settings()
    with DAG("catalog_nightly", **flow_settings("catalog", settings)):
        ...

The schedule combines the flow's timetable (:mod:`passerelle.timetables`) with its change and
followed assets (:mod:`passerelle.assets`); the run form comes from :mod:`passerelle.params`.
Nothing is checked here: a wrong value has already failed in :func:`~passerelle.config.load_settings`.
The functions also take a raw mapping of sections, as a file holds them (``"_path"`` naming it in
messages), checked on the way in by :func:`passerelle.config.parse_settings`: what tests and
tools hand them.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from passerelle.config.base import FlowConfigError
from passerelle.config.flows import FLOW_NAMES, REPLAY_FLOWS, FlowSettings, parse_flow
from passerelle.config.model import Settings, as_settings
from passerelle.params import flow_params
from passerelle.timetables import flow_timetable

if TYPE_CHECKING:
    from airflow.sdk import Asset

#: The default owner (``alerts.owner``) and pause before a retry (``timeouts.retry_delay_seconds``).
OWNER = "passerelle"
RETRY_DELAY = timedelta(minutes=5)

_WEEKDAYS = {
    "0": "Sunday",
    "1": "Monday",
    "2": "Tuesday",
    "3": "Wednesday",
    "4": "Thursday",
    "5": "Friday",
    "6": "Saturday",
    "7": "Sunday",
    "MON": "Monday",
    "TUE": "Tuesday",
    "WED": "Wednesday",
    "THU": "Thursday",
    "FRI": "Friday",
    "SAT": "Saturday",
    "SUN": "Sunday",
    "1-5": "weekday",
}

Config = Settings | Mapping[str, Any]


def check_timezone(value: Any, source: str) -> str:
    """Return *value* if it is an IANA timezone name known to this machine (``shop.timezone``)."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise FlowConfigError(
            f'{source}: shop.timezone: {value!r} is not a known timezone; expected an IANA name such as "Europe/Paris"'
        ) from None
    return value


def schedule_for(flow: FlowSettings, timezone: str, *, change_asset: Asset | None = None) -> Any:
    """What to pass as the DAG's ``schedule`` for *flow*:

    - its timetable (:func:`passerelle.timetables.flow_timetable`);
    - ``on_change`` → the flow's change Asset (*change_asset*, default
      :func:`passerelle.assets.flow_change_asset`), combined with the timetable in
      ``AssetOrTimeSchedule`` when both are set;
    - ``after: [catalog]`` → the catalog's published asset too (any of the assets, or the
      timetable, starts a run);
    - ``manual`` or ``enabled: false`` → ``None``.
    """
    from passerelle.assets import flow_change_asset, published_asset

    if not flow.scheduled:
        return None
    timetable = flow_timetable(flow, timezone)
    assets = []
    if flow.on_change:
        assets.append(change_asset if change_asset is not None else flow_change_asset(flow.name))
    assets += [published_asset(name) for name in flow.after]
    if not assets:
        return timetable
    from airflow.sdk import AssetAny, AssetOrTimeSchedule

    condition = assets[0] if len(assets) == 1 else AssetAny(*assets)
    if timetable is None:
        return condition
    return AssetOrTimeSchedule(timetable=timetable, assets=condition)


def flow_schedule(
    name: str,
    flow_cfg: Mapping[str, Any] | None,
    timezone: str,
    *,
    change_asset: Asset | None = None,
    source: str = "passerelle.yaml",
) -> Any:
    """The DAG ``schedule`` of flow *name* given its raw entry *flow_cfg* alone (see :func:`schedule_for`).

    :raises FlowConfigError: if *flow_cfg* or *timezone* is wrong (message names *source*, the flow and the key).
    """
    check_timezone(timezone, source)
    return schedule_for(parse_flow(name, flow_cfg, source=source), timezone, change_asset=change_asset)


def cron_words(cron: str, timezone: str) -> str:
    """A cron expression in words where it is a common one ("every day at 02:00 (Europe/Paris)",
    "every hour at :15"), else ``cron <expression> (<timezone>)``."""
    fields = cron.split()
    if len(fields) == 5 and fields[0].isdigit() and fields[2:4] == ["*", "*"]:
        minute, hour, _, _, weekday = fields
        if hour == "*" and weekday == "*":
            return f"every hour at :{int(minute):02d}"
        if hour.isdigit():
            at = f"{int(hour):02d}:{int(minute):02d} ({timezone})"
            if weekday == "*":
                return f"every day at {at}"
            if weekday.upper() in _WEEKDAYS:
                return f"every {_WEEKDAYS[weekday.upper()]} at {at}"
        if "," in hour and all(h.isdigit() for h in hour.split(",")) and weekday == "*":
            times = ", ".join(f"{int(h):02d}:{int(minute):02d}" for h in hour.split(","))
            return f"every day at {times} ({timezone})"
    return f"cron {cron} ({timezone})"


def schedule_words(flow: FlowSettings, timezone: str) -> str:
    """The flow's rhythm in words for the DAG's description: "every day at 02:00 (Europe/Paris)"."""
    parts = []
    if flow.cron:
        parts.append(cron_words(flow.cron, timezone))
    if flow.times:
        parts.append(f"every day at {', '.join(flow.times)} ({timezone})")
    if flow.every_minutes:
        parts.append(f"every {flow.every_minutes} minutes")
    if flow.on_change:
        parts.append("on change in the ERP")
    if flow.after and parts:
        parts.append(f"after each publish of {', '.join(flow.after)}")
    text = " and ".join(parts) or "manual only"
    return text if flow.enabled else f"disabled (was: {text}); manual runs only"


def start_datetime(value: date | datetime, timezone: str) -> datetime:
    """*value* as an aware datetime: a date is midnight in *timezone*, a naive datetime is read in it."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zoneinfo.ZoneInfo(timezone))
    return value


def flow_settings(
    name: str,
    cfg: Config,
    *,
    change_asset: Asset | None = None,
    default_start: date | datetime | None = None,
    extra_tags: tuple[str, ...] = (),
) -> dict[str, Any]:
    """DAG keyword arguments for flow *name*, for the DAG file to splat: ``DAG(dag_id, **settings)``.

    Returns ``schedule`` (:func:`schedule_for`), ``catchup``, ``max_active_runs`` (default 1: a
    manual run started during a scheduled one is queued and waits; a backfill runs in order),
    ``tags``, ``description``, ``params`` (the run form, :func:`passerelle.params.flow_params`),
    ``default_args`` (owner, retries, retry delay, ``execution_timeout``, the task callbacks of
    :mod:`passerelle.notify`, and the pool when configured), ``dagrun_timeout``, the DAG's
    ``on_failure_callback`` (one notice per failed run, from ``alerts:``), ``owner_links`` (the
    contact) and ``start_date`` when configured (else *default_start*), read in the shop's
    timezone: the DAG carries it, so the UI shows the shop's time.

    Every Passerelle task talks to a server (the back office's database, the shop's), so every
    task gets the flow's ``execution_timeout`` (``timeouts:``); a hung transfer fails its task.

    With ``on_change: true`` the schedule's change Asset carries an ``AssetWatcher`` polling the
    back office (:func:`passerelle.assets.change_watch_asset`). With a ``pool``, tasks also get
    ``weight_rule="upstream"``: in a pool shared by several flows, the next task of a run already
    started (publish, confirm) goes before the first task of another run, so runs do not interleave.

    :param cfg: the checked :class:`~passerelle.config.Settings` (or a raw/former dict, checked here).
    :param change_asset: the Asset whose updates start an on-change run (default: the flow's
        change asset with its watcher); pass your own to watch something else.
    :param extra_tags: tags added after ``passerelle`` and the flow's name.
    :raises ConfigError: only when *cfg* is a dict that does not pass the checks.
    """
    from passerelle.assets import change_watch_asset
    from passerelle.notify import remember_error, run_failure_callbacks, task_retry_callbacks

    settings = as_settings(cfg)
    flow = settings.flow(name)
    timezone = settings.shop.timezone
    alerts, limits = settings.alerts, settings.timeouts
    default_args: dict[str, Any] = {
        "owner": alerts.owner,
        "retries": flow.retries,
        "retry_delay": timedelta(seconds=limits.retry_delay_seconds),
        "execution_timeout": timedelta(minutes=limits.task_minutes_of(name)),
        # Keeps the error for the run's notice; the notice itself is the DAG's (one per failed run).
        "on_failure_callback": [remember_error],
    }
    retry_callbacks = task_retry_callbacks(alerts)
    if retry_callbacks:
        default_args["on_retry_callback"] = retry_callbacks
    if flow.pool:
        default_args["pool"] = flow.pool
        default_args["weight_rule"] = "upstream"
    if flow.on_change and flow.enabled and change_asset is None:
        change_asset = change_watch_asset(name, settings)
    out: dict[str, Any] = {
        "schedule": schedule_for(flow, timezone, change_asset=change_asset),
        "catchup": flow.catchup,
        "max_active_runs": flow.max_active_runs,
        "tags": ["passerelle", name, *extra_tags] + ([] if flow.enabled else ["disabled"]),
        "description": f"Passerelle {name}: {schedule_words(flow, timezone)}",
        "params": flow_params(settings.flow_entities(name), replay=name in REPLAY_FLOWS, flow=name, mode=flow.mode),
        "default_args": default_args,
        "dagrun_timeout": timedelta(minutes=limits.run_minutes_of(name)),
    }
    failure_callbacks = run_failure_callbacks(alerts)
    if failure_callbacks:
        out["on_failure_callback"] = failure_callbacks
    if alerts.contact:
        out["description"] += f"; contact: {alerts.contact}"
        link = owner_link(alerts.contact)
        if link:
            out["owner_links"] = {alerts.owner: link}
    start = flow.start_date if flow.start_date is not None else default_start
    if start is not None:
        out["start_date"] = start_datetime(start, timezone)
    return out


def owner_link(contact: str) -> str | None:
    """The contact as a link for the owner's name in the UI (an e-mail becomes ``mailto:``);
    None for a contact that is neither a mail address nor a web address (a phone number)."""
    import re

    if re.match(r"^(https?://|mailto:)\S+$", contact):
        return contact
    if re.match(r"^[^@\s:/]+@[^@\s]+$", contact):
        return f"mailto:{contact}"
    return None


def flow_spec(name: str, cfg: Config) -> FlowSettings:
    """The checked settings of flow *name* (the whole configuration is checked)."""
    return as_settings(cfg).flow(name)


def check_flows(cfg: Config) -> dict[str, FlowSettings]:
    """Every flow's settings (defaults for flows left out); the whole configuration is checked."""
    settings = as_settings(cfg)
    return {name: settings.flow(name) for name in FLOW_NAMES}


def flow_entities(name: str, cfg: Config) -> list[str]:
    """Entities of flow *name* (:meth:`passerelle.config.Settings.flow_entities`)."""
    return as_settings(cfg).flow_entities(name)


def watched_tables(name: str, cfg: Config) -> dict[str, tuple[str, ...]]:
    """Tables watched per entity for flow *name*'s ``on_change``
    (:meth:`~passerelle.config.Settings.watched_tables`)."""
    return as_settings(cfg).watched_tables(name)


def ftp_pool(name: str, cfg: Config) -> str:
    """The Airflow pool of flow *name*'s tasks that connect to the shop's server (uploads,
    listings, downloads, renames): ``shop.ftp_pool`` (default ``shop_ftp``), which caps the
    sessions all flows open at once, unless the flow has its own ``pool``
    (:meth:`~passerelle.config.Settings.ftp_pool`)."""
    return as_settings(cfg).ftp_pool(name)


def report_settings(cfg: Config) -> dict[str, Any]:
    """The report flow's options: ``local_dir`` (a Path; relative paths are read from the project
    root), ``remote_dir`` (on the shop's server) and ``days`` (how many days the page covers)."""
    from pathlib import Path

    from passerelle import PROJECT_ROOT

    flow = as_settings(cfg).flow("report")
    local = Path(flow.local_dir).expanduser()
    return {
        "local_dir": local if local.is_absolute() else PROJECT_ROOT / local,
        "remote_dir": flow.remote_dir,
        "days": flow.days,
    }
