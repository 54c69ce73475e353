"""Small value parsers shared by operators and core: one reading of true/false for the whole project.

Run-form values reach operators either as Python values (``render_template_as_native_obj``) or
as text (a templated string, a CLI ``--conf``, an environment variable); every place that turns
such a value into a boolean goes through :func:`parse_bool`, so that ``"false"`` never counts
as true somewhere and a typo never counts as false silently.
"""

from __future__ import annotations

from typing import Any

#: Text accepted as true / false (compared case-insensitively, surrounding spaces ignored), in
#: English and French as shops, files and staff write them.
TRUE_WORDS = ("true", "1", "yes", "y", "on", "oui", "o", "vrai")
FALSE_WORDS = ("false", "0", "no", "n", "off", "non", "faux")


def parse_bool(value: Any, name: str = "value", *, default: bool | None = None) -> bool:
    """``value`` as a boolean: ``True``/``False``, ``1``/``0``, or one of :data:`TRUE_WORDS` /
    :data:`FALSE_WORDS` in any case. ``None`` (or an empty text) gives *default* when one is given.

    :param name: what the value is (an argument or key name), for the error message.
    :raises ValueError: naming *name* and the value, for anything else (``"ture"``, ``2``, ``[]``).
    """
    if isinstance(value, bool):
        return value
    if (value is None or (isinstance(value, str) and not value.strip())) and default is not None:
        return default
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


__all__ = ["FALSE_WORDS", "TRUE_WORDS", "parse_bool"]
