"""Passerelle's operators, one module per concept, in the providers' shape.

``batch`` (build base, publish, confirm), ``catalog`` and ``exchange`` (the builds), ``images``
(plan, render, finish the photos), ``inbound`` (import the shop's files, propose reorders),
``report`` (the daily page); ``common`` holds the lazily made connections and the run's key.
Operators hold no SQL: every statement is in :mod:`passerelle.core`.
"""
