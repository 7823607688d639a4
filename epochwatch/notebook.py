"""`hook.findings()` in Jupyter: a list of findings that draws itself as the HTML report.

The list is the plain report-JSON dicts (so scripts index it like any list); in a notebook
`_repr_html_` renders the current run's trace with the report's own page (findings with
evidence, small plots), inside an iframe so the report's stylesheet stays out of the
notebook's. Reading the trace costs what `epochwatch report` costs; it happens only when
the notebook displays the value.
"""

from __future__ import annotations

import io
from html import escape
from typing import Any


class Findings(list[dict[str, Any]]):
    """The run's findings so far; `trace` is where the run's records are."""

    def __init__(self, findings: list[dict[str, Any]], trace: str | None = None) -> None:
        super().__init__(findings)
        self.trace = trace

    def _repr_html_(self) -> str:
        page = _report_page(self.trace) if self.trace else None
        if page is None:
            rows = "".join(
                f"<li><b>{escape(str(f.get('severity')))}</b> {escape(str(f.get('kind')))}: "
                f"{escape(str(f.get('title')))}</li>"
                for f in self
            )
            return f"<p>epochwatch: {len(self)} finding(s)</p><ul>{rows}</ul>"
        return (
            f'<iframe srcdoc="{escape(page, quote=True)}" '
            'style="width:100%;height:640px;border:1px solid #ddd" sandbox></iframe>'
        )


def _report_page(trace: str) -> str | None:
    """The HTML report of one trace, or None when it cannot be read (a daemon's, say)."""
    try:
        from epochwatch.analysis.files import analyze_file
        from epochwatch.report import figures
        from epochwatch.report import html as html_report
        from epochwatch.report.summary import summarize

        analyzed = analyze_file(trace)
        summary = summarize(analyzed)
        built = figures.build(analyzed, summary.get("findings") or [])
        summary["figures"], summary["unchanged_dirs"] = built["figures"], built.get("unchanged_dirs", [])
        out = io.StringIO()
        html_report.render(out, [summary])
        return out.getvalue()
    except Exception:
        return None
