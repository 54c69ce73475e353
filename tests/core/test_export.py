"""The differ and the outbox on a real back office, without Airflow."""

from __future__ import annotations

import csv
import io
import threading

import pandas as pd
import pytest

from passerelle.config import parse_settings
from passerelle.core.dialects import dialect
from passerelle.core.differ import catalog_entities, confirm_batch
from passerelle.core.export import build_catalog, iter_outbox

RULE = "a.price_excl_vat > 0 AND a.name <> ''"


def test_files_are_cut_in_parts_without_hanging(erp):
    """More rows than rows_per_file: several parts, every row once (this used to deadlock)."""
    result = {}

    def go():
        result["out"] = build_catalog(
            erp,
            flow="catalog",
            run_key="parts",
            entities=catalog_entities(RULE, ["article"]),
            dialect=dialect("generic"),
            mode="full",
            rows_per_file=300,
        )

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


def test_the_flows_confirm_refuses_a_batch_never_published(erp):
    """A publish marked successful by hand leaves the batch ``built``: the flows' confirm
    (published_only) refuses it and the snapshot stays; once published, it is confirmed."""
    from passerelle.core.batches import mark_published

    ents = catalog_entities(RULE, ["article"])
    batch, _ = build_catalog(erp, flow="catalog", run_key="never", entities=ents, dialect=dialect("generic"))
    erp.commit()
    with pytest.raises(ValueError, match=rf"batch {batch.id} was built but never published"):
        confirm_batch(erp, batch.id, published_only=True)
    erp.rollback()
    assert erp.execute("SELECT count(*) FROM passerelle.snapshot").fetchone()[0] == 0
    assert erp.execute("SELECT status FROM passerelle.batch WHERE id = %s", (batch.id,)).fetchone() == ("built",)
    mark_published(erp, batch.id, {"files": []})
    assert confirm_batch(erp, batch.id, published_only=True) is True
    erp.commit()
    assert erp.execute("SELECT count(*) FROM passerelle.snapshot").fetchone()[0] == sum(
        c["created"] for c in batch.counts.values()
    )


def test_a_dry_run_counts_a_published_delta_as_sent_and_puts_the_snapshot_back(erp):
    """A delta published and never confirmed (its run failed between the two): the next real build
    confirms it first, so a dry run diffs as if it were, and leaves the snapshot exactly as it was
    (rows the delta changed, created and removed included); the real build then sends what the dry
    run showed."""
    from passerelle.core.batches import mark_published

    ents = catalog_entities(RULE, ["article"])
    generic = dialect("generic")
    full, _ = build_catalog(erp, flow="catalog", run_key="d1", entities=ents, dialect=generic, mode="full")
    mark_published(erp, full.id, {"files": []})
    confirm_batch(erp, full.id)
    erp.commit()
    refs = [r[0] for r in erp.execute("SELECT reference FROM erp.article WHERE web ORDER BY id LIMIT 4").fetchall()]
    erp.execute("UPDATE erp.article SET price_excl_vat = price_excl_vat + 1 WHERE reference = %s", (refs[0],))
    erp.execute("UPDATE erp.article SET web = false WHERE reference = %s", (refs[1],))
    erp.commit()
    delta, _ = build_catalog(erp, flow="catalog", run_key="d2", entities=ents, dialect=generic)
    assert (delta.counts["article"]["changed"], delta.counts["article"]["removed"]) == (1, 1)
    mark_published(erp, delta.id, {"files": []})  # its confirm never runs
    erp.commit()
    erp.execute("UPDATE erp.article SET name = name || ' bis' WHERE reference = %s", (refs[2],))
    erp.commit()
    snapshot = "SELECT entity, key, hash, label, batch_id FROM passerelle.snapshot ORDER BY 1, 2"
    before = erp.execute(snapshot).fetchall()

    dry, files = build_catalog(erp, flow="catalog", run_key="d3", entities=ents, dialect=generic, dry_run=True)
    erp.commit()
    assert dry.counts["article"] == {
        "created": 0,
        "changed": 1,
        "removed": 0,
        "unchanged": len(before) - 2,
        "rejected": 0,
    }
    assert dry.counted == [
        f"batch {delta.id} was published and its confirm never ran: the next run confirms it, so its rows "
        "are counted as on the shop"
    ]
    (content,) = [bytes(c) for _n, c, _i in iter_outbox(erp, dry.id)]
    assert [r["key"] for r in csv.DictReader(io.StringIO(content.decode()))] == [refs[2]]
    assert erp.execute(snapshot).fetchall() == before
    assert erp.execute("SELECT status FROM passerelle.batch WHERE id = %s", (delta.id,)).fetchone() == ("published",)
    erp.commit()

    real, _ = build_catalog(erp, flow="catalog", run_key="d3", entities=ents, dialect=generic)
    erp.commit()
    assert real.counts == dry.counts and not real.counted


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


