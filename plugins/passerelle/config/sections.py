"""The sections of passerelle.yaml other than ``flows``: ``shop``, ``catalog``, ``images``,
``stock``, ``inbound``, and one per shop dialect: ``prestashop``, ``woocommerce``, ``shopify``.
Every key documented in docs/configuration.md; defaults are the field defaults.

No pandas here (the model is checked at every DAG parse): the vocabularies the dialects use are
defined here, imported by the dialects, and kept equal by tests in tests/test_config.py."""

from __future__ import annotations

import codecs
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, field_validator, model_validator

from passerelle.config.base import Section, did_you_mean, fail
from passerelle.config.checks import (
    Bool,
    check_bool,
    check_pool,
    check_timezone_name,
    names_list,
    one_of,
    text,
    whole,
)

#: The registered shop dialects (``passerelle.core.dialects.names()``, kept equal by a test: the
#: registry imports pandas, the model does not).
DIALECTS = ("generic", "prestashop", "shopify", "woocommerce")
#: PrestaShop languages whose root category name is known (kept equal to the dialect's by a test).
PRESTASHOP_LANGUAGES = ("fr", "en", "es", "de", "it")
VARIANT_DISPLAYS = ("all", "in_stock")
CATALOG_ENTITIES = ("family", "brand", "supplier", "article", "variant")

#: The statuses the inbound parser gives an order (``passerelle.core.inbound.STATUSES``; a test
#: keeps both equal: the configuration is checked at DAG parse without importing the parser).
INBOUND_STATUSES = ("pending", "authorized", "paid", "validated", "quote", "cancelled", "refunded")
INBOUND_DELIMITERS = (",", ";", "tab", "\\t", "\t", "|")

#: Photo modes and output formats (``passerelle.core.images.MODES`` / ``EXTENSIONS``, kept equal by a test).
IMAGE_MODES = ("fit", "pad", "crop")
IMAGE_FORMATS = ("jpeg", "webp")
_FORMAT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")

#: A fresh French PrestaShop install's tax rules groups: 1 = 20 %, 2 = 10 %, 3 = 5.5 %, 4 = 2.1 %.
DEFAULT_TAX_RULES_GROUPS = {20.0: 1, 10.0: 2, 5.5: 3, 2.1: 4}


