"""Run one real user's script (synthetic data) with and without the hook, then `report`.

    PYTHONPATH=$PWD python bench/real_scripts/run.py bench/real_scripts/kfold_imagegen.py [--only-hook]

Leaves its files in a temporary directory it names (the traces under hook/traces).
Prints, for each run: exit code, wall seconds, the child's CPU seconds (user+sys) and max
RSS; with the hook, the live closing line (stderr) and `epochwatch report` on its trace, so
the two can be compared (issue 23: online and offline must say the same).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOOK = "import epochwatch.hook, runpy, sys; sys.argv=[{p!r}]; runpy.run_path({p!r}, run_name='__main__')"
PLAIN = "import runpy, sys; sys.argv=[{p!r}]; runpy.run_path({p!r}, run_name='__main__')"


def run(script: Path, hook: bool, work: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOCHWATCH_")}
    env.update(
        EPOCHWATCH_DIR=str(work / "traces"),
        EPOCHWATCH_SOCKET=str(work / "no-daemon.sock"),
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
    )
    code = (HOOK if hook else PLAIN).format(p=str(script.resolve()))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(
        f"== {'hook' if hook else 'plain'}: rc {proc.returncode}, wall {wall:.1f}s, cpu {cpu:.1f}s, "
        f"maxrss {after.ru_maxrss / 1024:.0f} MiB, load {os.getloadavg()[0]:.1f}"
    )
    for line in proc.stdout.splitlines()[-4:]:
        print("  out:", line)
    for line in proc.stderr.splitlines():
        if "epochwatch" in line or "Traceback" in line or "Error" in line:
            print("  err:", line)
    if hook:
        for trace in sorted((work / "traces").rglob("*.jsonl")):
            rep = subprocess.run(
                [sys.executable, "-m", "epochwatch", "report", str(trace)],
                capture_output=True,
                text=True,
                env=env,
            )
            print(rep.stdout[-6000:])


if __name__ == "__main__":
    script = Path(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix=f"real-{script.stem}-")  # kept: `epochwatch report` it again
    if "--only-hook" not in sys.argv:
        (Path(tmp) / "plain").mkdir()
        run(script, False, Path(tmp) / "plain")
    (Path(tmp) / "hook").mkdir()
    run(script, True, Path(tmp) / "hook")
