"""Flow rhythms: the ``flows:`` section of passerelle.yaml turned into DAG arguments.

Each flow (``catalog``, ``customers``, ``prices_stock``, ``orders_in``, ``order_status``,
``report``) has one rhythm: a ``cron``, fixed ``times`` of day in the shop's timezone,
``every_minutes``, ``on_change`` (an Asset updated when the ERP changes), or ``manual``. A
time-based rhythm may be combined with ``on_change: true``: the flow then runs on its
timetable *and* on change (Airflow's ``AssetOrTimeSchedule``). A flow left out of the file, or
given options but no rhythm, keeps its default rhythm (:data:`DEFAULT_RHYTHMS`).

``on_change`` flows get an ``AssetWatcher`` on their change Asset (:func:`change_watch_asset`,
options ``watch``, ``poll_seconds``, ``settle_seconds``); ``after: [catalog]`` adds the catalog's
published Asset (:data:`CATALOG_PUBLISHED`) to a flow's schedule; the ``report`` flow also takes
``local_dir``, ``remote_dir`` and ``days`` (:func:`report_settings`).

Checking the section is pure and fast (croniter and the standard library only); the Airflow
classes are imported inside the functions that build them, so importing this module costs
nothing. Every mistake raises :class:`FlowConfigError` naming the file, the flow and the key::

    passerelle.yaml: flows.catalog.times[1]: '25:00' is not a time of day (HH:MM)

DAG files stay a few lines::

    cfg = load_config()
    with DAG("passerelle_catalog", **flow_settings("catalog", cfg)):
        ...
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from passerelle.config import DEFAULTS, POOL_NAME, ConfigError

if TYPE_CHECKING:
    from airflow.sdk import Asset, Param

#: The flows, in the order they are documented. Names are fixed: DAG ids and tags derive from them.
FLOW_NAMES: tuple[str, ...] = ("catalog", "customers", "prices_stock", "orders_in", "order_status", "report")

#: Rhythm of a flow the configuration leaves out (or gives options but no rhythm). The hourly
#: flows are staggered: orders are integrated at :15, so the statuses pushed at :30 include them,
#: and the three never hit the FTP server in the same minute.
DEFAULT_RHYTHMS: dict[str, dict[str, Any]] = {
    "catalog": {"cron": "0 2 * * *"},
    "customers": {"cron": "30 2 * * *"},
    "prices_stock": {"cron": "0 * * * *"},
    "orders_in": {"cron": "15 * * * *"},
    "order_status": {"cron": "30 * * * *"},
    "report": {"cron": "0 6 * * *"},
}

#: Entities each flow handles when ``flows.<flow>.entities`` is not set: the choices of the run
#: form and, for ``on_change``, the ones watched. The catalog's come from ``catalog.entities``.
DEFAULT_ENTITIES: dict[str, tuple[str, ...]] = {
    "customers": ("customer", "address"),
    "prices_stock": ("price", "stock"),
    "orders_in": ("order", "customer", "payment"),
    "order_status": ("order_status", "tracking", "invoice"),
    "report": (),
}

#: Flows whose run form offers to replay quarantined rows (rows rejected from shop files).
REPLAY_FLOWS: frozenset[str] = frozenset({"orders_in"})

#: Flows whose publish task emits an Asset (:func:`published_asset`) another flow may follow
#: with ``after: [<flow>]``. Add a flow here once its publish task has the asset as outlet.
PUBLISHING_FLOWS: tuple[str, ...] = ("catalog",)

#: Flows ``on_change`` cannot start: orders come from files the shop drops, not from the back
#: office, and the report is made from run summaries.
NO_CHANGE_FLOWS: dict[str, str] = {
    "orders_in": "orders_in reads the files the shop drops; on_change watches the back office",
    "report": "the report is made from run summaries, not from changes in the back office",
}

TIME_KEYS: tuple[str, ...] = ("cron", "times", "every_minutes")
RHYTHM_KEYS: tuple[str, ...] = (*TIME_KEYS, "on_change", "manual")
OPTION_KEYS: tuple[str, ...] = (
    "enabled", "catchup", "start_date", "max_active_runs", "pool", "retries", "entities",
    "after", "watch", "poll_seconds", "settle_seconds",
)
#: Keys only the ``report`` flow takes (where its HTML page goes, how many days it covers).
REPORT_KEYS: tuple[str, ...] = ("local_dir", "remote_dir", "days")
ALLOWED_KEYS: tuple[str, ...] = (*RHYTHM_KEYS, *OPTION_KEYS, *REPORT_KEYS)

DEFAULT_POLL_SECONDS = 20.0
DEFAULT_SETTLE_SECONDS = 10.0
DEFAULT_REPORT_DAYS = 30
DEFAULT_REPORT_LOCAL_DIR = "reports"
DEFAULT_REPORT_REMOTE_DIR = "/reports"

DEFAULT_RETRIES = 2
RETRY_DELAY = timedelta(minutes=5)
OWNER = "passerelle"
MINUTES_PER_DAY = 24 * 60

_TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")


class FlowConfigError(ConfigError):
    """The ``flows:`` section (or ``shop.timezone``) is wrong; the message names file, flow and key."""


@dataclass(frozen=True)
class FlowSpec:
    """One flow's checked configuration, defaults filled in.

    At most one of ``cron``, ``times``, ``every_minutes`` is set; ``manual`` excludes all of
    them and ``on_change``.
    """

    name: str
    cron: str | None = None
    times: tuple[str, ...] = ()
    every_minutes: int | None = None
    on_change: bool = False
    manual: bool = False
    enabled: bool = True
    catchup: bool = False
    max_active_runs: int = 1
    pool: str | None = None
    retries: int = DEFAULT_RETRIES
    entities: tuple[str, ...] | None = None
    start_date: date | datetime | None = None
    #: Flows whose published Asset also starts this flow (``after: [catalog]``).
    after: tuple[str, ...] = ()
    #: Tables watched per entity for ``on_change``, overriding :data:`passerelle.changes.DEFAULT_WATCH`.
    watch: tuple[tuple[str, tuple[str, ...]], ...] = ()
    poll_seconds: float = DEFAULT_POLL_SECONDS
    settle_seconds: float = DEFAULT_SETTLE_SECONDS
    #: ``report`` only: where the page is kept locally and on the shop's server, days covered.
    local_dir: str = DEFAULT_REPORT_LOCAL_DIR
    remote_dir: str = DEFAULT_REPORT_REMOTE_DIR
    days: int = DEFAULT_REPORT_DAYS

    @property
    def rhythm(self) -> str:
        """Short name of the rhythm: ``cron``, ``times``, ``every_minutes`` (each possibly
        followed by ``+on_change``), ``on_change`` or ``manual``."""
        base = next((key for key in TIME_KEYS if getattr(self, key) not in (None, ())), None)
        if base and self.on_change:
            return f"{base}+on_change"
        return base or ("on_change" if self.on_change else "manual")

    def describe(self, timezone: str) -> str:
        """The rhythm in words, for the DAG description and the docs."""
        parts = []
        if self.cron:
            parts.append(f"cron {self.cron} ({timezone})")
        if self.times:
            parts.append(f"at {', '.join(self.times)} ({timezone})")
        if self.every_minutes:
            parts.append(f"every {self.every_minutes} min")
        if self.on_change:
            parts.append("on change in the ERP")
        if self.after and parts:
            parts.append(f"after each publish of {', '.join(self.after)}")
        text = " and ".join(parts) or "manual only"
        return text if self.enabled else f"disabled (was: {text}); manual runs only"


# --------------------------------------------------------------------------- checks (pure)


def _where(source: str, name: str, key: str | None = None) -> str:
    return f"{source}: flows.{name}" + (f".{key}" if key else "")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise FlowConfigError(f"{where}: expected true or false, got {value!r}")
    return value


def check_cron(expr: Any, where: str) -> str:
    """Return *expr* if it is a 5-field cron expression (or an ``@hourly``-style preset) that fires.

    :raises FlowConfigError: naming *where* and what is wrong.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise FlowConfigError(f"{where}: expected a cron expression such as \"0 2 * * *\", got {expr!r}")
    expr = " ".join(expr.split())
    try:
        fields = croniter(expr).expanded
    except CroniterError as exc:
        raise FlowConfigError(f"{where}: {expr!r} is not a valid cron expression ({exc})") from None
    if len(fields) != 5:
        raise FlowConfigError(
            f"{where}: {expr!r} has {len(fields)} fields; expected 5 (minute hour day-of-month month day-of-week)"
        )
    try:  # "0 2 30 2 *" is well formed but never fires.
        croniter(expr, datetime(2000, 1, 1)).get_next(datetime)
    except (CroniterBadDateError, CroniterBadCronError):
        raise FlowConfigError(f"{where}: {expr!r} never fires (no such date)") from None
    return expr


