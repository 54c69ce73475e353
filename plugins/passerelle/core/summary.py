"""Run summaries: one row per flow run in ``passerelle.run_summary``, for the UI and the report."""

from __future__ import annotations

import json
from datetime import datetime

import psycopg

from passerelle.core.outcome import batch_reasons, note_text, rejected_rows, sent_rows

#: What a run summary written by a later build says of its run (:func:`record_late_confirm`).
LATE_CONFIRM = "its run failed after the publication, before its confirm: confirmed by the next build"


def record_run(
    conn: psycopg.Connection,
    *,
    flow: str,
    dag_run_id: str,
    run_key: str,
    mode: str | None,
    dry_run: bool,
    counts: dict,
    rejects: int = 0,
    bytes_sent: int = 0,
    bytes_received: int = 0,
    started_at: datetime | None = None,
    note: str | None = None,
    replace: bool = True,
) -> None:
    """Insert (or, for a rerun of the same DAG run, replace) the run's summary and its note (what
    the run says in one line, :func:`passerelle.core.outcome.note_text`). With ``replace`` false, a
    summary the DAG run already has is kept as it is (a rerun that sent nothing does not erase what
    the run sent before)."""
    conflict = (
        """DO UPDATE SET
            run_key = EXCLUDED.run_key, mode = EXCLUDED.mode, dry_run = EXCLUDED.dry_run,
            counts = EXCLUDED.counts, rejects = EXCLUDED.rejects, bytes_sent = EXCLUDED.bytes_sent,
            bytes_received = EXCLUDED.bytes_received, started_at = EXCLUDED.started_at, note = EXCLUDED.note,
            finished_at = now()"""
        if replace
        else "DO NOTHING"
    )
    conn.execute(
        f"""
        INSERT INTO passerelle.run_summary
            (flow, dag_run_id, run_key, mode, dry_run, counts, rejects, bytes_sent, bytes_received, started_at,
             note)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (flow, dag_run_id) {conflict}
        """,
        (
            flow,
            dag_run_id,
            run_key,
            mode,
            dry_run,
            json.dumps(counts),
            rejects,
            bytes_sent,
            bytes_received,
            started_at,
            note,
        ),
    )


def record_late_confirm(conn: psycopg.Connection, batch_id: int) -> None:
    """The summary of the run that published batch *batch_id* and failed before its confirm, written by
    the build that confirmed it (:func:`passerelle.core.differ.build_batch`): under that run's id
    (``passerelle.batch.dag_run_id``; ``batch <id>`` for a batch built before the id was kept), its
    rows, files and bytes as the recorded manifest lists them, so that the runs page and the daily
    report count what the shop was sent. In the caller's transaction."""
    flow, run_key, mode, counts, manifest, dag_run_id, created_at = conn.execute(
        "SELECT flow, run_key, mode, counts, manifest, dag_run_id, created_at FROM passerelle.batch WHERE id = %s",
        (batch_id,),
    ).fetchone()
    files = (manifest or {}).get("files") or []
    rejects = rejected_rows(counts)
    record_run(
        conn,
        flow=flow,
        dag_run_id=dag_run_id or f"batch {batch_id}",
        run_key=run_key,
        mode=mode,
        dry_run=False,
        counts=counts,
        rejects=rejects,
        bytes_sent=sum(int(f.get("bytes", 0) or 0) for f in files),
        started_at=created_at,
        note=note_text(
            verb="sent",
            rows=sent_rows(counts),
            files=len(files),
            quarantined=rejects,
            reasons=batch_reasons(conn, batch_id),
            more=[LATE_CONFIRM],
        ),
    )
