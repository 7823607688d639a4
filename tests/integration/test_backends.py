"""Beyond TensorFlow: Keras on the JAX backend, and a plain PyTorch loop, traced for real.

Every child here blocks `import tensorflow` (`sys.modules["tensorflow"] = None`), so these
tests also show the hook, the JAX paths and the PyTorch integration work where TensorFlow is
not installed. JAX (CPU) is in the `dev` extra, so CI runs its tests; PyTorch's PyPI wheel
pulls ~2.5 GB of CUDA libraries (4.5 min to install here), so its tests skip where it is
missing and run on the GPU machine (bench/gpu_backends.sh).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import child_env, report_json, run_python

NEEDS_JAX = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None or importlib.util.find_spec("keras") is None,
    reason="JAX or Keras not installed (`pip install -e .[dev]` installs JAX for the CPU)",
)
NEEDS_TORCH = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="PyTorch not installed: its PyPI wheel pulls ~2.5 GB of CUDA libraries, too slow for CI; "
    "these run on the GPU machine (bench/gpu_backends.sh)",
)

NO_TENSORFLOW = """
import sys
sys.modules["tensorflow"] = None  # behave as if TensorFlow were not installed: importing it fails
"""


def report(traces: Path) -> dict[str, dict[str, Any]]:
    """`epochwatch report --format json` of a directory: run_id -> run."""
    return {r["run_id"]: r for r in report_json(traces, env=child_env(traces.parent))["runs"]}


def kinds(run: dict[str, Any]) -> set[str]:
    return {f["kind"] for f in run["findings"]}


def run_start(traces: Path, run_id: str) -> dict[str, Any]:
    with open(traces / f"{run_id}.jsonl") as fh:
        first: dict[str, Any] = json.loads(fh.readline())
    return first


# -- Keras on JAX ------------------------------------------------------------------------

JAX_FIT = (
    NO_TENSORFLOW
    + """
import os
os.environ["KERAS_BACKEND"] = "jax"
import epochwatch.hook
import numpy as np
import keras
import jax.numpy as jnp

model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4), keras.layers.Dense(1)])
model.compile("sgd", "mse")
"""
)


@NEEDS_JAX
def test_keras_on_jax_recompiling_every_epoch_is_a_retrace_storm(tmp_path: Path) -> None:
    run_python(
        JAX_FIT
        + """
class Shapes(keras.utils.PyDataset):
    # Batches whose size changes every epoch and never repeats: jax.jit compiles anew each time.
    def __init__(self):
        super().__init__()
        self.epoch = 0
    def __len__(self):
        return 2
    def __getitem__(self, i):
        n = 8 + self.epoch
        return np.ones((n, 4), "float32"), np.ones((n, 1), "float32")
    def on_epoch_end(self):
        self.epoch += 1

model.fit(Shapes(), epochs=7, verbose=0)
assert sys.modules["tensorflow"] is None
""",
        tmp_path,
        env=child_env(tmp_path, KERAS_BACKEND="jax"),
    )
    (run_id, run), *_ = report(tmp_path / "traces").items()
    storms = [f for f in run["findings"] if f["kind"] == "retrace_storm"]
    assert storms, run["findings"]
    storm = storms[0]
    assert storm["target"] == "train_step"
    assert storm["title"].startswith("jitted function `train_step`")
    assert storm["evidence"]["change"] == "shape" and storm["evidence"]["argument"].startswith("data")
    assert "jax.jit" in storm["hint"] and "tf.function" not in storm["hint"]
    env = run_start(tmp_path / "traces", run_id)["env"]
    assert env["keras_backend"] == "jax" and "tensorflow" not in env["frameworks"]
    assert env["jax"]["version"]


GUIDE_LOOP = (
    NO_TENSORFLOW
    + """
import os
os.environ["KERAS_BACKEND"] = "jax"
import epochwatch.hook
import jax, keras, numpy as np

model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
loss_fn = keras.losses.MeanSquaredError()
optimizer = keras.optimizers.Adam(1e-3)
optimizer.build(model.trainable_variables)

def loss_and_updates(trainable, non_trainable, x, y):
    y_pred, non_trainable = model.stateless_call(trainable, non_trainable, x)
    return loss_fn(y, y_pred), non_trainable

grad_fn = jax.value_and_grad(loss_and_updates, has_aux=True)

@jax.jit
def train_step(state, x, y):  # Keras' guide "a training loop from scratch in JAX"
    trainable, non_trainable, opt_vars = state
    (loss, non_trainable), grads = grad_fn(trainable, non_trainable, x, y)
    trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
    return loss, (trainable, non_trainable, opt_vars)

