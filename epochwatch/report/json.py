"""The JSON report: {"runs": [...], "problems": [...], "lineage": {...}, "jobs": [...]}, each run as
summary.py builds it; `lineage` (which run resumed from which save) only when some run restored
one; `jobs` (analysis/jobs.py: a distributed job's workers and job-level findings) only when
the traces hold one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

import orjson


def render(
    out: IO[str],
    runs: Iterable[Mapping[str, Any]],
    problems: Sequence[str] = (),
    lineage: Mapping[str, Any] | None = None,
    jobs: Sequence[Mapping[str, Any]] = (),
) -> None:
    doc: dict[str, Any] = {"runs": list(runs), "problems": list(problems)}
    if lineage and lineage.get("links"):
        doc["lineage"] = lineage
    if jobs:
        doc["jobs"] = list(jobs)
    out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
    out.write("\n")
