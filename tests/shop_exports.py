"""Orders exports as each shop writes them, for the round trips (tests/flows/test_shops_end_to_end.py)
and the demo's samples (include/sample/inbound/<shop>/): the columns, their order and the value
formats of the shop's published list (include/reference/<shop>_orders_export.json), the amounts
worked out as the shop works them out.

An order is given as its lines: SKU (written or left empty, as for a product made in the shop),
the product's name and option values as Passerelle published them, quantity, unit price excl.
VAT and VAT rate. Each shop names a variant's line its own way (WooCommerce ``Name - M, BLEU``,
PrestaShop ``Name - Taille : M, Couleur : BLEU``, generic ``Name - M / BLEU``).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from passerelle import INCLUDE

CENT = Decimal("0.01")
WOOCOMMERCE = json.loads((INCLUDE / "reference" / "woocommerce_orders_export.json").read_text(encoding="utf-8"))
PRESTASHOP = json.loads((INCLUDE / "reference" / "prestashop8_orders_export.json").read_text(encoding="utf-8"))
#: PrestaShop's attribute groups of the options Passerelle publishes (docs/formats/prestashop.md).
PRESTASHOP_GROUPS = ("Taille", "Couleur")


def money(value: Decimal, places: str = "0.01") -> Decimal:
    return Decimal(value).quantize(Decimal(places), ROUND_HALF_UP)


@dataclass
class Line:
    sku: str
    name: str
    quantity: int
    price_excl: Decimal
    vat: Decimal
    options: tuple[str, ...] = ()
    sku_written: bool = True  # False: the shop's line has no SKU (matched by its title)

    @property
    def written_sku(self) -> str:
        return self.sku if self.sku_written else ""


@dataclass
class Order:
    number: str
    lines: list[Line]
    email: str = "client@exemple.fr"
    customer_id: str = ""
    first_name: str = "Camille"
    last_name: str = "Leroy"
    company: str = ""
    address1: str = "26 rue Pasteur"
    postcode: str = "44000"
    city: str = "Nantes"
    region: str = ""
    country: str = "FR"
    phone: str = "0612345678"
    shipping_excl: Decimal = Decimal("4.10")
    date: str = "2026-11-20 14:00:00"
    status: str = "paid"  # paid, validated, cancelled: each shop writes its own
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def rate(self) -> Decimal:
        return max(line.vat for line in self.lines)


def _csv(header: list[str], rows: list[dict[str, str]], delimiter: str = ",") -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


# -- WooCommerce: Advanced Order Export For WooCommerce, default fields, products as rows ---------
WOO_STATUS = {"paid": "Processing", "validated": "On hold", "cancelled": "Cancelled", "pending": "Pending payment"}


def woocommerce_export(orders: list[Order]) -> bytes:
    rows = []
    for order in orders:
        nets = [money(line.price_excl) * line.quantity for line in order.lines]
        taxes = [money(net * line.vat / 100) for net, line in zip(nets, order.lines, strict=True)]
        ship_tax = money(order.shipping_excl * order.rate / 100)
        subtotal = sum(nets, Decimal(0))
        tax = sum(taxes, Decimal(0)) + ship_tax
        total = subtotal + order.shipping_excl + tax
        for i, line in enumerate(order.lines, 1):
            label = line.name + (" - " + ", ".join(line.options) if line.options else "")
            row = {
                "Order Number": order.number,
                "Order Status": WOO_STATUS[order.status],
                "Order Date": order.date[:16],  # the plugin's default: Y-m-d H:i
                "Customer Note": "",
                **{
                    f"{c} ({kind})": v
                    for kind in ("Billing", "Shipping")
                    for c, v in (
                        ("First Name", order.first_name),
                        ("Last Name", order.last_name),
                        *((("Company", order.company),) if kind == "Billing" else ()),  # not by default
                        ("Address 1&2", order.address1),
                        ("City", order.city),
                        ("State Code", order.region),
                        ("Postcode", order.postcode),
                        ("Country Code", order.country),
                    )
                },
                "Email (Billing)": order.email,
                "Phone (Billing)": order.phone,
                "SKU": line.written_sku,
                "Item #": str(i),
                "Item Name": label,
                "Quantity (- Refund)": str(line.quantity),
                "Item Cost": f"{money(line.price_excl):.2f}",
                "Coupon Code": "",
                "Discount Amount": "",
                "Discount Amount Tax": "",
                "Payment Method Title": "Carte bancaire",
                "Cart Discount Amount": "0.00",
                "Order Subtotal Amount": f"{subtotal:.2f}",
                "Shipping Method Title": "Colissimo",
                "Order Shipping Amount": f"{order.shipping_excl:.2f}",
                "Order Refund Amount": "0.00",
                "Order Total Amount": f"{total:.2f}",
                "Order Total Tax Amount": f"{tax:.2f}",
                **order.extra,
            }
            rows.append(row)
    return _csv(WOOCOMMERCE["columns"], rows)


# -- PrestaShop: its SQL Manager's export of the documented query ------------------------------
PS_STATE = {"paid": ("2", "Paiement accepté"), "validated": ("10", "En attente de virement bancaire")}
PS_STATE |= {"cancelled": ("6", "Annulé"), "pending": ("8", "Erreur de paiement")}


def _six(value: Decimal) -> str:
    return f"{money(value, '0.000001'):.6f}"


def prestashop_export(orders: list[Order]) -> bytes:
    rows = []
    detail = 100
    for n, order in enumerate(orders, 1):
        incl = [money(line.price_excl, "0.000001") * (1 + line.vat / 100) for line in order.lines]
        products_excl = sum((money(line.price_excl, "0.000001") * line.quantity for line in order.lines), Decimal(0))
        products_incl = sum((p * line.quantity for p, line in zip(incl, order.lines, strict=True)), Decimal(0))
        ship_incl = order.shipping_excl * (1 + order.rate / 100)
        state, state_name = PS_STATE[order.status]
        address = {
            f"{prefix}_{c}": v
            for prefix in ("invoice", "delivery")
            for c, v in (
                ("firstname", order.first_name),
                ("lastname", order.last_name),
                ("company", order.company),
                ("address1", order.address1),
                ("address2", ""),
                ("postcode", order.postcode),
                ("city", order.city),
                ("state", order.region),
                ("country", order.country),
                ("phone", ""),
                ("phone_mobile", order.phone),
            )
        }
        for line, unit_incl in zip(order.lines, incl, strict=True):
            detail += 1
            attributes = ", ".join(f"{g} : {v}" for g, v in zip(PRESTASHOP_GROUPS, line.options, strict=False))
            rows.append(
                {
                    "id_order": str(n),
                    "reference": order.number,
                    "orders_in_cart": "1",
                    "date_add": order.date,
                    "current_state": state,
                    "valid": "1" if order.status in ("paid", "validated") else "0",
                    "order_state": state_name,
                    "id_customer": order.customer_id or str(1000 + n),
                    "email": order.email,
                    "currency": "EUR",
                    "payment": "Carte bancaire",
                    "carrier": "Colissimo",
                    "total_products": _six(products_excl),
                    "total_products_wt": _six(products_incl),
                    "total_shipping_tax_excl": _six(order.shipping_excl),
                    "total_shipping_tax_incl": _six(ship_incl),
                    "carrier_tax_rate": f"{order.rate:.3f}",
                    "total_discounts_tax_excl": _six(Decimal(0)),
                    "total_discounts_tax_incl": _six(Decimal(0)),
                    "total_paid_tax_excl": _six(money(products_excl + order.shipping_excl)),
                    "total_paid_tax_incl": _six(money(products_incl + ship_incl)),
                    **address,
                    "id_order_detail": str(detail),
                    "product_reference": line.written_sku,
                    "product_name": line.name + (" - " + attributes if attributes else ""),
                    "product_quantity": str(line.quantity),
                    "unit_price_tax_excl": _six(line.price_excl),
                    "unit_price_tax_incl": _six(unit_incl),
                    "total_price_tax_excl": _six(line.price_excl * line.quantity),
                    "total_price_tax_incl": _six(unit_incl * line.quantity),
                    "tax_rate": f"{line.vat:.3f}",
                    **order.extra,
                }
            )
    return _csv(PRESTASHOP["columns"], rows, delimiter=";")


# -- generic: Passerelle's own orders CSV (docs/formats/inbound.md) -----------------------------
def generic_export(orders: list[Order]) -> bytes:
    from passerelle.core.inbound import GENERIC_ORDER_COLUMNS

    rows = []
    for order in orders:
        total = sum(
            (money(line.price_excl) * line.quantity * (1 + line.vat / 100) for line in order.lines), Decimal(0)
        ) + order.shipping_excl * (1 + order.rate / 100)
        for i, line in enumerate(order.lines, 1):
            rows.append(
                {
                    "shop_order_id": order.number,
                    "order_date": order.date.replace(" ", "T") + "+01:00",
                    "status": order.status,
                    "shop_customer_id": order.customer_id,
                    "email": order.email,
                    "currency": "EUR",
                    "line_number": str(i),
                    "sku": line.sku,
                    "label": line.name + (" - " + " / ".join(line.options) if line.options else ""),
                    "quantity": str(line.quantity),
                    "unit_price_excl_vat": f"{money(line.price_excl):.2f}",
                    "vat_rate": f"{line.vat:g}",
                    "shipping_method": "Colissimo",
                    "shipping_excl_vat": f"{order.shipping_excl:.2f}",
                    "shipping_vat_rate": f"{order.rate:g}",
                    "payment_method": "Carte bancaire",
                    "payment_amount": f"{money(total):.2f}",
                    "payment_paid": "1" if order.status == "paid" else "0",
                    "billing_first_name": order.first_name,
                    "billing_last_name": order.last_name,
                    "billing_company": order.company,
                    "billing_address1": order.address1,
                    "billing_postcode": order.postcode,
                    "billing_city": order.city,
                    "billing_country": order.country,
                    "billing_phone": order.phone,
                }
            )
    return _csv(list(GENERIC_ORDER_COLUMNS), [{c: r.get(c, "") for c in GENERIC_ORDER_COLUMNS} for r in rows])


EXPORTS = {"woocommerce": woocommerce_export, "prestashop": prestashop_export, "generic": generic_export}