state = (
    [v.value for v in model.trainable_variables],
    [v.value for v in model.non_trainable_variables],
    [v.value for v in optimizer.variables],
)
x = np.random.default_rng(0).random((64, 4), dtype=np.float32)
for step in range(40):  # 5 windows of 8 steps (no dataset pass to see)
    loss, state = train_step(state, x[:8], x[:8, :1])
"""
)


@NEEDS_JAX
def test_keras_on_jax_stateless_apply_in_a_jitted_step_counts_each_call(tmp_path: Path) -> None:
    """The Keras guide's JAX loop: `optimizer.stateless_apply` runs only while `jax.jit`
    traces the step, so the jitted step function's calls are the steps (one step in all,
    for the run, before)."""
    traces = tmp_path / "traces"
    run_python(
        GUIDE_LOOP, tmp_path, env=child_env(tmp_path, KERAS_BACKEND="jax", EPOCHWATCH_WINDOW_STEPS="8")
    )
    (run,) = report(traces).values()
    with open(traces / f"{run['run_id']}.jsonl") as fh:
        records = [json.loads(line) for line in fh]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert [(e["epoch_source"], e["steps"]) for e in epochs] == [("window_steps", 8)] * 5
    assert len([r for r in records if r["type"] == "fit_start"]) == 1


TRAIN_ON_BATCH = (
    JAX_FIT
    + """
rng = np.random.default_rng(0)
batches = [(rng.random((16, 4), dtype=np.float32), rng.random((16, 1), dtype=np.float32)) for _ in range(8)]
for epoch in range(3):  # a list of arrays: no dataset pass to see, windows of 8 steps
    for x, y in batches:
        model.train_on_batch(x, y)
model.fit(np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]),
          batch_size=16, epochs=1, verbose=0)
for x, y in batches:
    model.train_on_batch(x, y)
"""
)


@NEEDS_JAX
def test_keras_on_jax_train_on_batch_counts_each_call_and_a_fit_keeps_its_steps(tmp_path: Path) -> None:
    """`model.train_on_batch` in a Python loop on the JAX backend: Keras' trainer jits its
    train function with the `jit` it bound at its import (not the hook's `jax.jit`), so the
    loop took no step at all before (one, at the trace, before that). Each call is a step,
    as on TensorFlow; a fit in between keeps its own 8 steps, none counted twice."""
    traces = tmp_path / "traces"
    proc = run_python(
        TRAIN_ON_BATCH, tmp_path, env=child_env(tmp_path, KERAS_BACKEND="jax", EPOCHWATCH_WINDOW_STEPS="8")
    )
    assert "disabled" not in proc.stderr, proc.stderr  # no part of the hook gave up
    (run,) = report(traces).values()
    with open(traces / f"{run['run_id']}.jsonl") as fh:
        records = [json.loads(line) for line in fh]
    epochs = [(e["source"], e.get("epoch_source"), e["steps"]) for e in records if e["type"] == "epoch"]
    assert epochs == [
        ("auto", "window_steps", 8),
        ("auto", "window_steps", 8),
        ("auto", "fit", 8),  # the third pass, ended where the fit began
        ("keras", None, 8),
        ("auto", "window_steps", 8),
    ]
    ends = {r["fit"]: r for r in records if r["type"] == "fit_end"}
    assert ends[0]["source"] == "optimizer" and ends[0]["steps"] == 32


@NEEDS_JAX
def test_keras_on_jax_keeping_device_arrays_is_device_memory_growth(tmp_path: Path) -> None:
    run_python(
        JAX_FIT
        + """
class Keep(keras.callbacks.Callback):
    kept = []
    def on_epoch_end(self, epoch, logs=None):
        self.kept.append(jnp.ones((512, 1024), jnp.float32) * epoch)  # 2 MiB a epoch, never freed

x = np.random.rand(64, 4).astype("float32")
model.fit(x, x.sum(1, keepdims=True), epochs=20, batch_size=32, verbose=0, callbacks=[Keep()])
""",
        tmp_path,
        env=child_env(tmp_path, KERAS_BACKEND="jax"),
    )
    (_run_id, run), *_ = report(tmp_path / "traces").items()
    growth = [f for f in run["findings"] if f["kind"] == "gpu_memory_growth"]
    assert growth, run["findings"]
    finding = growth[0]
    assert finding["target"] == "CPU:0"  # JAX's own statistics of its (CPU) device
    assert "jax" in finding["evidence"]["source"].lower()
    assert 1.5 * 2**20 < finding["evidence"]["slope_per_epoch"] < 2.5 * 2**20
    assert "jax" in finding["hint"] and "tf.config" not in finding["hint"]


# -- PyTorch ---------------------------------------------------------------------------------

TORCH_LOOP = (
    NO_TENSORFLOW
    + """
import os
import epochwatch.hook
from epochwatch import hook
import torch

FULL = os.environ["MODE"].endswith("full")
torch.manual_seed(0)
g = torch.Generator().manual_seed(0)
x = torch.randn(256, 8, generator=g)
y = x @ torch.randn(8, 1, generator=g)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.5)
scaler = torch.amp.GradScaler("cpu")

