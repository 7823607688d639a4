"""The HTML report of some traces as one page, for what is not the CLI: the notebook's
display of `hook.findings()` and the exporters' report artifact (MLflow, W&B).

Reading the traces costs what `epochwatch report --format html` costs, so callers do it
only when the page is wanted (a notebook displaying the value; a run's end).
"""

from __future__ import annotations

import io
from collections.abc import Iterable


def html_page(traces: Iterable[str]) -> str | None:
    """The page, or None when no trace can be read (a daemon's, say, which the run's own
    user may not read)."""
    from epochwatch.analysis.files import analyze_file
    from epochwatch.report import figures
    from epochwatch.report import html as html_report
    from epochwatch.report.summary import summarize

    summaries = []
    for trace in traces:
        try:
            analyzed = analyze_file(trace)
        except Exception:
            continue
        summary = summarize(analyzed)
        built = figures.build(analyzed, summary.get("findings") or [])
        summary["figures"], summary["unchanged_dirs"] = built["figures"], built["unchanged_dirs"]
        summaries.append(summary)
    if not summaries:
        return None
    out = io.StringIO()
    html_report.render(out, summaries)
    return out.getvalue()
