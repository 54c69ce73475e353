"""``accounting``: the sales journal for the accountant (docs/configuration.md, "accounting";
the files: docs/formats/accounting.md).

Which accounts the web sales and payments go to: a sales account and a VAT-collected account per
VAT rate, optionally a shipping account, the customers' account (411, with one auxiliary account
per customer or one collective account), an account per payment method; the two journals; the
SIREN that names the FEC file; the folder the files are written to.

Checked at every DAG parse like every section: account numbers (digits, class by role), the SIREN
(9 digits, Luhn key), rates (a number from 0 to 100, each once), method labels (each once,
whatever the case).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, model_validator

from passerelle.config.base import Section, fail
from passerelle.config.checks import Bool, one_of, text

#: ``accounting.separator``: the field separators the FEC's flat file allows (tab or ``|``).
SEPARATORS = {"tab": "\t", "pipe": "|"}
#: ``accounting.customers.auxiliary``: an auxiliary account per customer, or the collective account only.
AUXILIARY_MODES = ("per_customer", "collective")
_ACCOUNT = re.compile(r"^[0-9]{3}[0-9A-Za-z]{0,17}$")
_JOURNAL_CODE = re.compile(r"^[A-Za-z0-9]{1,8}$")


def siren_problem(value: Any) -> str | None:
    """What is wrong with *value* as a SIREN (9 digits, Luhn key), or ``None``."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{9}", value.replace(" ", "")):
        return f'expected the company\'s SIREN, 9 digits as a quoted text such as "123456782", got {value!r}'
    digits = [int(c) for c in value.replace(" ", "")]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(reversed(digits)))
    if total % 10:
        return f"{value!r} is not a valid SIREN (its Luhn check digit is wrong); copy it from the Kbis or INSEE"
    return None


def _siren(value: Any) -> str:
    if value is None or value == "":
        return ""
    problem = siren_problem(value)
    if problem:
        raise fail(problem)
    return value.replace(" ", "")


