"""The console lines, the notices held back, the recorder's finding listeners and per-fit runs."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest

from epochwatch import notices
from epochwatch.analysis.findings import Finding, from_record
from epochwatch.console import LINE_LIMIT, Console, one_line, threshold, unknown_quiet, where_short
from epochwatch.recorder import Recorder
from epochwatch.trace.reader import iter_records


def _finding(kind: str, severity: str, title: str = "t", target: str | None = None) -> dict[str, Any]:
    return Finding(kind, severity, title, {"x": 1}, "fix it", target, 3).to_record("r")


def test_quiet_settings() -> None:
    assert threshold(None) == threshold("") == threshold("0") == 1  # warning and up
    assert threshold("critical") == 2 and threshold("INFO") == 0
    assert threshold("1") == threshold("yes") == 3  # silent
    assert threshold("bogus") == 1 and unknown_quiet("0") is None and unknown_quiet("Warning") is None
    out = io.StringIO()
    Console("bogus", out)
    (said,) = out.getvalue().splitlines()
    assert "EPOCHWATCH_QUIET='bogus' is not a setting" in said and "info, warning, critical" in said


def test_each_finding_once_at_its_level_at_the_next_boundary_and_a_closing_line() -> None:
    """Findings arrive on other threads at any moment: held until the next epoch boundary,
    then said naming the epoch their numbers are from, as report does (1-based, as Keras
    counts), not the trace's 0-based one, nor the epoch Keras printed last."""
    out = io.StringIO()
    console = Console(None, out)
    console.trace = "/t/run.jsonl"
    console.observe(_finding("slowdown", "warning", "epochs slow down"))
    console.observe(_finding("slowdown", "warning", "epochs slow down"))  # the daemon's copy, say
    console.observe(_finding("retrace_storm", "info"))  # below the level: kept, not printed
    assert out.getvalue() == ""  # mid-epoch: nothing yet
    console.boundary()
    console.observe(_finding("disk_growth", "critical", "x" * 300))
    long = (
        "host memory grows 22.9 MiB per epoch: 829 MiB -> 990 MiB; reaches the memory limit (23.5 GiB) in 9 h"
    )
    console.observe(_finding("host_memory_growth", "warning", long + " " + "y" * 10))
    console.close(12, "/t/run.jsonl")
    lines = out.getvalue().splitlines()
    assert lines[:1] == ["epochwatch: warning slowdown at epoch 4: epochs slow down"]
    assert (
        lines[1].startswith("epochwatch: critical disk_growth at epoch 4: xxx")
        and len(lines[1]) == LINE_LIMIT
    )
    assert lines[2] == (
        "epochwatch: warning host_memory_growth at epoch 4: host memory grows 22.9 MiB per epoch; "
        "reaches the memory limit (23.5 GiB) in 9 h " + "y" * 10
    )
    assert lines[3:] == [
        "epochwatch: 12 epochs, 1 critical, 2 warning, 1 info; details: epochwatch report /t/run.jsonl"
    ]
    assert console.closing_line(9, None, windows=4).startswith("5 epochs, 4 windows of calls, ")
    assert console.closing_line(1, None, windows=1).startswith("1 window of calls, ")
    assert [f["kind"] for f in console.findings] == [
        "slowdown",
        "retrace_storm",
        "disk_growth",
        "host_memory_growth",
    ]
    assert console.findings[0]["severity_rank"] == 1 and console.findings[0]["hint"] == "fix it"


def test_the_closing_line_says_when_nothing_could_be_written() -> None:
    out = io.StringIO()
    before = Console(None, out)
    before.observe(_finding("version_mismatch", "warning", "restored under another TF"))
    before.boundary()  # the first epoch's start: the restore's first epoch is named, as report does
    assert out.getvalue() == "epochwatch: warning version_mismatch at epoch 4: restored under another TF\n"
    out = io.StringIO()
    unplaced = Finding("version_mismatch", "warning", "restored under another TF", {}, "fix", None, None)
    before = Console(None, out)
    before.observe(unplaced.to_record("r"))
    before.boundary()  # a finding of no epoch: none is named
    assert out.getvalue() == "epochwatch: warning version_mismatch: restored under another TF\n"
    out = io.StringIO()
    Console(None, out).close(0, None, "cannot write the trace (Permission denied)")
    assert (
        out.getvalue()
        == "epochwatch: nothing was traced or checked: cannot write the trace (Permission denied)\n"
    )


