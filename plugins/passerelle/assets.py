"""The Airflow Assets of the flows: a flow's *change* asset (its ERP data changed: an
``on_change`` run), with the ``AssetWatcher`` that updates it, and a flow's *published* asset
(its files reached the shop: flows with ``after: [<flow>]`` follow it).

The Airflow classes are imported inside the functions, so importing this module costs nothing;
:data:`CATALOG_PUBLISHED` is built on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from passerelle.config.model import Settings

if TYPE_CHECKING:
    from airflow.sdk import Asset


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


def change_watch_asset(name: str, settings: Settings) -> Asset:
    """:func:`flow_change_asset` carrying an ``AssetWatcher`` whose trigger polls the back office
    for the tables of :meth:`Settings.watched_tables`.

    The trigger (:class:`passerelle.triggers.ErpChangeTrigger`) runs in Airflow's triggerer; it
    connects through ``shop.erp_conn_id`` when it starts, never at DAG parse time.
    """
    from airflow.sdk import AssetWatcher

    from passerelle.triggers import ErpChangeTrigger

    flow = settings.flow(name)
    base = flow_change_asset(name)
    trigger = ErpChangeTrigger(
        watcher=base.name,
        tables=settings.watched_tables(name),
        conn_id=settings.shop.erp_conn_id,
        poll_seconds=flow.poll_seconds,
        settle_seconds=flow.settle_seconds,
    )
    base.watchers = [AssetWatcher(name=f"passerelle_erp_changes_{name}", trigger=trigger)]
    return base
