"""The sales journal's operator: the day's web invoices and payments, as the FEC and a CSV journal,
written to the accounting folder.

Reading, entries, rendering and the balance check are :mod:`passerelle.core.accounting`; this
operator only reads the back office and writes the files (each through a temporary file and a
rename, so a rerun of the same day replaces them whole).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from passerelle.core.values import parse_bool
from passerelle.operators.common import ErpMixin, run_day
from passerelle.operators.report import write_atomically


class ExportJournalOperator(ErpMixin, BaseOperator):
    """Write the journal of the day before the run's day (shop timezone): invoices dated that day
    and payments received that day, of web orders, as ``<folder>/<SIREN>FEC<YYYYMMDD>.txt`` and
    ``<folder>/journal-YYYY-MM-DD.csv`` (``accounting`` section of the configuration).

    Nothing is written when an invoice's amounts do not add up, a VAT rate or a payment method
    has no account, or an entry does not balance: the task fails naming each of them, without
    retries (the same data would fail the same way).

    :param dry_run: build and check the entries, write nothing (templated).
    :param erp_conn_id: the back office's Postgres connection; default ``shop.erp_conn_id``.
    :param config_path: configuration file; default ``PASSERELLE_CONFIG`` or the project's.
    """

    template_fields: Sequence[str] = ("dry_run",)

    def __init__(
        self,
        *,
        dry_run: Any = False,
        erp_conn_id: str | None = None,
        config_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dry_run = dry_run
        self.erp_conn_id = erp_conn_id
        self.config_path = config_path

    def execute(self, context: Any) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from passerelle import PROJECT_ROOT
        from passerelle.core.accounting import (
            JournalError,
            build_journal,
            collect_journal,
            csv_name,
            fec_name,
            render_csv,
            render_fec,
        )

        dry = parse_bool(self.dry_run, "dry_run")
        options = self.settings.accounting
        if not options.enabled:
            raise ValueError("accounting.enabled is false in the configuration; the journal is not exported")
        day = run_day(context, self.settings.shop.timezone) - timedelta(days=1)
        conn = self.erp
        conn.rollback()
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            invoices, payments = collect_journal(conn, day, self.settings.shop.timezone)
        finally:
            conn.rollback()
        try:
            journal = build_journal(day, invoices, payments, options)
            files = {fec_name(options.siren, day): render_fec(journal, options.separator_char)}
            if options.csv:
                files[csv_name(day)] = render_csv(journal, options.currency)
        except JournalError as exc:
            # The back office's data, not a passing fault: a retry would fail the same way.
            raise AirflowFailException(str(exc)) from exc
        folder = Path(options.folder).expanduser()
        folder = folder if folder.is_absolute() else PROJECT_ROOT / folder
        result = {
            "day": day.isoformat(),
            "entries": len(journal.entries),
            "invoices": journal.invoices,
            "credit_notes": journal.credit_notes,
            "payments": journal.payments,
            "debit": str(journal.debit),
            "credit": str(journal.credit),
            "files": sorted(files),
            "folder": str(folder),
            "dry_run": dry,
        }
        if dry:
            self.log.info("dry run: the journal of %s would be %s; nothing written", day, ", ".join(files))
            return result
        for name, data in files.items():
            write_atomically(folder / name, data, mode=0o640)
        self.log.info(
            "journal of %s: %d entries (%d invoices, %d credit notes, %d payments), debits = credits = %s; "
            "written to %s: %s",
            day,
            len(journal.entries),
            journal.invoices,
            journal.credit_notes,
            journal.payments,
            journal.debit,
            folder,
            ", ".join(sorted(files)),
        )
        return result


__all__ = ["ExportJournalOperator"]
