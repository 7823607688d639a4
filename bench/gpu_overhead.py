"""The hook's cost on a GPU: a custom loop with per-step `hook.log` of device tensors, and a Keras fit.

Runs on any machine: PyTorch (CUDA if present), else JAX, else TensorFlow (`--framework`
picks one). Everything is paired in one process, so both halves of a pair share the
device, the process and the minute's load:

- custom loop: PAIRS pairs of EPOCHS-epoch blocks, alternately plain (no hook call at all)
  and traced (`with hook.epoch(n)`, `hook.log(loss=loss)` at every step); both halves
  synchronise the device at each epoch's end, as a real loop does for its own logging.
- Keras fit (when Keras is installed for the framework's backend): pairs of fits, the
  plain one through `keras.Model.fit.__wrapped__` (the fit the hook wrapped).
- `hook.log(loss=<device tensor>)` per call, timed over 10,000 calls inside an epoch.

Prints per-pair ratios traced/plain (wall and process CPU, median [min-max]), the hook's
own accounting (overhead_seconds per steady epoch, its training-thread part, as a share of
epoch time) and issue 15's targets, met or missed: the GPU custom loop <= 0.5% of epoch
time, hook.log of a device tensor <= 5 us a call.

    python bench/gpu_overhead.py [--framework torch|jax|tf] [--pairs 6] [--epochs 3] [--steps 128]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("EPOCHWATCH_DIR", tempfile.mkdtemp(prefix="epochwatch-gpu-bench-"))

from epochwatch import hook


def _pick(requested: str | None) -> str:
    if requested:
        return requested
    for name, module in (("torch", "torch"), ("jax", "jax"), ("tf", "tensorflow")):
        if importlib.util.find_spec(module) is not None:
            return name
    raise SystemExit("gpu_overhead: needs PyTorch, JAX or TensorFlow")


class Loop:
    """One framework's model, a step function returning a device scalar, and a device sync."""

    device = "cpu"

    def step(self, i: int) -> Any:
        raise NotImplementedError

    def sync(self, value: Any) -> None:
        raise NotImplementedError


class TorchLoop(Loop):
    def __init__(self, width: int, batch: int, steps: int) -> None:
        import torch

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, 10)
        ).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), 1e-3)
        self.x = torch.randn(batch * steps, width, device=self.device)
        self.y = torch.randint(0, 10, (batch * steps,), device=self.device)
        self.batch = batch

    def step(self, i: int) -> Any:
        sl = slice(i * self.batch, (i + 1) * self.batch)
        self.opt.zero_grad(set_to_none=True)
        loss = self.torch.nn.functional.cross_entropy(self.model(self.x[sl]), self.y[sl])
        loss.backward()
        self.opt.step()
        return loss  # requires grad: the hook must not warn

    def sync(self, value: Any) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()


class JaxLoop(Loop):
    def __init__(self, width: int, batch: int, steps: int) -> None:
        import jax
        import jax.numpy as jnp

        self.device = jax.devices()[0].platform
        k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
        self.w = (jax.random.normal(k1, (width, width)) * 0.01, jax.random.normal(k2, (width, 10)) * 0.01)
        self.x = jax.random.normal(k3, (batch * steps, width))
        self.y = jnp.zeros((batch * steps,), jnp.int32)
        self.batch = batch

        def loss_fn(w: Any, x: Any, y: Any) -> Any:
            logits = jax.nn.relu(x @ w[0]) @ w[1]
            return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), y])

        @jax.jit
        def update(w: Any, x: Any, y: Any) -> Any:
            loss, g = jax.value_and_grad(loss_fn)(w, x, y)
            return tuple(p - 1e-3 * d for p, d in zip(w, g, strict=True)), loss

        self.update = update

    def step(self, i: int) -> Any:
        sl = slice(i * self.batch, (i + 1) * self.batch)
        self.w, loss = self.update(self.w, self.x[sl], self.y[sl])
        return loss

    def sync(self, value: Any) -> None:
        value.block_until_ready()


