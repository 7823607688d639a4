"""The shipped job rules on a real job: a 2-worker MultiWorkerMirroredStrategy job on localhost
(tests/integration/mwms_job.py, the `mwms_jobs` fixture that test_distributed.py reads too),
its traces replayed through daemon Sessions and the
collector (worker i as if on host i, one epoch a minute) into `promtool test rules`.

The unit test (tests/unit/test_prometheus_rules.py) shapes its jobs by hand; this one takes
what a real job writes (a custom loop: steps counted, no median step time, the all-reduce
timed around the `tf.function` that holds it), which is where a rule on a series that only
Keras' fit writes would go silent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from epochwatch.daemon.session import Session
from epochwatch.trace.reader import iter_records
from tests.integration.mwms_job import EPOCHS  # minutes of the replay: the straggler alert waits 15 of them
from tests.unit.test_prometheus_rules import (
    COMM_ALERT,
    STRAGGLER,
    _expect,
    alert_labels,
    play,
    promtool,  # noqa: F401  (the fixture)
    run_promtool,
    worker_sessions,
)


def _workers(traces: Path, state_dir: Path) -> tuple[list[Session], list[list[dict[str, Any]]]]:
    """Sessions of the job's two workers (in worker order) and each one's epoch records."""
    runs = []
    for path in traces.glob("*.jsonl"):
        records = list(iter_records(path))
        start = next(r for r in records if r.get("type") == "run_start")
        runs.append(
            (start["env"]["distributed"]["worker"], start, [r for r in records if r["type"] == "epoch"])
        )
    runs.sort(key=lambda run: run[0])
    assert [name for name, _, _ in runs] == ["worker:0", "worker:1"]
    return worker_sessions(state_dir, [start for _, start, _ in runs]), [epochs for _, _, epochs in runs]


@pytest.mark.slow
def test_a_real_jobs_straggler_fires_for_it_alone_and_a_balanced_job_fires_nothing(
    promtool: str,  # noqa: F811
    tmp_path: Path,
    mwms_jobs: dict[str, Path],
) -> None:
    for name, traces in mwms_jobs.items():
        workers, epochs = _workers(traces, tmp_path / name / "state")
        try:
            assert [len(e) for e in epochs] == [EPOCHS, EPOCHS]
            inputs = play(workers, epochs)
            expected = [_expect(f"{m}m", a) for m in (10, EPOCHS - 1) for a in (STRAGGLER, COMM_ALERT)]
            if name == "straggler":
                slow = {**alert_labels(workers[1], "gpu-b"), "alertname": STRAGGLER}
                expected = [_expect("10m", STRAGGLER), _expect(f"{EPOCHS - 1}m", STRAGGLER, slow)]
                expected.append(_expect(f"{EPOCHS - 1}m", COMM_ALERT))
            run_promtool(promtool, tmp_path / name, inputs, [{"alert_rule_test": expected}])
        finally:
            for s in workers:
                s.trace.close()
