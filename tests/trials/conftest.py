"""The fault and abuse suite (issue #12): fuzzing, kill rounds, server faults, payloads.

The fast part runs in ``make test``; the tests marked ``trials`` (many rounds, a PostgreSQL
cluster of their own) are deselected unless ``-m trials`` is given or ``PASSERELLE_TRIALS`` is set,
as ``make trials`` does. Their sizes come from the environment (``make trials`` sets them):
``TRIALS_FILES`` fuzzed files, ``TRIALS_ROUNDS`` kills of each kind.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "trials: the heavy rounds of the fault and abuse suite (make trials)")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PASSERELLE_TRIALS") or "trials" in (config.option.markexpr or ""):
        return
    heavy = [i for i in items if i.get_closest_marker("trials")]
    if heavy:
        config.hook.pytest_deselected(items=heavy)
        items[:] = [i for i in items if not i.get_closest_marker("trials")]


def size(name: str, default: int) -> int:
    """A heavy trial's size: ``name`` from the environment, else ``default``."""
    return int(os.environ.get(name) or default)


@pytest.fixture(scope="session")
def zygote():
    """A process that imported the operators once and forks one child per job (see zygote.py)."""
    from tests.trials.zygote import Zygote

    z = Zygote()
    yield z
    z.close()
