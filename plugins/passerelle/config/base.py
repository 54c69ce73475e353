"""What every section of the configuration model shares: the error type, how a check says what is
wrong, the refusal of unknown keys with a "did you mean", and pydantic's errors turned into one
message naming the file, the dotted key, the bad value and a hint::

    passerelle.yaml: flows.prices_stock.every_minutes: expected a whole number of minutes from 1 to 1440, got 0

Plain Python and pydantic only (no Airflow, no pandas): the model is checked at every DAG parse.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

#: pydantic error type of the project's own checks (their text is kept as written).
ERROR_TYPE = "passerelle"


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the file, section and key."""


class FlowConfigError(ConfigError):
    """The ``flows:`` section (or ``shop.timezone``, the flows' clock) is wrong; the message names
    the file, the flow and the key."""


def fail(message: str, *, key: str | int | Sequence[str | int] | None = None) -> PydanticCustomError:
    """An error for pydantic to collect: *message* says what is wrong, with the value and a hint.

    :param key: the key under the validated object the message is about (a model validator
        checking several keys names the one at fault); its dotted path is put in front of the
        message, or where the message writes ``{key}``.
    """
    if key is None:
        keys: tuple = ()
    elif isinstance(key, (str, int)):
        keys = (key,)
    else:
        keys = tuple(key)
    return PydanticCustomError(ERROR_TYPE, "{message}", {"message": message, "keys": keys})


def did_you_mean(word: Any, choices: Sequence[str]) -> str:
    """`` (did you mean 'cron'?)`` when *word* is close to one of *choices*, else ``""``."""
    hint = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def unknown_key(word: Any, choices: Sequence[str], what: str = "key") -> PydanticCustomError:
    return fail(f"unknown {what}; expected one of {', '.join(choices)}{did_you_mean(word, choices)}", key=str(word))


class Section(BaseModel):
    """A mapping of the configuration file: unknown keys refused (with a hint), values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    #: Words used in the messages about this mapping.
    KEY_WORD: ClassVar[str] = "key"
    #: An example shown when the value is not a mapping at all.
    EXAMPLE: ClassVar[str] = ""

    @classmethod
    def allowed_keys(cls) -> tuple[str, ...]:
        return tuple(cls.model_fields)

    @classmethod
    def check_keys(cls, data: Any) -> Any:
        """*data* if it is a mapping of known keys (``None`` is an empty one); else an error with a hint.

        Subclasses' own "before" validators call it first, so a typo is reported as such.
        """
        if data is None:
            return {}
        if isinstance(data, BaseModel):
            return data
        if not isinstance(data, Mapping):
            example = f" such as {cls.EXAMPLE}" if cls.EXAMPLE else " of keys"
            raise fail(f"expected a mapping{example}, got {data!r}")
        allowed = cls.allowed_keys()
        for key in data:
            if key not in allowed:
                raise unknown_key(key, allowed, cls.KEY_WORD)
        return data

    @model_validator(mode="before")
    @classmethod
    def _known_keys_only(cls, data: Any) -> Any:
        return cls.check_keys(data)


def dotted(loc: Sequence[str | int]) -> str:
    """``("flows", "catalog", "times", 1)`` as ``flows.catalog.times[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _location(error: Mapping[str, Any]) -> tuple[str | int, ...]:
    # pydantic adds the validator kind ("function-before"...) or a union member to the location.
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and ("function-" in p or p.startswith("["))))
    if error["type"] == ERROR_TYPE:
        loc += tuple(error.get("ctx", {}).get("keys", ()))
    return loc


def _text(error: Mapping[str, Any]) -> str:
    if error["type"] == ERROR_TYPE:
        return str(error["ctx"]["message"])
    # pydantic's own wording ("Input should be a valid integer"), with the value given.
    return f"{error['msg'][0].lower()}{error['msg'][1:]}, got {error.get('input')!r}"


def config_error(exc: ValidationError, source: str | Any, prefix: Sequence[str | int] = ()) -> ConfigError:
    """One :class:`ConfigError` for every mistake pydantic found, one per line, each as
    ``<file>: <dotted.key>: <what is wrong, the value, a hint>``.

    A :class:`FlowConfigError` when the first one is in ``flows`` or is ``shop.timezone``.
    """
    lines = []
    first: tuple = ()
    for error in exc.errors(include_url=False):
        loc = (*prefix, *_location(error))
        first = first or loc or ("",)
        key = dotted(loc)
        text = _text(error)
        if "{key}" in text:
            lines.append(f"{source}: {text.replace('{key}', key)}")
        elif key:
            lines.append(f"{source}: {key}: {text}")
        else:
            lines.append(f"{source}: {text}")
    kind = FlowConfigError if first[:1] == ("flows",) or first[:2] == ("shop", "timezone") else ConfigError
    return kind("\n".join(lines))
