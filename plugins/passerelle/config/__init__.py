"""Configuration: include/config/passerelle.yaml as one typed, checked model.

- :mod:`passerelle.config.model`: :class:`Settings` (every section), :func:`load_settings`,
  the cache per file version;
- :mod:`passerelle.config.sections`: ``shop``, ``catalog``, ``images``, ``stock``, ``inbound``,
  ``prestashop``, ``woocommerce``, ``shopify``;
- :mod:`passerelle.config.flows`: ``flows``, one :class:`FlowSettings` per flow;
- :mod:`passerelle.config.base` / :mod:`~passerelle.config.checks`: the error type, unknown keys
  refused with a "did you mean", messages naming file, dotted key, value and hint.

No Airflow import: DAG files, operators and the core read the same model.
"""

from __future__ import annotations

from passerelle.config.base import ConfigError, FlowConfigError
from passerelle.config.checks import POOL_NAME
from passerelle.config.flows import FLOW_NAMES, FlowSettings, FlowsSection, parse_flow
from passerelle.config.model import (
    DEFAULT_PATH,
    Settings,
    as_settings,
    config_path,
    default_settings,
    load_settings,
    parse_settings,
    section_settings,
)
from passerelle.config.sections import (
    DIALECTS,
    CatalogSection,
    ImageFormatSection,
    ImagesSection,
    InboundSection,
    NoticesSection,
    OptionNames,
    PrestashopSection,
    ShopifySection,
    ShopSection,
    StockSection,
    WoocommerceSection,
)

__all__ = [
    "DEFAULT_PATH",
    "DIALECTS",
    "FLOW_NAMES",
    "POOL_NAME",
    "CatalogSection",
    "ConfigError",
    "FlowConfigError",
    "FlowSettings",
    "FlowsSection",
    "ImageFormatSection",
    "ImagesSection",
    "InboundSection",
    "NoticesSection",
    "OptionNames",
    "PrestashopSection",
    "Settings",
    "ShopSection",
    "ShopifySection",
    "StockSection",
    "WoocommerceSection",
    "as_settings",
    "config_path",
    "default_settings",
    "load_settings",
    "parse_flow",
    "parse_settings",
    "section_settings",
]