def test_every_fit_of_a_kernel_keeps_its_findings() -> None:
    console = Console("1", io.StringIO())
    console.reset("fit-a")
    console.observe(_finding("host_memory_growth", "warning"))
    console.reset("fit-b")
    console.observe(_finding("slowdown", "info"))
    assert [(f["run_id"], f["kind"]) for f in console.findings] == [
        ("fit-a", "host_memory_growth"),
        ("fit-b", "slowdown"),
    ]
    assert len(console.ledger) == 1  # the current fit's ledger: what the closing line counts


def _update(before: dict[str, Any], n: int, at: int, **changes: Any) -> dict[str, Any]:
    evidence = {**before["evidence"], "updated_epoch": at, **changes.pop("evidence", {})}
    return {**before, **changes, "type": "finding_update", "update": n, "as_of": at, "evidence": evidence}


def test_updates_replace_the_finding_and_are_said_only_when_news() -> None:
    """A slowdown raised at epoch 3 before its cause could be tested: growth alone is not
    said again, naming the cause is, and so is a graver severity; hook.findings() holds
    each finding as last reported; a late older state changes nothing. Each boundary
    says each finding once, as last reported."""
    out = io.StringIO()
    console = Console(None, out)

    def said(*records: dict[str, Any]) -> list[str]:
        before = len(out.getvalue().splitlines())
        for rec in records:
            console.observe(rec)
        console.boundary()
        return out.getvalue().splitlines()[before:]

    first = _finding("slowdown", "warning", "epoch time grows")
    assert said(first) == ["epochwatch: warning slowdown at epoch 4: epoch time grows"]
    grew = _update(first, 1, 6, title="epoch time grows more")
    assert said(grew) == []
    cause = [{"series": "time in callback Blocker", "test": "accounts"}]
    explained = _update(
        grew, 2, 9, title="grows; likely cause: callback Blocker", evidence={"likely_causes": cause}
    )
    assert said(explained, grew) == [  # the daemon's copy of an older state, late
        "epochwatch: warning slowdown at epoch 10 (update): grows; likely cause: callback Blocker"
    ]
    graver = _update(
        explained, 3, 12, severity="critical", title="grows a lot; likely cause: callback Blocker"
    )
    assert said(graver) == [
        "epochwatch: critical slowdown at epoch 13 (update): grows a lot; likely cause: callback Blocker"
    ]
    ended = _update(graver, 4, 15, ended_epoch=15, title="... recovered at epoch 15")
    assert said(ended) == []
    (shown,) = console.findings
    assert shown["update"] == 4 and shown["ended_epoch"] == 15 and shown["severity"] == "critical"
    assert shown["evidence"]["likely_causes"] == cause and shown["epoch"] == 3
    # The end's verdict that a problem said live stopped is said too, milder or not: else a
    # critical storm said at epoch 2 and a closing line's "1 warning" disagree unexplained.
    storm = _finding("retrace_storm", "critical", "retraced 13 times", target="step")
    assert said(storm)
    stopped = _update(
        storm, 1, 9, severity="warning", title="retraced 19 times; no new trace after epoch 7",
        evidence={"stopped_growing": True},
    )  # fmt: skip
    assert said(stopped) == [
        "epochwatch: warning retrace_storm at epoch 10 (update): retraced 19 times; no new trace after epoch 7"
    ]
    leak = _finding("host_memory_growth", "warning", "grows 3 MiB per epoch")
    assert said(leak)
    held = _update(
        leak, 1, 29, severity="info", title="grows; then stopped growing", evidence={"stopped_growing": True}
    )
    assert said(held) == [
        "epochwatch: info host_memory_growth at epoch 30 (update): grows; then stopped growing"
    ]
    # Cut to fit, the verdict keeps what says it stopped.
    long = "tf.function `step` retraced 19 times since its first trace: argument `xb` changes shape; RSS +71.1 MiB"
    title = f"{long}, 7% of the time tracing; no new trace after epoch 7"
    line = Console(None, io.StringIO()).finding_line(
        from_record(_update(storm, 2, 9, title=title, evidence={"stopped_growing": True}))
    )
    assert line.endswith("retraced 19 times since its first trace; no new trace after epoch 7"), line


