"""The differ and the outbox on a real back office, without Airflow."""

from __future__ import annotations

import csv
import io
import threading

from passerelle.core.differ import catalog_entities, confirm_batch
from passerelle.core.export import build_catalog, iter_outbox
from passerelle.core.dialects import dialect

RULE = "a.price_excl_vat > 0 AND a.name <> ''"


def test_files_are_cut_in_parts_without_hanging(erp):
    """More rows than rows_per_file: several parts, every row once (this used to deadlock)."""
    result = {}

    def go():
        result["out"] = build_catalog(erp, flow="catalog", run_key="parts", entities=catalog_entities(RULE, ["article"]),
                                      dialect=dialect("generic"), mode="full", rows_per_file=300)

    worker = threading.Thread(target=go, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "build_catalog hung writing several parts"
    batch, files = result["out"]
    selected = erp.execute("SELECT count(*) FROM passerelle_src.article a WHERE a.web AND " + RULE).fetchone()[0]
    assert [f["name"] for f in files] == [f"products_{i:04d}.csv" for i in range(1, len(files) + 1)]
    assert len(files) == -(-selected // 300)
    keys = []
    for _name, content, _info in iter_outbox(erp, batch.id):
        keys += [row["key"] for row in csv.DictReader(io.StringIO(content.decode()))]
    assert len(keys) == len(set(keys)) == selected


def test_rejected_rows_are_recorded_and_retried(erp):
    erp.execute("UPDATE erp.article SET ean = '1234567890123' WHERE reference = 'ART-000001'")
    erp.commit()
    ents = catalog_entities(RULE, ["article"])
    batch, _ = build_catalog(erp, flow="catalog", run_key="r1", entities=ents, dialect=dialect("generic"))
    assert batch.counts["article"]["rejected"] == 1
    reason = erp.execute("SELECT field, value, reason FROM passerelle.outbound_reject").fetchone()
    assert reason[0] == "ean" and reason[1] == "1234567890123" and "EAN-13" in reason[2]
    confirm_batch(erp, batch.id)
    erp.commit()
    # Not in the snapshot: once fixed in the back office, the next delta sends it.
    erp.execute("UPDATE erp.article SET ean = NULL WHERE reference = 'ART-000001'")
    erp.commit()
    batch, files = build_catalog(erp, flow="catalog", run_key="r2", entities=ents, dialect=dialect("generic"))
    assert batch.counts["article"]["created"] == 1 and batch.counts["article"]["rejected"] == 0
