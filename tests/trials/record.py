"""What a trial found, one JSON line per trial, and the table ``make trials`` writes from them.

Each trial calls :func:`record` once with its counts; ``PASSERELLE_TRIALS_OUT`` names the JSON-lines
file (``make trials`` sets it); without it (``make test``) nothing is written. ``python
tests/trials/record.py <results.jsonl> <trials.md>`` writes the Markdown table and prints, as its
last line, the one JSON object of the totals (fuzzed files, kill rounds, server faults, lost,
doubled, partial files, unhandled exceptions).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

#: The totals ``make trials`` prints, in this order.
TOTALS = ("fuzzed_files", "kill_rounds", "server_faults", "lost", "doubled", "partial_files", "unhandled_exceptions")


def record(trial: str, outcome: str, **counts) -> None:
    """Append one trial's result: ``trial`` (a short name), ``outcome`` (a sentence) and counts
    (any of :data:`TOTALS`, and others shown in the table's details)."""
    out = os.environ.get("PASSERELLE_TRIALS_OUT")
    if not out:
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(
            json.dumps(
                {
                    "trial": trial,
                    "outcome": outcome,
                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    **counts,
                },
                default=str,
            )
            + "\n"
        )


def summarise(results: Path, table: Path, seconds: float | None = None) -> dict:
    rows = (
        [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines() if line.strip()]
        if results.exists()
        else []
    )
    totals = {k: sum(int(r.get(k, 0) or 0) for r in rows) for k in TOTALS}
    lines = [
        "# Trials",
        "",
        "Written by `make trials` (tests/trials): what each trial did and what it found.",
        "",
        "| trial | outcome | fuzzed files | kill rounds | server faults | lost | doubled | partial files | "
        "unhandled exceptions | details |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        details = ", ".join(f"{k} {v}" for k, v in r.items() if k not in (*TOTALS, "trial", "outcome", "at"))
        cells = [r["trial"], r["outcome"], *(str(r.get(k, 0) or 0) for k in TOTALS), details]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    lines += ["", f"Totals: `{json.dumps(totals)}`" + (f", in {seconds:.0f} s" if seconds else ""), ""]
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text("\n".join(lines), encoding="utf-8")
    return totals


if __name__ == "__main__":
    started = float(sys.argv[3]) if len(sys.argv) > 3 else None
    result = summarise(Path(sys.argv[1]), Path(sys.argv[2]), time.time() - started if started else None)
    print(json.dumps(result))
