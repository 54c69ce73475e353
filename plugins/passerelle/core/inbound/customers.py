"""Generic customers file: one row per customer, keyed by shop customer id or e-mail."""

from __future__ import annotations

import numpy as np
import pandas as pd

from passerelle.core.inbound.fields import _DATE_HELP, _emails, _parse_datetime, _too_long
from passerelle.core.inbound.frames import _addresses, _customer_frame, _empty_order_frames
from passerelle.core.inbound.model import _ADDR_CANON, CUSTOMER_COLUMNS, InboundError
from passerelle.core.inbound.problems import _check_shape, _Problems, _rejects_frame
from passerelle.core.inbound.reading import _Context, _text

GENERIC_CUSTOMER_COLUMNS = [
    "shop_customer_id",
    "email",
    "first_name",
    "last_name",
    "company",
    "phone",
    "customer_family",
    "updated_at",
    *_ADDR_CANON,
]


def _parse_customers(ctx: _Context) -> dict[str, pd.DataFrame]:
    if "email" not in ctx.table.lookup and "shop_customer_id" not in ctx.table.lookup:
        raise InboundError(
            f"{ctx.name}: customers file needs a shop_customer_id or an email column; its header is {ctx.table.header}"
        )
    rows = {c: _text(ctx, c) for c in GENERIC_CUSTOMER_COLUMNS}
    email, customer_id = rows["email"], rows["shop_customer_id"]
    problems = _Problems()
    _check_shape(ctx, problems)
    problems.add(
        (email == "") & (customer_id == ""), "email", "", "no customer key: email and shop_customer_id are both empty"
    )
    for col in ("shop_customer_id", "email"):
        too_long, why = _too_long(rows[col])
        problems.add(too_long, col, rows[col], why)
    lower, valid = _emails(email)
    problems.add((email != "") & ~valid, "email", email, "not an email address")
    updated, bad = _parse_datetime(rows["updated_at"], ctx.timezone)
    problems.add(bad, "updated_at", rows["updated_at"], "not a date: " + _DATE_HELP)
    keep = np.ones(len(email), dtype=bool)
    keep[problems.rows()] = False
    rejects = _rejects_frame(ctx, problems, None)

    # One customer per key (shop customer id, else email): the latest updated, then the last in
    # the file; kept in file order.
    rows["email"] = lower
    key = np.where(customer_id != "", "id:" + customer_id, "email:" + rows["email"])
    latest = pd.DataFrame({"updated_at": updated, "line": ctx.table.line, "key": key})[keep]
    latest = latest.sort_values(["updated_at", "line"], kind="stable", na_position="first")
    chosen = np.sort(latest.drop_duplicates("key", keep="last").index.to_numpy())
    line = ctx.table.line[chosen]
    customers = _customer_frame(
        {
            "line": line,
            **{c: rows[c][chosen] for c in CUSTOMER_COLUMNS if c in rows and c != "updated_at"},
            "updated_at": updated.array[chosen],
            "source": np.full(len(chosen), "customers", dtype=object),
        }
    )
    addresses = _addresses(
        line, {c: rows[c][chosen] for c in ("shop_customer_id", "email")}, {c: rows[c][chosen] for c in _ADDR_CANON}
    )
    empty = _empty_order_frames()
    return {**empty, "customers": customers, "addresses": addresses, "rejects": rejects}
