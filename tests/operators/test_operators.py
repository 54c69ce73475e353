"""Every operator has the providers' shape: keyword-only arguments, one ``:param:`` line each
(``(templated)`` for the template fields), nothing read or connected in ``__init__``, arguments
checked at the top of ``execute`` with the bad value named, and no SQL of its own.

The operators' work itself is tested end to end by tests/flows (dag.test() against a real
PostgreSQL and a real FTP server) and their core by tests/core.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from pathlib import Path

import pytest

from passerelle.operators.batch import BuildBatchOperator, ConfirmBatchOperator, PublishBatchOperator
from passerelle.operators.catalog import BuildCatalogOperator
from passerelle.operators.exchange import BuildExchangeOperator
from passerelle.operators.images import FinishImagesOperator, PlanImagesOperator, RenderImagesOperator
from passerelle.operators.inbound import ImportOrdersOperator, ProposeReordersOperator, inbound_names
from passerelle.operators.report import PublishReportOperator

OPERATORS_DIR = Path(importlib.import_module("passerelle.operators").__file__).parent
OPERATORS = [
    BuildBatchOperator,
    BuildCatalogOperator,
    BuildExchangeOperator,
    PublishBatchOperator,
    ConfirmBatchOperator,
    PlanImagesOperator,
    RenderImagesOperator,
    FinishImagesOperator,
    ImportOrdersOperator,
    ProposeReordersOperator,
    PublishReportOperator,
]
#: Where no configuration file is: an operator that read it in __init__ would fail.
NOWHERE = "/nonexistent/passerelle.yaml"


def _own_parameters(cls) -> dict[str, inspect.Parameter]:
    """Keyword parameters of the class's __init__ and its Passerelle bases' (not BaseOperator's)."""
    out = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith("passerelle.") and "__init__" in vars(klass):
            for name, p in inspect.signature(klass.__init__).parameters.items():
                if name not in ("self", "kwargs"):
                    out[name] = p
    return out


@pytest.mark.parametrize("cls", OPERATORS, ids=lambda c: c.__name__)
def test_arguments_are_keyword_only_and_documented(cls):
    params = _own_parameters(cls)
    assert params, cls
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values()), cls
    doc = inspect.getdoc(cls) or ""
    for name in params:
        lines = [line for line in doc.splitlines() if line.startswith(f":param {name}:")]
        assert len(lines) == 1, f"{cls.__name__}: one ':param {name}:' line expected"
    for field in cls.template_fields:
        assert field in params, (cls.__name__, field)
        line = doc[doc.index(f":param {field}:") :].split("\n:param")[0]
        assert "(templated" in line, f"{cls.__name__}: {field} is a template field, its :param: must say so"


def _build(cls, **kwargs):
    required = {"flow": "catalog"} if cls is BuildBatchOperator else {}
    for name, p in _own_parameters(cls).items():
        if p.default is inspect.Parameter.empty and name not in required:
            required[name] = {}
    return cls(task_id="t", config_path=NOWHERE, **{**required, **kwargs})


@pytest.mark.parametrize("cls", OPERATORS, ids=lambda c: c.__name__)
def test_nothing_is_read_or_connected_in_init(cls):
    op = _build(cls)
    assert op.config_path == NOWHERE
    assert not {"settings", "erp", "shop"} & set(vars(op)), "made in __init__ instead of on first use"
    # The connection ids stay as given (None: the configuration's, read when the task runs).
    assert getattr(op, "erp_conn_id", None) is None and getattr(op, "shop_conn_id", None) is None


CONTEXT = {"run_id": "manual__2026-11-20T10:00:00+00:00", "logical_date": None}

