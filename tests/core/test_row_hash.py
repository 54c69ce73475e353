"""The differ's row hash (passerelle.core.differ.row_hash) and migration 0008, which converted the
snapshots hashed the earlier way (md5 of the row's text), on a real back office."""

from __future__ import annotations

import csv
import importlib
import io

from passerelle.core.dialects import dialect
from passerelle.core.differ import Entity, catalog_entities, confirm_batch, diff_entity, hashed_columns, row_hash
from passerelle.core.export import build_catalog, iter_outbox

RULE = "a.price_excl_vat > 0 AND a.name <> ''"
MIGRATION = importlib.import_module("passerelle.migrations.versions.0008_row_hash_by_value")


def _send(erp, run_key, mode):
    batch, _files = build_catalog(
        erp,
        flow="catalog",
        run_key=run_key,
        entities=catalog_entities(RULE, ["article"]),
        dialect=dialect("generic"),
        mode=mode,
    )
    confirm_batch(erp, batch.id)
    erp.commit()
    keys = [
        row["key"]
        for _name, content, _info in iter_outbox(erp, batch.id)
        for row in csv.DictReader(io.StringIO(content.decode()))
    ]
    return batch, keys


def test_an_md5_snapshot_is_converted_where_its_row_is_unchanged(erp):
    """A snapshot written before 0008 (md5 of each row's text): the rows whose md5 is their current
    row's get the new hash, the changed one keeps its md5, and the next delta sends that one alone."""
    _send(erp, "first", "full")
    articles = "passerelle_src.article v WHERE s.entity = 'article' AND s.key = v.key"
    # The snapshot as a release before 0008 left it.
    erp.execute(f"UPDATE passerelle.snapshot s SET hash = md5(v::text) FROM {articles}")
    erp.execute("UPDATE erp.article SET price_excl_vat = price_excl_vat + 1 WHERE reference = 'ART-000003'")
    erp.commit()

    MIGRATION.convert(erp)
    erp.commit()

    new = row_hash("v", hashed_columns(erp, "passerelle_src.article"))
    hashes = dict(erp.execute(f"SELECT s.key, s.hash = {new} FROM passerelle.snapshot s, {articles}").fetchall())
    assert len(hashes) > 10
    assert [key for key, converted in hashes.items() if not converted] == ["ART-000003"]
    kept = erp.execute("SELECT hash FROM passerelle.snapshot WHERE entity = 'article' AND key = 'ART-000003'")
    assert len(kept.fetchone()[0]) == 32  # still its md5: nothing proves the shop has the new price

    batch, keys = _send(erp, "after", "delta")
    assert keys == ["ART-000003"]
    assert batch.counts["article"]["changed"] == 1 and batch.counts["article"]["unchanged"] == len(hashes) - 1


def test_equal_values_hash_alike_and_any_change_shows(erp):
    """Values, not their text: 1.5 and 1.50 are one price; a change of one column, or a column
    becoming NULL, is a new hash."""
    columns = [("key", True), ("price", True), ("name", True)]
    values = erp.execute(
        f"SELECT {row_hash('r', columns)} FROM (VALUES ('k', 1.5::numeric, 'x'), ('k', 1.50, 'x'), ('k', 1.51, 'x'), "
        "('k', 1.5, 'y'), ('k', 1.5, NULL), ('k', 1.5, '')) AS r(key, price, name)"
    ).fetchall()
    hashes = [v[0] for v in values]
    assert hashes[0] == hashes[1]
    assert len(set(hashes[1:])) == 5


def test_a_change_inside_the_variants_json_shows(erp):
    """WooCommerce's and Shopify's article rows carry their variants as JSON text: two variants'
    colours swapped is a new hash of the article's row (jsonb's own hash, which XORs keys and
    values together, would not see it)."""
    with erp.transaction(force_rollback=True):
        erp.execute("SELECT set_config('passerelle.article_variants', 'on', true)")
        article, first, second = erp.execute(
            "SELECT v.article_id, v.id, w.id FROM erp.variant v JOIN erp.variant w ON w.article_id = v.article_id "
            "AND w.id > v.id AND w.active AND w.colour <> v.colour WHERE v.active ORDER BY 1, 2, 3 LIMIT 1"
        ).fetchone()
        columns = hashed_columns(erp, "passerelle_src.article")
        assert ("variants", True) in columns  # text: hashed as it is
        hash_sql = (
            f"SELECT {row_hash('a', columns)} FROM passerelle_src.article a "
            "WHERE a.key = (SELECT reference FROM erp.article WHERE id = %s)"
        )
        before = erp.execute(hash_sql, (article,)).fetchone()[0]
        erp.execute(
            "UPDATE erp.variant v SET colour = o.colour FROM erp.variant o "
            "WHERE (v.id, o.id) IN ((%(a)s, %(b)s), (%(b)s, %(a)s))",
            {"a": first, "b": second},
        )
        assert erp.execute(hash_sql, (article,)).fetchone()[0] != before


def test_a_view_column_without_a_hash_function_is_hashed_as_its_text(erp):
    """A view rewritten for another back office with a json column: the send works, and a change
    inside the JSON is a change."""
    with erp.transaction(force_rollback=True):
        erp.execute("CREATE VIEW passerelle_src.with_json AS SELECT 'k'::text AS key, '{\"a\": 1}'::json AS doc")
        columns = hashed_columns(erp, "passerelle_src.with_json")
        assert columns == [("key", True), ("doc", False)]
        batch_id = erp.execute(
            "INSERT INTO passerelle.batch (flow, run_key, mode, status, entities) "
            "VALUES ('t', 'with_json', 'full', 'built', '{with_json}') RETURNING id"
        ).fetchone()[0]
        assert diff_entity(erp, batch_id, Entity("with_json"), full=True)["created"] == 1
        docs = erp.execute(
            f"SELECT {row_hash('r', columns)} FROM (VALUES ('k', '{{\"a\": 1}}'::json), ('k', '{{\"a\": 2}}'::json)) "
            "AS r(key, doc)"
        ).fetchall()
        assert docs[0] != docs[1]
