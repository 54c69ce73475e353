"""Former module of change detection, kept only so that triggers serialized by an earlier
release (classpath ``passerelle.changes.ErpChangeTrigger``, stored in Airflow's database)
still load in the triggerer. The pure part is :mod:`passerelle.core.changes`, the trigger
:mod:`passerelle.triggers`; new code imports from there."""

from __future__ import annotations

from passerelle.core.changes import *  # noqa: F403
from passerelle.core.changes import DEFAULT_WATCH, ChangeDetector, TableProbe, changed_entities, marker_sql  # noqa: F401
from passerelle.triggers import ErpChangeTrigger  # noqa: F401
