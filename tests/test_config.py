"""The configuration model: every section checked when the file is read, each mistake named by
file, dotted key, value and hint; unknown keys refused with a "did you mean"; the file read once
per version; and a mistake in any section, even one only a task reads, fails the DAG import."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from passerelle.config import (
    ConfigError,
    FlowConfigError,
    ImagesSection,
    InboundSection,
    Settings,
    load_settings,
    parse_settings,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "include" / "config" / "passerelle.yaml"
SOURCE = "/etc/passerelle/passerelle.yaml"


def error_of(raw: dict) -> str:
    with pytest.raises(ConfigError) as err:
        parse_settings(raw, SOURCE)
    return str(err.value)


# --------------------------------------------------------------------------- one test per section

WRONG_VALUES = [
    # (section: raw values, key, words of the hint)
    (
        {"shop": {"dialect": "prestashp"}},
        "shop.dialect",
        ["'prestashp'", "generic, prestashop, shopify, woocommerce", "did you mean 'prestashop'"],
    ),
    ({"shop": {"rows_per_file": 0}}, "shop.rows_per_file", ["must be a positive integer, got 0"]),
    (
        {"shop": {"inbound_settle_seconds": -1}},
        "shop.inbound_settle_seconds",
        ["must be a number of seconds from 0 to 300, got -1"],
    ),
    (
        {"shop": {"timezone": "Europe/Pariss"}},
        "shop.timezone",
        ["'Europe/Pariss' is not a known timezone", '"Europe/Paris"'],
    ),
    ({"shop": {"ftp_pool": "shop ftp!"}}, "shop.ftp_pool", ["must be an Airflow pool name", "'shop ftp!'"]),
    (
        {"catalog": {"selection_rule": "TRUE; DROP TABLE erp.article"}},
        "catalog.selection_rule",
        ["one SQL boolean expression", "'TRUE; DROP TABLE erp.article'"],
    ),
    ({"catalog": {"entities": ["article", "article"]}}, "catalog.entities[1]", ["'article' is listed twice"]),
    ({"images": {"quality": 101}}, "images.quality", ["from 1 to 100", "got 101"]),
    (
        {"images": {"formats": {"large": {"width": 10, "height": 10, "mode": "stretch"}}}},
        "images.formats.large.mode",
        ["'stretch'", "fit, pad, crop"],
    ),
    (
        {"images": {"formats": {"large": {"width": 10, "height": 10, "background": "blurple"}}}},
        "images.formats.large.background",
        ["'blurple' is not a colour", '"#FFFFFF"'],
    ),
    (
        {"images": {"formats": {"Big/One": {"width": 10, "height": 10}}}},
        "images.formats.Big/One",
        ["format name 'Big/One'", "lowercase letters"],
    ),
    ({"stock": {"safety_stock": -1}}, "stock.safety_stock", ["must be a number >= 0", "got -1"]),
    (
        {"stock": {"variant_display": "instock"}},
        "stock.variant_display",
        ["'instock'", "all, in_stock", "did you mean 'in_stock'"],
    ),
    (
        {"inbound": {"integrate": ["payed"]}},
        "inbound.integrate",
        ["['payed']", "statuses among", "did you mean 'paid'"],
    ),
    (
        {"inbound": {"integrate": ["paid"], "quotes": ["paid", "quote"]}},
        "inbound.quotes",
        ["status 'paid' is in both inbound.integrate and inbound.quotes"],
    ),
    ({"inbound": {"encoding": "latin-42"}}, "inbound.encoding", ["'latin-42' is unknown", "utf-8 or cp1252"]),
    ({"inbound": {"delimiter": ":"}}, "inbound.delimiter", ["':'", "expected one of , ; tab |"]),
    ({"inbound": {"decimal": ";"}}, "inbound.decimal", ["';'", "expected '.' or ','"]),
    (
        {"prestashop": {"tax_rules_groups": {20: "one"}}},
        "prestashop.tax_rules_groups.20",
        ["tax rules group id", "got 'one'"],
    ),
    ({"prestashop": {"home_category": ""}}, "prestashop.home_category", ["non-empty text", "got ''"]),
    (
        {"prestashop": {"language": "pt"}},
        "prestashop.language",
        ["is 'pt': no default root category", "set prestashop.root_category"],
    ),
    ({"prestashop": {"category_id_offset": 1}}, "prestashop.category_id_offset", ["at least 2, got 1"]),
    (
        {"woocommerce": {"tax_classes": {5.5: "Reduced Rate"}}},
        "woocommerce.tax_classes.5.5",
        ["tax class slug", "got 'Reduced Rate'"],
    ),
    ({"woocommerce": {"tax_classes": {120: ""}}}, "woocommerce.tax_classes.120", ["120 is not a VAT rate"]),
    (
        {"woocommerce": {"weight_unit": "lb"}},
        "woocommerce.weight_unit",
        ["'lb'", "kg, g, lbs, oz", "did you mean 'lbs'?"],
    ),
    ({"woocommerce": {"send_gtin": "yes"}}, "woocommerce.send_gtin", ["true or false", "got 'yes'"]),
    (
        {"woocommerce": {"attribute_names": {"size": ""}}},
        "woocommerce.attribute_names.size",
        ["non-empty text", "got ''"],
    ),
    ({"shopify": {"off_status": "deleted"}}, "shopify.off_status", ["'deleted'", "archived, draft"]),
    ({"shopify": {"csv_headers": "v2"}}, "shopify.csv_headers", ["'v2'", "current, legacy"]),
    ({"shopify": {"location": ""}}, "shopify.location", ["non-empty text", "got ''"]),
    ({"shopify": {"single_location": 1}}, "shopify.single_location", ["true or false", "got 1"]),
    (
        {"flows": {"prices_stock": {"every_minutes": 0}}},
        "flows.prices_stock.every_minutes",
        ["from 1 to 1440", "got 0"],
    ),
]


@pytest.mark.parametrize(("raw", "key", "hint"), WRONG_VALUES, ids=[k for _, k, _ in WRONG_VALUES])
def test_a_wrong_value_names_file_section_key_value_and_hint(raw, key, hint):
    message = error_of(raw)
    assert message.startswith(f"{SOURCE}: {key}"), message
    for words in hint:
        assert words in message, message


UNKNOWN_KEYS = [
    ({"shop": {"timezon": "UTC"}}, "shop.timezon: unknown key", "did you mean 'timezone'?"),
    (
        {"catalog": {"selection_rules": "TRUE"}},
        "catalog.selection_rules: unknown key",
        "did you mean 'selection_rule'?",
    ),
    ({"images": {"qualty": 80}}, "images.qualty: unknown key", "did you mean 'quality'?"),
    (
        {"images": {"formats": {"large": {"widht": 10, "height": 10}}}},
        "images.formats.large.widht: unknown key",
        "did you mean 'width'?",
    ),
    ({"stock": {"safety_stok": 2}}, "stock.safety_stok: unknown key", "did you mean 'safety_stock'?"),
    ({"inbound": {"encodng": "cp1252"}}, "inbound.encodng: unknown key", "did you mean 'encoding'?"),
    ({"prestashop": {"home_categry": "Home"}}, "prestashop.home_categry: unknown key", "did you mean 'home_category'?"),
    ({"woocommerce": {"send_gtn": True}}, "woocommerce.send_gtn: unknown key", "did you mean 'send_gtin'?"),
    (
        {"shopify": {"option_names": {"colour": "Color", "sise": "Size"}}},
        "shopify.option_names.sise: unknown key",
        "did you mean 'size'?",
    ),
    ({"shopfy": {}}, "shopfy: unknown section", "did you mean 'shopify'?"),
    ({"flows": {"catalog": {"crn": "0 2 * * *"}}}, "flows.catalog.crn: unknown key", "did you mean 'cron'?"),
    ({"flows": {"catlog": {"cron": "0 2 * * *"}}}, "flows.catlog: unknown flow", "did you mean 'catalog'?"),
    ({"imags": {}}, "imags: unknown section", "did you mean 'images'?"),
]


@pytest.mark.parametrize(("raw", "where", "hint"), UNKNOWN_KEYS, ids=[w for _, w, _ in UNKNOWN_KEYS])
def test_an_unknown_key_is_refused_with_did_you_mean(raw, where, hint):
    message = error_of(raw)
    assert message.startswith(f"{SOURCE}: {where}; expected one of "), message
    assert message.endswith(f"({hint})"), message


def test_a_section_that_is_not_a_mapping_is_refused():
    assert error_of({"stock": 3}) == f"{SOURCE}: stock: expected a mapping of keys, got 3"
    assert error_of({"flows": ["catalog"]}).startswith(f"{SOURCE}: flows: expected a mapping such as")


def test_every_mistake_is_reported_one_per_line_and_flow_mistakes_are_flow_errors():
    message = error_of({"shop": {"rows_per_file": 0}, "stock": {"variant_display": "x"}, "images": {"quality": 0}})
    assert message.splitlines() == [
        f"{SOURCE}: shop.rows_per_file must be a positive integer, got 0",
        f"{SOURCE}: images.quality: expected a whole number from 1 to 100, got 0",
        f"{SOURCE}: stock.variant_display: 'x' is not allowed; expected one of all, in_stock",
    ]
    with pytest.raises(FlowConfigError):
        parse_settings({"flows": {"report": {"days": 0}}}, SOURCE)
    with pytest.raises(ConfigError) as err:
        parse_settings({"stock": {"variant_display": "x"}}, SOURCE)
    assert not isinstance(err.value, FlowConfigError)


# --------------------------------------------------------------------------- the typed model


def test_the_shipped_file_reads_as_the_typed_model_with_defaults():
    settings = load_settings(SHIPPED)
    assert isinstance(settings, Settings) and settings.source == str(SHIPPED)
    assert settings.shop.dialect == "prestashop" and settings.shop.ftp_pool == "shop_ftp"
    assert settings.catalog.entities == ("family", "brand", "supplier", "article", "variant")
    assert settings.images.formats["thumbnail"].rgb == (255, 255, 255)
    assert settings.inbound.rules == {"integrate": ["paid", "validated"], "quotes": ["quote"], "cancels": ["cancelled"]}
    assert settings.inbound.declared("Europe/Paris") == {"timezone": "Europe/Paris"}
    assert settings.prestashop.tax_rules_groups == {20.0: 1, 10.0: 2, 5.5: 3, 2.1: 4}
    assert settings.flow("catalog").cron == "0 2 * * *" and settings.flow("report").days == 30
    assert settings.ftp_pool("catalog") == "shop_ftp"
    with pytest.raises(Exception):  # noqa: B017 - frozen: a pydantic ValidationError
        settings.shop.dialect = "generic"


def test_partial_sections_keep_the_other_defaults_and_tax_groups_merge_over_a_fresh_install():
    settings = parse_settings(
        {"shop": {"timezone": "UTC"}, "prestashop": {"tax_rules_groups": {20: 7}}, "images": {"quality": 60}}
    )
    assert settings.shop.erp_conn_id == "passerelle_erp" and settings.shop.rows_per_file == 50000
    assert settings.prestashop.tax_rules_groups == {20.0: 7, 10.0: 2, 5.5: 3, 2.1: 4}
    assert list(settings.images.formats) == ["thumbnail", "large"]  # formats not given: the defaults


def test_the_file_is_read_once_per_version(tmp_path):
    path = tmp_path / "passerelle.yaml"
    path.write_text("stock:\n  safety_stock: 1\n", encoding="utf-8")
    first = load_settings(path)
    assert load_settings(path) is first
    path.write_text("stock:\n  safety_stock: 22\n", encoding="utf-8")  # another size
    later = time.time() + 5
    os.utime(path, (later, later))
    assert load_settings(path) is not first and load_settings(path).stock.safety_stock == 22
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_settings(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("shop: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_settings(tmp_path / "bad.yaml")


def test_shop_sections_read_as_the_dialects_need_them():
    settings = parse_settings(
        {
            "prestashop": {"language": "pt", "root_category": "Início"},
            "woocommerce": {
                "tax_classes": {20: None, 10: "reduced-rate"},
                "weight_unit": "g",
                "send_gtin": True,
                "attribute_names": {"size": "Size"},
            },
            "shopify": {
                "location": "Entrepôt Lyon",
                "off_status": "draft",
                "csv_headers": "legacy",
                "option_names": {"colour": "Color"},
            },
        }
    )
    assert settings.prestashop.language == "pt" and settings.prestashop.category_root == "Início"
    woo = settings.woocommerce
    # Given tax classes replace the built-in ones (a rate left out has no class: its rows are refused).
    assert woo.tax_classes == {20.0: "", 10.0: "reduced-rate"}
    assert (woo.weight_unit, woo.send_gtin, woo.prices_include_tax, woo.global_attributes) == ("g", True, True, True)
    assert (woo.attribute_names.size, woo.attribute_names.colour) == ("Size", "Couleur")
    shopify = settings.shopify
    assert (shopify.location, shopify.off_status, shopify.csv_headers, shopify.single_location) == (
        "Entrepôt Lyon",
        "draft",
        "legacy",
        False,
    )
    assert (shopify.option_names.size, shopify.option_names.colour) == ("Taille", "Color")
    defaults = Settings()
    assert defaults.woocommerce.tax_classes == {20.0: "", 5.5: "reduced-rate", 0.0: "zero-rate"}
    assert defaults.shopify.location is None and defaults.shopify.off_status == "archived"


def test_the_dialects_get_the_typed_settings():
    import pandas as pd

    from passerelle.core.dialects import dialect, exchange_dialect

    settings = parse_settings(
        {
            "shop": {"dialect": "woocommerce", "timezone": "America/Montreal"},
            "catalog": {"send_purchase_price": True},
            "woocommerce": {"weight_unit": "oz"},
            "shopify": {"csv_headers": "legacy"},
        }
    )
    woo = dialect(settings.shop.dialect, settings)
    assert woo.settings is settings
    assert "Weight (oz)" in woo.frame({"sku": "A", "weight": "1"}, pd.RangeIndex(1)).columns
    assert type(exchange_dialect("woocommerce", settings)) is type(woo)  # one class for both
    # The PrestaShop order states file writes times in shop.timezone (Montreal: UTC-4 in July).
    local = exchange_dialect("prestashop", settings)._local_time(pd.Series(["2026-07-01T10:00:00Z"]))
    assert list(local) == ["2026-07-01 06:00:00"]
    assert dialect("generic", settings).settings.catalog.send_purchase_price is True
    assert dialect("shopify", settings).settings.shopify.csv_headers == "legacy"
    assert dialect("generic").settings == Settings()  # no settings: every section's defaults


def test_image_and_inbound_settings_take_the_typed_sections():
    from passerelle.core.images import image_settings
    from passerelle.core.integrate import inbound_settings

    settings = parse_settings(
        {
            "shop": {"timezone": "UTC"},
            "images": {"format": "WEBP"},
            "inbound": {"quotes": "quote", "delimiter": ";", "currency": "EUR"},
        }
    )
    images = image_settings(settings.images)
    assert images == image_settings(settings) and images.ext == "webp"
    assert [f.name for f in images.formats] == ["thumbnail", "large"]
    rules, declared = inbound_settings(settings)
    assert rules["quotes"] == ["quote"] and declared == {"delimiter": ";", "currency": "EUR", "timezone": "UTC"}
    assert inbound_settings(settings.inbound, "Europe/Paris")[1]["timezone"] == "Europe/Paris"
    assert isinstance(settings.images, ImagesSection) and isinstance(settings.inbound, InboundSection)


def test_the_vocabularies_checked_here_are_the_ones_the_core_uses():
    # The model checks at DAG parse without importing pandas-heavy modules; these keep it honest.
    from passerelle.config.sections import IMAGE_FORMATS, IMAGE_MODES, INBOUND_DELIMITERS, INBOUND_STATUSES
    from passerelle.core import images, inbound

    assert INBOUND_STATUSES == inbound.STATUSES
    assert IMAGE_MODES == images.MODES and IMAGE_FORMATS == tuple(images.EXTENSIONS)
    from passerelle.core.inbound import reading

    assert set(INBOUND_DELIMITERS) == set(reading._DELIMITERS)


def test_the_dialects_checked_here_are_the_registered_ones():
    from passerelle.config.sections import (
        DIALECTS,
        PRESTASHOP_LANGUAGES,
        SHOPIFY_OFF_STATUSES,
        WOOCOMMERCE_WEIGHT_UNITS,
    )
    from passerelle.core.dialects import names, prestashop, shopify, woocommerce

    assert DIALECTS == tuple(names())
    assert {"woocommerce", "shopify"} <= set(names())
    assert PRESTASHOP_LANGUAGES == tuple(prestashop.ROOT_CATEGORY_BY_LANGUAGE)
    assert WOOCOMMERCE_WEIGHT_UNITS == tuple(woocommerce.WEIGHT_FACTORS)
    assert SHOPIFY_OFF_STATUSES == shopify.OFF_STATUSES


# --------------------------------------------------------------------------- DAG import

TYPOS = {
    "images": ("  quality: 85\n", "  qualty: 85\n", "images.qualty: unknown key", "did you mean 'quality'?"),
    "inbound": ("  quotes: [quote]\n", "  quote: [quote]\n", "inbound.quote: unknown key", "did you mean 'quotes'?"),
    "stock": (
        "  variant_display: all\n",
        "  variant_display: al\n",
        "stock.variant_display: 'al' is not allowed",
        "did you mean 'all'?",
    ),
}


@pytest.mark.parametrize("section", sorted(TYPOS))
def test_a_typo_in_a_section_only_tasks_read_fails_every_dag_import(section, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    right, wrong, where, hint = TYPOS[section]
    shipped = SHIPPED.read_text(encoding="utf-8")
    assert shipped.count(right) == 1
    config = tmp_path / "passerelle.yaml"
    config.write_text(shipped.replace(right, wrong), encoding="utf-8")
    assert yaml.safe_load(config.read_text())  # still YAML: the model refuses it, not the parser
    monkeypatch.setenv("PASSERELLE_CONFIG", str(config))

    bag = DagBag(str(ROOT / "dags"))
    assert bag.dags == {}
    assert len(bag.import_errors) == len(list((ROOT / "dags").glob("*.py")))
    for error in bag.import_errors.values():
        assert f"{config}: {where}" in error and hint in error, error


def test_the_model_and_change_detection_import_no_airflow():
    import subprocess
    import sys

    code = (
        "import sys; import passerelle.config, passerelle.core.changes, passerelle.timetables, "
        "passerelle.params, passerelle.assets, passerelle.dag_settings; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'pandas')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
