"""The integration's business rules on a parsed file (pure, no database): unknown SKUs reject
their whole order, orders split by shop status."""

from __future__ import annotations

import pytest

from passerelle import INCLUDE
from passerelle.core.inbound import read_inbound
from passerelle.core.integrate.rules import filter_orders, reject_unknown_skus

SAMPLES = INCLUDE / "sample" / "inbound"


def sample(name: str):
    return read_inbound(name, (SAMPLES / name).read_bytes())


def test_sample_skus_are_the_demo_back_office_references():
    """The samples name SKUs that `passerelle_demo.seed` generates for seed 42; the one exception
    (ART-999999) is there to show the quarantine."""
    from passerelle_demo.seed import generate

    demo = generate(1000, 42)
    known = set(demo["article"].reference) | set(demo["variant"].reference)
    skus = set()
    for name in ("orders_20261120_0900.csv", "orders_20261120_1000.csv", "shopify_orders_export.csv"):
        skus |= set(sample(name).lines.sku)
    assert skus - known == {"ART-999999"}
    # The real Shopify export: every SKU written is the demo's (the others are lines without SKU).
    assert set(sample("shopify_orders_export_real.csv").lines.sku) - known == {""}

    p = reject_unknown_skus(sample("orders_20261120_1000.csv"), known)
    assert set(p.orders.shop_order_id) == {"WEB-100235", "WEB-100236"}
    assert "WEB-100237" not in set(p.lines.shop_order_id) | set(p.payments.shop_order_id)
    assert "WEB-100237" not in set(p.addresses.shop_order_id) and len(p.customers) == 2
    r = p.rejects
    assert r[["line", "field", "value"]].values.tolist() == [
        [6, "shop_order_id", "WEB-100237"],
        [7, "sku", "ART-999999"],
    ]
    assert r.reason.tolist() == [
        "order WEB-100237 has a rejected line 7",
        "unknown SKU: no article or variant with this reference in the back office",
    ]
    assert r.raw.iloc[1].startswith("WEB-100237;20/11/2026 09:47;paid;")
    assert p.counts["rejected_orders"] == 1 and p.counts["rejected_rows"] == 2


def test_filter_orders_by_status():
    p = sample("orders_20261120_0900.csv")
    sel = filter_orders(p)
    assert sel.create.shop_order_id.tolist() == ["WEB-100231", "WEB-100232"]
    assert sel.quotes.shop_order_id.tolist() == ["WEB-100233"]
    assert sel.cancels.shop_order_id.tolist() == ["WEB-100180"]
    assert sel.ignored.shop_order_id.tolist() == ["WEB-100234"]
    assert sel.counts == {"create": 2, "quotes": 1, "cancels": 1, "ignored": 1, "awaiting_payment": 0}
    waiting = filter_orders(p, awaiting_payment=("pending",))
    assert waiting.awaiting.shop_order_id.tolist() == ["WEB-100234"] and waiting.ignored.empty
    assert filter_orders(p, integrate=("paid",)).counts["ignored"] == 2
    with pytest.raises(ValueError, match="unknown statuses \\['payed'\\]"):
        filter_orders(p, integrate=("payed",))
    with pytest.raises(ValueError, match="more than one group"):
        filter_orders(p, integrate=("paid", "quote"))
