"""Airflow triggers: the glue between the triggerer and the pure core.

:class:`ErpChangeTrigger` runs :class:`passerelle.core.changes.ChangeDetector` in Airflow's
triggerer for an ``AssetWatcher`` (see :func:`passerelle.assets.change_watch_asset`); its
serialized classpath is ``passerelle.triggers.ErpChangeTrigger``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import psycopg
from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from passerelle.core.changes import ChangeDetector, conninfo


class ErpChangeTrigger(BaseEventTrigger):
    """Fires one event each time the back-office tables of a flow change (see the module doc).

    Used through ``AssetWatcher(name, trigger=ErpChangeTrigger(...))`` on the flow's change
    Asset; each event updates the asset, which starts a delta run of the flow.

    :param watcher: name the last fired marker is kept under: the change asset's name.
    :param tables: entity → ``schema.table`` names (the event says which entities changed).
    :param conn_id: the back office's Airflow connection, read when the trigger starts.
    :param poll_seconds: seconds between two reads while nothing changes (default 20).
    :param settle_seconds: stillness required after a change before firing (default 10).
    :param max_settle_seconds: fire anyway this long after a change was first seen (default 30),
        so a run starts within ``poll_seconds + max_settle_seconds`` of the first edit.
    """

    def __init__(
        self,
        *,
        watcher: str,
        tables: Mapping[str, Sequence[str]],
        conn_id: str = "passerelle_erp",
        poll_seconds: float = 20.0,
        settle_seconds: float = 10.0,
        max_settle_seconds: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not tables or not all(tables.values()):
            raise ValueError(f"{watcher}: tables must map each entity to at least one table, got {tables!r}")
        if poll_seconds <= 0 or settle_seconds < 0 or max_settle_seconds < settle_seconds:
            raise ValueError(
                f"{watcher}: expected poll_seconds > 0 and 0 <= settle_seconds <= max_settle_seconds, got "
                f"{poll_seconds}, {settle_seconds}, {max_settle_seconds}"
            )
        self.watcher = watcher
        self.tables = {entity: list(names) for entity, names in tables.items()}
        self.conn_id = conn_id
        self.poll_seconds = float(poll_seconds)
        self.settle_seconds = float(settle_seconds)
        self.max_settle_seconds = float(max_settle_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "watcher": self.watcher,
                "tables": self.tables,
                "conn_id": self.conn_id,
                "poll_seconds": self.poll_seconds,
                "settle_seconds": self.settle_seconds,
                "max_settle_seconds": self.max_settle_seconds,
            },
        )

    async def _connect(self) -> psycopg.AsyncConnection:
        from airflow.sdk import BaseHook

        conn = await BaseHook.aget_connection(self.conn_id)
        return await psycopg.AsyncConnection.connect(conninfo(conn), autocommit=True)

    def detector(self) -> ChangeDetector:
        return ChangeDetector(
            watcher=self.watcher,
            tables=self.tables,
            connect=self._connect,
            poll_seconds=self.poll_seconds,
            settle_seconds=self.settle_seconds,
            max_settle_seconds=self.max_settle_seconds,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async for payload in self.detector().events():
            yield TriggerEvent(payload)