def train(first, epochs):
    for epoch in range(first, first + epochs):
        with hook.epoch(epoch):
            for i in range(0, len(x), 32):
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x[i : i + 32]), y[i : i + 32])
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                hook.log(loss=loss.detach())
            scheduler.step()

path = os.path.join(os.environ["CKPT_DIR"], "full.pt" if FULL else "model.pt")
if os.environ["MODE"].startswith("train"):
    train(0, 8)
    if FULL:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict()}, path)
    else:
        torch.save(model.state_dict(), path)
else:
    ckpt = torch.load(path)
    if FULL:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
    else:
        model.load_state_dict(ckpt)
    train(8, 2)
assert sys.modules["tensorflow"] is None
"""
)


def _torch_run(tmp_path: Path, mode: str) -> None:
    env = child_env(tmp_path, MODE=mode, CKPT_DIR=str(tmp_path))
    run_python(TORCH_LOOP, tmp_path, env=env)


@NEEDS_TORCH
def test_pytorch_resume_from_model_state_dict_only_is_flagged(tmp_path: Path) -> None:
    _torch_run(tmp_path, "train")
    _torch_run(tmp_path, "resume")
    runs = report(tmp_path / "traces")
    child = next(r for r in runs.values() if r["findings"])
    assert {"optimizer_state_not_restored", "loss_jump_after_restore"} <= kinds(child), child["findings"]
    opt = next(f for f in child["findings"] if f["kind"] == "optimizer_state_not_restored")
    assert opt["evidence"]["format"] == "torch" and opt["evidence"]["steps_at_save"] == 64
    assert opt["evidence"]["steps_after_restore"] == 0
    assert "optimizer.load_state_dict" in opt["hint"] and "keras" not in opt["hint"].lower()
    assert sum(1 for r in runs.values() if r["findings"]) == 1  # the parent is healthy


@NEEDS_TORCH
def test_pytorch_resume_with_the_whole_training_state_is_clean(tmp_path: Path) -> None:
    _torch_run(tmp_path, "train-full")
    _torch_run(tmp_path, "resume-full")
    runs = report(tmp_path / "traces")
    assert len(runs) == 2
    assert all(not r["findings"] for r in runs.values()), [r["findings"] for r in runs.values()]
    records = [json.loads(line) for p in (tmp_path / "traces").glob("*.jsonl") for line in p.open()]
    restore = next(r for r in records if r["type"] == "restore")
    assert restore["contents"] == ["model", "optimizer", "scaler", "scheduler"]
    assert restore["optimizer_included"] is True and restore["file_iterations"] == 64
    assert restore["parent"]["match"] == "sha256"
    fit = next(r for r in records if r["type"] == "fit_start" and r["run_id"] == restore["run_id"])
    assert fit["optimizer"]["state_empty_at_first_step"] is False
    assert fit["state_loaded"] == {"model": 1, "optimizer": 1, "scheduler": 1, "scaler": 1}


@NEEDS_TORCH
def test_torch_compile_recompiling_every_epoch_is_a_retrace_storm(tmp_path: Path) -> None:
    run_python(
        NO_TENSORFLOW
        + """
import epochwatch.hook
from epochwatch import hook
import torch

@torch.compile(backend="eager", dynamic=False)  # specialised on shapes: one compile per new shape
def step(x):
    return (x * 2).sum()

for epoch in range(6):
    with hook.epoch(epoch):
        for i in range(3):
            hook.log(loss=float(step(torch.ones(4 + epoch))))
""",
        tmp_path,
    )
    (run_id, run), *_ = report(tmp_path / "traces").items()
    storm = next(f for f in run["findings"] if f["kind"] == "retrace_storm")
    assert storm["target"] == "step" and storm["title"].startswith("torch.compile'd function `step`")
    assert storm["evidence"]["argument"] == "x" and storm["evidence"]["change"] == "shape"
    assert "mark_dynamic" in storm["hint"]
    assert run_start(tmp_path / "traces", run_id)["env"]["frameworks"] == ["torch"]
