"""Customers and addresses in each shop's files, on small frames.

PrestaShop: the Customers and Addresses imports of ``AdminImportController.php`` (8.1.2), whose
field lists are in ``include/reference/prestashop8_import_fields.json``. Shopify: the customer
CSV header of ``include/reference/shopify_customer_csv.json``. Generic (and WooCommerce, which
has no customer import): docs/formats/generic.md, "Customers".
"""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from passerelle.core.customers import normalise_emails
from passerelle.core.dialects import dialect
from passerelle.core.dialects.base import Rejects
from passerelle.core.dialects.generic import GenericDialect
from passerelle.core.dialects.prestashop import prestashop_fields, prestashop_required
from passerelle.core.dialects.shopify import ShopifyDialect, shopify_customer_columns
from passerelle.core.dialects.woocommerce import WooCommerceDialect
from passerelle.core.export import _live_files

from . import settings

CUSTOMER = pd.DataFrame(
    {
        "key": ["CLI-1", "CLI-2", "CLI-3", "CLI-4"],
        "code": ["CLI-1", "CLI-2", "CLI-3", "CLI-4"],
        "email": ["  Zoe.Lambert@Exemple.com ", "jean@exemple.fr", "pas-un-email", "SARL@exemple.fr"],
        "first_name": ["Zoé", "Jean", "Paul", ""],
        "last_name": ["Lambert", "Martin", "Durand", ""],
        "company": ["", "", "", "SARL Bonnet"],
        "phone": ["06 12 34 56 78", "", "", "0138271605"],
        "customer_family": ["PART", "PRO", "PART", "PRO"],
        "customer_family_name": ["Particuliers", "Professionnels", "Particuliers", "Professionnels"],
        "price_list": ["PUBLIC", "REV", "PUBLIC", ""],
        "vat_territory": ["FR", "EU", "FR", "EXPORT"],
        "vat_number": ["", "FR12345678901", "", ""],
        "web": ["t", "t", "t", "t"],
        "address_name": ["Zoé Lambert", "", "", ""],
        "address1": ["3 allée des Tilleuls", "", "", "1 rue X"],
        "address2": ["Bât. B, appt 12", "", "", ""],
        "postcode": ["35000", "", "", "06000"],
        "city": ["Rennes", "", "", "Nice"],
        "country": ["FR", "", "", "FR"],
        "address_phone": ["", "", "", ""],
        "customer_id": ["1", "2", "3", "4"],
        # As the file writer gives them to PrestaShop (with_previous): CLI-2 was sent before.
        "batch_label": ["zoe.lambert@exemple.com", "jean@exemple.fr", "pas-un-email", "sarl@exemple.fr"],
        "previous_label": [None, "jean.martin@old.fr", None, None],
        "batch_op": ["C", "U", "C", "C"],
    }
)

ADDRESS = pd.DataFrame(
    {
        "key": ["CLI-1:billing", "CLI-1:delivery", "CLI-2:billing", "CLI-3:billing"],
        "customer": ["CLI-1", "CLI-1", "CLI-2", "CLI-3"],
        "customer_email": ["Zoe.Lambert@Exemple.com", "Zoe.Lambert@Exemple.com", "jean@exemple.fr", "pas-un-email"],
        "kind": ["billing", "delivery", "billing", "billing"],
        "recipient": ["Zoé Lambert"] * 2 + ["", ""],
        "first_name": ["Zoé", "Zoé", "Jean", "Paul"],
        "last_name": ["Lambert", "Lambert", "Martin", "Durand"],
        "company": ["", "", "", ""],
        "address1": ["3 allée des Tilleuls", "8 quai X", "1 rue Y", "2 rue Z"],
        "address2": ["", "", "", ""],
        "postcode": ["35000", "33000", "69001", "75001"],
        "city": ["Rennes", "Bordeaux", "Lyon", "Paris"],
        "country": ["FR", "ZZ", "FR", "FR"],
        "phone": ["", "", "", ""],
        "vat_number": ["", "", "", ""],
        "customer_id": ["1", "1", "2", "3"],
        "batch_label": ["x"] * 4,
        "previous_label": [None, None, "jean@exemple.fr\tbilling", None],
        "batch_op": ["C", "C", "U", "C"],
    }
)


