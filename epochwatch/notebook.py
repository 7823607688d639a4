"""`hook.findings()` in Jupyter: a list of findings that draws itself as the HTML report.

The list is the plain report-JSON dicts (so scripts index it like any list), every fit of
the kernel session in order, each dict naming its fit's `run_id`; `by_fit()` groups them.
In a notebook `_repr_html_` renders the fits' traces as one report page (findings with
evidence, small plots), inside an iframe so the report's stylesheet stays out of the
notebook's. The iframe takes its page's height once loaded (no scrolling box with the plots
below the fold); before that, a height guessed from what the page holds. Reading the traces
costs what `epochwatch report` costs; it happens only when the notebook displays the value.
"""

from __future__ import annotations

from html import escape
from typing import Any

from epochwatch.report.page import html_page

# The iframe grows to its page's height once loaded: the notebook's own script, reading a
# same-origin srcdoc (the sandbox lets no script of the page run).
_FIT = "this.style.height=(this.contentDocument.documentElement.scrollHeight+24)+'px'"


class Findings(list[dict[str, Any]]):
    """The findings so far, fit by fit; `traces` are where each fit's records are."""

    def __init__(self, findings: list[dict[str, Any]], traces: list[str] | str | None = None) -> None:
        super().__init__(findings)
        self.traces = [traces] if isinstance(traces, str) else [t for t in traces or [] if t]

    @property
    def trace(self) -> str | None:
        """The last fit's trace."""
        return self.traces[-1] if self.traces else None

    def by_fit(self) -> dict[str | None, list[dict[str, Any]]]:
        """{run_id: its findings}, oldest fit first."""
        groups: dict[str | None, list[dict[str, Any]]] = {}
        for f in self:
            groups.setdefault(f.get("run_id"), []).append(f)
        return groups

    def _repr_html_(self) -> str:
        try:
            page = html_page(self.traces) if self.traces else None
        except Exception:  # a display never raises into the notebook: the plain list instead
            page = None
        if page is None:
            rows = "".join(
                f"<li><b>{escape(str(f.get('severity')))}</b> {escape(str(f.get('kind')))}: "
                f"{escape(str(f.get('title')))}</li>"
                for f in self
            )
            return f"<p>epochwatch: {len(self)} finding(s)</p><ul>{rows}</ul>"
        guess = 200 + 120 * len(self) + 260 * page.count("<svg")
        return (
            f'<iframe srcdoc="{escape(page, quote=True)}" onload="{_FIT}" '
            f'style="width:100%;height:{guess}px;border:1px solid #ddd" '
            'sandbox="allow-same-origin"></iframe>'
        )