def parse_time_of_day(value: Any, where: str) -> tuple[int, int]:
    """Return ``(hour, minute)`` from ``"HH:MM"`` (``"8:00"`` is accepted too).

    YAML 1.1 reads an unquoted ``13:00`` as the number 780 (base 60); the message says to quote it.
    """
    if _is_int(value) and 0 <= value < MINUTES_PER_DAY:
        hour, minute = divmod(value, 60)
        raise FlowConfigError(
            f"{where}: {value!r} is not a time of day (HH:MM); YAML reads an unquoted {hour}:{minute:02d} "
            f"as the number {value}: write it in quotes, \"{hour:02d}:{minute:02d}\""
        )
    match = _TIME_OF_DAY.match(value) if isinstance(value, str) else None
    if not match:
        raise FlowConfigError(f"{where}: {value!r} is not a time of day (HH:MM)")
    return int(match[1]), int(match[2])


def check_timezone(value: Any, source: str) -> str:
    """Return *value* if it is an IANA timezone name known to this machine (``shop.timezone``)."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise FlowConfigError(
            f"{source}: shop.timezone: {value!r} is not a known timezone; expected an IANA name such as "
            f"\"Europe/Paris\""
        ) from None
    return value


def _check_entities(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise FlowConfigError(f"{where}: expected a non-empty list of entity names, got {value!r}")
    seen: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise FlowConfigError(f"{where}[{i}]: expected an entity name, got {item!r}")
        if item in seen:
            raise FlowConfigError(f"{where}[{i}]: {item!r} is listed twice")
        seen.append(item)
    return tuple(seen)


def _check_times(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise FlowConfigError(f"{where}: expected a list of times of day such as [\"08:00\", \"13:00\"], got {value!r}")
    seen: dict[tuple[int, int], int] = {}
    for i, item in enumerate(value):
        hm = parse_time_of_day(item, f"{where}[{i}]")
        if hm in seen:
            first = seen[hm]
            raise FlowConfigError(f"{where}[{i}]: {item!r} is the same time as times[{first}] ({value[first]!r})")
        seen[hm] = i
    return tuple(f"{h:02d}:{m:02d}" for h, m in sorted(seen))


def _check_start_date(value: Any, where: str) -> date | datetime:
    """A date or date-time (YAML reads an unquoted 2026-01-01 as a date); strings in ISO format."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if "T" in value or " " in value.strip() else date.fromisoformat(value)
        except ValueError:
            raise FlowConfigError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None
    if not isinstance(value, date):
        raise FlowConfigError(f"{where}: expected a date (YYYY-MM-DD), got {value!r}")
    return value


