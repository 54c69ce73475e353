"""The whole configuration as one typed model, read from include/config/passerelle.yaml.

The file is chosen by the ``PASSERELLE_CONFIG`` environment variable, else the project's own.
It is read at DAG parse time, so it stays cheap (one small YAML file, no connection, no pandas),
parsed and checked once per file version (path, modification time, size) and checked
*entirely*: a mistake in any section fails the import of every DAG file, with a message naming
the file, the dotted key, the value and a hint (:class:`~passerelle.config.base.ConfigError`).

Code reads attributes (``settings.shop.timezone``, ``settings.flows.get("catalog").cron``),
never ``cfg["..."]``: operators read :func:`load_settings` when their task runs, DAG factories
when the file is parsed, and hand the core the typed settings or one of their sections.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, model_validator

from passerelle import INCLUDE
from passerelle.config.accounting import AccountingSection
from passerelle.config.base import ConfigError, Section, config_error, fail
from passerelle.config.flows import DEFAULT_ENTITIES, FlowSettings, FlowsSection
from passerelle.config.sections import (
    AlertsSection,
    CatalogSection,
    ImagesSection,
    InboundSection,
    NoticesSection,
    PrestashopSection,
    ShopifySection,
    ShopSection,
    StockSection,
    TimeoutsSection,
    WoocommerceSection,
)

DEFAULT_PATH = INCLUDE / "config" / "passerelle.yaml"
DEFAULT_SOURCE = "passerelle.yaml"


class Settings(Section):
    """passerelle.yaml, checked: one attribute per section, defaults filled in."""

    KEY_WORD: ClassVar[str] = "section"

    shop: ShopSection = Field(default_factory=ShopSection)
    catalog: CatalogSection = Field(default_factory=CatalogSection)
    images: ImagesSection = Field(default_factory=ImagesSection)
    stock: StockSection = Field(default_factory=StockSection)
    #: Inbound files (orders_in): shop statuses per outcome; encoding/delimiter/decimal optional.
    inbound: InboundSection = Field(default_factory=InboundSection)
    prestashop: PrestashopSection = Field(default_factory=PrestashopSection)
    woocommerce: WoocommerceSection = Field(default_factory=WoocommerceSection)
    shopify: ShopifySection = Field(default_factory=ShopifySection)
    flows: FlowsSection = Field(default_factory=lambda: FlowsSection.model_validate({}))
    #: Owner, contact and failure/retry notices (Airflow notifiers).
    alerts: AlertsSection = Field(default_factory=AlertsSection)
    #: Task and run time limits, pause before a retry.
    timeouts: TimeoutsSection = Field(default_factory=TimeoutsSection)
    #: The daily sales journal for the accountant (FEC and CSV), off unless enabled.
    accounting: AccountingSection = Field(default_factory=AccountingSection)
    #: Customer notices: the notify flag per status in the status files; Passerelle's own mails.
    notices: NoticesSection = Field(default_factory=NoticesSection)

    _source: str = PrivateAttr(DEFAULT_SOURCE)

    @model_validator(mode="after")
    def _watched_entities(self) -> Settings:
        """``flows.<flow>.watch`` names entities of the flow; an on-change flow knows what to watch."""
        for flow in self.flows.as_dict().values():
            if not (flow.watch or flow.on_change):
                continue
            entities = self.flow_entities(flow.name)
            for entity in flow.watch:
                if entity not in entities:
                    raise fail(
                        f"{entity!r} is not an entity of {flow.name}; expected one of "
                        f"{', '.join(entities) or '(none)'}",
                        key=("flows", flow.name, "watch", entity),
                    )
            if flow.on_change:
                from passerelle.core.changes import DEFAULT_WATCH

                if not entities:
                    raise fail(f"{flow.name} has no entities to watch", key=("flows", flow.name, "on_change"))
                for entity in entities:
                    if not (flow.watch.get(entity) or DEFAULT_WATCH.get(entity)):
                        raise fail(
                            f"no tables known for entity {entity!r}; list them, e.g. watch: "
                            f"{{{entity}: [erp.some_table]}}",
                            key=("flows", flow.name, "watch"),
                        )
        return self

    @property
    def source(self) -> str:
        """The file the settings were read from (for messages)."""
        return self._source

    def flow(self, name: str) -> FlowSettings:
        """The settings of flow *name* (one of :data:`~passerelle.config.flows.FLOW_NAMES`)."""
        return self.flows.get(name)

    def flow_entities(self, name: str) -> list[str]:
        """Entities of flow *name*: ``flows.<name>.entities`` if set, else its defaults (the
        catalog's: ``catalog.entities``)."""
        flow = self.flows.get(name)
        if flow.entities is not None:
            return list(flow.entities)
        if name == "catalog":
            return list(self.catalog.entities)
        return list(DEFAULT_ENTITIES.get(name, ()))

    def watched_tables(self, name: str) -> dict[str, tuple[str, ...]]:
        """Tables watched per entity for flow *name*'s ``on_change``: ``flows.<name>.watch`` over
        :data:`passerelle.core.changes.DEFAULT_WATCH` (checked when the settings were read)."""
        from passerelle.core.changes import DEFAULT_WATCH

        watch = self.flows.get(name).watch
        return {e: tuple(watch.get(e) or DEFAULT_WATCH.get(e, ())) for e in self.flow_entities(name)}

    def ftp_pool(self, name: str) -> str:
        """The pool of flow *name*'s tasks that connect to the shop's server: the flow's own
        ``pool`` if set (a task is in one pool, so a pool shared by flows writing the same rows
        must hold their uploads too), else ``shop.ftp_pool``."""
        return self.flows.get(name).pool or self.shop.ftp_pool


_DEFAULT: Settings | None = None


def default_settings() -> Settings:
    """Every section's defaults (no file read), one shared immutable object: what a dialect or a
    core function given no settings uses."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Settings()
    return _DEFAULT


def parse_settings(raw: Mapping[str, Any] | None, source: str | Path = DEFAULT_SOURCE) -> Settings:
    """Check *raw* (the file's top-level mapping, sections possibly partial) as :class:`Settings`.

    :raises ConfigError: every mistake, one per line, each naming *source*, the key, the value.
    """
    try:
        settings = Settings.model_validate({} if raw is None else raw)
    except ValidationError as exc:
        raise config_error(exc, source) from None
    settings._source = str(source)
    return settings


def as_settings(cfg: Settings | Mapping[str, Any] | None = None) -> Settings:
    """*cfg* as :class:`Settings`: itself, a raw mapping of sections checked (messages name its
    ``"_path"``, default passerelle.yaml), or (``None``) :func:`load_settings`."""
    if cfg is None:
        return load_settings()
    if isinstance(cfg, Settings):
        return cfg
    raw = {k: v for k, v in cfg.items() if not str(k).startswith("_")}
    return parse_settings(raw, cfg.get("_path") or DEFAULT_SOURCE)


def section_settings(cfg: Any, name: str, model: type[BaseModel]) -> Any:
    """Section *name* as *model*: *cfg* is the section's model, :class:`Settings`, or the
    section's raw mapping (its keys checked; messages name ``<name>.<key>``)."""
    if isinstance(cfg, model):
        return cfg
    if isinstance(cfg, Settings):
        return getattr(cfg, name)
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{DEFAULT_SOURCE}: {name}: expected a mapping, got {cfg!r}")
    try:
        return model.model_validate(dict(cfg))
    except ValidationError as exc:
        raise config_error(exc, DEFAULT_SOURCE, (name,)) from None


def config_path() -> Path:
    return Path(os.environ.get("PASSERELLE_CONFIG") or DEFAULT_PATH)


_CACHE: dict[tuple[str, int, int], Settings] = {}


def load_settings(path: str | Path | None = None) -> Settings:
    """The configuration file *path* (default :func:`config_path`) as checked :class:`Settings`.

    A DAG file's factory and each of its operators read it while the file is parsed: the file
    is read and checked once per version (path, modification time, size); callers share the
    same immutable object.

    :raises ConfigError: the file is missing, is not YAML, or holds any mistake.
    """
    path = Path(path) if path else config_path()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = _read(path)
    return _CACHE[key]


def _read(path: Path) -> Settings:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (shop, catalog, flows...) at the top level")
    return parse_settings(raw, path)