def test_quiet_prints_nothing_and_titles_stay_on_one_line() -> None:
    out = io.StringIO()
    console = Console("1", out)
    console.observe(_finding("slowdown", "critical"))
    console.close(3, None)
    assert out.getvalue() == "" and len(console.findings) == 1
    assert one_line("a\nb\x1b[31mc") == "a\\u000ab\\u001b[31mc"  # shown, not obeyed (text_safety.escape)


def test_once_per_host_uses_a_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("EPOCHWATCH_DEBUG", raising=False)
    monkeypatch.setattr(notices, "in_training_process", True)
    notices.once_per_host("k", "the temp dir is big")
    notices.once_per_host("k", "the temp dir is big")
    notices.host_fact("no NVIDIA driver here")
    assert capsys.readouterr().err.count("the temp dir is big") == 1
    monkeypatch.setenv("EPOCHWATCH_DEBUG", "1")
    notices.host_fact("no NVIDIA driver here")
    assert "no NVIDIA driver here" in capsys.readouterr().err


def test_a_failing_finding_listener_is_switched_off_once(tmp_path: Path, capsys: Any) -> None:
    rec = Recorder({"EPOCHWATCH_DIR": str(tmp_path / "traces"), "EPOCHWATCH_SOCKET": str(tmp_path / "no")})
    seen: list[str] = []

    def broken(_f: dict[str, Any]) -> None:
        raise RuntimeError("the tracking server said no")

    rec.add_finding_listener(broken, "mlflow export")
    rec.add_finding_listener(lambda f: seen.append(f["kind"]), "console")
    for kind in ("slowdown", "disk_growth"):
        rec.emit(
            "finding", **{k: v for k, v in _finding(kind, "warning").items() if k not in ("type", "run_id")}
        )
    rec.finish("completed")
    assert seen == ["slowdown", "disk_growth"]
    err = capsys.readouterr().err
    assert err.count("mlflow export disabled: RuntimeError: the tracking server said no") == 1


