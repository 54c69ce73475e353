"""What every inbound module shares: kinds, statuses, the output frames' columns, the error a
whole file raises and the parsed file itself."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

ORDERS = "orders"
CUSTOMERS = "customers"
SHOPIFY_ORDERS = "shopify_orders"
WOOCOMMERCE_ORDERS = "woocommerce_orders"
PRESTASHOP_ORDERS = "prestashop_orders"
KINDS = (ORDERS, CUSTOMERS, SHOPIFY_ORDERS, WOOCOMMERCE_ORDERS, PRESTASHOP_ORDERS)
#: Each orders kind's own names of its order id, SKU and customer columns, for rejects and reasons
#: (a reason names the column the shop's export has, never ours).
OWN_COLUMNS: dict[str, tuple[str, str, str]] = {
    ORDERS: ("shop_order_id", "sku", "email and shop_customer_id"),
    SHOPIFY_ORDERS: ("Name", "Lineitem sku", "Email"),
    WOOCOMMERCE_ORDERS: ("Order Number", "SKU", "Email (Billing)"),
    PRESTASHOP_ORDERS: ("reference", "product_reference", "email"),
}

#: Back-office numbers of web orders: the shop's id behind this prefix (unless it has it;
#: :func:`passerelle.core.integrate.rules.order_numbers`).
NUMBER_PREFIX = "WEB-"
#: Our order statuses (the generic format's ``status`` values, lower case).
STATUSES = ("pending", "authorized", "paid", "validated", "quote", "cancelled", "refunded")
_STATUS_ALIASES = {"canceled": "cancelled"}

ADDRESS_FIELDS = (
    "first_name",
    "last_name",
    "company",
    "address1",
    "address2",
    "postcode",
    "city",
    "region",
    "country",
    "phone",
)
ADDRESS_KINDS = ("billing", "delivery")

# Output frames: column order is the staging tables' (COPY needs it fixed).
ORDER_COLUMNS = [
    "line",
    "shop_order_id",
    "order_date",
    "status",
    "shop_status",
    "shop_customer_id",
    "email",
    "phone",
    "currency",
    "shipping_method",
    "shipping_excl_vat",
    "shipping_incl_vat",
    "shipping_vat_rate",
    "order_discount_excl_vat",
    "order_discount_incl_vat",
    "discount_code",
    "total_excl_vat",
    "total_incl_vat",
    "taxes_total",
    "refunded_amount",
    "note",
    "vat_rates",
]
LINE_COLUMNS = [
    "line",
    "shop_order_id",
    "line_number",
    "sku",
    "label",
    "quantity",
    "unit_price_excl_vat",
    "unit_price_incl_vat",
    "vat_rate",
    "discount_excl_vat",
    "discount_incl_vat",
]
PAYMENT_COLUMNS = ["line", "shop_order_id", "method", "amount", "transaction_id", "paid", "paid_at"]
CUSTOMER_COLUMNS = [
    "line",
    "shop_customer_id",
    "email",
    "first_name",
    "last_name",
    "company",
    "phone",
    "customer_family",
    "updated_at",
    "source",
]
ADDRESS_COLUMNS = ["line", "shop_order_id", "shop_customer_id", "email", "kind", *ADDRESS_FIELDS]
REJECT_COLUMNS = ["file", "line", "field", "value", "reason", "raw", "shop_order_id"]
IF_NEW_COLUMNS = ["line", "shop_order_id", "field", "value", "reason"]
ALIAS_COLUMNS = ["line", "shop_order_id", "alias", "reason"]
#: Columns of the rejects CSV for the shop's error folder.
REJECT_CSV_COLUMNS = ["file", "line", "field", "value", "reason", "raw"]

_ADDR_CANON = [f"{k}_{f}" for k in ADDRESS_KINDS for f in ADDRESS_FIELDS]

#: The "str" dtype of text columns (python or pyarrow storage, as pandas chooses).
_STR = pd.api.types.pandas_dtype("str")
#: Dates and times: in UTC, to the microsecond. (Dtypes named once: parsing their names costs.)
_UTC = pd.api.types.pandas_dtype("datetime64[us, UTC]")


class InboundError(ValueError):
    """The whole file cannot be read (no header, unknown kind, missing columns, bad declaration).

    The message names the file and says what was expected. Row-level problems never raise:
    they become rejects.
    """


@dataclass
class ParsedFile:
    """One inbound file, parsed and checked. Frames are empty (with their columns) when the kind
    has none (a customers file has no orders)."""

    name: str
    kind: str
    encoding: str
    delimiter: str
    decimal: str
    header: str
    rows_read: int
    orders: pd.DataFrame
    lines: pd.DataFrame
    payments: pd.DataFrame
    customers: pd.DataFrame
    addresses: pd.DataFrame
    rejects: pd.DataFrame
    #: Raw text of every data row of the file, indexed by its physical line (for quarantine).
    raw: pd.Series = field(repr=False)
    #: Problems that refuse an order only when the back office does not hold it yet (columns
    #: :data:`IF_NEW_COLUMNS`): the file cannot give the order as it was sold, but its news (a
    #: refund) still counts for an order already integrated
    #: (:func:`passerelle.core.integrate.rules.reject_new_orders`).
    if_new: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=IF_NEW_COLUMNS), repr=False)
    #: Another key each order may be held under in the back office, and the reason to refuse the
    #: order if it is (columns :data:`ALIAS_COLUMNS`): PrestaShop's packages of a split cart,
    #: keyed by the reference alone or with their id_order, depending on the query that exported
    #: them (:func:`passerelle.core.integrate.rules.reject_held_aliases`).
    aliases: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ALIAS_COLUMNS), repr=False)

    @property
    def counts(self) -> dict[str, int]:
        """Small numbers for the inbound ledger and XCom."""
        return {
            "rows_read": int(self.rows_read),
            "orders": len(self.orders),
            "lines": len(self.lines),
            "payments": len(self.payments),
            "customers": len(self.customers),
            "addresses": len(self.addresses),
            "rejected_rows": int(self.rejects["line"].nunique()),
            "rejected_orders": int(self.rejects["shop_order_id"].dropna().nunique()),
        }
