"""Configuration: include/config/passerelle.yaml, merged over defaults and checked.

Read at DAG parse time, so it stays cheap (one small YAML file, no connection).
The file is chosen by the ``PASSERELLE_CONFIG`` environment variable, else the project's own.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml

from passerelle import INCLUDE

DEFAULT_PATH = INCLUDE / "config" / "passerelle.yaml"

DEFAULTS: dict[str, Any] = {
    "shop": {
        "dialect": "generic",
        "timezone": "Europe/Paris",
        "erp_conn_id": "passerelle_erp",
        "shop_conn_id": "passerelle_shop",
        "outbound_dir": "/outbound",
        "inbound_dir": "/inbound",
        "archive_dir": "/inbound/archive",
        "errors_dir": "/errors",
        "public_base_url": "",
        "rows_per_file": 50000,
        # Airflow pool of the tasks that connect to the shop's server (docs/configuration.md).
        "ftp_pool": "shop_ftp",
    },
    "catalog": {
        "selection_rule": "TRUE",
        "send_purchase_price": False,
        "entities": ["family", "brand", "supplier", "article", "variant"],
    },
    "images": {
        "formats": {
            "thumbnail": {"width": 250, "height": 250, "mode": "pad", "background": "#FFFFFF"},
            "large": {"width": 1200, "height": 1200, "mode": "fit"},
        },
        "format": "jpeg",
        "quality": 85,
        "chunk_size": 200,
    },
    "stock": {"safety_stock": 0, "variant_display": "all"},
    # Inbound files (orders_in): shop statuses per outcome; encoding/delimiter/decimal optional.
    "inbound": {"integrate": ["paid", "validated"], "quotes": ["quote"], "cancels": ["cancelled"]},
    # PrestaShop dialect: the import's language (its root category's default name: Accueil for
    # fr), root_category to name it otherwise, and the shop's tax rules group id per VAT rate
    # (a fresh French install: 1 = 20 %, 2 = 10 %, 3 = 5.5 %, 4 = 2.1 %). See
    # passerelle.core.dialects.prestashop for root_category and category_id_offset.
    "prestashop": {"language": "fr", "tax_rules_groups": {20.0: 1, 10.0: 2, 5.5: 3, 2.1: 4}},
    "flows": {},
}

DIALECTS = ("generic", "prestashop")
#: An Airflow pool name as the pools API accepts it (``shop.ftp_pool``, ``flows.<flow>.pool``).
POOL_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,256}$")


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the file, section and key."""


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "formats":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def config_path() -> Path:
    return Path(os.environ.get("PASSERELLE_CONFIG") or DEFAULT_PATH)


def load_config(path: str | Path | None = None) -> dict[str, Any]:
    """Return the configuration as a plain dict, defaults filled in, checked.

    A DAG file's factory and each of its operators read it while the file is parsed: the file
    is parsed and checked once per version (path, modification time) and each caller gets its
    own copy.
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
    return copy.deepcopy(_CACHE[key])


_CACHE: dict[tuple[str, int, int], dict[str, Any]] = {}


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    for section, value in raw.items():
        if section not in DEFAULTS:
            raise ConfigError(f"{path}: unknown section {section!r} (expected one of {sorted(DEFAULTS)})")
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: section {section!r} must be a mapping")
    cfg = _merge(DEFAULTS, raw)
    cfg["_path"] = str(path)
    _check(cfg, path)
    return cfg


def _check(cfg: dict, path: Path) -> None:
    shop = cfg["shop"]
    if shop["dialect"] not in DIALECTS:
        raise ConfigError(f"{path}: shop.dialect is {shop['dialect']!r}; expected one of {DIALECTS}")
    rows = shop["rows_per_file"]
    if not isinstance(rows, int) or rows < 1:
        raise ConfigError(f"{path}: shop.rows_per_file must be a positive integer, got {rows!r}")
    pool = shop["ftp_pool"]
    if not isinstance(pool, str) or not POOL_NAME.match(pool):
        raise ConfigError(
            f"{path}: shop.ftp_pool must be an Airflow pool name (letters, digits, _ . -), got {pool!r}"
        )
    rule = cfg["catalog"]["selection_rule"]
    if not isinstance(rule, str) or not rule.strip() or ";" in rule:
        raise ConfigError(f"{path}: catalog.selection_rule must be one SQL boolean expression, got {rule!r}")
    if cfg["stock"]["variant_display"] not in ("all", "in_stock"):
        raise ConfigError(
            f"{path}: stock.variant_display is {cfg['stock']['variant_display']!r}; expected 'all' or 'in_stock'"
        )
