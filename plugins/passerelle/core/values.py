"""Small value parsers shared by the whole project (plain Python, no pandas, no Airflow).

One reading of yes/no for every place that takes one from a person or a file: inbound columns
(``payment_paid``), the ``#passerelle`` line's ``taxes_included``, run options, configuration.
"""

from __future__ import annotations

from typing import Any

#: Words read as true or false, in lower case (English and French, as shops and staff write them).
TRUE_WORDS = ("1", "true", "yes", "y", "oui", "o", "vrai")
FALSE_WORDS = ("0", "false", "no", "n", "non", "faux")


def parse_bool(value: Any) -> bool | None:
    """``value`` as a boolean: True/False as such, 1/0, or one of :data:`TRUE_WORDS` /
    :data:`FALSE_WORDS` (any case, surrounding spaces ignored); None for None or empty text.

    :raises ValueError: anything else, naming the value and the words expected.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text == "":
        return None
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError(f"{value!r} is not a yes/no value; expected one of {', '.join(TRUE_WORDS)} "
                     f"or {', '.join(FALSE_WORDS)}")
