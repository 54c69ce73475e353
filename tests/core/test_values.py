"""The project's one reading of true/false (passerelle.core.values.parse_bool)."""

from __future__ import annotations

import pytest

from passerelle.core.values import parse_bool


@pytest.mark.parametrize("value", [True, 1, "true", "True", "TRUE", " yes ", "1", "on"])
def test_true_values(value):
    assert parse_bool(value, "dry_run") is True


@pytest.mark.parametrize("value", [False, 0, "false", "False", "no", "0", "off", " OFF "])
def test_false_values(value):
    assert parse_bool(value, "dry_run") is False


def test_none_and_empty_text_take_the_default_when_there_is_one():
    assert parse_bool(None, "dry_run", default=False) is False
    assert parse_bool("", "dry_run", default=True) is True
    with pytest.raises(ValueError, match=r"dry_run must be true or false, got None"):
        parse_bool(None, "dry_run")


@pytest.mark.parametrize("value", ["ture", "maybe", 2, -1, 0.5, [], {}, "{{ params.dry_run }}"])
def test_anything_else_is_refused_naming_the_argument_and_the_value(value):
    with pytest.raises(ValueError) as info:
        parse_bool(value, "replay_quarantine", default=False)
    assert str(info.value) == f"replay_quarantine must be true or false, got {value!r}"
