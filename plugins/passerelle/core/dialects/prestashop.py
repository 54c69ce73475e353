"""PrestaShop 8: the catalog and the hourly exchanges as its CSV import takes them.

Checked against PrestaShop 8.1's own importer, ``controllers/admin/AdminImportController.php``
(what each rule below rests on is cited in docs/formats/prestashop.md, "What Passerelle writes
and why"); the import screen's fields per entity are in
``include/reference/prestashop8_import_fields.json``. In short:

- columns are matched by position, so every file is a prefix of the entity's field list;
- products and combinations are matched by reference ("Use product reference as key");
- categories carry their own ``ID`` (the back office's family id plus
  ``prestashop.category_id_offset``, imported with "Force all ID numbers") and their parent by
  that ID, so that homonyms in different branches never meet; top-level families hang under
  the shop's root category, named ``prestashop.root_category`` (default by
  ``prestashop.language``);
- a deactivation row carries the product's name (the import sets the name from the cell,
  empty included, and refuses a product without one);
- photo columns are filled only in rows whose photos changed: every import appends the listed
  images again.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pandas as pd

from passerelle import INCLUDE
from passerelle.core.dialects import register
from passerelle.core.dialects.base import (
    Dialect,
    Rejects,
    _blank,
    _fmt,
    _num,
    _whole,
    delivery_lines,
    in_time_order,
    notify_flags,
    pdf_names,
    sanitise_html,
    slug,
)

#: PrestaShop 8's import fields per entity, from its AdminImportController (see the file's source).
REFERENCE_FILE = INCLUDE / "reference" / "prestashop8_import_fields.json"

#: The name of PrestaShop's home category as a fresh install creates it, per install language.
#: The categories import finds a parent given by name in the import's language.
ROOT_CATEGORY_BY_LANGUAGE: dict[str, str] = {
    "fr": "Accueil",
    "en": "Home",
    "es": "Inicio",
    "de": "Startseite",
    "it": "Home",
}

#: PrestaShop 8's default order states (ps_order_state ids of a fresh install) per back-office
#: status; "invoiced" has no state of its own (the PDF goes to the customer area instead).
#: A shop with other ids sets ``order_states`` in the dialect's configuration.
#: PrestaShop has no state of its own for a parcel that leaves something to ship, nor for the
#: remainder of an order cancelled: their rows carry no state unless ``order_states`` gives one
#: (a state the shop created, e.g. "Partially shipped"); the parcel's tracking number goes to
#: ``order_carriers`` all the same.
PRESTASHOP_ORDER_STATES: dict[str, str] = {
    "confirmed": "2",  # Payment accepted
    "prepared": "3",  # Processing in progress
    "partly_shipped": "",
    "shipped": "4",  # Shipped
    "remainder_cancelled": "",
    "invoiced": "",
    "cancelled": "6",  # Canceled
}

#: "No limit" for a PrestaShop specific price date, as the shop stores it.
PS_NO_DATE = "0000-00-00 00:00:00"

#: Length of the photos' digest that starts an article's snapshot label (md5 in hex, see the differ).
_DIGEST = 32

#: PrestaShop 8's country ids as its installer creates them (install-dev/data/xml/country.xml,
#: inserted in file order: ids 1, 2, 3...), for the addresses import's ``Country`` cell: a number
#: is taken as an id, a text is searched by name (in the shop's languages) and an unknown name
#: creates a new country (addressImportOne), so an ISO code must never be written there.
PRESTASHOP_COUNTRY_IDS: dict[str, int] = {
    iso: i
    for i, iso in enumerate(
        (
            "DE",
            "AT",
            "BE",
            "CA",
            "CN",
            "ES",
            "FI",
            "FR",
            "GR",
            "IT",
            "JP",
            "LU",
            "NL",
            "PL",
            "PT",
            "CZ",
            "GB",
            "SE",
            "CH",
            "DK",
            "US",
            "HK",
            "NO",
            "AU",
            "SG",
            "IE",
            "NZ",
            "KR",
            "IL",
            "ZA",
        ),
        start=1,
    )
}

#: The address alias (required by the addresses import) per address kind and import language.
ADDRESS_ALIASES: dict[str, dict[str, str]] = {
    "fr": {"billing": "Facturation", "delivery": "Livraison"},
    "en": {"billing": "Billing", "delivery": "Delivery"},
}

#: The customers entities: what PrestaShop's import creates goes to the import's files (stems of
#: the dialect), the changes it cannot apply to the documented ``*_updates`` files.
CUSTOMER_IMPORTS = {"customer": "customers", "customer_address": "addresses"}


@cache
def prestashop_fields(entity: str) -> tuple[tuple[str, str], ...]:
    """(key, label) of a PrestaShop import entity in the order its matching screen pre-selects
    them: the reference file's order, ``price_tin`` left out (never pre-selected)."""
    data = json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))
    try:
        fields = data["entities"][entity]
    except KeyError:
        raise ValueError(f"{REFERENCE_FILE.name}: no PrestaShop import entity {entity!r}") from None
    return tuple((f["key"], f["label"]) for f in fields if f["key"] != "price_tin")


