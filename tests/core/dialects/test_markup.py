"""Plain-text fields never carry markup to a shop (issue #12): a row whose plain-text cell holds a
tag, an event handler or a ``javascript:`` URL is refused, naming the field, in every dialect;
rich text is sanitised instead; values without markup go as written."""

from __future__ import annotations

import pandas as pd
import pytest

from passerelle.core.dialects import dialect, exchange_dialect
from passerelle.core.dialects.base import MARKUP_REASON, RICH_TEXT, Rejects, markup_in, plain_text_columns
from passerelle.core.differ import catalog_entities
from passerelle.core.export import build_catalog

MARKUP = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    "<svg onload=alert(1)>",
    '"><script src=//evil.example/x.js></script>',
    '<iframe src="javascript:1">',
    '<p onmouseover="alert(1)">survol</p>',
    'x" onerror="alert(1)',
    "</b>",
    "<!-- note -->",
    "javascript :alert(1)",
    "Taille <M>",
    "Lot<br/>de 2",
]
PLAIN = [
    "-20% Lot de 2 torchons",
    "Müller & Fils",
    "5 < 6",
    "x <= y",
    "<3",
    '=HYPERLINK("x")',
    "Rouge/Noir",
    "100% coton (bio)",
    "a > b",
    "Salon = séjour",
    "mon=1",
    "https://shop.example/p?a=1&b=2",
    "",
    None,
]
#: Shops' dialects: each one's rows pass Dialect.common_checks (export.write_files).
DIALECTS = ("generic", "prestashop", "woocommerce", "shopify")


@pytest.mark.parametrize("value", MARKUP)
def test_tags_handlers_and_script_urls_are_markup(value):
    assert markup_in(pd.Series([value], dtype=object)).tolist() == [True]


@pytest.mark.parametrize("value", PLAIN)
def test_text_without_a_real_tag_is_not_markup(value):
    assert markup_in(pd.Series([value], dtype=object)).tolist() == [False]


def test_rich_text_and_the_snapshots_own_columns_are_not_plain_text():
    df = pd.DataFrame(
        {
            "key": ["A"],
            "name": ["n"],
            "short_description": ["<p>x</p>"],
            "long_description": [""],
            "batch_label": ["<b>"],
            "previous_label": [""],
            "price_excl_vat": ["1.00"],
        }
    )
    assert plain_text_columns("article", df) == ["key", "name", "price_excl_vat"]
    assert plain_text_columns("brand", pd.DataFrame({"name": ["n"], "description": ["d"]})) == ["name"]
    assert RICH_TEXT["brand"] == ("description",)


@pytest.mark.parametrize("name", DIALECTS)
def test_every_dialect_refuses_a_row_with_markup_in_a_plain_text_cell(name):
    """Variants (size, colour), suppliers (city), brands (name; their description is rich text),
    order statuses (carrier): the row with markup is refused with the field named; the others pass,
    their values as written."""
    rejects = Rejects()
    variant = pd.DataFrame(
        {
            "key": ["V1", "V2", "V3"],
            "article_reference": ["A1", "A1", "A1"],
            "size": ["<svg onload=alert(1)>", "5 < 6", "M"],
            "colour": ["Rouge", "Müller & Fils", "-20% Lot"],
        }
    )
    bad = dialect(name).common_checks("variant", variant, rejects)
    assert bad.tolist() == [True, False, False]
    brand = pd.DataFrame(
        {
            "key": ["B1", "B2"],
            "name": ["Acme", "<img src=x onerror=alert(1)>"],
            "description": ["<p>ok<script>alert(1)</script></p>", "plain"],
        }
    )
    assert dialect(name).common_checks("brand", brand, rejects).tolist() == [False, True]
    supplier = pd.DataFrame({"key": ["S1"], "name": ["Fournil"], "city": ['<a href="javascript:alert(1)">Lyon</a>']})
    assert dialect(name).common_checks("supplier", supplier, rejects).tolist() == [True]
    status = pd.DataFrame(
        {
            "key": ["O1", "O2"],
            "carrier": ['"><script src=//evil.example/x.js></script>', "DPD"],
            "tracking_number": ["XY1", "XY2"],
        }
    )
    assert exchange_dialect(name).common_checks("order_status", status, rejects).tolist() == [True, False]
    refused = rejects.frame()
    assert refused[["key", "field"]].values.tolist() == [
        ["V1", "size"],
        ["B2", "name"],
        ["S1", "city"],
        ["O1", "carrier"],
    ]
    assert refused["value"].tolist() == [
        "<svg onload=alert(1)>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)">Lyon</a>',
        '"><script src=//evil.example/x.js></script>',
    ]
    assert (
        refused["reason"].iloc[0]
        == MARKUP_REASON.format(field="size")
        == ("markup in a plain-text field (size): the shop would show it or refuse the row; fix it in the back office")
    )


def test_values_without_markup_are_written_as_they_are():
    d = dialect("generic")
    df = pd.DataFrame(
        {"key": ["F1", "F2", "F3"], "name": ["-20% Lot", "Müller & Fils", "5 < 6"], "parent_key": ["", "", ""]}
    )
    rejects = Rejects()
    bad = d.common_checks("family", df, rejects)
    assert not bad.any() and rejects.frame().empty
    lines = d.to_bytes(d.live("family", df[~bad], rejects)).decode().splitlines()
    assert [line.split(",")[2] for line in lines[1:]] == ["-20% Lot", "Müller & Fils", "5 < 6"]


def test_a_refused_row_is_recorded_for_the_shop_and_sent_once_fixed(erp):
    """Through build_catalog: the article whose name holds a tag is in passerelle.outbound_reject
    with the field, value and reason, and in no file; fixed in the back office, it is sent."""
    erp.execute("UPDATE erp.article SET name = '<img src=x onerror=alert(1)> Casserole' WHERE reference = 'ART-000001'")
    erp.commit()
    rule = "a.price_excl_vat > 0 AND a.name <> ''"
    ents = catalog_entities(rule, ["article"])
    batch, files = build_catalog(erp, flow="catalog", run_key="m1", entities=ents, dialect=dialect("generic"))
    assert batch.counts["article"]["rejected"] == 1
    assert erp.execute("SELECT key, field, value, reason FROM passerelle.outbound_reject").fetchall() == [
        ("ART-000001", "name", "<img src=x onerror=alert(1)> Casserole", MARKUP_REASON.format(field="name"))
    ]
    content = b"".join(
        bytes(c)
        for (c,) in erp.execute(
            "SELECT content FROM passerelle.outbox_file WHERE batch_id = %s", (batch.id,)
        ).fetchall()
    )
    assert b"onerror" not in content and b"ART-000001," not in content
