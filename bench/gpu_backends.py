"""GPU checks of the JAX and PyTorch support (issue 16), for a machine with a GPU, PyTorch and JAX.

    python3 bench/gpu_backends.py [OUTDIR]        # about 2-3 minutes on an H200

Each scenario is a fresh interpreter with `import epochwatch.hook` (embedded mode, its own
trace directory); the findings come from `epochwatch report --format json` of that directory
and are checked against what the scenario should give. Prints one line per scenario (PASS or
FAIL, with the findings) and a JSON summary; exits 1 if any check failed. Not a pass/fail
test of CI: CI has no GPU (tests/integration/test_backends.py covers the CPU side).

- jax_leak: Keras on the JAX backend keeps a 32 MiB device array per epoch. NVML sees a flat
  line (JAX reserves 75% of the GPU up front); JAX's own `memory_stats()` must give
  gpu_memory_growth on GPU:0.
- jax_healthy: the same fit without the leak: no gpu_memory_growth.
- jax_retrace: batches whose size changes every epoch: retrace_storm on `train_step`.
- torch_leak: a PyTorch loop keeps a 32 MiB CUDA tensor per epoch: gpu_memory_growth from
  the torch.cuda allocator (memory_allocated).
- torch_cache: a loop whose temporaries grow (the caching allocator's reserved pool grows,
  allocated stays flat after each step): no gpu_memory_growth.
- torch_compile: torch.compile(dynamic=False) fed a new shape every epoch: retrace_storm.
- torch_resume / torch_resume_full: examples/torch_resume.py, the textbook mistake and the
  fix: optimizer_state_not_restored + loss_jump_after_restore, then nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

JAX_FIT = """
import os, sys
os.environ["KERAS_BACKEND"] = "jax"
import epochwatch.hook
import numpy as np, keras, jax, jax.numpy as jnp
mode = sys.argv[1]
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(1)])
model.compile("adam", "mse")
class Keep(keras.callbacks.Callback):
    kept = []
    def on_epoch_end(self, epoch, logs=None):
        if mode == "leak":
            self.kept.append(jnp.ones((8 * 1024 * 1024,), jnp.float32) * epoch)  # 32 MiB on the GPU
class Shapes(keras.utils.PyDataset):
    def __init__(self):
        super().__init__(); self.epoch = 0
    def __len__(self):
        return 4
    def __getitem__(self, i):
        n = 64 + self.epoch
        return np.ones((n, 64), "float32"), np.ones((n, 1), "float32")
    def on_epoch_end(self):
        self.epoch += 1
assert jax.default_backend() == "gpu", jax.default_backend()
if mode == "retrace":
    model.fit(Shapes(), epochs=8, verbose=0)
else:
    x = np.random.rand(4096, 64).astype("float32")
    model.fit(x, x.sum(1, keepdims=True), epochs=25, batch_size=256, verbose=0, callbacks=[Keep()])
"""

TORCH_LOOP = """
import sys
import epochwatch.hook
from epochwatch import hook
import torch
mode = sys.argv[1]
dev = "cuda"
model = torch.nn.Sequential(torch.nn.Linear(256, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1)).to(dev)
opt = torch.optim.Adam(model.parameters(), 1e-3)
x = torch.randn(8192, 256, device=dev)
y = x.sum(1, keepdim=True)
kept = []
for n in range(25):
    with hook.epoch(n):
        for i in range(0, 8192, 512):
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model(x[i:i + 512]), y[i:i + 512])
            loss.backward()
            opt.step()
            if mode == "cache":  # a temporary that grows each epoch, freed at once
                tmp = torch.empty((n + 1) * 4 * 1024 * 1024, device=dev); del tmp
        if mode == "leak":
            kept.append(torch.ones(8 * 1024 * 1024, device=dev) * n)  # 32 MiB kept per epoch
        hook.log(loss=loss.item())
"""

TORCH_COMPILE = """
import epochwatch.hook
from epochwatch import hook
import torch
@torch.compile(backend="eager", dynamic=False)
def step(x):
    return (x * 2).sum()
for epoch in range(7):
    with hook.epoch(epoch):
        for i in range(3):
            hook.log(loss=float(step(torch.ones(16 + epoch, device="cuda"))))
"""


def run(
    name: str, code: str | None, args: list[str], out: Path, script: Path | None = None
) -> dict[str, Any]:
    """Run one scenario in a fresh interpreter; return its runs' findings from `epochwatch report`."""
    work = out / name
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOCHWATCH_")}
    env.update(EPOCHWATCH_DIR=str(work / "traces"), EPOCHWATCH_SOCKET=str(work / "none.sock"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    if script is None:
        script = work / "scenario.py"
        script.write_text(textwrap.dedent(code or ""))
    for argv in args:
        proc = subprocess.run(
            [sys.executable, str(script), *argv.split()],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0:
            return {"error": f"{argv}: exit {proc.returncode}: {proc.stderr[-1500:]}"}
    rep = subprocess.run(
        [sys.executable, "-m", "epochwatch", "report", str(work / "traces"), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if rep.returncode != 0:
        return {"error": f"report: {rep.stderr[-500:]}"}
    runs = json.loads(rep.stdout)["runs"]
    return {
        "runs": [
            [(f["kind"], f.get("target"), f["evidence"].get("source")) for f in r["findings"]] for r in runs
        ]
    }


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="ew-backends-"))
    resume = REPO / "examples" / "torch_resume.py"
    scenarios: list[tuple[str, Any, Any]] = [
        ("jax_leak", lambda: run("jax_leak", JAX_FIT, ["leak"], out), {"gpu_memory_growth": "GPU:0"}),
        ("jax_healthy", lambda: run("jax_healthy", JAX_FIT, ["healthy"], out), {}),
        (
            "jax_retrace",
            lambda: run("jax_retrace", JAX_FIT, ["retrace"], out),
            {"retrace_storm": "train_step"},
        ),
        ("torch_leak", lambda: run("torch_leak", TORCH_LOOP, ["leak"], out), {"gpu_memory_growth": "GPU:0"}),
        ("torch_cache", lambda: run("torch_cache", TORCH_LOOP, ["cache"], out), {}),
        ("torch_compile", lambda: run("torch_compile", TORCH_COMPILE, [""], out), {"retrace_storm": "step"}),
        (
            "torch_resume",
            lambda: run("torch_resume", None, ["train --ckpt ck.pt", "resume --ckpt ck.pt"], out, resume),
            {"optimizer_state_not_restored": None, "loss_jump_after_restore": None},
        ),
        (
            "torch_resume_full",
            lambda: run(
                "torch_resume_full",
                None,
                ["train --full --ckpt f.pt", "resume --full --ckpt f.pt"],
                out,
                resume,
            ),
            {},
        ),
    ]
    summary: dict[str, Any] = {}
    failed = 0
    for name, go, expected in scenarios:
        result = go()
        found = [f for r in result.get("runs", []) for f in r]
        kinds = {k: t for k, t, _s in found}
        quiet = not expected and not any(
            k in ("gpu_memory_growth", "retrace_storm") or "restore" in k for k in kinds
        )
        ok = "error" not in result and (
            all(k in kinds and (t is None or kinds[k] == t) for k, t in expected.items())
            if expected
            else quiet
        )
        failed += not ok
        summary[name] = {"ok": ok, **result}
        print(f"{'PASS' if ok else 'FAIL'} {name}: {result.get('error') or found}", flush=True)
    print(json.dumps(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