@cache
def prestashop_required(entity: str) -> tuple[str, ...]:
    """Labels of the entity's fields the import refuses empty ($required_fields, or required by
    the object's own definition, such as a product's or a category's name)."""
    data = json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))
    return tuple(f["label"] for f in data["entities"][entity] if f.get("required"))


def prestashop_frame(entity: str, values: dict[str, Any], index: pd.Index) -> pd.DataFrame:
    """A PrestaShop import file: the shortest prefix of the entity's fields holding every key of
    *values*, in order, with the labels as header; fields not given are left empty.

    PrestaShop matches columns by position, not by header: an empty cell leaves a plain field
    unchanged (but sets a multilingual one, such as the name, to empty: give those).
    """
    fields = prestashop_fields(entity)
    keys = [k for k, _ in fields]
    unknown = sorted(set(values) - set(keys))
    if unknown:
        raise ValueError(f"PrestaShop {entity} import has no field {unknown}; expected some of {keys}")
    last = max(keys.index(k) for k in values)
    columns: dict[str, Any] = {}
    for key, label in fields[: last + 1]:
        value = values.get(key, "")
        columns[label] = value if isinstance(value, pd.Series) else pd.Series(value, index=index, dtype=object)
    return pd.DataFrame(columns, index=index)


def attribute_columns(size: pd.Series, colour: pd.Series) -> tuple[pd.Series, pd.Series]:
    """PrestaShop's "Attribute (Name:Type:Position)" and "Value (Value:Position)" cells."""
    size, colour = size.fillna(""), colour.fillna("")
    has_size, has_colour = size != "", colour != ""
    group = (
        has_size.map({True: "Taille:select:0", False: ""})
        + (has_size & has_colour).map({True: ",", False: ""})
        + has_colour.map({True: "Couleur:color:1", False: ""})
    )
    value = (
        (size + ":0").where(has_size, "")
        + (has_size & has_colour).map({True: ",", False: ""})
        + (colour.str.capitalize() + ":1").where(has_colour, "")
    )
    return group, value


def article_label_name(labels: pd.Series) -> pd.Series:
    """The name in an article's snapshot label (``<photos digest><TAB><name>``, see the differ).

    A label written before the digest existed is the bare reference: it is given back as it is
    (PrestaShop needs a non-empty name; the product is being deactivated anyway).
    """
    labels = labels.fillna("")
    name = labels.str.extract(rf"^[0-9a-f]{{{_DIGEST}}}\t(.*)$", flags=re.S, expand=False)
    return name.where(name.notna() & (name != ""), labels)


#: Entities whose ``name`` PrestaShop validates with ``Validate::isCatalogName`` (``/^[^<>;=#{}]*$/u``):
#: products, categories, manufacturers and suppliers, and the price and stock files that repeat a
#: product's name.
_CATALOG_NAMED = frozenset({"article", "family", "brand", "supplier", "price", "stock"})
_NOT_CATALOG_NAME = "[<>;=#{}]"
_CATALOG_NAME_REASON = (
    "PrestaShop refuses a name holding any of < > ; = # { } (Validate::isCatalogName): the shop would not save "
    "it; rename it in the back office"
)
_ATTRIBUTE_REASON = (
    "PrestaShop's combinations import splits attributes on ',' and positions on ':' "
    "(AdminImportController::attributeImportOne): this {field} would become another attribute; write it without "
    "them (38.5 rather than 38,5)"
)


