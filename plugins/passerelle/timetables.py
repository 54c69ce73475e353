"""Flow rhythms as Airflow timetables: ``cron``, ``times`` and ``every_minutes`` (checked by
:mod:`passerelle.config.flows`) turned into the Task SDK's timetables, and :func:`next_runs`,
the instants a schedule fires, asked of Airflow itself.

The Airflow classes are imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from passerelle.config.flows import MINUTES_PER_DAY, FlowSettings, parse_time_of_day


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


def flow_timetable(flow: FlowSettings, timezone: str) -> Any:
    """The time-based part of *flow*'s rhythm as an Airflow timetable, or ``None``.

    - ``cron`` → ``CronTriggerTimetable(expr, timezone=timezone)``;
    - ``times`` → ``MultipleCronTriggerTimetable`` with one cron per distinct minute, in *timezone*
      (a time of day stays the same local time across daylight-saving changes);
    - ``every_minutes: N`` → a cron grid in UTC aligned on midnight when N divides 1440 (15, 30,
      60, 90, 120...), so runs and their logical dates fall on the same instants whenever the flow
      was deployed, and a backfill over a range always yields the same runs; otherwise (7, 45...)
      ``DeltaTriggerTimetable(timedelta(minutes=N))``, anchored on the first run.
    """
    from airflow.sdk import CronTriggerTimetable, DeltaTriggerTimetable, MultipleCronTriggerTimetable

    if flow.cron:
        return CronTriggerTimetable(flow.cron, timezone=timezone)
    if flow.times:
        return MultipleCronTriggerTimetable(*times_to_crons(flow.times), timezone=timezone)
    if flow.every_minutes:
        crons = every_minutes_to_crons(flow.every_minutes)
        if crons is None:
            return DeltaTriggerTimetable(timedelta(minutes=flow.every_minutes))
        if len(crons) == 1:
            return CronTriggerTimetable(crons[0], timezone="UTC")
        return MultipleCronTriggerTimetable(*crons, timezone="UTC")
    return None


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