def _read(content: bytes, sep: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8")), delimiter=sep))


def test_emails_are_normalised_as_the_inbound_integration_reads_them():
    assert list(normalise_emails(pd.Series([" A@B.FR ", None]))) == ["a@b.fr", ""]


# -- PrestaShop --------------------------------------------------------------------------------------
def test_prestashop_creates_new_customers_through_its_import_and_documents_the_changes():
    d = dialect("prestashop", settings(prestashop={"customer_groups": {"PRO": 4}}))
    rejects = Rejects()
    files = _live_files(d, "customer", CUSTOMER, rejects)
    assert set(files) == {"customers", "customers_updates"}
    new = files["customers"]
    # A prefix of the Customers import's field list (matched by position), its labels as header.
    labels = [label for _, label in prestashop_fields("customers")]
    assert list(new.columns) == labels[: len(new.columns)]
    rows = {r["Email*"]: r for r in new.to_dict("records")}
    # Not an e-mail, or no first name (PrestaShop requires both names): refused with their reason;
    # the others normalised like the inbound integration.
    assert set(rows) == {"zoe.lambert@exemple.com"}
    refused = rejects.frame()
    assert sorted(refused[["key", "field", "value"]].itertuples(index=False, name=None)) == [
        ("CLI-3", "email", "pas-un-email"),
        ("CLI-4", "last_name", "SARL Bonnet"),
    ]
    assert "not an e-mail address" in refused.set_index("key").loc["CLI-3", "reason"]
    assert "first and a last name" in refused.set_index("key").loc["CLI-4", "reason"]
    # Every required field filled; the family as group (by name), no ID (the shop numbers it).
    (zoe,) = rows.values()
    assert all(zoe[label] for label in prestashop_required("customers")), zoe
    assert (zoe["Groups (x,y,z...)"], zoe["Default group ID"], zoe["ID"], zoe["Active  (0/1)"]) == (
        "Particuliers",
        "",
        "",
        "1",
    )
    # A fresh random password per customer (required; the customer picks their own later).
    assert len(zoe["Password*"]) >= 16
    again = _live_files(d, "customer", CUSTOMER, Rejects())["customers"]
    assert again["Password*"].iloc[0] != zoe["Password*"]
    # A customer the shop already has never goes through the import (no ID: a second customer;
    # with its ID: its password re-hashed): the documented updates file, found by the last e-mail.
    (upd,) = files["customers_updates"].to_dict("records")
    assert (upd["passerelle_key"], upd["email"], upd["previous_email"], upd["id_default_group"]) == (
        "CLI-2",
        "jean@exemple.fr",
        "jean.martin@old.fr",
        "4",
    )


def test_prestashop_addresses_find_their_customer_by_email_and_their_country_by_id():
    d = dialect("prestashop", settings())
    rejects = Rejects()
    files = _live_files(d, "customer_address", ADDRESS, rejects)
    new = files["addresses"]
    labels = [label for _, label in prestashop_fields("addresses")]
    assert list(new.columns) == labels[: len(new.columns)]
    (row,) = new.to_dict("records")
    assert all(row[label] for label in prestashop_required("addresses"))
    assert (row["Alias*"], row["Customer email*"], row["Country*"]) == ("Facturation", "zoe.lambert@exemple.com", "8")
    reasons = {(k, f): r for k, f, _v, r in rejects.frame().itertuples(index=False)}
    assert set(reasons) == {("CLI-1:delivery", "country"), ("CLI-3:billing", "customer_email")}
    assert "no PrestaShop country id" in reasons["CLI-1:delivery", "country"]
    (upd,) = files["addresses_updates"].to_dict("records")
    assert (upd["passerelle_key"], upd["previous_customer_email"], upd["alias"]) == (
        "CLI-2:billing",
        "jean@exemple.fr",
        "Facturation",
    )


def test_prestashop_removals_are_documented_files_by_email():
    d = dialect("prestashop", settings())
    stem, out = d.removed("customer", pd.DataFrame({"key": ["CLI-9"], "label": ["old@exemple.fr"]}))
    assert (stem, out.to_dict("records")) == (
        "customers_off",
        [{"passerelle_key": "CLI-9", "email": "old@exemple.fr", "active": "0"}],
    )
    stem, out = d.removed(
        "customer_address", pd.DataFrame({"key": ["CLI-9:delivery"], "label": ["old@exemple.fr\tdelivery"]})
    )
    assert (stem, out.to_dict("records")) == (
        "addresses_off",
        [{"passerelle_key": "CLI-9:delivery", "customer_email": "old@exemple.fr", "alias": "Livraison"}],
    )


# -- Shopify -----------------------------------------------------------------------------------------
def test_shopify_customer_csv_has_the_template_header_and_the_family_as_tag():
    d = ShopifyDialect(settings())
    rejects = Rejects()
    out = d.live("customer", CUSTOMER, rejects)
    assert tuple(out.columns) == shopify_customer_columns()
    rows = _read(d.to_bytes(out), ",")
    assert rows[0] == list(shopify_customer_columns())
    recs = {r["Email"]: r for r in out.to_dict("records")}
    assert set(recs) == {"zoe.lambert@exemple.com", "jean@exemple.fr", "sarl@exemple.fr"}
    zoe = recs["zoe.lambert@exemple.com"]
    assert (zoe["Tags"], zoe["Tax Exempt"], zoe["Phone"], zoe["Default Address Country Code"]) == (
        "PART, price-list-public",
        "no",
        "+33612345678",
        "FR",
    )
    assert (zoe["Default Address Address2"], zoe["Accepts Email Marketing"]) == ("Bât. B, appt 12", "")
    assert recs["jean@exemple.fr"]["Tax Exempt"] == "yes"
    assert recs["sarl@exemple.fr"]["Tags"] == "PRO"
    assert list(rejects.frame()["key"]) == ["CLI-3"]
    # Addresses travel in the customer's row; checked, but no file of their own.
    rejects = Rejects()
    assert d.live("customer_address", ADDRESS, rejects).empty
    assert list(rejects.frame()["key"]) == ["CLI-3:billing"]


# -- generic and WooCommerce ---------------------------------------------------------------------------
@pytest.mark.parametrize("shop", [GenericDialect, WooCommerceDialect])
def test_generic_files_for_shops_without_a_customer_import(shop):
    d = shop({})
    rejects = Rejects()
    out = d.live("customer", CUSTOMER.drop(columns=["batch_label", "previous_label", "batch_op"]), rejects)
    assert list(out.columns) == [
        "key",
        "active",
        "email",
        "first_name",
        "last_name",
        "company",
        "phone",
        "customer_family",
        "customer_family_name",
        "price_list",
        "vat_territory",
        "vat_number",
    ]
    assert list(out["email"]) == ["zoe.lambert@exemple.com", "jean@exemple.fr", "sarl@exemple.fr"]
    assert list(rejects.frame()["key"]) == ["CLI-3"]
    addr = d.live("customer_address", ADDRESS, Rejects())
    assert list(addr["key"]) == ["CLI-1:billing", "CLI-1:delivery", "CLI-2:billing"]
    stem, off = d.removed("customer", pd.DataFrame({"key": ["CLI-9"], "label": ["old@exemple.fr"]}))
    assert (stem, off.to_dict("records")) == (
        "customers_off",
        [{"key": "CLI-9", "active": "0", "email": "old@exemple.fr"}],
    )