def account_number(first: str, role: str) -> Any:
    """A check of an account number: 3 leading digits then up to 17 digits or letters, starting
    with *first* (the class of accounts for *role*)."""

    def check(value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not _ACCOUNT.match(value.strip()):
            raise fail(f'expected an account number such as "{first}000" (digits, quoted), got {value!r}')
        value = value.strip()
        if not value.startswith(first):
            raise fail(f"{value!r} is not a {role} account; expected a number starting with {first}")
        return value

    return check


def _journal_code(value: Any) -> str:
    if not isinstance(value, str) or not _JOURNAL_CODE.match(value):
        raise fail(f'expected a journal code of 1 to 8 letters or digits such as "VE", got {value!r}')
    return value


Label = Annotated[str, BeforeValidator(text('"Ventes web"'))]


def rate_key(value: Any) -> Decimal:
    """A VAT rate as written in the file (``20``, ``5.5``, ``"2,1"``) as a Decimal, checked."""
    try:
        if isinstance(value, bool):
            raise InvalidOperation
        rate = Decimal(str(value).strip().replace(",", ".").rstrip("%").strip())
    except (InvalidOperation, ValueError):
        raise fail(f"{value!r} is not a VAT rate; expected a percentage such as 20 or 5.5") from None
    if not rate.is_finite() or rate < 0 or rate > 100:
        raise fail(f"{value!r} is not a VAT rate; expected a percentage from 0 to 100")
    return rate.normalize() if rate != rate.to_integral() else rate.quantize(Decimal(1))


class JournalSettings(Section):
    """``accounting.sales_journal`` / ``accounting.payments_journal``: the journal's code and label."""

    EXAMPLE: ClassVar[str] = '{code: VE, label: "Ventes web"}'

    code: Annotated[str, BeforeValidator(_journal_code)]
    label: Label


class CustomerAccounts(Section):
    """``accounting.customers``: the customers' (collective) account, and whether each customer
    has an auxiliary account (``<auxiliary_prefix><customer code>``)."""

    EXAMPLE: ClassVar[str] = '{account: "411000", auxiliary: per_customer}'

    account: Annotated[str, BeforeValidator(account_number("411", "customer"))] = "411000"
    label: Label = "Clients"
    auxiliary: Annotated[str, BeforeValidator(one_of(AUXILIARY_MODES))] = "per_customer"
    auxiliary_prefix: Annotated[str, BeforeValidator(lambda v: "" if v is None else _prefix(v))] = "C"


def _prefix(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9]{0,8}", value):
        raise fail(f'expected up to 8 letters or digits such as "C", got {value!r}')
    return value


class RateAccounts(Section):
    """``accounting.vat_rates.<rate>``: where a VAT rate's sales (excl. VAT) and VAT go (the rate
    written ``20``, ``5.5`` or ``"5,5"``; kept as its shortest text, ``"5.5"``)."""

    EXAMPLE: ClassVar[str] = '{sales_account: "707020", vat_account: "445720"}'

    sales_account: Annotated[str, BeforeValidator(account_number("7", "sales"))]
    sales_label: Label = "Ventes de marchandises"
    vat_account: Annotated[str, BeforeValidator(account_number("4457", "VAT collected"))]
    vat_label: Label = "TVA collectée"


class MethodAccount(Section):
    """``accounting.payment_methods.<method>``: the account a payment method's money is on
    (a bank, PayPal, the card acquirer's clearing account)."""

    EXAMPLE: ClassVar[str] = '{account: "512000", label: "Banque"}'

    account: Annotated[str, BeforeValidator(account_number("", "payment"))]
    label: Label = "Banque"

    @model_validator(mode="after")
    def _class(self) -> MethodAccount:
        if self.account[0] not in "45":
            raise fail(
                f"{self.account!r} is not an account money is paid into; expected a class 5 account (512..., 511...) "
                f"or a class 4 clearing account (467...)",
                key="account",
            )
        return self


class ShippingAccount(Section):
    """``accounting.shipping``: a separate sales account for shipping charged to the customer."""

    EXAMPLE: ClassVar[str] = '{account: "708500", label: "Ports facturés"}'

    account: Annotated[str, BeforeValidator(account_number("7", "sales"))]
    label: Label = "Ports et frais accessoires facturés"


#: Mainland France's rates, with example accounts (a chart of accounts is the accountant's choice).
DEFAULT_VAT_RATES = {
    Decimal("20"): {"sales_account": "707020", "sales_label": "Ventes 20 %", "vat_account": "445720",
                    "vat_label": "TVA collectée 20 %"},
    Decimal("10"): {"sales_account": "707010", "sales_label": "Ventes 10 %", "vat_account": "445710",
                    "vat_label": "TVA collectée 10 %"},
    Decimal("5.5"): {"sales_account": "707055", "sales_label": "Ventes 5,5 %", "vat_account": "445755",
                     "vat_label": "TVA collectée 5,5 %"},
    Decimal("2.1"): {"sales_account": "707021", "sales_label": "Ventes 2,1 %", "vat_account": "445721",
                     "vat_label": "TVA collectée 2,1 %"},
}  # fmt: skip


def _vat_rates(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not value:
        raise fail(f"expected a mapping of rates to accounts such as {{20: {RateAccounts.EXAMPLE}}}, got {value!r}")
    out: dict[str, Any] = {}
    for key, accounts in value.items():
        rate = str(rate_key(key))
        if rate in out:
            raise fail(f"the rate {rate} is listed twice", key=str(key))
        out[rate] = accounts
    return out


def method_key(label: Any) -> str:
    """How a payment method is matched: trimmed, case and inner spaces ignored."""
    return " ".join(str(label).split()).casefold()


def _methods(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(f'expected a mapping of payment methods to accounts such as {{card: {MethodAccount.EXAMPLE}}}, '
                   f"got {value!r}")  # fmt: skip
    seen: dict[str, str] = {}
    for key in value:
        if not isinstance(key, str) or not key.strip():
            raise fail(f"expected a payment method as written in the back office (erp.payment.method), got {key!r}")
        if method_key(key) in seen:
            raise fail(f"{key!r} and {seen[method_key(key)]!r} are the same method (case and spaces are ignored)",
                       key=key)  # fmt: skip
        seen[method_key(key)] = key
    return dict(value)


class AccountingSection(Section):
    """``accounting``: the daily sales journal (FEC and CSV) written by the ``report`` flow's
    ``export_journal`` task; off until ``enabled: true``."""

    enabled: Bool = False
    #: The company's SIREN: the FEC file is named ``<siren>FEC<YYYYMMDD>.txt``.
    siren: Annotated[str, BeforeValidator(_siren)] = ""
    #: Where the files are written; a relative path is read from the project's root.
    folder: Annotated[str, BeforeValidator(text('"var/accounting"'))] = "var/accounting"
    separator: Annotated[str, BeforeValidator(one_of(tuple(SEPARATORS)))] = "tab"
    #: Also write the plain CSV journal (``journal-YYYY-MM-DD.csv``).
    csv: Bool = True
    #: The accounts' currency: an invoice or a payment in another currency is refused.
    currency: Annotated[str, BeforeValidator(lambda v: _currency(v))] = "EUR"
    sales_journal: JournalSettings = Field(default_factory=lambda: JournalSettings(code="VE", label="Ventes web"))
    payments_journal: JournalSettings = Field(
        default_factory=lambda: JournalSettings(code="BQ", label="Encaissements web")
    )
    customers: CustomerAccounts = Field(default_factory=CustomerAccounts)
    vat_rates: Annotated[dict[str, RateAccounts], BeforeValidator(_vat_rates)] = Field(
        default_factory=lambda: {str(rate): RateAccounts(**accounts) for rate, accounts in DEFAULT_VAT_RATES.items()}
    )
    shipping: ShippingAccount | None = None
    payment_methods: Annotated[dict[str, MethodAccount], BeforeValidator(_methods)] = {}  # noqa: RUF012

    @model_validator(mode="after")
    def _enabled_needs(self) -> AccountingSection:
        if self.enabled and not self.siren:
            raise fail('enabled without a siren; set accounting.siren (9 digits, e.g. "123456782")', key="siren")
        if self.enabled and not self.vat_rates:
            raise fail("enabled without VAT rates; list each rate's accounts", key="vat_rates")
        return self

    @property
    def separator_char(self) -> str:
        return SEPARATORS[self.separator]

    def rate_accounts(self, rate: Decimal | str | float) -> RateAccounts | None:
        """The accounts of VAT *rate* (``20``, ``"20.00"``, ``5.5``), or ``None`` when not configured."""
        try:
            return self.vat_rates.get(str(rate_key(rate)))
        except Exception:
            return None

    def method_account(self, method: str | None) -> MethodAccount | None:
        """The account of payment *method* (matched ignoring case and spaces), or ``None``."""
        if method is None:
            return None
        wanted = method_key(method)
        for key, found in self.payment_methods.items():
            if method_key(key) == wanted:
                return found
        return None


def _currency(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Z]{3}", value):
        raise fail(f'expected an ISO 4217 currency code such as "EUR", got {value!r}')
    return value


__all__ = [
    "AUXILIARY_MODES",
    "SEPARATORS",
    "AccountingSection",
    "CustomerAccounts",
    "JournalSettings",
    "MethodAccount",
    "RateAccounts",
    "ShippingAccount",
    "method_key",
    "rate_key",
    "siren_problem",
]
