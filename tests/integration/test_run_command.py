"""`epochwatch run -- python train.py`: attach with no change to the script."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import child_env, of_type, read_single_trace, trace_files

SCRIPT = """
import sys
import numpy as np, keras
x = np.random.default_rng(0).normal(size=(256, 4)).astype("float32")
y = x.sum(axis=1)
m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
m.compile("sgd", "mse")
m.fit(x, y, epochs=int(sys.argv[1]), batch_size=32, verbose=0)
print("script output", flush=True)
sys.exit(int(sys.argv[2]))
"""


def _shape(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    # `interval` records come every 0.2 s inside an epoch: how many is the machine's speed
    # (a loaded one slows an epoch past it), not how the hook was attached.
    types = [r["type"] for r in records if r["type"] not in ("watch", "interval")]
    epoch_keys = [sorted(e) for e in of_type(records, "epoch")]
    return types, epoch_keys


@pytest.mark.slow  # two trained runs to compare, and a third interpreter
def test_run_matches_import_hook_and_passes_exit_code_and_output(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(textwrap.dedent(SCRIPT))
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import os\nos.environ['SITE_WAS_HERE'] = 'yes'\n")
    (tmp_path / "check_site.py").write_text(
        "import os, sys\nsys.exit(0 if os.environ.get('SITE_WAS_HERE') else 9)\n"
    )

    a = tmp_path / "a"
    a.mkdir()
    env = child_env(a)
    env["PYTHONPATH"] = str(site) + ":" + env["PYTHONPATH"]
    run = [sys.executable, "-m", "epochwatch", "run", "--"]
    proc = subprocess.run(
        [*run, sys.executable, str(tmp_path / "train.py"), "3", "7"],
        cwd=a,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout == "script output\n"
    via_run = read_single_trace(a)

    # The shadowed sitecustomize still ran in the child.
    chained = subprocess.run(
        [*run, sys.executable, str(tmp_path / "check_site.py")], cwd=a, env=env, timeout=60
    )
    assert chained.returncode == 0

    b = tmp_path / "b"
    b.mkdir()
    hooked = tmp_path / "hooked.py"
    hooked.write_text("import epochwatch.hook\n" + textwrap.dedent(SCRIPT))
    proc_b = subprocess.run(
        [sys.executable, str(hooked), "3", "0"],
        cwd=b,
        env=child_env(b),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc_b.returncode == 0, proc_b.stderr
    via_import = read_single_trace(b)

    assert _shape(via_run) == _shape(via_import)
    assert [e["epoch"] for e in of_type(via_run, "epoch")] == [0, 1, 2]
    # exit code 7 is SystemExit, which is a normal end of the script, as with the hook imported
    assert via_run[-1]["ended"] == via_import[-1]["ended"] == "completed"


def test_run_without_a_command_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "epochwatch", "run"],
        capture_output=True,
        text=True,
        env=child_env(tmp_path),
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "nothing to run" in proc.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "epochwatch", "run", "--", "no-such-program-xyz"],
        capture_output=True,
        text=True,
        env=child_env(tmp_path),
        timeout=60,
    )
    assert missing.returncode == 127 and "cannot run" in missing.stderr
    assert trace_files(tmp_path) == []
