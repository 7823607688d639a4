"""The run's HTML report as a file for an exporter to attach (MLflow artifact, W&B file).

Made when a fit ends (Keras: the `fit_end` record; a custom loop: the run's end), while
the tracking tool's run is still open: scripts often end it right after `fit` returns.
Rendered once per state of the trace, whichever exporters ask (both MLflow and W&B may).
Costs what `epochwatch report --format html` costs on the trace, once per fit.
"""

from __future__ import annotations

import os
import threading

from epochwatch.report.page import html_page

NAME = "epochwatch-report.html"
_lock = threading.Lock()
_last: tuple[tuple[str, int, int], str | None] | None = None


def report_html(trace: str | None) -> str | None:
    """The page for `trace` as it is now, or None (no trace, or not readable here)."""
    global _last
    if not trace:
        return None
    try:
        st = os.stat(trace)
    except OSError:
        return None
    key = (trace, st.st_size, st.st_mtime_ns)
    with _lock:
        if _last is not None and _last[0] == key:
            return _last[1]
        page = html_page([trace])
        _last = (key, page)
        return page