def _ps_rows(erp, batch_id, name):
    for file_name, content, _info in iter_outbox(erp, batch_id):
        if file_name == name:
            return list(csv.DictReader(io.StringIO(content.decode()), delimiter=";"))
    return []


def _urls(entity, df):
    """Photo URLs as the catalog's enricher gives them: one per photo of the article."""
    if entity != "article":
        return df
    return df.assign(
        image_urls=df["images"]
        .str.split(",")
        .map(lambda parts: ",".join(f"https://s/{p.split(':')[0]}.jpg" for p in parts if p))
    )


def test_prestashop_photos_only_where_they_changed(erp):
    """The photos digest in the snapshot label tells a photo change from any other change."""
    ents = catalog_entities(RULE, ["article"])
    ps = dialect("prestashop")
    batch, _ = build_catalog(erp, flow="catalog", run_key="p1", entities=ents, dialect=ps, enrich=_urls)
    confirm_batch(erp, batch.id)
    erp.commit()
    price, photo = [
        r[0]
        for r in erp.execute(
            "SELECT a.reference FROM erp.article a WHERE a.web AND a.price_excl_vat > 0 AND a.name <> '' "
            "AND EXISTS (SELECT 1 FROM erp.image i WHERE i.article_id = a.id AND i.variant_id IS NULL) "
            "ORDER BY a.id LIMIT 2"
        )
    ]
    erp.execute("UPDATE erp.article SET price_excl_vat = price_excl_vat + 1 WHERE reference = %s", (price,))
    erp.execute(
        "UPDATE erp.image SET updated_at = updated_at + interval '1 day' "
        "WHERE article_id = (SELECT id FROM erp.article WHERE reference = %s)",
        (photo,),
    )
    erp.commit()
    batch, _ = build_catalog(erp, flow="catalog", run_key="p2", entities=ents, dialect=ps, enrich=_urls)
    rows = {r["Reference #"]: r for r in _ps_rows(erp, batch.id, "products_0001.csv")}
    assert set(rows) == {price, photo}
    assert (rows[price]["Image URLs (x,y,z...)"], rows[price]["Delete existing images (0 = No, 1 = Yes)"]) == ("", "")
    assert rows[photo]["Image URLs (x,y,z...)"].startswith("https://s/")
    assert rows[photo]["Delete existing images (0 = No, 1 = Yes)"] == "1"
    # A full send resends every photo (it sends everything as if the shop had nothing).
    batch, _ = build_catalog(erp, flow="catalog", run_key="p3", entities=ents, dialect=ps, mode="full", enrich=_urls)
    rows = _ps_rows(erp, batch.id, "products_0001.csv")
    assert all(r["Delete existing images (0 = No, 1 = Yes)"] == "1" for r in rows)


