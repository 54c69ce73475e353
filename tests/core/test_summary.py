"""Run summaries (passerelle.core.summary) on a real PostgreSQL: one row per DAG run, a rerun that
sent nothing keeping what the run sent, and the summary a later build writes for a run that
published and failed before its confirm."""

from __future__ import annotations

import json

from passerelle.core.summary import LATE_CONFIRM, record_late_confirm, record_run


def _summaries(erp):
    return erp.execute(
        "SELECT dag_run_id, run_key, counts, rejects, bytes_sent, note FROM passerelle.run_summary ORDER BY id"
    ).fetchall()


def _record(erp, counts, note, **kwargs):
    record_run(
        erp,
        flow="catalog",
        dag_run_id="scheduled__2026-11-20T01:00:00+00:00",
        run_key="2026-11-20T01:00:00+00:00",
        mode="delta",
        dry_run=False,
        counts=counts,
        note=note,
        **kwargs,
    )


def test_a_rerun_that_sent_nothing_keeps_what_its_run_sent(erp):
    sent = {"article": {"created": 3, "changed": 1}}
    _record(erp, sent, "sent 4 rows in 1 file; nothing quarantined", bytes_sent=900)
    _record(erp, {}, "sent 0 rows in 0 files; nothing uploaded", replace=False)
    assert [r[2:] for r in _summaries(erp)] == [(sent, 0, 900, "sent 4 rows in 1 file; nothing quarantined")]

    # A rerun that sends again replaces it (a backfill republishing its batch).
    _record(erp, {"article": {"created": 2}}, "sent 2 rows in 1 file; nothing quarantined", bytes_sent=500)
    assert [r[2:] for r in _summaries(erp)] == [
        ({"article": {"created": 2}}, 0, 500, "sent 2 rows in 1 file; nothing quarantined")
    ]


def test_a_batch_confirmed_by_a_later_build_gets_its_runs_summary(erp):
    counts = {"customer": {"created": 5, "changed": 2, "rejected": 1}, "customer_address": {"created": 4}}
    manifest = {"files": [{"name": "customers_0001.csv", "bytes": 700}, {"name": "addresses_0001.csv", "bytes": 300}]}
    ids = [
        erp.execute(
            "INSERT INTO passerelle.batch (flow, run_key, mode, status, entities, counts, manifest, dag_run_id) "
            "VALUES ('customers', %s, 'full', 'published', '{customer,customer_address}', %s, %s, %s) RETURNING id",
            (run_key, json.dumps(counts), json.dumps(manifest), dag_run_id),
        ).fetchone()[0]
        for run_key, dag_run_id in (("2026-11-20", "scheduled__2026-11-20"), ("2026-11-21", None))
    ]
    erp.execute(
        "INSERT INTO passerelle.outbound_reject (batch_id, entity, key, field, value, reason) "
        "VALUES (%s, 'customer', 'CLI-000003', 'email', 'x@y', 'not an e-mail address')",
        (ids[0],),
    )
    for batch_id in ids:
        record_late_confirm(erp, batch_id)
    (first, second) = _summaries(erp)
    # Its run's id; a batch built before the id was kept (migration 0009) is named by its own.
    assert first[:2] == ("scheduled__2026-11-20", "2026-11-20")
    assert second[:2] == (f"batch {ids[1]}", "2026-11-21")
    # What the shop was sent: 5 + 2 - 1 refused + 4 rows, the manifest's files and bytes.
    assert first[2:5] == (counts, 1, 1000)
    assert first[5] == (
        f"sent 10 rows in 2 files; {LATE_CONFIRM}; 1 row quarantined, top reasons: email: not an e-mail address (1)"
    )
