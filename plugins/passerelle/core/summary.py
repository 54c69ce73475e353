"""Run summaries: one row per flow run in ``passerelle.run_summary``, for the UI and the report."""

from __future__ import annotations

import json
from datetime import datetime

import psycopg


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
) -> None:
    """Insert (or, for a rerun of the same DAG run, replace) the run's summary and its note (what
    the run says in one line, :func:`passerelle.core.outcome.note_text`)."""
    conn.execute(
        """
        INSERT INTO passerelle.run_summary
            (flow, dag_run_id, run_key, mode, dry_run, counts, rejects, bytes_sent, bytes_received, started_at,
             note)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (flow, dag_run_id) DO UPDATE SET
            run_key = EXCLUDED.run_key, mode = EXCLUDED.mode, dry_run = EXCLUDED.dry_run,
            counts = EXCLUDED.counts, rejects = EXCLUDED.rejects, bytes_sent = EXCLUDED.bytes_sent,
            bytes_received = EXCLUDED.bytes_received, started_at = EXCLUDED.started_at, note = EXCLUDED.note,
            finished_at = now()
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