BAD_ARGUMENTS = [
    (BuildCatalogOperator, {"mode": "weekly"}, "mode must be one of 'delta', 'new', 'full', got 'weekly'"),
    (BuildCatalogOperator, {"dry_run": "ture"}, "dry_run must be true or false, got 'ture'"),
    (BuildCatalogOperator, {"entities": 3}, "entities must be a list of names or a comma-separated text, got 3"),
    (BuildExchangeOperator, {"flow": "prices"}, "flow must be one of ('prices_stock', 'order_status'), got 'prices'"),
    (
        BuildExchangeOperator,
        {"flow": "prices_stock", "mode": "all"},
        "mode must be one of 'delta', 'new', 'full', got 'all'",
    ),
    (PublishBatchOperator, {"batch": "b"}, "batch must be the build task's result (a dict with batch_id), got 'b'"),
    (
        PublishBatchOperator,
        {"batch": {"batch_id": 1, "status": "built"}, "extra": ["images"]},
        "extra must be a mapping of manifest entries, got ['images']",
    ),
    (ConfirmBatchOperator, {"batch": None, "published": {}}, "batch must be the build task's result"),
    (
        ConfirmBatchOperator,
        {"batch": {"batch_id": 1}, "published": "x"},
        "published must be the publish task's result (a dict), got 'x'",
    ),
    (PlanImagesOperator, {"mode": "Full"}, "mode must be one of 'delta', 'new', 'full', got 'Full'"),
    (PlanImagesOperator, {"dry_run": "perhaps"}, "dry_run must be true or false, got 'perhaps'"),
    (RenderImagesOperator, {"chunk": [{"key": 1}]}, "chunk must be a list of the plan's items"),
    (FinishImagesOperator, {"plan": []}, "plan must be the plan task's XCom 'plan' (a dict with counts), got []"),
    (ImportOrdersOperator, {"dry_run": "no way"}, "dry_run must be true or false, got 'no way'"),
    (ImportOrdersOperator, {"replay_quarantine": 2}, "replay_quarantine must be true or false, got 2"),
    (ProposeReordersOperator, {"imported": [1]}, "imported must be the import task's result (a dict), got list"),
    (PublishReportOperator, {"dry_run": "yes please"}, "dry_run must be true or false, got 'yes please'"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"), BAD_ARGUMENTS, ids=[f"{c.__name__}-{'-'.join(k)}" for c, k, _ in BAD_ARGUMENTS]
)
def test_a_bad_argument_is_refused_before_anything_is_read_or_connected(cls, kwargs, message):
    op = _build(cls, **kwargs)
    with pytest.raises(ValueError) as info:
        op.execute(dict(CONTEXT))
    assert message in str(info.value)
    assert not {"settings", "erp", "shop"} & set(vars(op))  # nothing made before the check


SQL = re.compile(r"\b(SELECT|INSERT\s+INTO|UPDATE\s+\w|DELETE\s+FROM|CREATE\s+TABLE|COPY)\b")


def test_operators_hold_no_sql():
    found = {path.name: SQL.findall(path.read_text(encoding="utf-8")) for path in OPERATORS_DIR.glob("*.py")}
    assert len(found) >= 7 and {name: hits for name, hits in found.items() if hits} == {}


def test_flows_hold_no_operator_class():
    flows = Path(importlib.import_module("passerelle.flows").__file__).parent
    for path in flows.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^class \w+", text, re.M), f"{path.name} defines a class: operators live in operators/"


def test_inbound_names_keeps_csv_and_txt_files_safe_to_read_sorted(caplog):
    names = ["orders_2.csv", "orders_1.CSV", "notes.txt", "orders_3.csv.part", ".hidden.csv", "a/b.csv", "x.pdf"]
    with caplog.at_level(logging.WARNING, logger="passerelle.operators.inbound"):
        assert inbound_names(names + ["orders\\4.csv"]) == ["notes.txt", "orders_1.CSV", "orders_2.csv"]
    # A file meant for us under a name we do not touch is said, not ignored; hidden files and
    # partial uploads are skipped quietly.
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2 and "a/b.csv" in said[0] and repr("orders\\4.csv") in said[1], said