def test_prestashop_homonym_families_and_deactivations(erp):
    """Families of the same name in two branches get two category IDs; a family and an article
    taken off the web come back as rows PrestaShop's import accepts (ID/reference, name, parent)."""
    erp.execute(
        "INSERT INTO erp.family (code, name, parent_id) SELECT 'HOMONYM-' || code, 'Accessoires', id "
        "FROM erp.family WHERE parent_id IS NULL AND web ORDER BY id LIMIT 2"
    )
    erp.commit()
    ents = catalog_entities(RULE, ["family", "article"])
    ps = dialect("prestashop", parse_settings({"prestashop": {"language": "fr"}}))
    batch, _ = build_catalog(erp, flow="catalog", run_key="h1", entities=ents, dialect=ps)
    cats = _ps_rows(erp, batch.id, "categories_0001.csv")
    homonyms = [r for r in cats if r["Name"] == "Accessoires"]
    assert len(homonyms) == 2 and homonyms[0]["ID"] != homonyms[1]["ID"]
    assert homonyms[0]["Parent category"] != homonyms[1]["Parent category"]
    by_id = {r["ID"]: r for r in cats}
    for r in homonyms:  # the parent is a category of the same file, listed before its child
        assert r["Parent category"] in by_id
        assert cats.index(by_id[r["Parent category"]]) < cats.index(r)
    assert {
        r["Parent category"]
        for r in cats
        if r["ID"] not in {h["ID"] for h in homonyms} and not r["Parent category"].isdigit()
    } == {"Accueil"}
    confirm_batch(erp, batch.id)
    erp.commit()

    family_id, family = erp.execute(
        "SELECT id, name FROM erp.family WHERE code LIKE 'HOMONYM-%' ORDER BY id LIMIT 1"
    ).fetchone()
    erp.execute("UPDATE erp.family SET web = false WHERE id = %s", (family_id,))
    ref, name = erp.execute(
        "SELECT reference, name FROM erp.article a WHERE a.web AND " + RULE + " ORDER BY id LIMIT 1"
    ).fetchone()
    erp.execute("UPDATE erp.article SET web = false WHERE reference = %s", (ref,))
    erp.commit()
    batch, _ = build_catalog(erp, flow="catalog", run_key="h2", entities=ents, dialect=ps)
    off = _ps_rows(erp, batch.id, "products_off_0001.csv")
    assert [(r["Reference #"], r["Active (0/1)"], r["Name"]) for r in off] == [(ref, "0", name)]
    off = _ps_rows(erp, batch.id, "categories_off_0001.csv")
    assert [(r["ID"], r["Active (0/1)"], r["Name"]) for r in off] == [(str(10_000 + family_id), "0", family)]
    assert off[0]["Parent category"].isdigit()


def test_parallel_workers_read_the_run_settings(erp, monkeypatch):
    """The diff reads its view with parallel workers, and the workers see the transaction's run
    settings: the safety stock shapes the quantities sent exactly as in one process."""
    from passerelle.core import differ

    # The demo's tables are small: let the planner use workers for them too.
    monkeypatch.setitem(differ.PARALLEL_DIFF_SETTINGS, "min_parallel_table_scan_size", "0")
    monkeypatch.setitem(differ.PARALLEL_DIFF_SETTINGS, "min_parallel_index_scan_size", "0")
    monkeypatch.setitem(differ.PARALLEL_DIFF_SETTINGS, "parallel_tuple_cost", "0")
    settings = {"passerelle.safety_stock": "3"}
    (article,) = catalog_entities(RULE, ["article"])
    with erp.transaction(force_rollback=True):
        for name, value in settings.items():
            erp.execute("SELECT set_config(%s, %s, true)", (name, value))
        with differ._parallel_diff(erp):
            plan = "\n".join(
                r[0]
                for r in erp.execute(
                    "EXPLAIN (COSTS OFF) "
                    + differ.diff_statement(
                        article,
                        hashed=differ.hashed_columns(erp, article.view),
                        columns=differ.view_columns(erp, article),
                    ),
                    {"entity": "article", "full": True, "new_only": False},
                )
            )
            # A filter on the run setting, evaluated by the workers themselves.
            above = "SELECT count(*) FROM erp.stock WHERE quantity > passerelle_src.safety_stock()"
            worker_plan = "\n".join(r[0] for r in erp.execute("EXPLAIN (COSTS OFF) " + above))
            in_workers = erp.execute(above).fetchone()[0]
        erp.execute("SELECT set_config('max_parallel_workers_per_gather', '0', true)")
        in_one_process = erp.execute(above).fetchone()[0]
        expected = dict(
            erp.execute(f"SELECT key, quantity::text FROM passerelle_src.article a WHERE a.web AND {RULE}").fetchall()
        )
    assert "Gather" in plan, plan
    assert "Parallel Seq Scan on stock" in worker_plan and "safety_stock" in worker_plan, worker_plan
    assert 0 < in_workers == in_one_process
    # Some quantities above the safety stock, some brought down to zero by it.
    assert 0 < sum(1 for q in expected.values() if q == "0") < len(expected)

    batch, files = build_catalog(
        erp,
        flow="catalog",
        run_key="parallel",
        entities=[article],
        dialect=dialect("generic"),
        mode="full",
        settings=settings,
    )
    sent = {}
    for _name, content, _info in iter_outbox(erp, batch.id):
        for row in csv.DictReader(io.StringIO(content.decode())):
            sent[row["key"]] = row["quantity"]
    assert sent == expected