def _folder(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise fail(f'expected a folder path such as "/outbound", got {value!r}')
    return value.strip()


def _rows_per_file(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(f"{{key}} must be a positive integer, got {value!r}")
    return value


def _settle_seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 300:
        raise fail(f"{{key}} must be a number of seconds from 0 to 300, got {value!r}")
    return float(value)


def _ftp_pool(value: Any) -> str:
    try:
        return check_pool(value)
    except Exception:
        raise fail(f"{{key}} must be an Airflow pool name (letters, digits, _ . -), got {value!r}") from None


def _url(value: Any) -> str:
    if not isinstance(value, str) or (value and not re.match(r"^https?://", value)):
        raise fail(f'expected an http(s) URL such as "https://shop.example.com/passerelle" or "", got {value!r}')
    return value


Folder = Annotated[str, BeforeValidator(_folder)]
ConnId = Annotated[str, BeforeValidator(text('"passerelle_erp"'))]


class ShopSection(Section):
    """``shop``: the dialect, the clock, the connections, the server's folders."""

    dialect: Annotated[str, BeforeValidator(one_of(DIALECTS))] = "generic"
    timezone: Annotated[str, BeforeValidator(check_timezone_name)] = "Europe/Paris"
    erp_conn_id: ConnId = "passerelle_erp"
    shop_conn_id: ConnId = "passerelle_shop"
    outbound_dir: Folder = "/outbound"
    inbound_dir: Folder = "/inbound"
    archive_dir: Folder = "/inbound/archive"
    errors_dir: Folder = "/errors"
    #: How long an inbound file's size and date must stay the same before it is taken: a file the
    #: shop writes in place (not under a temporary name renamed when done) is left while it grows.
    inbound_settle_seconds: Annotated[float, BeforeValidator(_settle_seconds)] = 2.0
    public_base_url: Annotated[str, BeforeValidator(_url)] = ""
    rows_per_file: Annotated[int, BeforeValidator(_rows_per_file)] = 50000
    #: Airflow pool of the tasks that connect to the shop's server (docs/configuration.md).
    ftp_pool: Annotated[str, BeforeValidator(_ftp_pool)] = "shop_ftp"


def _selection_rule(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or ";" in value:
        raise fail(
            f"{{key}} must be one SQL boolean expression (no ';'), such as \"a.price_excl_vat > 0\", got {value!r}"
        )
    return value


class CatalogSection(Section):
    """``catalog``: which articles go to the shop, and what is sent of them."""

    selection_rule: Annotated[str, BeforeValidator(_selection_rule)] = "TRUE"
    send_purchase_price: Bool = False
    entities: Annotated[tuple[str, ...], BeforeValidator(names_list("entity", "[article, variant]"))] = CATALOG_ENTITIES


# --------------------------------------------------------------------------- images


def _background(value: Any) -> str:
    from PIL import ImageColor

    try:
        ImageColor.getrgb(str(value))
    except ValueError:
        raise fail(f'{value!r} is not a colour; expected a colour such as "#FFFFFF" or "white"') from None
    return str(value)


class ImageFormatSection(Section):
    """``images.formats.<name>``: a box of ``width`` x ``height`` and how the photo goes in it."""

    EXAMPLE: ClassVar[str] = "{width: 250, height: 250, mode: pad}"

    width: Annotated[int, BeforeValidator(whole(1, 10_000, "pixels"))]
    height: Annotated[int, BeforeValidator(whole(1, 10_000, "pixels"))]
    mode: Annotated[str, BeforeValidator(one_of(IMAGE_MODES))] = "fit"
    background: Annotated[str, BeforeValidator(_background)] = "#FFFFFF"
    upscale: Bool = False

    @model_validator(mode="before")
    @classmethod
    def _size_given(cls, data: Any) -> Any:
        data = cls.check_keys(data)
        for key in ("width", "height"):
            if isinstance(data, dict) and key not in data:
                raise fail(f"missing; every format needs width and height (pixels), e.g. {cls.EXAMPLE}", key=key)
        return data

    @property
    def rgb(self) -> tuple[int, int, int]:
        from PIL import ImageColor

        r, g, b = ImageColor.getrgb(self.background)[:3]
        return r, g, b


def _default_formats() -> dict[str, ImageFormatSection]:
    return {
        "thumbnail": ImageFormatSection(width=250, height=250, mode="pad", background="#FFFFFF"),
        "large": ImageFormatSection(width=1200, height=1200, mode="fit"),
    }


class ImagesSection(Section):
    """``images``: the renders made of each photo."""

    formats: dict[str, ImageFormatSection] = Field(default_factory=_default_formats)
    format: Annotated[str, BeforeValidator(lambda v: one_of(IMAGE_FORMATS)(v.lower() if isinstance(v, str) else v))] = (
        "jpeg"
    )
    quality: Annotated[int, BeforeValidator(whole(1, 100))] = 85
    chunk_size: Annotated[int, BeforeValidator(whole(1, unit="photos"))] = 200
    max_pixels: Annotated[int, BeforeValidator(whole(1, unit="pixels"))] = 80_000_000
    progressive: Bool = False
    optimize: Bool = True

    @field_validator("formats", mode="before")
    @classmethod
    def _formats(cls, value: Any) -> Any:
        if not isinstance(value, dict) or not value:
            raise fail(
                f"{{key}} must map format names to sizes, such as {{thumbnail: {{width: 250, height: 250}}}}, "
                f"got {value!r}"
            )
        for name in value:
            if not isinstance(name, str) or not _FORMAT_NAME.match(name):
                raise fail(
                    f"format name {name!r} must be lowercase letters, digits and '-' (it is part of file names)",
                    key=str(name),
                )
        return value


# --------------------------------------------------------------------------- stock


def _safety_stock(value: Any) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        number = Decimal("NaN")
    if isinstance(value, bool) or not number.is_finite() or number < 0:
        raise fail(
            f"{{key}} must be a number >= 0 (units kept back from the shop per article or variant), got {value!r}"
        )
    return value


class StockSection(Section):
    """``stock``: what the shop is told it has."""

    safety_stock: Annotated[int | float, BeforeValidator(_safety_stock)] = 0
    variant_display: Annotated[str, BeforeValidator(one_of(VARIANT_DISPLAYS))] = "all"


# --------------------------------------------------------------------------- inbound


def _statuses(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or any(v not in INBOUND_STATUSES for v in value):
        wrong = (
            next((v for v in value if v not in INBOUND_STATUSES), value) if isinstance(value, (list, tuple)) else value
        )
        raise fail(
            f"{{key}} is {value!r}; expected a list of statuses among {list(INBOUND_STATUSES)}"
            f"{did_you_mean(wrong, INBOUND_STATUSES)}"
        )
    return tuple(value)


def _encoding(value: Any) -> str | None:
    if value in (None, ""):
        return None
    try:
        codecs.lookup(str(value))
    except LookupError:
        raise fail(f"encoding {value!r} is unknown; expected e.g. utf-8 or cp1252") from None
    return str(value)


def _delimiter(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if str(value).lower() not in INBOUND_DELIMITERS:
        raise fail(f"delimiter {value!r}; expected one of , ; tab |")
    return str(value)


def _decimal(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if value not in (".", ","):
        raise fail(f"decimal {value!r}; expected '.' or ','")
    return value


def _optional_timezone(value: Any) -> str | None:
    return None if value in (None, "") else check_timezone_name(value)


def _currency(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not re.match(r"^[A-Z]{3}$", value):
        raise fail(f'expected an ISO 4217 currency code such as "EUR", got {value!r}')
    return value


def _back_office_code(value: Any) -> str | None:
    """A back-office customer code or article reference: one line of text, or unset."""
    if value in (None, ""):
        return None
    if not isinstance(value, (str, int)) or not str(value).strip() or "\n" in str(value):
        raise fail(f'expected a back-office code or reference such as "COMPTOIR" or "CARTE-CADEAU", got {value!r}')
    return str(value).strip()


Statuses = Annotated[tuple[str, ...], BeforeValidator(_statuses)]
BackOfficeCode = Annotated[str | None, BeforeValidator(_back_office_code)]


class InboundSection(Section):
    """``inbound``: the shop statuses per outcome, and the files' dialect when it is not detected."""

    integrate: Statuses = ("paid", "validated")
    quotes: Statuses = ("quote",)
    cancels: Statuses = ("cancelled",)
    #: Shop statuses of orders integrated before their payment (bank transfer, cheque): a back-office
    #: order in the status ``awaiting_payment`` until a later file says it is paid.
    awaiting_payment: Statuses = ()
    encoding: Annotated[str | None, BeforeValidator(_encoding)] = None
    delimiter: Annotated[str | None, BeforeValidator(_delimiter)] = None
    decimal: Annotated[str | None, BeforeValidator(_decimal)] = None
    timezone: Annotated[str | None, BeforeValidator(_optional_timezone)] = None
    currency: Annotated[str | None, BeforeValidator(_currency)] = None
    #: Back-office customer code that orders without e-mail nor customer id (draft, point of sale) go to.
    walk_in_customer: BackOfficeCode = None
    #: Back-office article reference of gift card lines (the shop gives them no SKU).
    gift_card_article: BackOfficeCode = None
    #: Back-office article reference of other lines without SKU that match nothing published (custom items).
    unmatched_line_article: BackOfficeCode = None

    @model_validator(mode="after")
    def _one_group_per_status(self) -> InboundSection:
        seen: dict[str, str] = {}
        for key in ("integrate", "quotes", "cancels", "awaiting_payment"):
            for status in getattr(self, key):
                if status in seen:
                    raise fail(
                        f"status {status!r} is in both inbound.{seen[status]} and inbound.{key}; keep it in one",
                        key=key,
                    )
                seen[status] = key
        return self

    @property
    def rules(self) -> dict[str, Any]:
        """The status groups, and the walk-in customer and line articles when set, as
        :func:`passerelle.core.integrate.integrate_file` takes them."""
        out: dict[str, Any] = {
            "integrate": list(self.integrate),
            "quotes": list(self.quotes),
            "cancels": list(self.cancels),
        }
        if self.awaiting_payment:
            out["awaiting_payment"] = list(self.awaiting_payment)
        for key in ("walk_in_customer", "gift_card_article", "unmatched_line_article"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def declared(self, shop_timezone: str) -> dict[str, Any]:
        """The dialect options set here, for the parser (``read_inbound(declared=...)``); the
        timezone defaults to the shop's."""
        out = {
            k: getattr(self, k)
            for k in ("encoding", "delimiter", "decimal", "timezone", "currency")
            if getattr(self, k) is not None
        }
        out.setdefault("timezone", shop_timezone)
        return out


# --------------------------------------------------------------------------- prestashop


def _tax_rules_groups(value: Any) -> dict[float, int]:
    if not isinstance(value, dict):
        raise fail(f"expected a mapping of VAT rate to tax rules group id, such as {{20: 1, 5.5: 3}}, got {value!r}")
    out = dict(DEFAULT_TAX_RULES_GROUPS)  # the file's groups over a fresh install's
    for rate, group in value.items():
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 100:
            raise fail(f"{rate!r} is not a VAT rate; expected a percentage such as 20 or 5.5", key=str(rate))
        if isinstance(group, bool) or not isinstance(group, int) or group < 1:
            raise fail(f"expected a tax rules group id (a whole number >= 1), got {group!r}", key=str(rate))
        out[rate] = group
    return out


def _order_states(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise fail(f"expected a mapping of status to PrestaShop order state id, such as {{shipped: 4}}, got {value!r}")
    for key, state in value.items():
        if isinstance(state, bool) or not isinstance(state, (int, str)) or str(state).strip() == "":
            raise fail(f"expected a PrestaShop order state id, got {state!r}", key=str(key))
    return {str(k): v for k, v in value.items()}


def _category_id_offset(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 1_000_000_000:
        raise fail(
            f"{{key}} must be a whole number of at least 2, got {value!r} (ids 1 and 2 are PrestaShop's "
            f"root and home categories)"
        )
    return value


def _language(value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^[A-Za-z]{2}$", value):
        raise fail(f'expected a two-letter language code such as "fr", got {value!r}')
    return value.lower()


class PrestashopSection(Section):
    """``prestashop``: what the PrestaShop dialect needs to know about the shop."""

    #: The import's language: the root category's default name (fr: Accueil, en: Home, es: Inicio,
    #: de: Startseite, it: Home; passerelle.core.dialects.prestashop.ROOT_CATEGORY_BY_LANGUAGE).
    language: Annotated[str, BeforeValidator(_language)] = "fr"
    #: The root category's name when it is not the language's default.
    root_category: Annotated[str, BeforeValidator(text('"Accueil"'))] | None = None
    #: Former name of root_category, still read.
    home_category: Annotated[str, BeforeValidator(text('"Home"'))] | None = None
    #: Category IDs in the shop = back-office family id + this offset (imported with "Force all ID numbers");
    #: the default is above the ids of a fresh install (1 root, 2 home, 3-9 demo) and of categories
    #: created by hand in most shops.
    category_id_offset: Annotated[int, BeforeValidator(_category_id_offset)] = 10_000
    tax_rules_groups: Annotated[dict[float, int], BeforeValidator(_tax_rules_groups)] = DEFAULT_TAX_RULES_GROUPS
    order_states: Annotated[dict[str, int | str], BeforeValidator(_order_states)] = {}  # noqa: RUF012
    #: Customer family code to PrestaShop group id: the customers' "Default group ID" (the
    #: group whose prices they get); a family not listed is still added by name to "Groups".
    customer_groups: dict[str, Annotated[int, Field(ge=1)]] = {}  # noqa: RUF012

    @model_validator(mode="after")
    def _root_category_known(self) -> PrestashopSection:
        """A language with no known home category name needs ``root_category``."""
        if self.language not in PRESTASHOP_LANGUAGES and not self.category_root:
            raise fail(
                f"{{key}} is {self.language!r}: no default root category for it (known: "
                f"{', '.join(PRESTASHOP_LANGUAGES)}); set prestashop.root_category to the name of the "
                f"shop's home category",
                key="language",
            )
        return self

    @property
    def category_root(self) -> str | None:
        """``root_category``, else its former name ``home_category``, else None (the language's default)."""
        return self.root_category or self.home_category


# --------------------------------------------------------------------------- woocommerce and shopify

#: WooCommerce's built-in tax classes per VAT rate: Standard (empty slug), "Reduced rate"
#: (reduced-rate) and "Zero rate" (zero-rate); other rates need a class of their own.
DEFAULT_TAX_CLASSES: dict[float, str] = {20.0: "", 5.5: "reduced-rate", 0.0: "zero-rate"}
#: Weight units WooCommerce offers (woocommerce_weight_unit; the dialect's WEIGHT_FACTORS).
WOOCOMMERCE_WEIGHT_UNITS = ("kg", "g", "lbs", "oz")
#: What a product taken off the web becomes in Shopify (the dialect's OFF_STATUSES).
SHOPIFY_OFF_STATUSES = ("archived", "draft")
#: Shopify product CSV templates: today's (Shopify Help) or the previous one's names and order.
SHOPIFY_CSV_HEADERS = ("current", "legacy")


def _tax_classes(value: Any) -> dict[float, str]:
    if not isinstance(value, dict) or not value:
        raise fail(
            f'expected a mapping of VAT rate to tax class slug, such as {{20: "", 5.5: reduced-rate}}, got {value!r}'
        )
    out = {}
    for rate, slug in value.items():
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 100:
            raise fail(f"{rate!r} is not a VAT rate; expected a percentage such as 20 or 5.5", key=str(rate))
        if slug is None:
            slug = ""  # the Standard class
        if not isinstance(slug, str) or not re.match(r"^[a-z0-9-]*$", slug):
            raise fail(
                f"expected a tax class slug (lowercase letters, digits, '-'; \"\" for Standard), got {slug!r}",
                key=str(rate),
            )
        out[round(float(rate), 2)] = slug
    return out


class OptionNames(Section):
    """The shop's names of the size and colour attributes (WooCommerce) or options (Shopify)."""

    EXAMPLE: ClassVar[str] = "{size: Taille, colour: Couleur}"

    size: Annotated[str, BeforeValidator(text('"Taille"'))] = "Taille"
    colour: Annotated[str, BeforeValidator(text('"Couleur"'))] = "Couleur"


class WoocommerceSection(Section):
    """``woocommerce``: what the WooCommerce dialect needs to know about the shop (docs/formats/woocommerce.md)."""

    #: VAT rate -> tax class slug; replaces the built-in classes when given.
    tax_classes: Annotated[dict[float, str], BeforeValidator(_tax_classes)] = DEFAULT_TAX_CLASSES
    #: The shop's "Prices entered with tax" setting: which back-office price is the regular price.
    prices_include_tax: Bool = True
    weight_unit: Annotated[str, BeforeValidator(one_of(WOOCOMMERCE_WEIGHT_UNITS))] = "kg"
    attribute_names: OptionNames = Field(default_factory=OptionNames)
    #: Create size and colour as global attributes (usable in layered navigation).
    global_attributes: Bool = True
    #: Add the EAN as "GTIN, UPC, EAN, or ISBN" (the import screen does not map it by itself).
    send_gtin: Bool = False
    #: Write a promotion's end as the day after its last day: WooCommerce's importer ends a sale at
    #: the start of the day it is given (woocommerce/woocommerce#35321). False once the shop runs a
    #: WooCommerce that ends it at that day's 23:59:59, as its product page does.
    sale_end_day_after: Bool = True


class ShopifySection(Section):
    """``shopify``: what the Shopify dialect needs to know about the shop (docs/formats/shopify.md)."""

    #: The Shopify location whose stock the inventory file sets (Settings > Locations); required
    #: to write stock files.
    location: Annotated[str, BeforeValidator(text('"Entrepôt Lyon"'))] | None = None
    #: The shop's "Include tax in prices" setting.
    prices_include_tax: Bool = True
    option_names: OptionNames = Field(default_factory=OptionNames)
    off_status: Annotated[str, BeforeValidator(one_of(SHOPIFY_OFF_STATUSES))] = "archived"
    #: Also write "Inventory quantity" in product files (single-location shops only).
    single_location: Bool = False
    csv_headers: Annotated[str, BeforeValidator(one_of(SHOPIFY_CSV_HEADERS))] = "current"


__all__ = [
    "CatalogSection",
    "ImageFormatSection",
    "ImagesSection",
    "InboundSection",
    "OptionNames",
    "PrestashopSection",
    "ShopSection",
    "ShopifySection",
    "StockSection",
    "WoocommerceSection",
    "check_bool",
]


# --------------------------------------------------------------------------- alerts and timeouts

#: The flows the ``timeouts.flows`` overrides may name (``passerelle.config.flows.FLOW_NAMES``).
_TIMEOUT_FLOWS = ("catalog", "customers", "prices_stock", "orders_in", "order_status", "report")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def _emails(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise fail(f"expected an e-mail address or a list of them such as [ops@example.com], got {value!r}")
    out: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, str) or not _EMAIL.match(item.strip()):
            raise fail(f"{item!r} is not an e-mail address; expected e.g. ops@example.com", key=i)
        out.append(item.strip())
    return tuple(out)


def _class_path(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.match(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$", value):
        raise fail(
            f"expected a notifier class path such as "
            f'"airflow.providers.slack.notifications.slack.SlackNotifier", got {value!r}'
        )
    return value


def _mapping(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise fail(f'expected a mapping of keyword arguments such as {{channel: "#ops"}}, got {value!r}')
    return dict(value)


def _optional(check: Any) -> Any:
    return lambda value: None if value is None else check(value)


class AlertsSection(Section):
    """``alerts``: who owns the flows, and who hears when a run fails (Airflow notifiers).

    A failed run sends one notice (DAG-level ``on_failure_callback``), not one per retry; a notice
    per task retry only with ``on_retry: true``. The notice goes by mail through the SMTP
    connection ``smtp_conn_id`` to ``to``, unless ``notifier`` names another notifier class (its
    ``notifier_kwargs`` given as is). Nothing is sent while neither ``to`` nor ``notifier`` is set.
    """

    on_failure: Bool = True
    on_retry: Bool = False
    smtp_conn_id: Annotated[str, BeforeValidator(text('"smtp_default"'))] = "smtp_default"
    to: Annotated[tuple[str, ...], BeforeValidator(_emails)] = ()
    #: Sender; default: the SMTP connection's ``from_email`` extra.
    from_email: Annotated[str | None, BeforeValidator(lambda v: v if v is None else _emails(v)[0])] = None
    owner: Annotated[str, BeforeValidator(text('"Data team"'))] = "passerelle"
    contact: Annotated[str, BeforeValidator(lambda v: "" if v is None else text('"data@example.com"')(v))] = ""
    notifier: Annotated[str | None, BeforeValidator(_class_path)] = None
    notifier_kwargs: Annotated[dict[str, Any], BeforeValidator(_mapping)] = {}  # noqa: RUF012
    #: HTTP connection to the Airflow API server (login, password) through which a run writes its
    #: note; unset: the note is logged and kept as the XCom ``run_note`` only.
    api_conn_id: Annotated[str | None, BeforeValidator(_optional(text('"airflow_api"')))] = None

    @model_validator(mode="after")
    def _kwargs_need_notifier(self) -> AlertsSection:
        if self.notifier_kwargs and not self.notifier:
            raise fail("given without alerts.notifier; name the notifier class they are for", key="notifier_kwargs")
        return self

    @property
    def active(self) -> bool:
        """Whether a notice has somewhere to go."""
        return bool(self.to or self.notifier)


#: The order statuses the order_status flow sends (passerelle_src.order_status), in their order.
ORDER_STATUSES: tuple[str, ...] = (
    "confirmed",
    "prepared",
    "partly_shipped",
    "shipped",
    "remainder_cancelled",
    "invoiced",
    "cancelled",
)
#: Whether the customer is told of each status by default: what the shops do out of the box
#: (PrestaShop's default states mail on payment accepted, shipped and cancelled; WooCommerce and
#: Shopify on completed/fulfilled and cancelled), plus the parcels and the remainder cancelled.
DEFAULT_NOTIFY: dict[str, bool] = {
    "confirmed": False,
    "prepared": False,
    "partly_shipped": True,
    "shipped": True,
    "remainder_cancelled": True,
    "invoiced": False,
    "cancelled": True,
}


def _notify(value: Any) -> dict[str, bool]:
    if value is None:
        return dict(DEFAULT_NOTIFY)
    if not isinstance(value, dict):
        raise fail(f"expected a mapping of order status to true or false, such as {{shipped: true}}, got {value!r}")
    out = dict(DEFAULT_NOTIFY)
    for status, flag in value.items():
        if status not in ORDER_STATUSES:
            raise fail(
                f"unknown order status; expected one of {', '.join(ORDER_STATUSES)}"
                f"{did_you_mean(status, ORDER_STATUSES)}",
                key=str(status),
            )
        if not isinstance(flag, bool):
            raise fail(f"expected true or false, got {flag!r}", key=str(status))
        out[status] = flag
    return out


def _language_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise fail(f"expected a list of two-letter language codes such as [fr, en], got {value!r}")
    return tuple(dict.fromkeys(_language(v) for v in value))


class NoticeMailSection(Section):
    """``notices.mail``: Passerelle mails the notices itself (off by default: the shop does).

    Through Airflow's SMTP connection ``smtp_conn_id`` (apache-airflow-providers-smtp), one
    template per status and language in ``templates_dir`` (``<status>.<language>.txt``, first
    line ``Subject: ...``); a customer whose language has no template gets ``default_language``'s.
    """

    enabled: Bool = False
    smtp_conn_id: Annotated[str, BeforeValidator(text('"smtp_default"'))] = "smtp_default"
    #: Sender; default: the SMTP connection's ``from_email`` extra.
    from_email: Annotated[str | None, BeforeValidator(lambda v: v if v is None else _emails(v)[0])] = None
    default_language: Annotated[str, BeforeValidator(_language)] = "fr"
    languages: Annotated[tuple[str, ...], BeforeValidator(_language_list)] = ("fr", "en")
    #: Folder of the templates, relative to the project's include/ folder unless absolute.
    templates_dir: Annotated[str, BeforeValidator(text('"templates/notices"'))] = "templates/notices"
    #: A status older than this when its batch was built is recorded without a mail (the first
    #: send of every past order's statuses mails nobody about old orders).
    max_age_hours: Annotated[int, BeforeValidator(whole(1, 24 * 366, "hours"))] = 72

    @model_validator(mode="after")
    def _default_is_a_language(self) -> NoticeMailSection:
        if self.default_language not in self.languages:
            raise fail(
                f"{self.default_language!r} is not in notices.mail.languages ({', '.join(self.languages)})",
                key="default_language",
            )
        return self


class NoticesSection(Section):
    """``notices``: which changes the customer is told of, and who tells them.

    ``notify`` (per status) and ``invoice_available`` travel in the order_status flow's files as
    each row's notify flag, so that the shop sends its own e-mail (PrestaShop: the order state's
    mail, ``sendemail`` of order_carrier; WooCommerce: the shipment tracking import's
    ``status_shipped``; Shopify: the fulfillment's ``notifyCustomer``). With ``mail.enabled`` Passerelle
    mails them itself instead, once each (docs/configuration.md, "Customer notices").
    """

    notify: Annotated[dict[str, bool], BeforeValidator(_notify)] = DEFAULT_NOTIFY
    invoice_available: Bool = True
    mail: NoticeMailSection = Field(default_factory=NoticeMailSection)

    def notifies(self, status: str) -> bool:
        """Whether the customer is told of *status* (``invoice_available``: of a new invoice)."""
        if status == "invoice_available":
            return self.invoice_available
        return self.notify.get(status, False)


class FlowTimeouts(Section):
    """``timeouts.flows.<flow>``: a flow's own limits (minutes), over the section's defaults."""

    task_minutes: Annotated[int | None, BeforeValidator(_optional(whole(1, 24 * 60, "minutes")))] = None
    run_minutes: Annotated[int | None, BeforeValidator(_optional(whole(1, 7 * 24 * 60, "minutes")))] = None


#: Defaults per flow where the section's are not enough: the catalog renders photos.
DEFAULT_FLOW_TIMEOUTS = {"catalog": {"task_minutes": 120, "run_minutes": 240}}


class TimeoutsSection(Section):
    """``timeouts``: how long a task that talks to a server (``execution_timeout``) and a whole run
    (``dagrun_timeout``) may last before Airflow stops it, and the pause before a retry.

    A server that hangs (a stalled FTP transfer) then fails the task, which is retried and, at the
    end, fails the run: one alert, within ``run_minutes``.
    """

    task_minutes: Annotated[int, BeforeValidator(whole(1, 24 * 60, "minutes"))] = 30
    run_minutes: Annotated[int, BeforeValidator(whole(1, 7 * 24 * 60, "minutes"))] = 120
    retry_delay_seconds: Annotated[int, BeforeValidator(whole(0, 24 * 3600, "seconds"))] = 300
    flows: dict[str, FlowTimeouts] = {}  # noqa: RUF012

    @field_validator("flows", mode="before")
    @classmethod
    def _known_flows(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise fail(
                f"expected a mapping of flow names to limits such as {{catalog: {{task_minutes: 60}}}}, got {value!r}"
            )
        for name in value:
            if name not in _TIMEOUT_FLOWS:
                raise fail(
                    f"{name!r} is not a flow; expected one of {', '.join(_TIMEOUT_FLOWS)}"
                    f"{did_you_mean(name, _TIMEOUT_FLOWS)}",
                    key=name,
                )
        return value

    def task_minutes_of(self, flow: str) -> int:
        """*flow*'s ``execution_timeout`` in minutes: its own, else the section's if set in the
        file, else the flow's default (:data:`DEFAULT_FLOW_TIMEOUTS`), else the section's default."""
        return self._minutes(flow, "task_minutes")

    def run_minutes_of(self, flow: str) -> int:
        """*flow*'s ``dagrun_timeout`` in minutes (same order as :meth:`task_minutes_of`)."""
        return self._minutes(flow, "run_minutes")

    def _minutes(self, flow: str, key: str) -> int:
        own = self.flows.get(flow)
        if own is not None and getattr(own, key) is not None:
            return getattr(own, key)
        if key in self.model_fields_set:
            return getattr(self, key)
        return DEFAULT_FLOW_TIMEOUTS.get(flow, {}).get(key, getattr(self, key))