class PrestaShopDialect(Dialect):
    """PrestaShop 8 CSV import: ``;`` separated, dot decimals, 0/1 booleans, UTF-8.

    Products and combinations are matched by reference (tick "Use product reference as key"
    on the import screen); categories by ID (tick "Force all ID numbers"); brands and
    suppliers by name. Deactivations go to separate ``*_off`` files holding the key columns
    and what the import requires, so nothing else is overwritten.

    Settings (``settings.prestashop``): ``language`` (the import's language, a two-letter code,
    default ``fr``), ``root_category`` (default by language; ``home_category`` is read as an
    older name of it), ``category_id_offset``, ``tax_rules_groups``; and
    ``settings.catalog.send_purchase_price``.
    """

    name = "prestashop"
    separator = ";"
    stems = {
        "family": "categories",
        "brand": "manufacturers",
        "supplier": "suppliers",
        "article": "products",
        "variant": "combinations",
        "customer": "customers",
        "customer_address": "addresses",
    }
    #: The article's previous snapshot label tells whether its photos changed (see _article); a
    #: customer's or an address's batch_op whether the shop already has it (see live_files).
    with_previous: frozenset[str] = frozenset({"article", "customer", "customer_address"})

    @property
    def tax_rules(self) -> dict[float, int]:
        return {float(k): int(v) for k, v in self.settings.prestashop.tax_rules_groups.items()}

    @property
    def root_category(self) -> str:
        """The name of the category top-level families hang under, in the import's language (the
        settings refuse a language without a default unless ``root_category`` is set)."""
        section = self.settings.prestashop
        return section.category_root or ROOT_CATEGORY_BY_LANGUAGE[section.language]

    @property
    def category_id_offset(self) -> int:
        return self.settings.prestashop.category_id_offset

    def category_ids(self, family_ids: pd.Series) -> pd.Series:
        """Shop category ids for back-office family ids (text, as COPY gives them); empty stays empty."""
        n = _num(family_ids)
        return (n + self.category_id_offset).map(lambda x: "" if pd.isna(x) else str(int(x)))

    def _categories(self, family_ids: pd.Series) -> pd.Series:
        """A product's ``Categories`` cell: the family and its parents by category ID, leaf first
        (PrestaShop's default category is the first listed): "1,3,7" becomes "10007,10003,10001"."""
        ids = family_ids.fillna("").astype(str).str.split(",").explode()
        ids = ids[ids != ""]
        return (
            self.category_ids(ids)
            .groupby(level=0)
            .agg(lambda s: ",".join(reversed(list(s))))
            .reindex(family_ids.index)
            .fillna("")
        )

    def live(self, entity: str, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        return getattr(self, f"_{entity}")(df, rejects)

    # -- customers ---------------------------------------------------------------------------
    def common_checks(self, entity: str, df: pd.DataFrame, rejects: Rejects) -> pd.Series:
        """The checks of every dialect, then two the shop's import makes, whose failures it reports
        in its own log only: a catalog name (product, category, brand, supplier; repeated by the
        price and stock files) holding one of ``< > ; = # { }`` (``Validate::isCatalogName``; the
        product "cannot be saved", every hour again for its price and stock), and a size or a
        colour holding ``,`` or ``:``, which ``AdminImportController::attributeImportOne`` splits
        a combination's attributes and positions on (``38,5`` would become two attributes, the
        wrong combination sold). The row is refused, naming the field, instead."""
        bad = super().common_checks(entity, df, rejects)
        if entity in _CATALOG_NAMED and "name" in df:
            named = df["name"].fillna("").astype(str).str.contains(_NOT_CATALOG_NAME, regex=True)
            bad |= rejects.add(df, ~bad & named, "name", _CATALOG_NAME_REASON)
        for col in ("size", "colour"):
            if col in df:
                split = df[col].fillna("").astype(str).str.contains("[,:]", regex=True)
                bad |= rejects.add(df, ~bad & split, col, _ATTRIBUTE_REASON.format(field=col))
        return bad

    def live_files(self, entity: str, df: pd.DataFrame, rejects: Rejects) -> dict[str, pd.DataFrame]:
        """File stem -> rows. The catalog's entities: one file. Customers and addresses: the rows
        the shop never got go to PrestaShop's own import (``customers``, ``addresses``); the rows it
        has go to ``customers_updates`` / ``addresses_updates``, documented files for a shop-side
        module or the webservice, because the import finds customers and addresses by ``ID`` only
        (a row without one creates a second customer) and re-hashes the stored password of a
        customer it updates (docs/formats/prestashop.md, "Customers")."""
        if entity not in CUSTOMER_IMPORTS:
            return {self.stems[entity]: self.live(entity, df, rejects)}
        from passerelle.core.customers import check_customers, names

        df, bad = check_customers(entity, df, rejects)
        first, last = names(df)
        df = df.assign(first_name=first, last_name=last)
        unnamed = ~bad & ((first == "") | (last == ""))
        bad |= rejects.add(
            df,
            unnamed,
            "last_name",
            "PrestaShop requires a first and a last name (Customer and Address: firstname, lastname)",
        )
        if entity == "customer_address":
            country = df["country"].fillna("").str.strip().str.upper().map(PRESTASHOP_COUNTRY_IDS)
            bad |= rejects.add(
                df,
                ~bad & country.isna(),
                "country",
                f"no PrestaShop country id for this ISO code (known: {sorted(PRESTASHOP_COUNTRY_IDS)})",
            )
            df = df.assign(country_id=country.map(lambda x: "" if pd.isna(x) else str(int(x))))
        df = df[~bad]
        new = df["batch_op"].fillna("C") == "C"
        stem = self.stems[entity]
        if entity == "customer":
            return {stem: self._customer_import(df[new]), f"{stem}_updates": self._customer_updates(df[~new])}
        return {stem: self._address_import(df[new]), f"{stem}_updates": self._address_updates(df[~new])}

    @property
    def customer_groups(self) -> dict[str, int]:
        """Customer family code -> PrestaShop group id (``prestashop.customer_groups``)."""
        return {str(k): int(v) for k, v in self.settings.prestashop.customer_groups.items()}

    def _default_group(self, families: pd.Series) -> pd.Series:
        return families.fillna("").map(self.customer_groups).map(lambda x: "" if pd.isna(x) else str(int(x)))

    def _customer_import(self, df: pd.DataFrame) -> pd.DataFrame:
        """Customers import rows, for customers the shop does not have: no ``ID`` (the shop numbers
        them), a random password (required, re-hashed by the import: the customer chooses their
        own with "Forgot your password?"; Passerelle keeps none), the family's name as group (found
        by name, created if missing) and, when ``prestashop.customer_groups`` names it, its id as
        default group (a name there falls back to the shop's default group)."""
        import secrets

        group = (
            df["customer_family_name"]
            .fillna("")
            .where(df["customer_family_name"].fillna("") != "", df["customer_family"].fillna(""))
        )
        return prestashop_frame(
            "customers",
            {
                "active": "1",
                "email": df["email"],
                "passwd": pd.Series([secrets.token_urlsafe(18) for _ in range(len(df))], index=df.index, dtype=object),
                "lastname": df["last_name"],
                "firstname": df["first_name"],
                "group": group,
                "id_default_group": self._default_group(df["customer_family"]),
            },
            df.index,
        )

    def _customer_updates(self, df: pd.DataFrame) -> pd.DataFrame:
        """customers_updates file: a customer the shop has, found by the e-mail last sent."""
        return pd.DataFrame(
            {
                "passerelle_key": df["key"],
                "email": df["email"],
                "previous_email": df["previous_label"]
                .fillna("")
                .where(df["previous_label"].fillna("") != "", df["email"]),
                "active": "1",
                "firstname": df["first_name"],
                "lastname": df["last_name"],
                "company": _blank(df["company"]),
                "customer_family": _blank(df["customer_family"]),
                "id_default_group": self._default_group(df["customer_family"]),
                "price_list": _blank(df["price_list"]),
                "vat_territory": _blank(df["vat_territory"]),
            },
            index=df.index,
        )

    def _alias(self, kinds: pd.Series) -> pd.Series:
        aliases = ADDRESS_ALIASES.get(self.settings.prestashop.language.lower(), ADDRESS_ALIASES["en"])
        return kinds.map(aliases).fillna(kinds)

    def _address_import(self, df: pd.DataFrame) -> pd.DataFrame:
        """Addresses import rows, for addresses the shop does not have: found customer by e-mail
        (``Customer email``), country by id, alias by kind."""
        return prestashop_frame(
            "addresses",
            {
                "alias": self._alias(df["kind"]),
                "active": "1",
                "customer_email": df["customer_email"],
                "company": _blank(df["company"]),
                "lastname": df["last_name"],
                "firstname": df["first_name"],
                "address1": df["address1"],
                "address2": _blank(df["address2"]),
                "postcode": df["postcode"],
                "city": df["city"],
                "country": df["country_id"],
                "other": "",
                "phone": _blank(df["phone"]),
                "phone_mobile": "",
                "vat_number": _blank(df["vat_number"]),
            },
            df.index,
        )

    def _address_updates(self, df: pd.DataFrame) -> pd.DataFrame:
        """addresses_updates file: an address the shop has, found by its customer's e-mail last
        sent and its alias."""
        previous = df["previous_label"].fillna("").str.split("\t", n=1).str[0].fillna("")
        return pd.DataFrame(
            {
                "passerelle_key": df["key"],
                "customer_email": df["customer_email"],
                "previous_customer_email": previous.where(previous != "", df["customer_email"]),
                "alias": self._alias(df["kind"]),
                "company": _blank(df["company"]),
                "lastname": df["last_name"],
                "firstname": df["first_name"],
                "address1": df["address1"],
                "address2": _blank(df["address2"]),
                "postcode": df["postcode"],
                "city": df["city"],
                "id_country": df["country_id"],
                "phone": _blank(df["phone"]),
                "vat_number": _blank(df["vat_number"]),
            },
            index=df.index,
        )

    def _family(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        # Parents before children: a parent given by ID must exist when its child is imported.
        df = df.assign(_depth=_num(df["depth"])).sort_values("_depth", kind="stable")
        parent = self.category_ids(df["parent_family_id"])
        return prestashop_frame(
            "categories",
            {
                "id": self.category_ids(df["family_id"]),
                "active": "1",
                "name": df["name"],
                "parent": parent.where(parent != "", self.root_category),
                "is_root_category": "0",
                "meta_title": df["name"],
                "link_rewrite": slug(df["name"]),
            },
            df.index,
        )

    def _brand(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        return prestashop_frame(
            "manufacturers",
            {"active": "1", "name": df["name"], "description": sanitise_html(df["description"].fillna(""))},
            df.index,
        )

    def _supplier(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        return prestashop_frame("suppliers", {"active": "1", "name": df["name"]}, df.index)

    def _article(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        vat = _num(df["vat_rate"]).round(2)
        rule = vat.map(self.tax_rules)
        bad = rejects.add(
            df,
            rule.isna(),
            "vat_rate",
            f"no PrestaShop tax rule for this VAT rate (prestashop.tax_rules_groups has {sorted(self.tax_rules)})",
        )
        values: dict[str, Any] = {
            "active": "1",
            "name": df["name"],
            "category": self._categories(df["family_ids"]),
            "price_tex": _fmt(df["price_excl_vat"], 6),
            "id_tax_rules_group": rule.map(lambda x: "" if pd.isna(x) else str(int(x))),
            "reference": df["reference"],
            "supplier_reference": df["supplier_reference"],
            "supplier": df["supplier"],
            "manufacturer": df["brand"],
            "ean13": df["ean"],
            "weight": _fmt(df["weight_kg"], 3),
            "quantity": _num(df["quantity"]).fillna(0).astype(int).astype(str),
            "description_short": sanitise_html(df["short_description"].fillna("")),
            "description": sanitise_html(df["long_description"].fillna("")),
            "meta_title": df["name"],
            "link_rewrite": slug(df["name"]),
        }
        if self.settings.catalog.send_purchase_price:
            values["wholesale_price"] = _fmt(df["purchase_price"], 6)
        if "image_urls" in df:
            # Every import appends the listed images: list them (replacing the old ones) only in
            # rows whose photos changed, i.e. whose photos digest (the start of the snapshot
            # label) differs from the last confirmed send's. A new row, a full send (no previous
            # label) and a photo list that became empty (the old photos are deleted) count as
            # changed. Elsewhere both cells stay empty: the import leaves the photos alone.
            changed = self.photos_changed(df)
            values["image"] = df["image_urls"].fillna("").where(changed, "")
            values["delete_existing_images"] = changed.map({True: "1", False: ""})
        return prestashop_frame("products", values, df.index)[~bad]

    @staticmethod
    def photos_changed(df: pd.DataFrame) -> pd.Series:
        """True where the row's photos differ from the last confirmed send (set-wise, on labels)."""
        if "batch_label" not in df or "previous_label" not in df:
            return pd.Series(True, index=df.index)
        now = df["batch_label"].fillna("").str[:_DIGEST]
        before = df["previous_label"].fillna("").str[:_DIGEST]
        return (now != before) | (now == "")

    def _variant(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        groups, values = attribute_columns(df["size"], df["colour"])
        return prestashop_frame(
            "combinations",
            {
                "product_reference": df["article_reference"],
                "group": groups,
                "attribute": values,
                "reference": df["reference"],
                "ean13": df["ean"],
                "price": _fmt(df["price_impact"], 6),
                "quantity": _num(df["quantity"]).fillna(0).astype(int).astype(str),
                "weight": _fmt(df["weight_impact"], 3),
            },
            df.index,
        )

    def removed(self, entity: str, df: pd.DataFrame) -> tuple[str, pd.DataFrame]:
        stem = f"{self.stems[entity]}_off"
        if entity in CUSTOMER_IMPORTS:
            # The import cannot find a customer without its ID (see live_files): a documented
            # file, the customer found by the e-mail last sent, to set inactive (an address: deleted).
            parts = df["label"].fillna("").str.split("\t", n=1, expand=True).reindex(columns=range(2)).fillna("")
            if entity == "customer":
                return stem, pd.DataFrame({"passerelle_key": df["key"], "email": parts[0], "active": "0"})
            return stem, pd.DataFrame(
                {"passerelle_key": df["key"], "customer_email": parts[0], "alias": self._alias(parts[1])}
            )
        if entity == "article":
            # Found by reference; the name is required (an empty cell would set it empty and the
            # product would be refused): the last name sent, kept in the snapshot label.
            return stem, prestashop_frame(
                "products", {"active": "0", "name": article_label_name(df["label"]), "reference": df["key"]}, df.index
            )
        if entity == "variant":
            # A combination row needs its attributes to be found; the snapshot keeps them in the
            # label ("article reference<TAB>size<TAB>colour"). Quantity 0: nobody can order it.
            parts = df["label"].fillna("").str.split("\t", expand=True).reindex(columns=range(3)).fillna("")
            groups, values = attribute_columns(parts[1], parts[2])
            return stem, prestashop_frame(
                "combinations",
                {
                    "product_reference": parts[0],
                    "group": groups,
                    "attribute": values,
                    "reference": df["key"],
                    "quantity": "0",
                },
                df.index,
            )
        if entity == "family":
            # Label "family id<TAB>parent family id<TAB>name" (the differ): found by ID, the name
            # required, the parent given again (left empty, the import would move it under Home).
            parts = df["label"].fillna("").str.split("\t", n=2, expand=True).reindex(columns=range(3)).fillna("")
            parent = self.category_ids(parts[1])
            return stem, prestashop_frame(
                "categories",
                {
                    "id": self.category_ids(parts[0]),
                    "active": "0",
                    "name": parts[2],
                    "parent": parent.where(parent != "", self.root_category),
                },
                df.index,
            )
        kind = {"brand": "manufacturers", "supplier": "suppliers"}[entity]
        return stem, prestashop_frame(kind, {"active": "0", "name": df["label"]}, df.index)


class PrestaShopExchangeDialect(PrestaShopDialect):
    """PrestaShop 8: prices and stock as product/combination imports (by reference, positional
    columns), the rest as documented files for a shop-side module or webservice script
    (PrestaShop's CSV import has no specific prices, order states or invoices).

    ``silent_removals``: PrestaShop cannot take a stock or price removal, and the catalog
    already deactivates what left the shop; ``filters_variant_display`` is off: combinations
    must get their zero quantity, else they stay orderable.
    """

    stems = {
        **PrestaShopDialect.stems,
        "price": "products_prices",
        "specific_price": "specific_prices",
        "stock": "products_stock",
        "variant_stock": "combinations_stock",
        "order_status": "order_states",
        "delivery": "order_carriers",
        "invoice": "invoices",
    }
    silent_removals: frozenset[str] = frozenset(
        {"order_status", "delivery", "invoice", "price", "stock", "variant_stock"}
    )
    filters_variant_display = False

    @property
    def order_states(self) -> dict[str, str]:
        return {**PRESTASHOP_ORDER_STATES, **{k: str(v) for k, v in self.settings.prestashop.order_states.items()}}

    def _local_time(self, utc_iso: pd.Series) -> pd.Series:
        tz = self.settings.shop.timezone
        when = pd.to_datetime(utc_iso.replace("", None), utc=True, format="%Y-%m-%dT%H:%M:%SZ")
        return when.dt.tz_convert(tz).dt.strftime("%Y-%m-%d %H:%M:%S").fillna("")

    def _price(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """Products import: name (kept), categories (restated), price excl. VAT, tax rule, the promotion,
        reference."""
        rule = _num(df["vat_rate"]).round(2).map(self.tax_rules)
        bad = rejects.add(
            df,
            rule.isna(),
            "vat_rate",
            f"no PrestaShop tax rule for this VAT rate (prestashop.tax_rules_groups has {sorted(self.tax_rules)})",
        )
        has_promo = df["promo_starts_on"].fillna("") != ""
        pct = _num(df["promo_discount_pct"])
        fixed = has_promo & pct.isna()
        # A fixed promotional price becomes an amount off the price incl. VAT (the import's
        # specific price has reduction_tax = 1, PrestaShop's default).
        amount = (_num(df["price_incl_vat"]) - _num(df["promo_price_incl_vat"])).round(2)
        bad |= rejects.add(
            df, fixed & ~(amount > 0), "promo_price_excl_vat", "the promotional price is not below the base price"
        )
        values = {
            "name": df["name"],
            # Restated: a product row with an empty Categories cell keeps one of its categories.
            "category": self._categories(df["family_ids"]),
            "price_tex": _fmt(df["price_excl_vat"], 6),
            "id_tax_rules_group": rule.map(lambda x: "" if pd.isna(x) else str(int(x))),
            "reduction_price": amount.where(fixed).map(lambda x: "" if pd.isna(x) else f"{x:.2f}"),
            "reduction_percent": _fmt(df["promo_discount_pct"], 2).where(has_promo & ~fixed, ""),
            "reduction_from": _blank(df["promo_starts_on"]),
            "reduction_to": (_blank(df["promo_ends_on"]) + " 23:59:59").where(has_promo, ""),
            "reference": df["reference"],
        }
        return prestashop_frame("products", values, df.index)[~bad]

    def _stock(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """Products import: name (kept), categories (restated), reference, quantity; articles with
        combinations are left out (PrestaShop sums their combinations' stock itself)."""
        plain = df[df["has_variants"].fillna("f").isin(["f", "false"])]
        values = {
            "name": plain["name"],
            # Restated: a product row with an empty Categories cell keeps one of its categories.
            "category": self._categories(plain["family_ids"]),
            "reference": plain["article_reference"],
            "quantity": _whole(plain["available_qty"]),
        }
        return prestashop_frame("products", values, plain.index)

    def _variant_stock(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """Combinations import: the catalog's combination row (the import resets what a row leaves
        out) with the available quantity."""
        return self._variant(
            df.assign(reference=df["variant_reference"], quantity=_whole(df["available_qty"])), rejects
        )

    def _specific_price(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """specific_prices file, mirroring the webservice resource ``specific_prices``."""
        pct = _num(df["discount_pct"])
        has_price = _num(df["price_excl_vat"]).notna()
        starts, ends = _blank(df["starts_on"]), _blank(df["ends_on"])
        return pd.DataFrame(
            {
                "passerelle_key": df["key"],
                "reference": df["article_reference"],
                "combination_reference": _blank(df["variant_reference"]),
                "id_group": _blank(df["price_list"]),
                "from_quantity": _blank(df["from_quantity"]),
                "price": _fmt(df["price_excl_vat"], 6).where(has_price, "-1"),
                "reduction": (pct / 100).map(lambda x: "0" if pd.isna(x) else f"{x:.6f}"),
                "reduction_tax": "0",
                "reduction_type": pct.notna().map({True: "percentage", False: "amount"}),
                "from": (starts + " 00:00:00").where(starts != "", PS_NO_DATE),
                "to": (ends + " 23:59:59").where(ends != "", PS_NO_DATE),
            },
            index=df.index,
        )

    def _order_status(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """order_states file: one state change per row, in the order they happened."""
        df = in_time_order(df)
        return pd.DataFrame(
            {
                "id_order": _blank(df["shop_order_id"]),
                "reference": df["order_number"],
                "status": df["status"],
                "id_order_state": df["status"].map(self.order_states).fillna(""),
                "carrier": _blank(df["carrier"]),
                "tracking_number": _blank(df["tracking_number"]),
                "invoice_number": _blank(df["invoice_number"]),
                "date": self._local_time(df["changed_at"]),
                "customer_email": _blank(df["customer_email"]),
                # OrderHistory::addWithemail() (the state's mail) when 1, add() when 0.
                "send_email": notify_flags(self.settings, df["status"]).map({True: "1", False: "0"}),
            },
            index=df.index,
        )

    def _delivery(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """order_carriers file: one row per line of each parcel, mirroring the webservice resource
        ``order_carriers`` (id_order, tracking_number, date_add; ``sendemail``: the "in transit"
        mail of OrderCarrier::sendInTransitEmail) with the parcel's lines as ``order_details``
        (product_reference, product_quantity) and the state the parcel puts the order in."""
        df = df.sort_values(["shipped_at", "key"], kind="stable")
        lines = delivery_lines(df)
        return pd.DataFrame(
            {
                "id_order": _blank(lines["shop_order_id"]),
                "reference": lines["order_number"],
                "delivery_number": lines["delivery_number"],
                "carrier": _blank(lines["carrier"]),
                "tracking_number": _blank(lines["tracking_number"]),
                "date_add": self._local_time(lines["shipped_at"]),
                "status": lines["order_status"],
                "id_order_state": lines["order_status"].map(self.order_states).fillna(""),
                "product_reference": lines["reference"],
                "product_name": _blank(lines["label"]),
                "product_quantity": lines["quantity"],
                "product_quantity_ordered": lines["ordered"],
                "customer_email": _blank(lines["customer_email"]),
                "sendemail": notify_flags(self.settings, lines["order_status"]).map({True: "1", False: "0"}),
            }
        )

    def _invoice(self, df: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
        """invoices file: the index of the PDFs published beside it."""
        return pd.DataFrame(
            {
                "invoice_number": df["invoice_number"],
                "id_order": _blank(df["shop_order_id"]),
                "reference": df["order_number"],
                "customer_email": _blank(df["customer_email"]),
                "date": df["invoice_date"],
                "total_paid_tax_excl": _fmt(df["total_excl_vat"], 2),
                "total_paid_tax_incl": _fmt(df["total_incl_vat"], 2),
                "file": pdf_names(df["invoice_number"]),
                "notify": "1" if notify_flags(self.settings, pd.Series(["invoice_available"])).iloc[0] else "0",
            },
            index=df.index,
        )

    def removed(self, entity: str, df: pd.DataFrame) -> tuple[str, pd.DataFrame]:
        if entity == "specific_price":
            return f"{self.stems[entity]}_off", pd.DataFrame({"passerelle_key": df["key"], "reference": df["label"]})
        return super().removed(entity, df)


register("prestashop", catalog=PrestaShopDialect, exchange=PrestaShopExchangeDialect, orders="prestashop_orders")
