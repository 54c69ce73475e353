"""What every shop's customer files share: e-mails normalised and checked, names, VAT territory.

E-mails are normalised exactly as the inbound integration reads them
(:mod:`passerelle.core.inbound`: the cell trimmed, lower case, checked against the same pattern),
so that a customer sent to the shop and the same customer coming back with an order meet on
one e-mail. A row whose e-mail is not one is refused with its reason
(``passerelle.outbound_reject``): the snapshot does not advance for it, and it is tried again
once fixed in the back office. An address follows its customer's e-mail: an address of a
customer refused for it is refused too (the shop finds the customer by e-mail).
"""

from __future__ import annotations

import re

import pandas as pd

from passerelle.core.dialects.base import Rejects
from passerelle.core.inbound.fields import _EMAIL

#: The inbound integration's e-mail pattern (passerelle.core.inbound.fields), one rule both ways.
EMAIL_PATTERN = re.compile(_EMAIL)

#: The e-mail column of each customers entity.
EMAIL_COLUMN: dict[str, str] = {"customer": "email", "customer_address": "customer_email"}

#: Back-office VAT territories (erp.customer.vat_territory) a shop treats as tax exempt: sales
#: outside France are invoiced without French VAT (export; EU business customers, reverse charge).
TAX_EXEMPT_TERRITORIES = frozenset({"EU", "EXPORT"})


def normalise_emails(values: pd.Series) -> pd.Series:
    """E-mails as the inbound integration stores them: trimmed, lower case; missing is empty."""
    return values.fillna("").astype(str).str.strip().str.lower()


def check_customers(entity: str, df: pd.DataFrame, rejects: Rejects) -> tuple[pd.DataFrame, pd.Series]:
    """(rows with their e-mail normalised, mask of rows refused). Refused: an e-mail that is not one."""
    column = EMAIL_COLUMN[entity]
    df = df.assign(**{column: normalise_emails(df[column])})
    bad = ~df[column].map(lambda v: EMAIL_PATTERN.match(v) is not None).astype(bool)
    what = "the customer's e-mail" if entity == "customer_address" else "e-mail"
    rejects.add(
        df,
        bad,
        column,
        f"{what} is not an e-mail address (expected name@domain.tld, no space, "
        f"comma or semicolon): fix it in the back office",
    )
    return df, bad


def names(df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(first name, last name); a customer known by a company only gets it as the last name
    (shops require a last name)."""
    first = df["first_name"].fillna("").astype(str).str.strip()
    last = df["last_name"].fillna("").astype(str).str.strip()
    company = df["company"].fillna("").astype(str).str.strip()
    return first, last.where(last != "", company)


def tax_exempt(territories: pd.Series) -> pd.Series:
    """True where the customer's VAT territory is invoiced without French VAT."""
    return territories.fillna("FR").isin(TAX_EXEMPT_TERRITORIES)


__all__ = [
    "EMAIL_COLUMN",
    "EMAIL_PATTERN",
    "TAX_EXEMPT_TERRITORIES",
    "check_customers",
    "names",
    "normalise_emails",
    "tax_exempt",
]