def _sent_in_parts(erp, run_key, names, shop):
    """A full send of the catalog's *names* to *shop* in parts of 200 rows: each file's name, rows
    and SHA-256, in order."""
    batch, files = build_catalog(
        erp,
        flow="catalog",
        run_key=run_key,
        entities=catalog_entities(RULE, names),
        dialect=dialect(shop),
        mode="full",
        rows_per_file=200,
    )
    return [(f["name"], f["rows"], f["sha256"]) for f in files]


def test_large_sends_format_their_files_in_another_process(erp, monkeypatch):
    """In a send of two parts or more, its files are formatted in another process: the files, their
    order and their bytes are those of formatting everything in this one."""
    from passerelle.core import export

    started = []
    start = export._Formatter.start

    def start_and_record(self):
        start(self)
        started.append(self._pool is not None)

    monkeypatch.setattr(export._Formatter, "start", start_and_record)
    elsewhere = _sent_in_parts(erp, "another-process", ["family", "article", "variant"], "prestashop")
    assert started and all(started)
    monkeypatch.setattr(export._Formatter, "start", lambda self: None)
    here = _sent_in_parts(erp, "this-process", ["family", "article", "variant"], "prestashop")
    assert len(elsewhere) > 3 and elsewhere == here


def test_a_send_goes_on_when_its_formatting_processes_die(erp, monkeypatch):
    """The processes formatting a large send's files killed as they start: the send formats the
    rest itself, and its files are those of a send formatted in one process."""
    import os
    import signal

    from passerelle.core import export

    start = export._Formatter.start
    killed = []

    def start_and_kill(self):
        start(self)
        self._pool.submit(os.getpid).result()  # the processes are up
        for pid in list(self._pool._processes):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    monkeypatch.setattr(export._Formatter, "start", start_and_kill)
    survived = _sent_in_parts(erp, "killed", ["article"], "generic")
    assert killed
    monkeypatch.setattr(export._Formatter, "start", lambda self: None)
    assert len(survived) > 3 and survived == _sent_in_parts(erp, "this-process", ["article"], "generic")


def test_copy_parts_end_between_rows_whatever_their_text(erp, tmp_path):
    """A COPY cut in parts of 3 rows, counted by PostgreSQL's messages: each part holds whole rows,
    line breaks, quotes and separators inside values included, and the parts read back give every
    row once, in order, as one read of the whole query does."""
    from passerelle.db import copy_parts, read_part, read_query_chunks

    query = (
        "SELECT n AS key, CASE n % 4 WHEN 0 THEN E'two\\nlines' WHEN 1 THEN 'a \"quote\", a comma' "
        "WHEN 2 THEN E'crlf\\r\\nend\\n' END AS text, 'x' AS other FROM generate_series(1, 8) n ORDER BY n"
    )
    path = tmp_path / "rows.csv"
    with open(path, "w+b") as out:
        parts = list(copy_parts(erp, query, None, out, rows=3))
    header, parts = parts[0], parts[1:]
    assert header[2] == 0 and [count for _s, _e, count in parts] == [3, 3, 2]
    frames = [read_part(path, header[:2], (start, end)) for start, end, _count in parts]
    assert [len(f) for f in frames] == [3, 3, 2]
    whole = next(read_query_chunks(erp, query))
    assert pd.concat(frames, ignore_index=True).equals(whole)
    assert list(whole["text"])[:4] == ['a "quote", a comma', "crlf\r\nend\n", "", "two\nlines"]


