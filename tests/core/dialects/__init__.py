"""Helpers of the dialect tests."""

from __future__ import annotations

from typing import Any

from passerelle.config import Settings, parse_settings


def settings(**sections: Any) -> Settings:
    """Typed settings from raw sections, as a dialect is given them (checked like the file)."""
    return parse_settings(sections, "passerelle.yaml")
