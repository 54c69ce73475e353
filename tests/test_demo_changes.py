"""The demo's back-office edits (passerelle_demo.seed.apply_demo_changes), made twice by `make demo`."""

from __future__ import annotations

from passerelle_demo.seed import NEW_MODEL, apply_demo_changes


def test_a_second_round_of_changes_takes_the_new_model_suffix_off_again(erp):
    first = apply_demo_changes(erp)
    renamed = first["changed"][1]
    name = erp.execute("SELECT name FROM erp.article WHERE reference = %s", (renamed,)).fetchone()[0]
    assert name.endswith(NEW_MODEL) and name.count(NEW_MODEL.strip()) == 1

    second = apply_demo_changes(erp)
    assert second["changed"][1] == renamed  # the same articles, changed again
    again = erp.execute("SELECT name FROM erp.article WHERE reference = %s", (renamed,)).fetchone()[0]
    assert again == name[: -len(NEW_MODEL)]  # a change, and never "(nouveau modèle) (nouveau modèle)"
    assert second["created"] != first["created"]  # each round creates its own new article
