"""Small reusable checks for the configuration model, each raising :func:`~.base.fail` with the
value and what was expected (pydantic collects them and puts the file and key in front)."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator

from passerelle.config.base import fail

#: An Airflow pool name as the pools API accepts it (``shop.ftp_pool``, ``flows.<flow>.pool``).
POOL_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,256}$")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise fail(f"expected true or false, got {value!r}")
    return value


def whole(low: int, high: int | None = None, unit: str = "") -> Callable[[Any], int]:
    """A check of a whole number from *low* to *high* (no bool, no text, no float)."""
    noun = f"whole number of {unit}" if unit else "whole number"

    def check(value: Any) -> int:
        if not is_int(value) or value < low or (high is not None and value > high):
            expected = f"a {noun} from {low} to {high}" if high is not None else f"a {noun} >= {low}"
            raise fail(f"expected {expected}, got {value!r}")
        return value

    return check


def text(example: str) -> Callable[[Any], str]:
    """A check of a non-empty string (stripped)."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip() or "\x00" in value:
            raise fail(f"expected a non-empty text such as {example}, got {value!r}")
        return value.strip()

    return check


def one_of(choices: tuple[str, ...]) -> Callable[[Any], str]:
    from passerelle.config.base import did_you_mean

    def check(value: Any) -> str:
        if value not in choices:
            raise fail(f"{value!r} is not allowed; expected one of {', '.join(choices)}{did_you_mean(value, choices)}")
        return value

    return check


def check_pool(value: Any) -> str:
    if not isinstance(value, str) or not POOL_NAME.match(value):
        raise fail(f"expected an Airflow pool name (letters, digits, _ . -), got {value!r}")
    return value


def check_timezone_name(value: Any) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise fail(f'{value!r} is not a known timezone; expected an IANA name such as "Europe/Paris"') from None
    return value


def names_list(what: str, example: str) -> Callable[[Any], tuple[str, ...]]:
    """A check of a non-empty list of distinct names (a single name is accepted for one)."""

    def check(value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not value:
            raise fail(f"expected a non-empty list of {what} names such as {example}, got {value!r}")
        seen: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise fail(f"expected {'an' if what[0] in 'aeiou' else 'a'} {what} name, got {item!r}", key=i)
            if item in seen:
                raise fail(f"{item!r} is listed twice", key=i)
            seen.append(item)
        return tuple(seen)

    return check


Bool = Annotated[bool, BeforeValidator(check_bool)]
PoolName = Annotated[str, BeforeValidator(check_pool)]