def _check_seconds(value: Any, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise FlowConfigError(f"{where}: expected a number of seconds from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _check_after(value: Any, name: str, where: str) -> tuple[str, ...]:
    """``after: [catalog]``: flows whose publish also starts this one."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise FlowConfigError(f"{where}: expected a list of flows such as [catalog], got {value!r}")
    seen: list[str] = []
    for i, item in enumerate(value):
        if item == name:
            raise FlowConfigError(f"{where}[{i}]: a flow cannot run after itself")
        if item not in PUBLISHING_FLOWS:
            raise FlowConfigError(
                f"{where}[{i}]: {item!r} publishes no asset to follow; expected one of {', '.join(PUBLISHING_FLOWS)}"
            )
        if item in seen:
            raise FlowConfigError(f"{where}[{i}]: {item!r} is listed twice")
        seen.append(item)
    return tuple(seen)


def check_table_name(value: Any, where: str) -> str:
    """Return *value* if it is a ``schema.table`` name (letters, digits, underscores)."""
    if not isinstance(value, str) or not _TABLE_NAME.match(value):
        raise FlowConfigError(f"{where}: expected a table as schema.table, such as \"erp.article\", got {value!r}")
    return value


def _check_watch(value: Any, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``watch: {entity: [schema.table, ...]}``."""
    if not isinstance(value, Mapping) or not value:
        raise FlowConfigError(
            f"{where}: expected a mapping of entity to tables, such as {{stock: [erp.stock, erp.location]}}, "
            f"got {value!r}"
        )
    out = []
    for entity, tables in value.items():
        here = f"{where}.{entity}"
        if not isinstance(entity, str) or not entity.strip():
            raise FlowConfigError(f"{where}: expected entity names as keys, got {entity!r}")
        if isinstance(tables, str):
            tables = [tables]
        if not isinstance(tables, list) or not tables:
            raise FlowConfigError(f"{here}: expected a list of tables such as [erp.stock], got {tables!r}")
        names = tuple(dict.fromkeys(check_table_name(t, f"{here}[{i}]") for i, t in enumerate(tables)))
        out.append((entity, names))
    return tuple(out)


def _check_report_keys(name: str, flow_cfg: Mapping[str, Any], where: Any) -> dict[str, Any]:
    present = [key for key in REPORT_KEYS if key in flow_cfg]
    if present and name != "report":
        raise FlowConfigError(f"{where(present[0])}: only the report flow takes {', '.join(REPORT_KEYS)}")
    options: dict[str, Any] = {}
    for key in ("local_dir", "remote_dir"):
        if key in flow_cfg:
            value = flow_cfg[key]
            if not isinstance(value, str) or not value.strip() or "\x00" in value:
                raise FlowConfigError(f"{where(key)}: expected a folder path, got {value!r}")
            options[key] = value.strip()
    if "remote_dir" in options:
        parts = options["remote_dir"].replace("\\", "/").split("/")
        if ".." in parts:
            raise FlowConfigError(f"{where('remote_dir')}: {options['remote_dir']!r} must not contain '..'")
    if "days" in flow_cfg:
        value = flow_cfg["days"]
        if not _is_int(value) or not 1 <= value <= 366:
            raise FlowConfigError(f"{where('days')}: expected a whole number of days from 1 to 366, got {value!r}")
        options["days"] = value
    return options


def parse_flow(name: str, flow_cfg: Mapping[str, Any] | None, *, source: str = "passerelle.yaml") -> FlowSpec:
    """Check one flow's entry and return it with defaults filled in.

    :param name: the flow, one of :data:`FLOW_NAMES`.
    :param flow_cfg: its mapping from ``flows:`` (``None`` or ``{}``: all defaults).
    :param source: the configuration file, for messages.
    :raises FlowConfigError: naming *source*, the flow and the key.
    """
    if name not in FLOW_NAMES:
        hint = difflib.get_close_matches(str(name), FLOW_NAMES, n=1)
        raise FlowConfigError(
            f"{_where(source, name)}: unknown flow; expected one of {', '.join(FLOW_NAMES)}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
        )
    if flow_cfg is None:
        flow_cfg = {}
    if not isinstance(flow_cfg, Mapping):
        raise FlowConfigError(
            f"{_where(source, name)}: expected a mapping such as {{cron: \"0 2 * * *\"}}, got {flow_cfg!r}"
        )
    for key in flow_cfg:
        if key not in ALLOWED_KEYS:
            hint = difflib.get_close_matches(str(key), ALLOWED_KEYS, n=1)
            raise FlowConfigError(
                f"{_where(source, name, str(key))}: unknown key; expected one of {', '.join(ALLOWED_KEYS)}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
            )

    def where(key: str) -> str:
        return _where(source, name, key)

    on_change = _check_bool(flow_cfg["on_change"], where("on_change")) if "on_change" in flow_cfg else False
    manual = _check_bool(flow_cfg["manual"], where("manual")) if "manual" in flow_cfg else False
    timed = [key for key in TIME_KEYS if key in flow_cfg]
    if len(timed) > 1:
        raise FlowConfigError(
            f"{_where(source, name)}: {' and '.join(timed)} are both set; keep one rhythm "
            f"(only on_change: true may be added to cron, times or every_minutes)"
        )
    if manual and (timed or on_change or "after" in flow_cfg):
        other = timed[0] if timed else "on_change" if on_change else "after"
        raise FlowConfigError(
            f"{_where(source, name)}: manual: true and {other} are both set; a manual flow has no other rhythm"
        )
    if on_change and name in NO_CHANGE_FLOWS:
        raise FlowConfigError(
            f"{where('on_change')}: {NO_CHANGE_FLOWS[name]}; give {name} a cron, times or every_minutes instead"
        )

    rhythm: dict[str, Any] = {}
    if timed:
        key = timed[0]
        value = flow_cfg[key]
        if key == "cron":
            rhythm["cron"] = check_cron(value, where("cron"))
        elif key == "times":
            rhythm["times"] = _check_times(value, where("times"))
        else:
            if not _is_int(value) or not 1 <= value <= MINUTES_PER_DAY:
                raise FlowConfigError(
                    f"{where('every_minutes')}: expected a whole number of minutes from 1 to {MINUTES_PER_DAY}, "
                    f"got {value!r}"
                )
            rhythm["every_minutes"] = value
    elif not (manual or on_change):
        # Options only, nothing, or manual/on_change set to false: the default rhythm.
        rhythm = dict(DEFAULT_RHYTHMS[name])

    options: dict[str, Any] = {}
    for key in ("enabled", "catchup"):
        if key in flow_cfg:
            options[key] = _check_bool(flow_cfg[key], where(key))
    if "max_active_runs" in flow_cfg:
        value = flow_cfg["max_active_runs"]
        if not _is_int(value) or value < 1:
            raise FlowConfigError(f"{where('max_active_runs')}: expected a whole number >= 1, got {value!r}")
        options["max_active_runs"] = value
    if "retries" in flow_cfg:
        value = flow_cfg["retries"]
        if not _is_int(value) or not 0 <= value <= 100:
            raise FlowConfigError(f"{where('retries')}: expected a whole number from 0 to 100, got {value!r}")
        options["retries"] = value
    if "pool" in flow_cfg:
        value = flow_cfg["pool"]
        if not isinstance(value, str) or not POOL_NAME.match(value):
            raise FlowConfigError(
                f"{where('pool')}: expected an Airflow pool name (letters, digits, _ . -), got {value!r}"
            )
        options["pool"] = value
    if "entities" in flow_cfg:
        options["entities"] = _check_entities(flow_cfg["entities"], where("entities"))
    if "start_date" in flow_cfg:
        options["start_date"] = _check_start_date(flow_cfg["start_date"], where("start_date"))
    if "after" in flow_cfg:
        options["after"] = _check_after(flow_cfg["after"], name, where("after"))
    if "watch" in flow_cfg:
        options["watch"] = _check_watch(flow_cfg["watch"], where("watch"))
    if "poll_seconds" in flow_cfg:
        options["poll_seconds"] = _check_seconds(flow_cfg["poll_seconds"], where("poll_seconds"), 1, 3600)
    if "settle_seconds" in flow_cfg:
        options["settle_seconds"] = _check_seconds(flow_cfg["settle_seconds"], where("settle_seconds"), 0, 600)
    options.update(_check_report_keys(name, flow_cfg, where))
    if options.get("catchup") and "start_date" not in options:
        raise FlowConfigError(
            f"{where('catchup')}: true needs flows.{name}.start_date (YYYY-MM-DD, in the shop's timezone), "
            f"the first slot to catch up from; without it Airflow refuses the DAG"
        )
    return FlowSpec(name=name, on_change=on_change, manual=manual, **rhythm, **options)


def _source(cfg: Mapping[str, Any]) -> str:
    return str(cfg.get("_path") or "passerelle.yaml")


def _flows_section(cfg: Mapping[str, Any]) -> Mapping[str, Any]:
    source = _source(cfg)
    flows = cfg.get("flows") or {}
    if not isinstance(flows, Mapping):
        raise FlowConfigError(f"{source}: flows: expected a mapping of flow name to rhythm, got {flows!r}")
    for name in flows:
        if name not in FLOW_NAMES:
            parse_flow(str(name), {}, source=source)  # raises "unknown flow"
    return flows


def flow_spec(name: str, cfg: Mapping[str, Any]) -> FlowSpec:
    """Check the ``flows:`` section's flow names, ``shop.timezone`` and flow *name*'s entry.

    The other flows' entries are not checked here, so a mistake in one flow does not stop the
    others from importing; :func:`check_flows` checks them all.
    """
    flows = _flows_section(cfg)
    check_timezone(cfg.get("shop", {}).get("timezone", "Europe/Paris"), _source(cfg))
    return parse_flow(name, flows.get(name), source=_source(cfg))


def check_flows(cfg: Mapping[str, Any]) -> dict[str, FlowSpec]:
    """Check the whole ``flows:`` section; return every flow's spec (defaults for flows left out)."""
    return {name: flow_spec(name, cfg) for name in FLOW_NAMES}


def times_to_crons(times: tuple[str, ...] | list[str]) -> list[str]:
    """Cron expressions firing at *times* (``"HH:MM"``), one per distinct minute.

    ``["08:00", "13:00"]`` gives ``["0 8,13 * * *"]``; ``["08:00", "12:30"]`` gives
    ``["0 8 * * *", "30 12 * * *"]``.
    """
    hours_by_minute: dict[int, list[int]] = {}
    for text in times:
        hour, minute = parse_time_of_day(text, "times")
        hours_by_minute.setdefault(minute, []).append(hour)
    return [
        f"{minute} {','.join(str(h) for h in sorted(set(hours)))} * * *"
        for minute, hours in sorted(hours_by_minute.items())
    ]


def every_minutes_to_crons(n: int) -> list[str] | None:
    """Cron expressions (in UTC) firing every *n* minutes from midnight, or ``None`` if *n* does
    not divide a day (1440 minutes) evenly.

    15 gives ``["*/15 * * * *"]``, 120 gives ``["0 */2 * * *"]``, 90 gives
    ``["0 0,3,6,9,12,15,18,21 * * *", "30 1,4,7,10,13,16,19,22 * * *"]``.
    """
    if not 1 <= n <= MINUTES_PER_DAY or MINUTES_PER_DAY % n:
        return None
    if n == 1:
        return ["* * * * *"]
    if 60 % n == 0:
        return [f"*/{n} * * * *" if n < 60 else "0 * * * *"]
    if n % 60 == 0:
        return [f"0 */{n // 60} * * *" if n < MINUTES_PER_DAY else "0 0 * * *"]
    hours_by_minute: dict[int, list[int]] = {}
    for start in range(0, MINUTES_PER_DAY, n):
        hour, minute = divmod(start, 60)
        hours_by_minute.setdefault(minute, []).append(hour)
    return [f"{m} {','.join(map(str, hs))} * * *" for m, hs in sorted(hours_by_minute.items())]


# --------------------------------------------------------------------------- Airflow objects


def flow_change_asset(flow: str) -> Asset:
    """The Asset that means "the ERP data of *flow* changed": its updates start an on-change run.

    The on-change detector (a task with this asset as outlet, or an AssetWatcher attached to an
    asset with the same name) must use this name so that producer and DAG agree.
    """
    from airflow.sdk import Asset

    return Asset(name=f"passerelle.change.{flow}", uri=f"passerelle://change/{flow}", group="passerelle")


def published_asset(flow: str) -> Asset:
    """The Asset a flow's publish task updates once its files are on the shop's server.

    For the catalog: name ``passerelle.catalog.published``, URI ``passerelle://shop/catalog``
    (also importable as :data:`CATALOG_PUBLISHED`). A flow configured with ``after: [catalog]``
    runs after each update of it, besides its own rhythm.
    """
    from airflow.sdk import Asset

    return Asset(name=f"passerelle.{flow}.published", uri=f"passerelle://shop/{flow}", group="passerelle")


def __getattr__(attr: str) -> Any:
    """``CATALOG_PUBLISHED`` is built on first use, so importing this module stays free of Airflow."""
    if attr == "CATALOG_PUBLISHED":
        value = published_asset("catalog")
        globals()[attr] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def watched_tables(name: str, cfg: Mapping[str, Any], spec: FlowSpec | None = None) -> dict[str, tuple[str, ...]]:
    """Tables watched per entity for flow *name*'s ``on_change``: ``flows.<name>.watch`` over
    :data:`passerelle.changes.DEFAULT_WATCH`, for the flow's entities (:func:`flow_entities`).

    :raises FlowConfigError: an entity in ``watch`` the flow does not handle, or an entity with
        no tables to watch (neither configured nor known by default).
    """
    from passerelle.changes import DEFAULT_WATCH

    spec = spec or flow_spec(name, cfg)
    entities = flow_entities(name, cfg, spec)
    source = _source(cfg)
    configured = dict(spec.watch)
    for entity in configured:
        if entity not in entities:
            raise FlowConfigError(
                f"{_where(source, name, f'watch.{entity}')}: {entity!r} is not an entity of {name}; "
                f"expected one of {', '.join(entities) or '(none)'}"
            )
    tables: dict[str, tuple[str, ...]] = {}
    for entity in entities:
        chosen = configured.get(entity) or DEFAULT_WATCH.get(entity)
        if not chosen:
            raise FlowConfigError(
                f"{_where(source, name, 'watch')}: no tables known for entity {entity!r}; list them, "
                f"e.g. watch: {{{entity}: [erp.some_table]}}"
            )
        tables[entity] = tuple(chosen)
    if not tables:
        raise FlowConfigError(f"{_where(source, name, 'on_change')}: {name} has no entities to watch")
    return tables


def change_watch_asset(name: str, cfg: Mapping[str, Any], spec: FlowSpec | None = None) -> Asset:
    """:func:`flow_change_asset` carrying an ``AssetWatcher`` whose trigger polls the back office.

    The trigger (:class:`passerelle.changes.ErpChangeTrigger`) runs in Airflow's triggerer; it
    connects through ``shop.erp_conn_id`` when it starts, never at DAG parse time.
    """
    from airflow.sdk import AssetWatcher

    from passerelle.changes import ErpChangeTrigger

    spec = spec or flow_spec(name, cfg)
    base = flow_change_asset(name)
    trigger = ErpChangeTrigger(
        watcher=base.name,
        tables=watched_tables(name, cfg, spec),
        conn_id=cfg.get("shop", {}).get("erp_conn_id", "passerelle_erp"),
        poll_seconds=spec.poll_seconds,
        settle_seconds=spec.settle_seconds,
    )
    base.watchers = [AssetWatcher(name=f"passerelle_erp_changes_{name}", trigger=trigger)]
    return base


def _timetable(spec: FlowSpec, timezone: str) -> Any:
    """The time-based part of *spec*'s rhythm as an Airflow timetable, or ``None``."""
    from airflow.sdk import CronTriggerTimetable, DeltaTriggerTimetable, MultipleCronTriggerTimetable

    if spec.cron:
        return CronTriggerTimetable(spec.cron, timezone=timezone)
    if spec.times:
        return MultipleCronTriggerTimetable(*times_to_crons(spec.times), timezone=timezone)
    if spec.every_minutes:
        crons = every_minutes_to_crons(spec.every_minutes)
        if crons is None:
            return DeltaTriggerTimetable(timedelta(minutes=spec.every_minutes))
        if len(crons) == 1:
            return CronTriggerTimetable(crons[0], timezone="UTC")
        return MultipleCronTriggerTimetable(*crons, timezone="UTC")
    return None


def schedule_for(spec: FlowSpec, timezone: str, *, change_asset: Asset | None = None) -> Any:
    """What to pass as the DAG's ``schedule`` for a checked *spec* (see :func:`flow_schedule`)."""
    if not spec.enabled or spec.manual:
        return None
    timetable = _timetable(spec, timezone)
    assets = []
    if spec.on_change:
        assets.append(change_asset if change_asset is not None else flow_change_asset(spec.name))
    assets += [published_asset(flow) for flow in spec.after]
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
    """Return the DAG ``schedule`` for flow *name* configured by *flow_cfg*.

    - ``cron`` → ``CronTriggerTimetable(expr, timezone=timezone)``;
    - ``times`` → ``MultipleCronTriggerTimetable`` with one cron per distinct minute, in *timezone*
      (a time of day stays the same local time across daylight-saving changes);
    - ``every_minutes: N`` → a cron grid in UTC aligned on midnight when N divides 1440 (15, 30,
      60, 90, 120...), so runs and their logical dates fall on the same instants whenever the flow
      was deployed, and a backfill over a range always yields the same runs; otherwise (7, 45...)
      ``DeltaTriggerTimetable(timedelta(minutes=N))``, anchored on the first run;
    - ``on_change`` → the flow's change Asset (*change_asset*, default :func:`flow_change_asset`),
      combined with the timetable above in ``AssetOrTimeSchedule`` when both are set;
    - ``after: [catalog]`` → the catalog's :func:`published_asset` too (any of the assets, or the
      timetable, starts a run);
    - ``manual`` or ``enabled: false`` → ``None``.

    The classes are the Task SDK's (``airflow.sdk``), the public authoring interface of Airflow 3.
    :raises FlowConfigError: if *flow_cfg* is wrong (message names *source*, the flow and the key).
    """
    check_timezone(timezone, source)
    spec = parse_flow(name, flow_cfg, source=source)
    return schedule_for(spec, timezone, change_asset=change_asset)


def flow_entities(name: str, cfg: Mapping[str, Any], spec: FlowSpec | None = None) -> list[str]:
    """Entities of flow *name*: ``flows.<name>.entities`` if set, else its defaults."""
    spec = spec or flow_spec(name, cfg)
    if spec.entities is not None:
        return list(spec.entities)
    if name == "catalog":
        return list(cfg.get("catalog", {}).get("entities") or [])
    return list(DEFAULT_ENTITIES.get(name, ()))


def flow_params(entities: list[str] | tuple[str, ...], *, replay: bool = False) -> dict[str, Param]:
    """The run form shown in the UI ("Trigger Dag" with config) as DAG ``params``.

    - ``mode``: ``delta`` (only what changed since the shop last received it) or ``full``
      (everything; resets the snapshot);
    - ``entities``: which of *entities* to process (default all); left out if *entities* is empty;
    - ``dry_run``: compute and show what would be sent, upload nothing;
    - ``replay_quarantine`` (if *replay*): also replay quarantined rows that have been fixed.

    Scheduled and on-change runs use the defaults: delta, all entities, no dry run.
    """
    from airflow.sdk import Param

    section = "Run options"
    params: dict[str, Param] = {
        "mode": Param(
            "delta",
            type="string",
            enum=["delta", "full"],
            values_display={
                "delta": "Delta: only what changed since the last send",
                "full": "Full: send everything and reset the snapshot",
            },
            title="Mode",
            description="Delta sends only rows whose content changed; full sends every row.",
            section=section,
        ),
    }
    if entities:
        names = list(dict.fromkeys(entities))
        params["entities"] = Param(
            names,
            type="array",
            items={"type": "string", "enum": names},
            examples=names,
            minItems=1,
            uniqueItems=True,
            title="Entities",
            description="Entities to process in this run (default: all of the flow's entities).",
            section=section,
        )
    params["dry_run"] = Param(
        False,
        type="boolean",
        title="Dry run",
        description="Compute and show what would be sent; upload nothing and leave the snapshot unchanged.",
        section=section,
    )
    if replay:
        params["replay_quarantine"] = Param(
            False,
            type="boolean",
            title="Replay quarantine",
            description="Also integrate again the quarantined rows (fix their cause first).",
            section=section,
        )
    return params


def start_datetime(value: date | datetime, timezone: str) -> datetime:
    """*value* as an aware datetime: a date is midnight in *timezone*, a naive datetime is read in it."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zoneinfo.ZoneInfo(timezone))
    return value


def flow_settings(name: str, cfg: Mapping[str, Any], *, change_asset: Asset | None = None) -> dict[str, Any]:
    """DAG keyword arguments for flow *name*, for the DAG file to splat: ``DAG(dag_id, **settings)``.

    Returns ``schedule`` (:func:`flow_schedule`), ``catchup``, ``max_active_runs`` (default 1: a
    manual run started during a scheduled one is queued and waits; a backfill runs in order),
    ``tags``, ``description``, ``params`` (the run form, :func:`flow_params`),
    ``default_args`` (owner, retries, retry delay, and the pool when configured) and
    ``start_date`` when configured.

    With ``on_change: true`` the schedule's change Asset carries an ``AssetWatcher`` polling the
    back office (:func:`change_watch_asset`). With a ``pool``, tasks also get
    ``weight_rule="upstream"``: in a pool shared by several flows, the next task of a run already
    started (publish, confirm) goes before the first task of another run, so runs do not interleave.

    :param change_asset: the Asset whose updates start an on-change run (default: the flow's
        change asset with its watcher); pass your own to watch something else.
    :raises FlowConfigError: if the flow names, ``shop.timezone`` or this flow's entry are wrong.
    """
    spec = flow_spec(name, cfg)
    timezone = cfg.get("shop", {}).get("timezone", "Europe/Paris")
    default_args: dict[str, Any] = {"owner": OWNER, "retries": spec.retries, "retry_delay": RETRY_DELAY}
    if spec.pool:
        default_args["pool"] = spec.pool
        default_args["weight_rule"] = "upstream"
    if spec.on_change and spec.enabled and change_asset is None:
        change_asset = change_watch_asset(name, cfg, spec)
    settings: dict[str, Any] = {
        "schedule": schedule_for(spec, timezone, change_asset=change_asset),
        "catchup": spec.catchup,
        "max_active_runs": spec.max_active_runs,
        "tags": ["passerelle", name] + ([] if spec.enabled else ["disabled"]),
        "description": f"Passerelle {name}: {spec.describe(timezone)}",
        "params": flow_params(flow_entities(name, cfg, spec), replay=name in REPLAY_FLOWS),
        "default_args": default_args,
    }
    if spec.start_date is not None:
        settings["start_date"] = start_datetime(spec.start_date, timezone)
    return settings


def ftp_pool(name: str, cfg: Mapping[str, Any]) -> str:
    """The Airflow pool of flow *name*'s tasks that connect to the shop's server (uploads,
    listings, downloads, renames): ``shop.ftp_pool`` (default ``shop_ftp``), which caps the
    sessions all flows open at once.

    A flow given its own ``pool`` keeps all its tasks in it, these included: a pool shared by
    flows writing the same rows of the shop must hold their uploads too (a task is in one pool).
    """
    spec = flow_spec(name, cfg)
    return spec.pool or cfg.get("shop", {}).get("ftp_pool") or DEFAULTS["shop"]["ftp_pool"]


def report_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The report flow's options: ``local_dir`` (a Path; relative paths are read from the project
    root), ``remote_dir`` (on the shop's server) and ``days`` (how many days the page covers)."""
    from pathlib import Path

    from passerelle import PROJECT_ROOT

    spec = flow_spec("report", cfg)
    local = Path(spec.local_dir).expanduser()
    return {
        "local_dir": local if local.is_absolute() else PROJECT_ROOT / local,
        "remote_dir": spec.remote_dir,
        "days": spec.days,
    }


def next_runs(schedule: Any, start: datetime, n: int, *, until: datetime | None = None) -> list[datetime]:
    """The next *n* run instants (UTC) of *schedule* from *start* (inclusive) up to *until*.

    Asks the timetable the way a backfill does (``next_dagrun_info_v2`` with catchup on, feeding
    back each run), so the list is also what a backfill over ``[start, until]`` creates, in order.
    Asset-only and ``None`` schedules have no timed runs: ``[]``.
    """
    if start.tzinfo is None or (until is not None and until.tzinfo is None):
        raise ValueError(f"start and until must be timezone-aware, got {start!r}, {until!r}")
    if schedule is None or n <= 0:
        return []
    from airflow.sdk.definitions.asset import BaseAsset

    if isinstance(schedule, BaseAsset):
        return []
    import pendulum
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    timetable = coerce_to_core_timetable(schedule)
    restriction = TimeRestriction(
        earliest=pendulum.instance(start),
        latest=pendulum.instance(until) if until is not None else None,
        catchup=True,
    )
    runs: list[datetime] = []
    info = None
    while len(runs) < n:
        info = timetable.next_dagrun_info_v2(last_dagrun_info=info, restriction=restriction)
        if info is None:
            break
        runs.append(info.run_after)
    return runs


__all__ = [
    "CATALOG_PUBLISHED",
    "DEFAULT_RHYTHMS",
    "FLOW_NAMES",
    "FlowConfigError",
    "FlowSpec",
    "check_cron",
    "check_flows",
    "change_watch_asset",
    "check_table_name",
    "check_timezone",
    "every_minutes_to_crons",
    "flow_change_asset",
    "flow_entities",
    "flow_params",
    "flow_schedule",
    "flow_settings",
    "flow_spec",
    "ftp_pool",
    "next_runs",
    "parse_flow",
    "published_asset",
    "report_settings",
    "schedule_for",
    "start_datetime",
    "times_to_crons",
    "watched_tables",
]
