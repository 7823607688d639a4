"""Reproduce GPU contention on a real GPU: a traced trainer, and a second process whose GPU work ramps up.

Starts a private epochwatch daemon, a trainer attached to it (a custom loop traced with
`hook.epoch`), and after WARMUP seconds a second process that computes on the same GPU
for a growing share of every 100 ms (0 -> 100% over RAMP seconds). Then reports the
daemon's trace and says whether `gpu_contention` named the other process and whether the
slowdown's likely cause names the GPU. Uses PyTorch when it is installed, else TensorFlow.

    python examples/gpu_contention.py [--epochs 300] [--warmup 10] [--ramp 30] [--out DIR]

Exit 0 when gpu_contention named the second process, 1 when it did not, 2 when there is
no usable GPU. The roles `train` and `hog` are how the script runs its own children.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _framework() -> str:
    try:
        import torch  # noqa: F401

        return "torch"
    except ImportError:
        return "tensorflow"


def _torch_work(size: int) -> tuple[object, object]:
    import torch

    if not torch.cuda.is_available():
        sys.exit("no CUDA device visible to PyTorch")
    a = torch.randn(size, size, device="cuda")

    def step() -> None:
        nonlocal a
        a = (a @ a).clamp_(-1, 1)

    return step, torch.cuda.synchronize


def _tf_work(size: int) -> tuple[object, object]:
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    if not gpu and not os.environ.get("EW_ALLOW_CPU"):
        sys.exit("no GPU visible to TensorFlow")
    with tf.device("/GPU:0" if gpu else "/CPU:0"):
        a = tf.Variable(tf.random.normal([size, size]))

    @tf.function
    def _step() -> None:
        a.assign(tf.clip_by_value(tf.matmul(a, a), -1.0, 1.0))

    def sync() -> None:
        _ = a.numpy()[0, 0]

    return _step, sync


def _work(size: int) -> tuple[object, object]:
    return _torch_work(size) if _framework() == "torch" else _tf_work(size)


def train(epochs: int, steps: int) -> None:
    """The traced trainer: `steps` matrix products per epoch, synchronised at each epoch end."""
    from epochwatch import hook

    step, sync = _work(int(os.environ.get("EW_SIZE", "4096")))
    for n in range(epochs):
        with hook.epoch(n):
            for _ in range(steps):
                step()  # type: ignore[operator]
            sync()  # type: ignore[operator]
        print("EPOCH", n, flush=True)


def hog(seconds: float, ramp: float) -> None:
    """The other job: busy for a growing share of every 100 ms, until killed or `seconds` pass."""
    step, sync = _work(int(os.environ.get("EW_SIZE", "4096")))
    print("HOG", os.getpid(), flush=True)
    t0 = time.time()
    while time.time() - t0 < seconds:
        share = min(1.0, (time.time() - t0) / ramp)
        busy_until = time.time() + 0.1 * share
        while time.time() < busy_until:
            for _ in range(8):
                step()  # type: ignore[operator]
            sync()  # type: ignore[operator]
        time.sleep(0.1 * (1 - share))


def _wait_for(path: Path, seconds: float) -> bool:
    end = time.time() + seconds
    while time.time() < end:
        if path.exists():
            return True
        time.sleep(0.1)
    return False


def orchestrate(args: argparse.Namespace) -> int:
    out = Path(args.out or tempfile.mkdtemp(prefix="ew-gpu-contention-"))
    out.mkdir(parents=True, exist_ok=True)
    sock, state = out / "ew.sock", out / "daemon"
    me = [sys.executable, os.path.abspath(__file__)]
    ew = [sys.executable, "-m", "epochwatch"]
    env = {**os.environ, "EPOCHWATCH_SOCKET": str(sock), "PYTHONUNBUFFERED": "1"}
    if args.allow_cpu:
        env["EW_ALLOW_CPU"] = "1"
    with (out / "daemon.log").open("w") as log:
        daemon = subprocess.Popen(
            [*ew, "daemon", "--socket", str(sock), "--state-dir", str(state)], stdout=log, stderr=log
        )
    hog_proc = None
    try:
        if not _wait_for(sock, 20):
            print(f"the daemon did not start; see {out / 'daemon.log'}")
            return 2
        trainer = subprocess.Popen([*me, "train", str(args.epochs), str(args.steps)], env=env)
        time.sleep(args.warmup)
        hog_proc = subprocess.Popen([*me, "hog", str(args.epochs * 10), str(args.ramp)], env=env)
        code = trainer.wait(timeout=args.epochs * 30)
        if code != 0:
            print(f"the trainer failed (exit {code})")
            return 2
    finally:
        if hog_proc is not None:
            hog_proc.kill()
            hog_proc.wait()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    traces = state / "traces"
    report = subprocess.run(
        [*ew, "report", str(traces), "--format", "json"], capture_output=True, text=True, check=False
    )
    (out / "report.json").write_text(report.stdout)
    subprocess.run(
        [*ew, "report", str(traces), "--format", "html", "-o", str(out / "report.html")], check=False
    )
    try:
        runs = json.loads(report.stdout)["runs"]
    except (ValueError, KeyError):
        print(f"no report: {report.stderr.strip()}")
        return 2
    found = [f for r in runs for f in r["findings"]]
    for f in found:
        causes = [(c.get("series"), c.get("test")) for c in f["evidence"].get("likely_causes") or []]
        print(
            f"{f['kind']:>16} {f['severity']:<8} {f['title'][:200]}"
            + (f"  causes={causes}" if causes else "")
        )
    contention = [f for f in found if f["kind"] == "gpu_contention"]
    named = (
        any(p.get("pid") == hog_proc.pid for f in contention for p in f["evidence"].get("processes", []))
        if hog_proc
        else False
    )
    slow_names_gpu = any(
        c.get("column") == "gpu_others_sm"
        for f in found
        if f["kind"] == "slowdown"
        for c in f["evidence"].get("likely_causes") or []
    )
    print(
        f"gpu_contention named the second process: {named}; slowdown's cause names the GPU: {slow_names_gpu}"
    )
    print(f"traces and reports in {out}")
    if not args.out and named:
        shutil.rmtree(out, ignore_errors=True)
    return 0 if named else 1


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "train":
        train(int(sys.argv[2]), int(sys.argv[3]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "hog":
        hog(float(sys.argv[2]), float(sys.argv[3]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--steps", type=int, default=40, help="matrix products per epoch")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds before the second process starts")
    p.add_argument("--ramp", type=float, default=30.0, help="seconds for its GPU share to go 0 -> 100%%")
    p.add_argument("--out", help="keep the traces and reports here")
    p.add_argument(
        "--allow-cpu", action="store_true", help="dry run on the CPU (TensorFlow): checks the plumbing only"
    )
    return orchestrate(p.parse_args())


if __name__ == "__main__":
    sys.exit(main())
