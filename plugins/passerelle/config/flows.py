"""The ``flows:`` section: one entry per flow, its rhythm and options, checked.

Each flow (``catalog``, ``customers``, ``prices_stock``, ``orders_in``, ``order_status``,
``report``) has one rhythm: a ``cron``, fixed ``times`` of day in the shop's timezone,
``every_minutes``, ``on_change`` (when the ERP changes), or ``manual``. ``on_change: true`` may be
added to a time-based rhythm. A flow left out of the file, or given options but no rhythm, keeps
its default rhythm (:data:`DEFAULT_RHYTHMS`). Pure (croniter and the standard library): what
these settings become in Airflow is in :mod:`passerelle.dag_settings`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, ClassVar

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter
from pydantic import BeforeValidator, model_validator

from passerelle.config.base import FlowConfigError, Section, fail
from passerelle.config.checks import Bool, check_pool, names_list, whole

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
    "customers": ("customer", "customer_address"),
    "prices_stock": ("price", "stock"),
    "orders_in": ("order", "customer", "payment"),
    "order_status": ("order_status", "tracking", "invoice"),
    "report": (),
}

#: Flows whose run form offers to replay quarantined rows (rows rejected from shop files).
REPLAY_FLOWS: frozenset[str] = frozenset({"orders_in"})

#: Flows whose publish task emits an Asset (:func:`passerelle.assets.published_asset`) another
#: flow may follow with ``after: [<flow>]``. Add a flow here once its publish task has the asset as outlet.
PUBLISHING_FLOWS: tuple[str, ...] = ("catalog",)

#: Flows ``on_change`` cannot start: orders come from files the shop drops, not from the back
#: office, and the report is made from run summaries.
NO_CHANGE_FLOWS: dict[str, str] = {
    "orders_in": "orders_in reads the files the shop drops; on_change watches the back office",
    "report": "the report is made from run summaries, not from changes in the back office",
}

#: Flows that keep no snapshot, hence take no ``mode`` (passerelle.params.NO_SNAPSHOT_FLOWS).
NO_MODE_FLOWS: dict[str, str] = {
    "orders_in": "orders_in reads the shop's files and keeps no snapshot to send a delta of",
    "report": "the report is made whole each time, it keeps no snapshot",
}

TIME_KEYS: tuple[str, ...] = ("cron", "times", "every_minutes")
RHYTHM_KEYS: tuple[str, ...] = (*TIME_KEYS, "on_change", "manual")
OPTION_KEYS: tuple[str, ...] = (
    "enabled",
    "catchup",
    "start_date",
    "max_active_runs",
    "pool",
    "retries",
    "entities",
    "after",
    "watch",
    "poll_seconds",
    "settle_seconds",
    "mode",
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
MINUTES_PER_DAY = 24 * 60

_TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")


# --------------------------------------------------------------------------- value checks


def cron_problem(expr: Any) -> str | None:
    """What is wrong with *expr* as a 5-field cron expression (or ``@daily``-style preset) that
    fires, or ``None``."""
    if not isinstance(expr, str) or not expr.strip():
        return f'expected a cron expression such as "0 2 * * *", got {expr!r}'
    expr = " ".join(expr.split())
    try:
        fields = croniter(expr).expanded
    except CroniterError as exc:
        return f"{expr!r} is not a valid cron expression ({exc})"
    if len(fields) != 5:
        return f"{expr!r} has {len(fields)} fields; expected 5 (minute hour day-of-month month day-of-week)"
    try:  # "0 2 30 2 *" is well formed but never fires.
        croniter(expr, datetime(2000, 1, 1)).get_next(datetime)
    except (CroniterBadDateError, CroniterBadCronError):
        return f"{expr!r} never fires (no such date)"
    return None


def _cron(value: Any) -> str:
    problem = cron_problem(value)
    if problem:
        raise fail(problem)
    return " ".join(value.split())


def time_of_day_problem(value: Any) -> str | None:
    """What is wrong with *value* as ``"HH:MM"`` (``"8:00"`` accepted), or ``None``.

    YAML 1.1 reads an unquoted ``13:00`` as the number 780 (base 60); the message says to quote it.
    """
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MINUTES_PER_DAY:
        hour, minute = divmod(value, 60)
        return (
            f"{value!r} is not a time of day (HH:MM); YAML reads an unquoted {hour}:{minute:02d} as the number "
            f'{value}: write it in quotes, "{hour:02d}:{minute:02d}"'
        )
    if not (isinstance(value, str) and _TIME_OF_DAY.match(value)):
        return f"{value!r} is not a time of day (HH:MM)"
    return None


def parse_time_of_day(value: Any, where: str = "times") -> tuple[int, int]:
    """Return ``(hour, minute)`` from ``"HH:MM"``; :class:`FlowConfigError` naming *where* otherwise."""
    problem = time_of_day_problem(value)
    if problem:
        raise FlowConfigError(f"{where}: {problem}")
    match = _TIME_OF_DAY.match(value)
    return int(match[1]), int(match[2])


def _times(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise fail(f'expected a list of times of day such as ["08:00", "13:00"], got {value!r}')
    seen: dict[tuple[int, int], int] = {}
    for i, item in enumerate(value):
        problem = time_of_day_problem(item)
        if problem:
            raise fail(problem, key=i)
        match = _TIME_OF_DAY.match(item)
        hm = int(match[1]), int(match[2])
        if hm in seen:
            first = seen[hm]
            raise fail(f"{item!r} is the same time as times[{first}] ({value[first]!r})", key=i)
        seen[hm] = i
    return tuple(f"{h:02d}:{m:02d}" for h, m in sorted(seen))


def _start_date(value: Any) -> date | datetime:
    """A date or date-time (YAML reads an unquoted 2026-01-01 as a date); strings in ISO format."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if "T" in value or " " in value.strip() else date.fromisoformat(value)
        except ValueError:
            raise fail(f"{value!r} is not a date (YYYY-MM-DD)") from None
    if not isinstance(value, date):
        raise fail(f"expected a date (YYYY-MM-DD), got {value!r}")
    return value


