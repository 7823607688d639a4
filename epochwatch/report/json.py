"""The JSON report: {"runs": [...], "problems": [...]}, each run as summary.py builds it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

import orjson


def render(out: IO[str], runs: Iterable[Mapping[str, Any]], problems: Sequence[str] = ()) -> None:
    doc = {"runs": list(runs), "problems": list(problems)}
    out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
    out.write("\n")
