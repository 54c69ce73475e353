"""The daily report: the last N days of Passerelle's runs and of the shop, as one HTML page.

For the retailer's staff: runs and volumes per flow (from ``passerelle.run_summary``), web
versus store sales per day (from the back office's orders) and the articles whose available
stock is below their minimum. The page is self-contained: inline CSS and SVG charts drawn
here, no script, no font or library fetched from the internet; it opens from a USB stick.

The window is the *days* whole days (shop timezone) before the report's day, so a report made
again for a past day shows the same runs and sales (stock alerts are the stock of the moment:
the back office keeps no stock history).

:func:`collect_report` reads the database; everything else is pure (rows in, text out).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from passerelle import INCLUDE

TEMPLATE = INCLUDE / "templates" / "report.html.j2"

#: Keys of a run's per-entity counts that are rows moved (sent or integrated).
ROW_KEYS: tuple[str, ...] = ("created", "changed", "removed", "integrated", "rows")

#: One colour per flow (colour-blind friendly palette), in passerelle.config.FLOW_NAMES order.
FLOW_COLOURS: dict[str, str] = {
    "catalog": "#0072B2",
    "customers": "#E69F00",
    "prices_stock": "#009E73",
    "orders_in": "#CC79A7",
    "order_status": "#56B4E9",
    "report": "#999999",
}
OTHER_COLOURS = ("#D55E00", "#F0E442", "#000000", "#882255")
WEB_COLOUR, STORE_COLOUR = "#0072B2", "#E69F00"

# The back office is read through views (include/sql/views/40_report.sql), like every flow.
#: Sales per day (in the shop's time zone) and origin.
SALES_SQL = """
SELECT (s.order_date AT TIME ZONE %(tz)s)::date AS day, s.web, count(*) AS orders,
       coalesce(sum(s.total_incl_vat), 0) AS total
FROM passerelle_src.sale s
WHERE s.order_date >= %(start)s AND s.order_date < %(end)s
GROUP BY 1, 2
"""

#: Articles below their minimum stock, the furthest below first.
STOCK_ALERTS_SQL = """
SELECT reference, name, web, available, min_stock
FROM passerelle_src.stock_alert
ORDER BY available - min_stock, reference
"""

RUNS_SQL = """
SELECT flow, dry_run, counts, rejects, bytes_sent, bytes_received, started_at, finished_at
FROM passerelle.run_summary
WHERE finished_at >= %(start)s AND finished_at < %(end)s
ORDER BY finished_at
"""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class RunRow:
    """One ``passerelle.run_summary`` row, as the report needs it."""

    flow: str
    dry_run: bool
    counts: Mapping[str, Any]
    rejects: int
    bytes_sent: int
    bytes_received: int
    started_at: datetime | None
    finished_at: datetime


@dataclass
class FlowStats:
    """A flow's totals over the window."""

    flow: str
    runs: int = 0
    dry_runs: int = 0
    rows: int = 0
    rejects: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    seconds: list[float] = field(default_factory=list)
    last_run: datetime | None = None

    @property
    def avg_seconds(self) -> float | None:
        return sum(self.seconds) / len(self.seconds) if self.seconds else None

    @property
    def max_seconds(self) -> float | None:
        return max(self.seconds) if self.seconds else None


@dataclass(frozen=True)
class SalesDay:
    day: date
    web_orders: int = 0
    web_total: Decimal = Decimal(0)
    store_orders: int = 0
    store_total: Decimal = Decimal(0)


@dataclass(frozen=True)
class StockAlert:
    reference: str
    name: str
    web: bool
    available: Decimal
    min_stock: Decimal

    @property
    def missing(self) -> Decimal:
        return self.min_stock - self.available


@dataclass
class ReportData:
    """Everything the page shows; built by :func:`collect_report` or by hand in tests."""

    day: date
    days: list[date]
    timezone: str
    flows: list[FlowStats]
    runs_per_day: dict[str, list[int]]
    rows_per_day: dict[str, list[int]]
    sales: list[SalesDay]
    stock_alerts: list[StockAlert]
    stock_alert_count: int

    @property
    def total_runs(self) -> int:
        return sum(f.runs for f in self.flows)

    @property
    def total_orders(self) -> int:
        return sum(s.web_orders + s.store_orders for s in self.sales)


