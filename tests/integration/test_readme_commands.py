"""Every shell block of the README that is safe to run here runs, as written, with bash -e.

A block is run in a scratch directory that looks like a user's after a first traced run:
`train.py` (standing in for the user's script: a loop with the hook's own API, no framework),
`epochwatch-traces/` from two runs of it, and `run.jsonl`, `base.jsonl`, `resumed.jsonl` named
as the README names them. `python` and `epochwatch` on PATH are this checkout's. Blocks that
need root, systemd, the network or minutes say so in a marker above them (tests/readme_blocks.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.readme_blocks import Block, shell_blocks
from tests.support import REPO, child_env

README = REPO / "README.md"
RUNNABLE = [b for b in shell_blocks(README) if b.skip is None]

TRAIN = textwrap.dedent(
    """\
    # Stands in for the user's train.py: a custom loop with the hook (docs: README, "Attach it").
    import argparse
    import time

    from epochwatch import hook

    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    for n in range(parser.parse_args().epochs):
        with hook.epoch(n):
            for _ in range(4):
                with hook.step():
                    time.sleep(0.002)
            hook.log(loss=1.0 / (n + 1))
    """
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    work = tmp_path_factory.mktemp("readme")
    bin_dir = work / ".bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "epochwatch").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m epochwatch "$@"\n')
    (bin_dir / "epochwatch").chmod(0o755)
    (work / "train.py").write_text(TRAIN)
    env = child_env(work)
    del env["EPOCHWATCH_DIR"]  # the default, ./epochwatch-traces, as a user has it
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", HOME=str(work), TMPDIR=str(work), EPOCHWATCH_QUIET="1"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "train.py"], cwd=work, env=env, check=True, timeout=120)
    first, second = sorted((work / "epochwatch-traces").glob("*.jsonl"))
    for name, trace in (("run.jsonl", first), ("base.jsonl", first), ("resumed.jsonl", second)):
        shutil.copy(trace, work / name)
    return work, env


def test_some_readme_commands_run_here() -> None:
    assert len(RUNNABLE) >= 3, [b.id for b in RUNNABLE]


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.id)
def test_readme_shell_block_runs(block: Block, workdir: tuple[Path, dict[str, str]]) -> None:
    work, env = workdir
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.text],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (
        f"README line {block.line}:\n{block.text}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )


def test_the_run_block_traced_the_script(workdir: tuple[Path, dict[str, str]]) -> None:
    """`epochwatch run -- python train.py --epochs 50` made a trace of 50 epochs."""
    (block,) = [b for b in RUNNABLE if "epochwatch run --" in b.text]
    work, env = workdir
    before = set((work / "epochwatch-traces").glob("*.jsonl"))
    subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=work, env=env, check=True, timeout=300)
    (new,) = set((work / "epochwatch-traces").glob("*.jsonl")) - before
    assert new.read_text().count('"type":"epoch"') == 50