def test_the_catalog_enricher_travels_to_the_formatting_process(erp, monkeypatch):
    """The catalog's enricher (photo URLs) goes with the rows to the process formatting a large
    send: the files are those of a send formatted here, photo URLs included."""
    import pickle

    from passerelle.core import export
    from passerelle.core.photos import image_url_enricher

    enrich = image_url_enricher(parse_settings({"shop": {"public_base_url": "https://shop.example"}}))
    assert pickle.loads(pickle.dumps(enrich)) == enrich
    pools = []
    start = export._Formatter.start

    def start_and_record(self):
        start(self)
        pools.append(self._pool is not None)

    def send(run_key):
        batch, files = build_catalog(
            erp,
            flow="catalog",
            run_key=run_key,
            entities=catalog_entities(RULE, ["article"]),
            dialect=dialect("prestashop"),
            mode="full",
            rows_per_file=200,
            enrich=enrich,
        )
        contents = [content for _name, content, _info in iter_outbox(erp, batch.id)]
        return [(f["name"], f["rows"], f["sha256"]) for f in files], contents

    monkeypatch.setattr(export._Formatter, "start", start_and_record)
    elsewhere, contents = send("enriched-elsewhere")
    assert pools == [True]
    assert sum(c.count(b"https://shop.example/images/") for c in contents) > 0
    monkeypatch.setattr(export._Formatter, "start", lambda self: None)
    assert elsewhere == send("enriched-here")[0]


def test_an_error_formatting_a_part_fails_the_send_and_leaves_the_connection_usable(erp, monkeypatch):
    """A part that cannot be formatted while the rows are still coming (formatted in this process):
    the send fails with that error, the COPY is cancelled, nothing of the batch is kept, and the
    connection serves the next statement."""
    from passerelle.core import export

    calls = []
    format_chunk = export._format_chunk

    def fail_second(dialect_, entity, chunk):
        calls.append(len(chunk))
        if len(calls) == 2:
            raise ValueError("part 2 cannot be formatted")
        return format_chunk(dialect_, entity, chunk)

    monkeypatch.setattr(export._Formatter, "start", lambda self: None)
    monkeypatch.setattr(export, "_format_chunk", fail_second)
    with pytest.raises(ValueError, match="part 2 cannot be formatted"):
        _sent_in_parts(erp, "fails", ["article"], "generic")
    assert calls == [200, 200]
    assert erp.execute("SELECT count(*) FROM passerelle.batch WHERE run_key = 'fails'").fetchone()[0] == 0


def test_a_builder_waiting_for_another_diffs_against_what_was_committed_meanwhile(erp, erp_dsn):
    """One builder per flow at a time: the second waits for the first's lock, and its REPEATABLE READ
    snapshot starts once it holds it, so it sees what the first one committed. Taken inside the
    transaction, the lock let the snapshot date from before the wait. Here the first builder is a
    session holding the flow's lock while a price changes and is committed."""
    import time

    import psycopg

    from passerelle.core.batches import mark_published

    ents = catalog_entities(RULE, ["article"])
    first, _ = build_catalog(erp, flow="catalog", run_key="k1", entities=ents, dialect=dialect("generic"))
    mark_published(erp, first.id, {"files": []})
    confirm_batch(erp, first.id)
    [(reference,)] = erp.execute(
        "SELECT reference FROM passerelle_src.article a WHERE a.web AND " + RULE + " ORDER BY reference LIMIT 1"
    ).fetchall()
    erp.commit()
    with psycopg.connect(erp_dsn, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(hashtext('passerelle:catalog'))")
        result = {}
        worker = threading.Thread(
            target=lambda: result.update(
                out=build_catalog(erp, flow="catalog", run_key="k2", entities=ents, dialect=dialect("generic"))
            ),
            daemon=True,
        )
        worker.start()
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        deadline = time.monotonic() + 30
        while not other.execute(waiting).fetchone()[0]:
            assert time.monotonic() < deadline, "the second builder never waited for the lock"
            time.sleep(0.05)
        other.execute("UPDATE erp.article SET price_excl_vat = price_excl_vat + 1 WHERE reference = %s", (reference,))
        other.execute("SELECT pg_advisory_unlock(hashtext('passerelle:catalog'))")
        worker.join(60)
    assert not worker.is_alive()
    second, _ = result["out"]
    assert second.counts["article"]["changed"] == 1  # the price committed while it waited