def window(
    day: date, days: int, timezone: str, *, until: datetime | None = None
) -> tuple[list[date], datetime, datetime]:
    """The report's *day* and the *days* whole local days before it, and their bounds as aware
    datetimes: midnight shop time of the first day, and the end, *until* (the run's logical
    moment: a report made at 06:00, or after a day of runs, shows the day so far) if it falls on
    *day*, else midnight after *day* (excluded).

    The day just ended is always inside: the report of the 21st at 06:00 covers 22/10 to 20/11
    whole and the 21st until 06:00. Made again for the same logical moment, it reads the same rows.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    tz = ZoneInfo(timezone)
    first = day - timedelta(days=days)
    dates = [first + timedelta(days=i) for i in range(days + 1)]
    start = datetime(first.year, first.month, first.day, tzinfo=tz)
    after = day + timedelta(days=1)
    end = datetime(after.year, after.month, after.day, tzinfo=tz)
    if until is not None:
        if until.tzinfo is None:
            raise ValueError(f"until must be an aware datetime, got {until!r}")
        end = max(min(end, until.astimezone(tz)), datetime(day.year, day.month, day.day, tzinfo=tz))
    return dates, start, end


def rows_moved(counts: Mapping[str, Any] | None) -> int:
    """Rows a run moved: per entity, the sum of :data:`ROW_KEYS` (unchanged and rejected rows
    are not moved); an entity given as a bare number counts as that many rows."""
    total = 0
    for value in (counts or {}).values():
        if isinstance(value, Mapping):
            total += sum(int(value.get(k) or 0) for k in ROW_KEYS)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            total += int(value)
    return total


def summarise_runs(
    runs: Iterable[RunRow], days: Sequence[date], timezone: str, flow_order: Sequence[str] = tuple(FLOW_COLOURS)
) -> tuple[list[FlowStats], dict, dict]:
    """Per-flow totals, and runs and rows per flow per day (aligned with *days*)."""
    tz = ZoneInfo(timezone)
    index = {d: i for i, d in enumerate(days)}
    stats: dict[str, FlowStats] = {}
    runs_per_day: dict[str, list[int]] = {}
    rows_per_day: dict[str, list[int]] = {}
    for run in runs:
        s = stats.setdefault(run.flow, FlowStats(run.flow))
        runs_per_day.setdefault(run.flow, [0] * len(days))
        rows_per_day.setdefault(run.flow, [0] * len(days))
        rows = rows_moved(run.counts)
        s.runs += 1
        s.dry_runs += bool(run.dry_run)
        s.rows += rows
        s.rejects += run.rejects or 0
        s.bytes_sent += run.bytes_sent or 0
        s.bytes_received += run.bytes_received or 0
        if run.started_at is not None:
            s.seconds.append(max((run.finished_at - run.started_at).total_seconds(), 0.0))
        s.last_run = max(filter(None, [s.last_run, run.finished_at]))
        i = index.get(run.finished_at.astimezone(tz).date())
        if i is not None:
            runs_per_day[run.flow][i] += 1
            rows_per_day[run.flow][i] += rows
    order = {name: i for i, name in enumerate(flow_order)}
    flows = sorted(stats.values(), key=lambda f: (order.get(f.flow, len(order)), f.flow))
    return flows, runs_per_day, rows_per_day


def sales_by_day(rows: Iterable[tuple[date, bool, int, Decimal]], days: Sequence[date]) -> list[SalesDay]:
    """One :class:`SalesDay` per day of *days* from ``(day, is_web, orders, total)`` rows."""
    acc: dict[date, dict[str, Any]] = {d: {} for d in days}
    for day, web, orders, total in rows:
        if day not in acc:
            continue
        side = "web" if web else "store"
        acc[day][f"{side}_orders"] = acc[day].get(f"{side}_orders", 0) + int(orders)
        acc[day][f"{side}_total"] = acc[day].get(f"{side}_total", Decimal(0)) + Decimal(total)
    return [SalesDay(d, **acc[d]) for d in days]


def collect_report(
    conn: Any,
    *,
    day: date,
    days: int = 30,
    timezone: str = "Europe/Paris",
    alerts_shown: int = 50,
    until: datetime | None = None,
) -> ReportData:
    """Read the run summaries, sales and stock alerts of *day* (until *until*) and the *days*
    before it (:func:`window`; psycopg 3)."""
    dates, start, end = window(day, days, timezone, until=until)
    bounds = {"start": start, "end": end, "tz": timezone}
    runs = [RunRow(*row) for row in conn.execute(RUNS_SQL, bounds).fetchall()]
    flows, runs_per_day, rows_per_day = summarise_runs(runs, dates, timezone)
    sales = sales_by_day(conn.execute(SALES_SQL, bounds).fetchall(), dates)
    alerts = [StockAlert(*row) for row in conn.execute(STOCK_ALERTS_SQL).fetchall()]
    return ReportData(
        day=day,
        days=dates,
        timezone=timezone,
        flows=flows,
        runs_per_day=runs_per_day,
        rows_per_day=rows_per_day,
        sales=sales,
        stock_alerts=alerts[:alerts_shown],
        stock_alert_count=len(alerts),
    )


# --------------------------------------------------------------------------- formatting (French style)


def fmt_int(value: float | int | Decimal) -> str:
    """``12345`` → ``12 345`` (no-break space between thousands, as written in France)."""
    return f"{int(round(value)):,}".replace(",", "\u00a0")


def fmt_money(value: Decimal | float) -> str:
    """``1234.5`` → ``1 234,50 €``."""
    text = f"{Decimal(value):,.2f}"
    whole, cents = text.split(".")
    return f"{whole.replace(',', chr(0xA0))},{cents}\u00a0€"


def fmt_qty(value: Decimal | float) -> str:
    """A quantity without useless decimals: ``3.000`` → ``3``, ``2.5`` → ``2,5``."""
    text = f"{Decimal(value).normalize():f}"
    return text.replace(".", ",")


def fmt_bytes(value: int) -> str:
    """``1536`` → ``1,5 kB``; bytes in decimal units, as file managers show them."""
    units = ("B", "kB", "MB", "GB", "TB")
    size = float(value)
    for unit in units:
        if size < 1000 or unit == units[-1]:
            return f"{size:.0f}\u00a0{unit}" if unit == "B" else f"{size:.1f}\u00a0{unit}".replace(".", ",")
        size /= 1000
    raise AssertionError("unreachable")


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 60:
        return f"{value:.0f}\u00a0s"
    minutes, seconds = divmod(int(round(value)), 60)
    return f"{minutes}\u00a0min\u00a0{seconds:02d}\u00a0s"


# --------------------------------------------------------------------------- SVG charts


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10ⁿ at or above *value* (the top of a chart's axis)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = step * 10**exponent
        if top >= value:
            return float(top)
    return float(10 ** (exponent + 1))


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float]
    colour: str


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    unit: str = "",
    stacked: bool = True,
    width: int = 860,
    height: int = 260,
    fmt=fmt_int,
) -> str:
    """An SVG bar chart, one group (or stack) of bars per label; a legend above; the exact
    value of every bar in its tooltip (``<title>``)."""
    left, right, top, bottom = 56, 12, 34, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(labels), 1)
    if stacked:
        peak = max((sum(s.values[i] for s in series) for i in range(len(labels))), default=0)
    else:
        peak = max((v for s in series for v in s.values), default=0)
    ymax = nice_max(float(peak))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
    ]
    # Legend.
    x = left
    for s in series:
        out.append(
            f'<rect x="{x}" y="8" width="12" height="12" fill="{s.colour}"/>'
            f'<text x="{x + 16}" y="18" class="legend">{_e(s.label)}</text>'
        )
        x += 24 + 7 * len(s.label)
    # Grid and y axis.
    for i in range(5):
        value = ymax * i / 4
        y = top + plot_h - plot_h * i / 4
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{_e(fmt(value))}</text>'
        )
    if unit:
        out.append(f'<text x="{left - 6}" y="{top - 8}" class="axis" text-anchor="end">{_e(unit)}</text>')
    # Bars.
    slot = plot_w / n
    bar_w = slot * 0.75 if stacked else slot * 0.8 / max(len(series), 1)
    every = max(1, math.ceil(n / 15))
    for i, label in enumerate(labels):
        x0 = left + slot * i + slot * 0.125 if stacked else left + slot * i + slot * 0.1
        base = 0.0
        for k, s in enumerate(series):
            value = float(s.values[i])
            if value <= 0:
                continue
            h = plot_h * value / ymax
            if stacked:
                y = top + plot_h - plot_h * base / ymax - h
                bx = x0
                base += value
            else:
                y = top + plot_h - h
                bx = x0 + k * bar_w
            out.append(
                f'<rect x="{bx:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{s.colour}">'
                f"<title>{_e(label)} · {_e(s.label)}: {_e(fmt(value))}</title></rect>"
            )
        if i % every == 0:
            out.append(
                f'<text x="{left + slot * (i + 0.5):.1f}" y="{top + plot_h + 16}" class="axis" '
                f'text-anchor="middle">{_e(label)}</text>'
            )
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" class="axis-line"/>')
    out.append("</svg>")
    return "".join(out)


def hbar_chart(
    items: Sequence[tuple[str, float, float]],
    *,
    title: str,
    width: int = 860,
    labels: tuple[str, str] = ("available", "minimum"),
) -> str:
    """Horizontal bars, one row per item ``(label, value, target)``: the value as a bar, the
    target as a tick (stock alerts: available stock against the minimum)."""
    row, left, right, top = 22, 260, 60, 30
    height = top + row * max(len(items), 1) + 10
    peak = nice_max(max((max(v, t) for _, v, t in items), default=1))
    plot_w = width - left - right
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
        f'<rect x="{left}" y="8" width="12" height="12" fill="{STORE_COLOUR}"/>'
        f'<text x="{left + 16}" y="18" class="legend">{_e(labels[0])}</text>'
        f'<rect x="{left + 120}" y="7" width="3" height="14" fill="#D55E00"/>'
        f'<text x="{left + 128}" y="18" class="legend">{_e(labels[1])}</text>',
    ]
    for i, (label, value, target) in enumerate(items):
        y = top + i * row
        w = plot_w * max(value, 0) / peak
        tx = left + plot_w * target / peak
        short = label if len(label) <= 40 else label[:39] + "…"
        out.append(
            f'<text x="{left - 8}" y="{y + 14}" class="axis" text-anchor="end">{_e(short)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="14" fill="{STORE_COLOUR}">'
            f"<title>{_e(label)}: {_e(fmt_qty(value))} / {_e(fmt_qty(target))}</title></rect>"
            f'<rect x="{tx - 1:.1f}" y="{y}" width="3" height="20" fill="#D55E00"/>'
            f'<text x="{left + plot_w + 6}" y="{y + 14}" class="axis">'
            f"{_e(fmt_qty(value))} / {_e(fmt_qty(target))}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def flow_colour(flow: str, position: int) -> str:
    return FLOW_COLOURS.get(flow) or OTHER_COLOURS[position % len(OTHER_COLOURS)]


def charts(data: ReportData) -> dict[str, str]:
    """The page's SVG charts: runs, rows moved, sales, stock alerts."""
    labels = [d.strftime("%d/%m") for d in data.days]
    names = [f.flow for f in data.flows]
    runs = [Series(n, data.runs_per_day[n], flow_colour(n, i)) for i, n in enumerate(names)]
    rows = [Series(n, data.rows_per_day[n], flow_colour(n, i)) for i, n in enumerate(names)]
    sales = [
        Series("Web", [float(s.web_total) for s in data.sales], WEB_COLOUR),
        Series("Store (magasin, phone)", [float(s.store_total) for s in data.sales], STORE_COLOUR),
    ]
    return {
        "runs": bar_chart(labels, runs, title="Runs per day and flow"),
        "rows": bar_chart(labels, rows, title="Rows sent or integrated per day and flow", unit="rows"),
        "sales": bar_chart(
            labels,
            sales,
            title="Sales per day, web versus store (incl. VAT)",
            unit="€",
            stacked=False,
            fmt=lambda v: fmt_int(v),
        ),
        "stock": hbar_chart(
            [(f"{a.reference} {a.name}", float(a.available), float(a.min_stock)) for a in data.stock_alerts[:15]],
            title="Largest stock shortfalls: available stock against the minimum",
        ),
    }


# --------------------------------------------------------------------------- page


def render_html(data: ReportData, *, shop_name: str = "") -> str:
    """The report as one self-contained HTML page (template ``include/templates/report.html.j2``)."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE.parent)),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(int=fmt_int, money=fmt_money, qty=fmt_qty, size=fmt_bytes, duration=fmt_seconds)
    totals = {
        "web_orders": sum(s.web_orders for s in data.sales),
        "web_total": sum((s.web_total for s in data.sales), Decimal(0)),
        "store_orders": sum(s.store_orders for s in data.sales),
        "store_total": sum((s.store_total for s in data.sales), Decimal(0)),
    }
    svg = {name: Markup(text) for name, text in charts(data).items()}
    tz = ZoneInfo(data.timezone)
    return env.get_template(TEMPLATE.name).render(
        data=data,
        charts=svg,
        totals=totals,
        shop_name=shop_name,
        first=data.days[0],
        last=data.days[-1],
        local=lambda dt: dt.astimezone(tz).strftime("%d/%m/%Y %H:%M") if dt else "–",
    )