def _seconds(low: float, high: float):
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise fail(f"expected a number of seconds from {low:g} to {high:g}, got {value!r}")
        return float(value)

    return check


def table_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not _TABLE_NAME.match(value):
        return f'expected a table as schema.table, such as "erp.article", got {value!r}'
    return None


def _watch(value: Any) -> dict[str, tuple[str, ...]]:
    """``watch: {entity: [schema.table, ...]}``."""
    if not isinstance(value, Mapping) or not value:
        raise fail(
            f"expected a mapping of entity to tables, such as {{stock: [erp.stock, erp.location]}}, got {value!r}"
        )
    out: dict[str, tuple[str, ...]] = {}
    for entity, tables in value.items():
        if not isinstance(entity, str) or not entity.strip():
            raise fail(f"expected entity names as keys, got {entity!r}")
        if isinstance(tables, str):
            tables = [tables]
        if not isinstance(tables, list) or not tables:
            raise fail(f"expected a list of tables such as [erp.stock], got {tables!r}", key=entity)
        for i, table in enumerate(tables):
            problem = table_problem(table)
            if problem:
                raise fail(problem, key=(entity, i))
        out[entity] = tuple(dict.fromkeys(tables))
    return out


def _report_folder(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise fail(f"expected a folder path, got {value!r}")
    return value.strip()


def _remote_folder(value: Any) -> str:
    value = _report_folder(value)
    if ".." in value.replace("\\", "/").split("/"):
        raise fail(f"{value!r} must not contain '..'")
    return value


#: The outbound modes a flow's scheduled runs may use (passerelle.core.differ.MODES).
MODES: tuple[str, ...] = ("delta", "new", "full")


def _mode(value: Any) -> str:
    if value not in MODES:
        hint = ""
        if isinstance(value, str):
            close = difflib.get_close_matches(value.strip().lower(), MODES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise fail(f"expected one of {', '.join(MODES)}, got {value!r}{hint}")
    return value


def _after_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise fail(f"expected a list of flows such as [catalog], got {value!r}")
    return tuple(value)


# --------------------------------------------------------------------------- one flow


class FlowSettings(Section):
    """One flow's entry, checked, defaults filled in (its ``name`` is set by :class:`FlowsSection`).

    At most one of ``cron``, ``times``, ``every_minutes`` is set; ``manual`` excludes all of them
    and ``on_change``.
    """

    EXAMPLE: ClassVar[str] = '{cron: "0 2 * * *"}'

    name: str
    cron: Annotated[str | None, BeforeValidator(_cron)] = None
    times: Annotated[tuple[str, ...], BeforeValidator(_times)] = ()
    every_minutes: Annotated[int | None, BeforeValidator(whole(1, MINUTES_PER_DAY, "minutes"))] = None
    on_change: Bool = False
    manual: Bool = False
    enabled: Bool = True
    catchup: Bool = False
    max_active_runs: Annotated[int, BeforeValidator(whole(1))] = 1
    pool: Annotated[str | None, BeforeValidator(check_pool)] = None
    retries: Annotated[int, BeforeValidator(whole(0, 100))] = DEFAULT_RETRIES
    entities: Annotated[tuple[str, ...] | None, BeforeValidator(names_list("entity", "[price, stock]"))] = None
    start_date: Annotated[date | datetime | None, BeforeValidator(_start_date)] = None
    #: Flows whose published Asset also starts this flow (``after: [catalog]``).
    after: Annotated[tuple[str, ...], BeforeValidator(_after_list)] = ()
    #: Tables watched per entity for ``on_change``, over :data:`passerelle.core.changes.DEFAULT_WATCH`.
    watch: Annotated[dict[str, tuple[str, ...]], BeforeValidator(_watch)] = {}  # noqa: RUF012
    poll_seconds: Annotated[float, BeforeValidator(_seconds(1, 3600))] = DEFAULT_POLL_SECONDS
    settle_seconds: Annotated[float, BeforeValidator(_seconds(0, 600))] = DEFAULT_SETTLE_SECONDS
    #: What scheduled runs send (and the run form's default): ``delta``, ``new`` (only rows the
    #: shop never received, e.g. new articles) or ``full``. Flows without a snapshot take none.
    mode: Annotated[str, BeforeValidator(_mode)] = "delta"
    #: ``report`` only: where the page is kept locally and on the shop's server, days covered.
    local_dir: Annotated[str, BeforeValidator(_report_folder)] = DEFAULT_REPORT_LOCAL_DIR
    remote_dir: Annotated[str, BeforeValidator(_remote_folder)] = DEFAULT_REPORT_REMOTE_DIR
    days: Annotated[int, BeforeValidator(whole(1, 366, "days"))] = DEFAULT_REPORT_DAYS

    @classmethod
    def allowed_keys(cls) -> tuple[str, ...]:
        return ("name", *ALLOWED_KEYS)

    @model_validator(mode="before")
    @classmethod
    def _one_rhythm(cls, data: Any) -> Any:
        """Which rhythm keys go together, before each value is checked on its own."""
        data = cls.check_keys(data)
        if not isinstance(data, Mapping):
            return data
        name = data.get("name")
        for key in ("on_change", "manual"):
            if key in data and not isinstance(data[key], bool):
                raise fail(f"expected true or false, got {data[key]!r}", key=key)
        on_change, manual = data.get("on_change", False), data.get("manual", False)
        timed = [key for key in TIME_KEYS if key in data]
        if len(timed) > 1:
            raise fail(
                f"{' and '.join(timed)} are both set; keep one rhythm "
                f"(only on_change: true may be added to cron, times or every_minutes)"
            )
        if manual and (timed or on_change or "after" in data):
            other = timed[0] if timed else "on_change" if on_change else "after"
            raise fail(f"manual: true and {other} are both set; a manual flow has no other rhythm")
        if on_change and name in NO_CHANGE_FLOWS:
            raise fail(f"{NO_CHANGE_FLOWS[name]}; give {name} a cron, times or every_minutes instead", key="on_change")
        if "mode" in data and name in NO_MODE_FLOWS:
            raise fail(f"{NO_MODE_FLOWS[name]}; remove mode", key="mode")
        present = [key for key in REPORT_KEYS if key in data]
        if present and name != "report":
            raise fail(f"only the report flow takes {', '.join(REPORT_KEYS)}", key=present[0])
        if not timed and not (manual or on_change) and name in DEFAULT_RHYTHMS:
            # Options only, nothing, or manual/on_change set to false: the default rhythm.
            data = {**data, **DEFAULT_RHYTHMS[name]}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> FlowSettings:
        for i, flow in enumerate(self.after):
            if flow == self.name:
                raise fail("a flow cannot run after itself", key=("after", i))
            if flow not in PUBLISHING_FLOWS:
                raise fail(
                    f"{flow!r} publishes no asset to follow; expected one of {', '.join(PUBLISHING_FLOWS)}",
                    key=("after", i),
                )
            if flow in self.after[:i]:
                raise fail(f"{flow!r} is listed twice", key=("after", i))
        if self.catchup and self.start_date is None:
            raise fail(
                f"true needs flows.{self.name}.start_date (YYYY-MM-DD, in the shop's timezone), the first "
                f"slot to catch up from; without it Airflow refuses the DAG",
                key="catchup",
            )
        return self

    @property
    def rhythm(self) -> str:
        """Short name of the rhythm: ``cron``, ``times``, ``every_minutes`` (each possibly
        followed by ``+on_change``), ``on_change`` or ``manual``."""
        base = next((key for key in TIME_KEYS if getattr(self, key) not in (None, ())), None)
        if base and self.on_change:
            return f"{base}+on_change"
        return base or ("on_change" if self.on_change else "manual")

    @property
    def scheduled(self) -> bool:
        """Whether anything but a person starts the flow."""
        return self.enabled and not self.manual


#: The former name of :class:`FlowSettings`.
FlowSpec = FlowSettings


class FlowsSection(Section):
    """``flows``: one :class:`FlowSettings` per flow (defaults for the flows left out)."""

    KEY_WORD: ClassVar[str] = "flow"
    EXAMPLE: ClassVar[str] = '{catalog: {cron: "0 2 * * *"}}'

    catalog: FlowSettings
    customers: FlowSettings
    prices_stock: FlowSettings
    orders_in: FlowSettings
    order_status: FlowSettings
    report: FlowSettings

    @model_validator(mode="before")
    @classmethod
    def _named_entries(cls, data: Any) -> Any:
        """Every flow present, each entry told its name (an entry may not set ``name`` itself)."""
        data = cls.check_keys(data)
        if not isinstance(data, Mapping):
            return data
        out = {}
        for name in FLOW_NAMES:
            entry = data.get(name)
            if isinstance(entry, FlowSettings):
                out[name] = entry
                continue
            if entry is None:
                entry = {}
            if isinstance(entry, Mapping):
                if "name" in entry:
                    raise fail(f"unknown key; expected one of {', '.join(ALLOWED_KEYS)}", key=(name, "name"))
                entry = {"name": name, **entry}
            out[name] = entry
        return {**data, **out}

    def get(self, name: str) -> FlowSettings:
        """The entry of flow *name* (:class:`KeyError` for a name not in :data:`FLOW_NAMES`)."""
        if name not in FLOW_NAMES:
            raise KeyError(name)
        return getattr(self, name)

    def as_dict(self) -> dict[str, FlowSettings]:
        return {name: self.get(name) for name in FLOW_NAMES}


def parse_flow(name: str, flow_cfg: Mapping[str, Any] | None, *, source: str = "passerelle.yaml") -> FlowSettings:
    """Check one flow's entry alone and return it with defaults filled in.

    :param name: the flow, one of :data:`FLOW_NAMES`.
    :param flow_cfg: its mapping from ``flows:`` (``None`` or ``{}``: all defaults).
    :param source: the configuration file, for messages.
    :raises FlowConfigError: naming *source*, the flow and the key.
    """
    from pydantic import ValidationError

    from passerelle.config.base import config_error

    try:
        return FlowsSection.model_validate({name: flow_cfg}).get(name)
    except ValidationError as exc:
        raise config_error(exc, source, ("flows",)) from None
