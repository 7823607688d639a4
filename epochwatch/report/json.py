"""The JSON report: {"runs": [...], "problems": [...], "lineage": {...}}, each run as summary.py
builds it; `lineage` (which run resumed from which save) only when some run restored one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

import orjson


def render(
    out: IO[str],
    runs: Iterable[Mapping[str, Any]],
    problems: Sequence[str] = (),
    lineage: Mapping[str, Any] | None = None,
) -> None:
    doc: dict[str, Any] = {"runs": list(runs), "problems": list(problems)}
    if lineage and lineage.get("links"):
        doc["lineage"] = lineage
    out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
    out.write("\n")
