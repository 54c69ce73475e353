"""The shops' file formats: one module per shop, chosen by the one ``shop.dialect`` switch.

Each module of this package (``generic``, ``prestashop``, ...) holds a shop's outbound files,
the catalog's and the hourly exchanges', and ends with one :func:`register` call. The
modules are found by listing the package, so a new shop is one new module:

    register("myshop", catalog=MyShopDialect, exchange=MyShopExchangeDialect, orders="myshop_orders")

``orders`` names the shop's own orders export among the inbound kinds
(:data:`passerelle.core.inbound.KINDS`: its reader is :mod:`passerelle.core.inbound.<shop>`);
the inbound flow reads each file by its header, so a shop may drop generic files too.

The shared machinery (the :class:`~passerelle.core.dialects.base.Dialect` base, rejects,
value formatting, HTML sanitising) is in :mod:`passerelle.core.dialects.base`. A dialect is
given the whole typed configuration (:class:`passerelle.config.Settings`) and reads its own
section (``settings.prestashop``, ``settings.woocommerce``, ``settings.shopify``) and the shared
keys it needs (``settings.catalog.send_purchase_price``, ``settings.shop.timezone``).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from passerelle.config import Settings
    from passerelle.core.dialects.base import Dialect

#: Entities of the exchanges, in the order the shop must import them.
EXCHANGE_ENTITIES: tuple[str, ...] = (
    "price",
    "specific_price",
    "stock",
    "variant_stock",
    "order_status",
    "delivery",
    "invoice",
)

#: Modules of the package that are not shops.
_NOT_SHOPS = frozenset({"base"})


@dataclass(frozen=True)
class Registration:
    """A shop's dialect classes: the catalog's and the exchanges' (None: the shop takes none), and
    the inbound kind of the shop's own orders export."""

    catalog: type[Dialect]
    exchange: type[Dialect] | None = None
    orders: str = "orders"


_REGISTRY: dict[str, Registration] = {}
_discovered = False


def register(
    name: str, *, catalog: type[Dialect], exchange: type[Dialect] | None = None, orders: str = "orders"
) -> None:
    """Make a shop's dialects available under *name* (the value of ``shop.dialect``); *orders* is
    the inbound kind of the shop's own orders export (default: the generic orders CSV)."""
    known = _REGISTRY.get(name)
    if known is not None and known != Registration(catalog, exchange, orders):
        if (
            known.catalog.__qualname__ == catalog.__qualname__
            and known.catalog.__module__.rpartition(".")[2] == catalog.__module__.rpartition(".")[2]
        ):
            # The same file imported again under another module name (Airflow's plugin loader
            # imports every .py under plugins/ as a top-level module): the first one stays.
            return
        raise ValueError(
            f"shop dialect {name!r} is registered twice ({known.catalog.__module__} and {catalog.__module__})"
        )
    _REGISTRY[name] = Registration(catalog, exchange, orders)


def _discover() -> None:
    """Import every shop module of the package once (each registers itself)."""
    global _discovered
    if _discovered:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _NOT_SHOPS and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    _discovered = True


def names() -> list[str]:
    """The registered shop dialects."""
    _discover()
    return sorted(_REGISTRY)


def _registration(name: str) -> Registration:
    _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown shop dialect {name!r}; expected one of {sorted(_REGISTRY)}") from None


def dialect(name: str, settings: Settings | None = None, *, as_of: date | None = None) -> Dialect:
    """The catalog dialect of a shop profile (``shop.dialect``), with the typed settings (default:
    every section's defaults) and the run's day *as_of* (default today; see :class:`~.base.Dialect`)."""
    return _registration(name).catalog(settings, as_of=as_of)


def exchange_dialect(name: str, settings: Settings | None = None, *, as_of: date | None = None) -> Dialect:
    """The exchange dialect (prices, stock, order statuses, invoices) of a shop profile."""
    exchange = _registration(name).exchange
    if exchange is None:
        raise ValueError(
            f"shop dialect {name!r} writes no exchange files (prices, stock, order statuses); "
            f"dialects with exchanges: {sorted(n for n, r in _REGISTRY.items() if r.exchange)}"
        )
    return exchange(settings, as_of=as_of)


def orders_kind(name: str) -> str:
    """The inbound kind of the orders export of a shop profile (``shopify_orders``, ...; ``orders``
    for the generic CSV)."""
    return _registration(name).orders
