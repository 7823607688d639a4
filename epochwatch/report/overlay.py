"""A resumed run's plots with its parent's curve under them: does it carry on where it left off?

Runs the report shows together are linked by the lineage (a restore in the child, the same
bytes saved by the parent). For each link whose two runs are both in the report, the
child's loss and epoch-time figures get the parent's main series, drawn muted beneath the
child's. Plain figure dicts in and out (summary["figures"]): no trace is read again, so it
works the same when the summaries came from worker processes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

OVERLAID = ("loss", "time")


def overlay_parents(runs: Iterable[dict[str, Any]], links: Iterable[Mapping[str, Any]]) -> None:
    """Add each present parent's loss and epoch-time series to its child's figures (in place)."""
    by_id = {str(r.get("run_id")): r for r in runs}
    done: set[tuple[str, str]] = set()
    for link in links:
        child_id, parent_id = str(link.get("child")), str(link.get("parent"))
        child, parent = by_id.get(child_id), by_id.get(parent_id)
        if child is None or parent is None or child_id == parent_id or (child_id, parent_id) in done:
            continue
        done.add((child_id, parent_id))
        theirs = {f.get("id"): f for f in parent.get("figures") or []}
        for fig in child.get("figures") or []:
            src = theirs.get(fig.get("id"))
            if fig.get("id") not in OVERLAID or src is None or not src.get("series"):
                continue
            if fig.get("x_name") != src.get("x_name"):  # epochs on one side, record order on the other
                continue
            main = src["series"][0]
            fig["series"].insert(
                0,
                {
                    **main,
                    "name": f"{main.get('name')} of run {parent_id}, before the restore",
                    "cls": "parent",
                },
            )
