"""Every view of one run shows the same findings and the same counts (issue 21: one ledger;
issue 26: `top` said "2 warn" for a warning and an info, and 57 retraces where the HTML
report said 68).

One real Keras fit with a planted leak (24 MB kept every epoch) and a planted retrace (a
tf.function called with a new Python float every epoch) writes its trace; then the same
run is read by every view: `hook.findings()` in the training process after the run ended,
the console's closing line on its stderr, `epochwatch report` as JSON and as text,
`epochwatch check`, `top` tailing the trace file and the console fed the trace. Each must
name the same (kind, target, severity) set and the same counts per severity, and the
retrace count must be the same in the report and in `top`.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from epochwatch.analysis.findings import SEVERITIES
from epochwatch.analysis.ledger import counts_text
from epochwatch.cli import main
from epochwatch.console import Console
from epochwatch.top import layout
from epochwatch.top.model import RunState
from epochwatch.top.tail import TraceTail
from epochwatch.trace.reader import iter_records
from tests.support import child_env, run_python, trace_files

LEAK_AND_RETRACES = """
import atexit, json, sys

def dump():  # registered before the hook's own exit handler: runs after the run ended
    from epochwatch import hook
    with open("hook_findings.json", "w") as fh:
        json.dump(list(hook.findings()), fh)

atexit.register(dump)

import epochwatch.hook
import numpy as np
import keras
import tensorflow as tf

np.random.seed(0)
x = np.random.rand(256, 8).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
model.compile("adam", "mse")

@tf.function
def scaled(v, factor):
    return v * factor

class Planted(keras.callbacks.Callback):
    kept = []
    def on_epoch_end(self, epoch, logs=None):
        self.kept.append(np.full(3_000_000, float(epoch)))  # 24 MB an epoch, never freed
        scaled(tf.constant(1.0), float(epoch))  # a new Python float: a new trace every epoch

model.fit(x, y, epochs=30, batch_size=64, verbose=0, callbacks=[Planted()])
"""

Key = tuple[str, str | None, str]


def _keys(findings: list[dict[str, Any]]) -> Counter[Key]:
    return Counter((str(f["kind"]), f.get("target"), str(f["severity"])) for f in findings)


def _counts(keys: Counter[Key]) -> dict[str, int]:
    out = dict.fromkeys(SEVERITIES, 0)
    for (_kind, _target, severity), n in keys.items():
        out[severity] += n
    return out


def _cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    tmp = tmp_path_factory.mktemp("views")
    proc = run_python(LEAK_AND_RETRACES, tmp, env=child_env(tmp, XDG_CACHE_HOME=str(tmp / "cache")))
    (trace,) = trace_files(tmp)
    return trace, tmp / "hook_findings.json", proc.stderr


def test_every_view_names_the_same_findings_with_the_same_counts(planted: tuple[Path, Path, str]) -> None:
    trace, hook_file, stderr = planted
    views: dict[str, Counter[Key]] = {}

    views["hook.findings()"] = _keys(json.loads(hook_file.read_text()))

    code, out = _cli("report", str(trace), "--format", "json")
    run = json.loads(out)["runs"][0]
    views["report json"] = _keys(run["findings"])
    assert run["finding_counts"] == _counts(views["report json"])

    code, text = _cli("report", str(trace))
    line = re.compile(
        r"^  (INFO|WARNING|CRITICAL) +(\w+)(?: \[(.+?)\])?"
        r"(?: @(?:epoch|fit) \d+(?: \(first seen at (?:epoch|fit) \d+\))?)?(?: \[from trace\])?: "
    )
    views["report text"] = Counter(
        (m[2], m[3], m[1].lower()) for m in map(line.match, text.splitlines()) if m is not None
    )

    code, checked = _cli("check", str(trace), "--fail-on", "info")
    line = re.compile(r"^.+\.jsonl: (info|warning|critical) (\w+)(?: \[(.+?)\])?: ")
    views["check"] = Counter(
        (m[2], m[3], m[1]) for m in map(line.match, checked.splitlines()) if m is not None
    )
    assert code == (1 if views["check"] else 0)

    tail = TraceTail(trace, RunState(run_id="?"))
    tail.poll()
    views["top"] = Counter((f.kind, f.target, f.severity) for f in tail.state.findings.findings())

    console = Console(quiet="1", stream=io.StringIO())
    for rec in iter_records(trace):
        if rec.get("type") in ("finding", "finding_update"):
            console.observe(rec)
    views["console"] = _keys(console.findings)

    first = views["report json"]
    assert first, f"the planted leak was not found: {stderr[-3000:]}"
    assert ("host_memory_growth", None) in {(k, t) for k, t, _ in first}
    for name, keys in views.items():
        assert keys == first, f"{name} disagrees with the report: {keys} != {first}"

    counts = _counts(first)
    said = counts_text(counts)
    closing = [ln for ln in stderr.splitlines() if re.match(r"^epochwatch: \d+ epochs, ", ln)]
    assert len(closing) == 1 and f"epochs, {said};" in closing[0], (said, closing)
    assert f"findings ({sum(counts.values())}: {said})" in text
    row = layout.render([tail.state], 200, 24, source="x")[2].text
    assert counts_text(counts, short=True) in row


def test_the_report_and_top_count_the_same_retraces(planted: tuple[Path, Path, str]) -> None:
    trace, _, _ = planted
    _, out = _cli("report", str(trace), "--format", "json")
    reported = json.loads(out)["runs"][0]["retraces_after_warmup"]
    tail = TraceTail(trace, RunState(run_id="?"))
    tail.poll()
    assert reported >= 20  # one planted trace an epoch after the first (some may share an epoch)
    assert tail.state.retraces == reported
    _, text = _cli("report", str(trace))
    assert f"{reported} new tf.function traces after warm-up" in text