def test_reopen_starts_a_new_run_after_each_fit(tmp_path: Path) -> None:
    rec = Recorder({"EPOCHWATCH_DIR": str(tmp_path / "traces"), "EPOCHWATCH_SOCKET": str(tmp_path / "no")})
    ended: list[tuple[int, str | None]] = []
    rec.after_finish(lambda epochs, trace: ended.append((epochs, trace)))
    first = rec.run_id
    for n in range(2):
        rec.begin_epoch(n, "loop")
        rec.end_epoch()
    rec.finish("completed", reopen=True)
    assert rec.run_id != first and not rec.started
    rec.begin_epoch(0, "loop")
    rec.end_epoch()
    rec.finish("completed")
    traces = sorted((tmp_path / "traces").glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
    assert len(traces) == 2
    for path, epochs in zip(traces, (2, 1), strict=True):
        records = list(iter_records(path))
        assert records[-1]["type"] == "run_end" and records[-1]["epochs"] == epochs
    assert [e for e, _ in ended] == [2, 1] and all(t and t.endswith(".jsonl") for _, t in ended)


def test_in_the_daemons_log_a_notice_takes_the_logs_format(capsys: Any) -> None:
    """The daemon's journal has one format: what the shared code says (a sampler's notice,
    a disabled part) is a timestamped log line there, not a bare `epochwatch:` line."""
    import logging

    from epochwatch.cli.daemon import setup_logging
    from epochwatch.guard import say

    log = logging.getLogger("epochwatch")
    kept = (log.handlers[:], log.level, log.propagate)
    try:
        setup_logging("info")
        say("NVML unavailable")
    finally:
        log.handlers[:], log.level, log.propagate = kept
    say("in a training process: a line of its own")
    err = capsys.readouterr().err.splitlines()
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ epochwatch WARNING NVML unavailable$", err[0]), err
    assert err[1:] == ["epochwatch: in a training process: a line of its own"]


def test_a_line_says_the_finding_as_last_reported_when_updates_came_before_the_boundary() -> None:
    """tf32157's run: a slowdown found mid-epoch ("479ms -> 576ms"), then updated twice
    before the epoch ended, not graver (no line of their own): the line at the boundary
    said the first numbers while `report` said the last ("1.10s -> 1.25s")."""
    out = io.StringIO()
    console = Console(None, out)
    first = Finding("slowdown", "warning", "step time grows: 479ms -> 576ms", {}, "fix", "step time", 3)
    console.observe(first.to_record("r"))
    for update, title in ((1, "step time grows: 594ms -> 731ms"), (2, "step time grows: 1.10s -> 1.25s")):
        rec = Finding("slowdown", "warning", title, {}, "fix", "step time", 3, update=update, as_of=3)
        console.observe(rec.to_record("r"))
    console.close(4, None)
    lines = out.getvalue().splitlines()
    assert lines[0] == "epochwatch: warning slowdown at epoch 4: step time grows: 1.10s -> 1.25s", lines
    assert len([line for line in lines if "slowdown" in line]) == 1


def test_the_explained_line_says_a_site_once() -> None:
    """A place of the user's own code carries its site in its label; a callback's does not."""
    user = {"share": 0.41, "label": "<module> (train.py:31)", "site": "train.py:31"}
    callback = {"share": 0.62, "label": "Audit.on_train_batch_end", "site": "train.py:12"}
    assert where_short({"places": [user]}) == "41% in <module> (train.py:31)"
    assert where_short({"places": [callback]}) == "62% in Audit.on_train_batch_end (train.py:12)"
    step = {
        "category": "inside the compiled step",
        "label": "inside the compiled step",
        "site": "t.py:20",
        "share": 0.92,
    }
    assert where_short({"places": [step]}) == "92% inside the compiled step (t.py:20)"


def test_a_retrace_storms_line_keeps_its_cause_when_the_title_is_cut() -> None:
    """pix2pix's storm: the line kept the cost and dropped the argument to fix ("argument
    `epoch` changes value"); a growth's line still keeps its consequence over its detail."""
    out = io.StringIO()
    console = Console(None, out)
    storm = (
        "tf.function `train_step` retraced 4 times after warm-up: argument `epoch` changes value; "
        "RSS +96.5 MiB, 24% of the time tracing, 0.45 s of graph building per new trace"
    )
    grows = (
        "host memory grows 22.9 MiB per epoch: 829 MiB -> 990 MiB over epochs 2-9; "
        "reaches the memory limit (23.5 GiB) in about 1046 epochs (9 h)"
    )
    console.observe(_finding("retrace_storm", "warning", storm, target="train_step"))
    console.observe(_finding("host_memory_growth", "warning", grows))
    console.boundary()
    first, second = out.getvalue().splitlines()
    assert first == (
        "epochwatch: warning retrace_storm at epoch 4: tf.function `train_step` retraced 4 times "
        "after warm-up: argument `epoch` changes value"
    )
    assert second == (
        "epochwatch: warning host_memory_growth at epoch 4: host memory grows 22.9 MiB per epoch; "
        "reaches the memory limit (23.5 GiB) in about 1046 epochs (9 h)"
    )
