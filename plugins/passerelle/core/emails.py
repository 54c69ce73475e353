"""The one way e-mail addresses are compared, in Python and in PostgreSQL alike.

Customers are matched by e-mail: the shop's (normalised in Python by the parser) against the back
office's (normalised in SQL, ``lower()``). Python's and PostgreSQL's lower case differ on a few
letters: Python writes a final capital sigma ``Σ`` as ``ς`` (PostgreSQL: ``σ``) and a dotted
capital ``İ`` as ``i`` + combining dot (PostgreSQL: ``i``). Left as they are, the same address
becomes two customers. :func:`email_key` and :func:`email_key_sql` give the same text for the same
address: lower case, then ``ς`` -> ``σ`` and ``i`` + combining dot -> ``i``; a test checks them
against each other on a real server.
"""

from __future__ import annotations

#: Replacements applied after lower case, in this order, on both sides.
_FOLDS = (("\u03c2", "\u03c3"), ("i\u0307", "i"))


def email_key(value: str) -> str:
    """The comparable form of an e-mail address (see the module docstring)."""
    out = value.strip(" ").lower()
    for old, new in _FOLDS:
        out = out.replace(old, new)
    return out


def email_key_sql(column: str) -> str:
    """The SQL expression of :func:`email_key` over ``column`` (a trusted column name, not a value)."""
    out = f"lower(btrim({column}))"
    for old, new in _FOLDS:
        out = f"replace({out}, {_literal(old)}, {_literal(new)})"
    return out


def _literal(text: str) -> str:
    return "U&'" + "".join(f"\\{ord(c):04x}" for c in text) + "'"


__all__ = ["email_key", "email_key_sql"]
