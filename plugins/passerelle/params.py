"""The run form of a flow's DAG: Airflow ``Param``s shown by "Trigger Dag" with config.

Scheduled and on-change runs use the defaults (``flows.<flow>.mode``, default delta; all
entities; no dry run); the Airflow
class is imported inside the function, so importing this module costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import Param


#: What a dry run does, in each flow's own words (the form says only what the DAG does).
DRY_RUN_TEXT: dict[str, str] = {
    "orders_in": "Download and read the shop's files and show what would be integrated; integrate nothing, "
    "move no file, write no rejects.",
    "report": "Render the report and show its size; write no file and upload nothing.",
}
DEFAULT_DRY_RUN_TEXT = "Compute and show what would be sent; upload nothing and leave the snapshot unchanged."

#: The modes of the run form, in the order shown, with their labels (passerelle.core.differ.MODES).
MODE_TEXT: dict[str, str] = {
    "delta": "Delta: only what changed since the last send",
    "new": "New only: only what was created since the last confirmed send",
    "full": "Full: send everything and reset the snapshot",
}

#: Flows whose run form has no mode nor entities: they read files or summaries, not a snapshot.
NO_SNAPSHOT_FLOWS = frozenset({"orders_in", "report"})


def flow_params(
    entities: list[str] | tuple[str, ...],
    *,
    replay: bool = False,
    flow: str | None = None,
    mode: str = "delta",
) -> dict[str, Param]:
    """The run form shown in the UI ("Trigger Dag" with config) as DAG ``params``.

    With *flow*, the form holds only what that flow's DAG uses, worded for it: ``orders_in``
    (dry run, replay) and ``report`` (dry run) have no mode nor entities (they keep no snapshot);
    without it, every field below.

    - ``mode``: ``delta`` (only what changed since the shop last received it), ``new`` (only
      rows the shop never received: new articles, their variants and photos; changes and
      removals wait for the next delta) or ``full`` (everything; resets the snapshot); its
      default is *mode* (``flows.<flow>.mode``), which scheduled runs use;
    - ``entities``: which of *entities* to process (default all); left out if *entities* is empty;
    - ``dry_run``: compute and show what would be sent, upload nothing;
    - ``replay_quarantine`` (if *replay*): also replay quarantined rows that have been fixed.

    Scheduled and on-change runs use the defaults: *mode*, all entities, no dry run.
    """
    from airflow.sdk import Param

    section = "Run options"
    params: dict[str, Param] = {}
    if flow not in NO_SNAPSHOT_FLOWS:
        params["mode"] = Param(
            mode,
            type="string",
            enum=list(MODE_TEXT),
            values_display=MODE_TEXT,
            title="Mode",
            description="Delta sends only rows whose content changed; new only rows never sent "
            "(new articles), leaving changes for the next delta; full sends every row.",
            section=section,
        )
    if entities and flow not in NO_SNAPSHOT_FLOWS:
        names = list(dict.fromkeys(entities))
        params["entities"] = Param(
            names,
            type="array",
            items={"type": "string", "enum": names},
            examples=names,
            minItems=1,
            uniqueItems=True,
            title="Entities",
            description="Entities to process in this run (default: all of the flow's entities).",
            section=section,
        )
    params["dry_run"] = Param(
        False,
        type="boolean",
        title="Dry run",
        description=DRY_RUN_TEXT.get(flow or "", DEFAULT_DRY_RUN_TEXT),
        section=section,
    )
    if replay:
        params["replay_quarantine"] = Param(
            False,
            type="boolean",
            title="Replay quarantine",
            description="Also integrate again the quarantined rows (fix their cause first).",
            section=section,
        )
    return params
