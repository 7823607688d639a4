"""One moment per finding: the title, the evidence and the header quote the same epoch's
numbers in the JSON, the text and the HTML report (epochs from 1 in all human text), and an
episode's update says when it was first seen apart."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

from bench import synthetic as syn
from epochwatch.analysis import frameworks
from epochwatch.analysis.files import analyze_file
from epochwatch.analysis.units import evidence_unit, fmt_in
from epochwatch.report import html as html_report
from epochwatch.report import json as json_report
from epochwatch.report import text as text_report
from epochwatch.report.summary import summarize

GIB, MIB = syn.GIB, syn.MIB
N = 90


def _run(tmp_path: Path) -> dict[str, Any]:
    """A run whose memory, checkpoint directory and epoch time all grow, faster later (so
    every episode is updated after it is first reported)."""
    rng = random.Random(3)
    ckpt = str(tmp_path / "ckpt")

    def make(i: int) -> dict[str, Any]:
        late = max(0, i - 40)
        return {
            "seconds": syn.noisy(rng, 1.0 + 0.01 * i + 0.04 * late, 0.02),
            "host": syn.host_block(2 * GIB + 20 * MIB * i + 60 * MIB * late),
            "dirs": {ckpt: {"bytes": 30 * MIB * i + 90 * MIB * late, "files": i, "role": "checkpoint"}},
        }

    path = syn.write(tmp_path / "r.jsonl", syn.trace(N, make, run_id="r"))
    return summarize(analyze_file(path))


def test_title_evidence_and_header_quote_one_epoch(tmp_path: Path) -> None:
    run = _run(tmp_path)
    out = io.StringIO()
    json_report.render(out, [run])
    findings = json.loads(out.getvalue())["runs"][0]["findings"]
    kinds = {f["kind"] for f in findings}
    assert {"host_memory_growth", "disk_growth", "slowdown"} <= kinds, kinds
    text, html = io.StringIO(), io.StringIO()
    text_report.render(text, [run])
    html_report.render(html, [run])
    for f in findings:
        if f["kind"] not in ("host_memory_growth", "disk_growth", "slowdown"):
            continue
        ev, as_of = f["evidence"], f["as_of"]
        assert f.get("update", 0) > 0 and as_of > f["epoch"], f  # an update: two moments
        assert ev["epochs"][-1] == as_of  # the evidence's window ends at the finding's moment
        unit = evidence_unit(f["kind"], ev)
        start, now = fmt_in(unit, ev["start"]), fmt_in(unit, ev["now"])
        assert f"{start} -> {now}" in f["title"], (f["title"], start, now)
        assert ev["now"] == ev["current"]
        # ... and the slope over the window joins them: "A -> B over epochs i-j" is one line.
        # (Where the slope drawn back over the window reaches zero, an accelerating growth
        # judged at the run's end, the title starts at the window's first value: leaks.shown_start.)
        rise = ev["slope_per_epoch"] * (ev["points"] - 1)
        if ev["now"] - rise > 1e-3 * ev["now"]:
            assert abs(ev["now"] - ev["start"] - rise) <= 1e-4 * ev["now"], ev
        else:
            assert 0 < ev["start"] < ev["now"], ev
        moment = f"epoch {as_of + 1} (first seen at epoch {f['epoch'] + 1})"
        line = next(
            x
            for x in text.getvalue().splitlines()
            if x.strip().startswith(f["severity"].upper()) and f["kind"] in x
        )
        assert f"@{moment}: {f['title']}" in line
        shown = ev["epochs"]
        assert f"epochs {shown[0] + 1}-{as_of + 1}" in text.getvalue()
        assert f"{f['kind']}</span>" in html.getvalue() and moment in html.getvalue()
        assert f"<dt>now</dt><dd>{now}</dd>" in html.getvalue()


def test_a_fix_does_not_send_the_user_to_find_what_the_look_inside_named(tmp_path: Path) -> None:
    def make(i: int) -> dict[str, Any]:
        return {"host": syn.host_block(2 * GIB + 100 * MIB * i)}

    records = syn.trace(30, make, run_id="named")
    place = {"file": "train.py", "line": 31, "function": "Keep.on_epoch_end", "bytes": 100 * MIB}
    explain = {"type": "explain", "run_id": "named", "explains": "host_memory_growth", "where": [place]}
    records.insert(-1, {**explain, "summary": "at train.py:31 Keep.on_epoch_end"})
    plain = summarize(analyze_file(syn.write(tmp_path / "plain.jsonl", syn.trace(30, make, run_id="p"))))
    named = summarize(analyze_file(syn.write(tmp_path / "named.jsonl", records)))
    (before,) = (f for f in plain["findings"] if f["kind"] == "host_memory_growth")
    (after,) = (f for f in named["findings"] if f["kind"] == "host_memory_growth")
    assert frameworks.TRACEMALLOC in before["hint"] and "where" not in before
    assert after["where"]["summary"] == "at train.py:31 Keep.on_epoch_end"
    assert frameworks.TRACEMALLOC not in after["hint"] and frameworks.NAMED in after["hint"]


def test_a_fix_does_not_ask_for_the_profile_the_look_inside_saved(tmp_path: Path) -> None:
    def make(i: int) -> dict[str, Any]:
        return {"seconds": 1.0 + 0.1 * i}

    records = syn.trace(30, make, run_id="profiled")
    capture = {"type": "explain", "run_id": "profiled", "explains": "slowdown", "method": "profiler"}
    ops = [{"op": "while/matmul (MatMul)", "share": 0.8, "seconds_per_step": 0.2}]
    records.insert(-1, {**capture, "where": [], "profile_dir": "/t/run.profile", "ops": ops, "summary": "s"})
    plain = summarize(analyze_file(syn.write(tmp_path / "plain.jsonl", syn.trace(30, make, run_id="p"))))
    profiled = summarize(analyze_file(syn.write(tmp_path / "profiled.jsonl", records)))
    (before,) = (f for f in plain["findings"] if f["kind"] == "slowdown")
    (after,) = (f for f in profiled["findings"] if f["kind"] == "slowdown")
    assert before["hint"].startswith(frameworks.PROFILE_IT), before["hint"]
    assert after["where"]["profile_dir"] == "/t/run.profile" and after["where"]["ops"] == ops
    # The ops are named: the Python-side "usual causes" are what the profile ruled out.
    assert after["hint"] == frameworks.PROFILED, after["hint"]


def test_a_slowdowns_fix_follows_where_the_stack_samples_put_it() -> None:
    """Inside the compiled step (no profile): the framework's profiler, and what grows a
    step, not Python-side state; on a callback's line: that code first, then the usual
    causes; nowhere in particular: the advice as it was."""
    from epochwatch.explain import frames

    said = frameworks.hint("slowdown", frameworks.TORCH, "unused")
    profile, causes = said.split(";", 1)

    def fixed(*places: tuple[str, float], profiled: bool = False) -> str:
        where: dict[str, Any] = {
            "summary": "s",
            "places": [
                {"category": c, "label": c, "site": "train.py:40", "function": "f", "share": share}
                for c, share in places
            ],
        }
        if profiled:
            where["profile_dir"] = "/t/run.profile"
        found = [{"kind": "slowdown", "hint": said, "where": where}]
        frameworks.after_look_inside(found)
        return str(found[0]["hint"])

    assert fixed((frames.COMPILED, 0.9)) == f"{profile}; {frameworks.IN_STEP}"
    assert "torch.profiler" in fixed((frames.COMPILED, 0.9)) and "Python-side" not in fixed(
        (frames.COMPILED, 0.9)
    )
    for category in (frames.CALLBACK, frames.USER, frames.INPUT):
        assert fixed((category, 0.7)) == f"{frameworks.AT_LINE};{causes}", category
        assert fixed((frames.FRAMEWORK, 0.5), (category, 0.3)) == f"{frameworks.AT_LINE};{causes}", category
    assert fixed((frames.FRAMEWORK, 0.9)) == said
    # A loaded host: a callback's growth is partly time inside the step; its causes stay.
    assert fixed((frames.COMPILED, 0.58), (frames.CALLBACK, 0.4)) == said
    assert (
        fixed((frames.COMPILED, 0.58), (frames.CALLBACK, 0.4), profiled=True)
        == f"{frameworks.PROFILED};{causes}"
    )
    assert fixed((frames.COMPILED, 0.9), (frames.CALLBACK, 0.1), profiled=True) == frameworks.PROFILED


def test_a_finding_on_one_fit_of_several_names_the_fit() -> None:
    from epochwatch.report.headline import moment

    f = {"kind": "input_bound", "epoch": 3, "evidence": {"fit": 2, "epochs": [1, 3]}}
    assert moment(f, fits=16) == "fit 3, epoch 4"  # a k-fold loop: which fold's epoch 4
    assert moment(f, fits=1) == "epoch 4"  # one fit: the epoch is enough
    loop = {"kind": "models_in_loop", "epoch": 0, "evidence": {"unit": "fit", "fits": [1, 7], "fit": 7}}
    assert moment(loop, fits=16) == "fit 8"  # a finding on the loop's fits: by its fit only


def test_a_finding_on_windows_of_calls_names_the_window() -> None:
    """Train, then serve (tensorflow#33030): a finding on the 8th window of predict calls after
    a 5-epoch fit said "@epoch 8" beside table rows 1-5 and w1-w8."""
    from epochwatch.report.headline import moment

    f = {
        "kind": "host_memory_growth",
        "epoch": 2,
        "as_of": 7,
        "evidence": {"of_windows": True, "fit": 0, "slope_per_epoch": 26 * MIB, "epochs": [1, 7]},
    }
    assert moment(f, fits=2) == "window 8 (first seen at window 3)"
    said = text_report._evidence(f)
    assert "MiB/window" in said and "windows 2-8" in said and "epoch" not in said
