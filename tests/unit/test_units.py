"""One home for units: a finding's evidence reads the same in the text report, the HTML
report and the exporters."""

from __future__ import annotations

import io
from typing import Any

from epochwatch.analysis.units import BYTES_KINDS, evidence_unit, fmt_evidence, fmt_in
from epochwatch.report import html_evidence, text

MIB = 1 << 20


def _leak(kind: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "severity": "warning",
        "title": "grows",
        "evidence": {"slope_per_epoch": 16194600.0, "slope_ci95": [15 * MIB, 16 * MIB], "epochs": [3, 40]},
        "hint": "",
        "epoch": 40,
    }


def test_every_memory_kind_is_in_bytes_in_text_and_html_alike() -> None:
    assert "gpu_memory_pressure" in BYTES_KINDS  # the kind the text report's copy had lost
    for kind in BYTES_KINDS:
        f = _leak(kind)
        out = io.StringIO()
        text.render_findings(out, [f])
        rows = dict(html_evidence.items(f))
        assert "15.4 MiB/epoch" in out.getvalue(), out.getvalue()
        assert rows["slope per epoch"] == "15.4 MiB"


def test_units_by_kind_key_and_the_evidence_own_unit() -> None:
    assert evidence_unit("slowdown", {}) == "seconds"
    assert evidence_unit("disk_growth", {"series": "files"}) == "count"
    assert evidence_unit("input_bound", {"unit": "seconds"}) == "seconds"
    assert evidence_unit("retrace_storm", {"unit": "bogus"}) == "number"
    assert fmt_in("seconds", 0.25) == "250ms" and fmt_in("count", 3.0) == "3" and fmt_in("bytes", None) == "-"
    assert fmt_in("count", float("nan")) == "-"
    assert fmt_evidence("rss_bytes", 2 * MIB, "number") == "2.0 MiB"
    assert fmt_evidence("input_wait_share", 0.5, "number") == "50.0%"
    assert fmt_evidence("now", 0.5, "seconds") == "500ms"