class TfLoop(Loop):
    def __init__(self, width: int, batch: int, steps: int) -> None:
        import tensorflow as tf

        self.device = "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
        self.model = tf.keras.Sequential(
            [tf.keras.Input((width,)), tf.keras.layers.Dense(width, "relu"), tf.keras.layers.Dense(10)]
        )
        self.opt = tf.keras.optimizers.Adam(1e-3)
        self.x = tf.random.normal([batch * steps, width])
        self.y = tf.zeros([batch * steps], tf.int32)
        self.batch = batch
        loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        @tf.function
        def update(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                loss = loss_fn(y, self.model(x, training=True))
            grads = tape.gradient(loss, self.model.trainable_variables)
            self.opt.apply_gradients(zip(grads, self.model.trainable_variables, strict=True))
            return loss

        self.update = update

    def step(self, i: int) -> Any:
        return self.update(
            self.x[i * self.batch : (i + 1) * self.batch], self.y[i * self.batch : (i + 1) * self.batch]
        )

    def sync(self, value: Any) -> None:
        value.numpy()


def _spread(values: list[float], fmt: str = ".4f") -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"


def custom_loop(loop: Loop, pairs: int, epochs: int, steps: int) -> dict[str, Any]:
    rec = hook.recorder()
    counter = iter(range(10**9))

    def block(traced: bool) -> tuple[float, float]:
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(epochs):
            if traced:
                with hook.epoch(next(counter)):
                    for i in range(steps):
                        loss = loop.step(i)
                        hook.log(loss=loss)
                    loop.sync(loss)
            else:
                for i in range(steps):
                    loss = loop.step(i)
                loop.sync(loss)
        return time.perf_counter() - w0, time.process_time() - c0

    block(False)
    block(True)  # warm-up: compile, first traces, the run's start
    walls, cpus = [], []
    for p in range(pairs):
        order = (False, True) if p % 2 == 0 else (True, False)
        got = {traced: block(traced) for traced in order}
        walls.append(got[True][0] / got[False][0])
        cpus.append(got[True][1] / got[False][1])
    out: dict[str, Any] = {"wall_ratios": walls, "cpu_ratios": cpus}
    if rec is not None:
        rec.flush_analysis()
        out["accounting"] = _accounting(rec, skip=epochs)
    return out


def _accounting(rec: Any, skip: int) -> dict[str, float]:
    """Steady epochs of this process's trace (after the warm-up block of `skip` epochs,
    which carries the run's one-time start): the hook's overhead_seconds."""
    from epochwatch.trace.reader import iter_records

    trace = os.path.join(rec.trace_dir, f"{rec.run_id}.jsonl")
    ov, thread, secs = [], [], []
    for r in iter_records(trace):
        if r.get("type") == "epoch" and r.get("epoch", 0) >= skip:
            o = float(r.get("overhead_seconds", 0.0))
            ov.append(o)
            thread.append(o - float(r.get("overhead_background_seconds", 0.0)))
            secs.append(float(r["seconds"]))
    if not secs:
        return {}
    return {
        "epochs": len(secs),
        "epoch_seconds": statistics.median(secs),
        "share": sum(ov) / sum(secs),
        "thread_share": sum(thread) / sum(secs),
        "steady_us": 1e6 * statistics.fmean(ov),
        "steady_median_us": 1e6 * statistics.median(ov),
        "thread_us": 1e6 * statistics.median(thread),
    }


def log_cost(loop: Loop, steps: int, epochs: int = 20) -> tuple[float, float]:
    """Microseconds per `hook.log(loss=<device tensor>)`: the call itself (it keeps the
    tensor), and with the epoch end's sum of the `steps` values spread over the calls."""
    value = loop.step(0)
    loop.sync(value)
    calls, ends = 0.0, 0.0
    rec = hook.recorder()
    for n in range(epochs):
        rec.begin_epoch(10**8 + n, "loop") if rec is not None else None
        t0 = time.perf_counter()
        for _ in range(steps):
            hook.log(loss=value)
        t1 = time.perf_counter()
        if rec is not None:
            rec.end_epoch({})
        calls += t1 - t0
        ends += time.perf_counter() - t1
    per_call = calls / (epochs * steps) * 1e6
    return per_call, per_call + ends / (epochs * steps) * 1e6


def keras_fit(framework: str, pairs: int, epochs: int, width: int) -> dict[str, Any] | None:
    backend = {"torch": "torch", "jax": "jax", "tf": "tensorflow"}[framework]
    os.environ.setdefault("KERAS_BACKEND", backend)
    try:
        import keras
        import numpy as np
    except ImportError:
        return None
    model = keras.Sequential(
        [keras.Input((width,)), keras.layers.Dense(width, "relu"), keras.layers.Dense(10)]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).normal(size=(128 * 256, width)).astype("float32")
    y = np.zeros((128 * 256,), "int32")
    plain: Callable[..., Any] = getattr(keras.Model.fit, "__wrapped__", keras.Model.fit)

    def fit(traced: bool) -> tuple[float, float]:
        w0, c0 = time.perf_counter(), time.process_time()
        (model.fit if traced else lambda *a, **k: plain(model, *a, **k))(
            x, y, batch_size=256, epochs=epochs, verbose=0
        )
        return time.perf_counter() - w0, time.process_time() - c0

    fit(False)
    fit(True)
    walls, cpus = [], []
    for p in range(pairs):
        order = (False, True) if p % 2 == 0 else (True, False)
        got = {traced: fit(traced) for traced in order}
        walls.append(got[True][0] / got[False][0])
        cpus.append(got[True][1] / got[False][1])
    return {"wall_ratios": walls, "cpu_ratios": cpus, "backend": keras.backend.backend()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--framework", choices=("torch", "jax", "tf"))
    p.add_argument("--pairs", type=int, default=6)
    p.add_argument("--epochs", type=int, default=3, help="epochs per half of a pair")
    p.add_argument("--steps", type=int, default=128, help="steps per epoch of the custom loop")
    p.add_argument("--width", type=int, default=0, help="hidden width (default: 4096 on a GPU, 256 on a CPU)")
    p.add_argument("--no-keras", action="store_true")
    a = p.parse_args(argv)
    framework = _pick(a.framework)
    make = {"torch": TorchLoop, "jax": JaxLoop, "tf": TfLoop}[framework]
    probe = make(8, 2, 1)
    width = a.width or (4096 if probe.device in ("cuda", "gpu") else 256)
    loop = make(width, 256, a.steps)
    print(
        f"framework {framework} on {loop.device}; width {width}, {a.steps} steps of 256 an epoch; load {os.getloadavg()[0]:.2f}"
    )
    res = custom_loop(loop, a.pairs, a.epochs, a.steps)
    per_call, with_end = log_cost(loop, a.steps)
    acc = res.get("accounting", {})
    print(f"\ncustom loop, {a.pairs} pairs of {a.epochs} epochs (traced / plain): wall {_spread(res['wall_ratios'])}, "
          f"process CPU {_spread(res['cpu_ratios'])}")  # fmt: skip
    if acc:
        print(
            f"hook's accounting, {acc['epochs']:.0f} steady epochs of {acc['epoch_seconds']:.3f} s: "
            f"{acc['steady_median_us']:.0f} us median, {acc['steady_us']:.0f} us mean an epoch all threads "
            f"({acc['share']:.3%} of epoch time), "
            f"training thread {acc['thread_us']:.0f} us ({acc['thread_share']:.3%})"
        )
    print(
        f"hook.log(loss=<{framework} tensor on {loop.device}>): {per_call:.2f} us a call; "
        f"{with_end:.2f} us with the whole epoch end (samplers, write, the sum) spread over {a.steps} calls"
    )
    fit = None if a.no_keras else keras_fit(framework, a.pairs, a.epochs, width)
    if fit:
        print(f"Keras fit ({fit['backend']} backend), {a.pairs} pairs of {a.epochs}-epoch fits (traced / plain): "
              f"wall {_spread(fit['wall_ratios'])}, process CPU {_spread(fit['cpu_ratios'])}")  # fmt: skip
    print("\ntargets (issue 15):")
    if acc:
        share = acc["share"]
        print(
            f"- custom loop, hook's time <= 0.5% of epoch time: {share:.3%}: {'met' if share <= 0.005 else 'MISSED'}"
        )
    wall = statistics.median(res["wall_ratios"])
    print(
        f"- custom loop, wall ratio (noisier: both halves' jitter): {wall:.4f}: {'met' if wall <= 1.005 else 'MISSED'}"
    )
    print(f"- hook.log of a device tensor <= 5 us: {per_call:.2f} us: {'met' if per_call <= 5 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
