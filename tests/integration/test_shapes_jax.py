"""A plain JAX + optax loop with only `import epochwatch.hook`: steps from `optax.apply_updates`
(each call of the `jax.jit` step function that traced it, or each eager call), epochs from the
passes over the `tf.data` dataset that feeds it (`as_numpy_iterator()`), else windows of steps,
and a leak in it flagged (integrations/optax_steps.py).

The optax tests run where optax is importable (not in the dev extra yet: a scratch
`pip install --target`); the real `jax.jit` one needs JAX only (an update function in
`optax.apply_updates`' place).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.support import child_env, latest_findings, of_type, read_single_trace, run_python

needs_optax = pytest.mark.skipif(importlib.util.find_spec("optax") is None, reason="optax not installed")

HEAD = """
import epochwatch.hook
import jax, jax.numpy as jnp, numpy as np, optax
rng = np.random.default_rng(0)
x = rng.normal(size=(256, 8)).astype("float32")
y = x.sum(axis=1, keepdims=True)

def loss_fn(p, xb, yb):
    return jnp.mean((jnp.tanh(xb @ p["w1"]) @ p["w2"] - yb) ** 2)

k1, k2 = jax.random.split(jax.random.PRNGKey(0))
params = {"w1": jax.random.normal(k1, (8, 16)) * 0.1, "w2": jax.random.normal(k2, (16, 1)) * 0.1}
opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))  # several updates, one step
state = opt.init(params)
"""

JITTED_ON_TF_DATA = (
    HEAD
    + """
import tensorflow as tf
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)  # 8 steps a pass

@jax.jit
def step(p, s, xb, yb):
    loss, g = jax.value_and_grad(loss_fn)(p, xb, yb)
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s, loss

kept = []
for epoch in range(14):
    for xb, yb in ds.as_numpy_iterator():
        params, state, loss = step(params, state, xb, yb)
        kept.append(np.ones((512, 512)))  # 2 MiB a step kept alive
"""
)

EAGER_ON_A_GENERATOR = (
    HEAD
    + """
def batches():
    for i in range(0, 256, 32):
        yield x[i : i + 32], y[i : i + 32]

for epoch in range(14):
    for xb, yb in batches():  # a plain generator: no pass to see, windows of steps instead
        g = jax.grad(loss_fn)(params, xb, yb)
        u, state = opt.update(g, state, params)
        params = optax.apply_updates(params, u)
"""
)


@needs_optax
def test_an_unmarked_jitted_loop_gets_epochs_from_its_dataset_and_a_leak_is_flagged(tmp_path: Path) -> None:
    run_python(JITTED_ON_TF_DATA, tmp_path, env=child_env(tmp_path))
    records = read_single_trace(tmp_path)
    epochs = of_type(records, "epoch")
    # 8 steps a pass: the jitted call that traced the update counted once, retraces never
    assert [(e["epoch_source"], e["steps"]) for e in epochs] == [("data_pass", 8)] * 14
    assert len(of_type(records, "fit_start")) == 1
    kinds = {f["kind"] for f in latest_findings(records)}
    assert "host_memory_growth" in kinds, latest_findings(records)


@needs_optax
def test_an_eager_loop_without_a_pass_is_cut_into_windows_and_stays_quiet(tmp_path: Path) -> None:
    run_python(EAGER_ON_A_GENERATOR, tmp_path, env=child_env(tmp_path, EPOCHWATCH_WINDOW_STEPS="8"))
    records = read_single_trace(tmp_path)
    epochs = of_type(records, "epoch")
    assert [(e["epoch_source"], e["steps"]) for e in epochs] == [("window_steps", 8)] * 14
    assert not [f for f in latest_findings(records) if f["severity"] != "info"], latest_findings(records)


REAL_JIT = """
import os
import jax, jax.numpy as jnp
from jax._src import core
from epochwatch.integrations import optax_steps
from epochwatch.recorder import Recorder

rec = Recorder()
optax_steps.JitStep.count = staticmethod(optax_steps.counter(rec))
jit = optax_steps.wrap_jit(jax.jit)
apply_updates = optax_steps.wrap_apply_updates(
    lambda p, u: jax.tree.map(jnp.add, p, u), rec, core.trace_ctx.is_top_level
)

@jit
def step(params, grads):
    return apply_updates(params, jax.tree.map(lambda g: -0.1 * g, grads))

@jit
def evaluate(params):  # jitted, never an update: stays a plain Jitted
    return jnp.sum(params["w"])

params = {"w": jnp.ones(3)}
for i in range(6):
    params = step(params, {"w": jnp.full(3, float(i))})  # traced once, then compiled calls
    evaluate(params)
assert type(step) is optax_steps.JitStep and type(evaluate) is optax_steps.Jitted
assert abs(float(evaluate(params)) - (3 - 0.1 * 15 * 3)) < 1e-5
assert step.lower(params, params) is not None  # JAX's own attributes reach through
rec.auto.close()
for _ in range(3):
    params = apply_updates(params, params)  # eager: each update a step
rec.finish("completed")
"""


def test_a_real_jax_jit_step_function_counts_each_call_once(tmp_path: Path) -> None:
    pytest.importorskip("jax")
    run_python(REAL_JIT, tmp_path, env=child_env(tmp_path))
    records = read_single_trace(tmp_path)
    assert [e["steps"] for e in of_type(records, "epoch")] == [6, 3]  # the traced call included
    assert len(of_type(records, "fit_start")) == 2


JITTED_ANEW_EACH_EPOCH = (
    HEAD
    + """
def update(p, s, xb, yb):
    loss, g = jax.value_and_grad(loss_fn)(p, xb, yb)
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s

for epoch in range(4):
    step = jax.jit(lambda p, s, xb, yb: update(p, s, xb, yb))  # jitted anew each epoch
    for i in range(0, 256, 32):
        n = 32 if i % 64 else 16  # two batch sizes, both compiled by each new step
        params, state = step(params, state, x[i : i + n], y[i : i + n])
"""
)


@needs_optax
def test_a_step_jitted_anew_each_epoch_is_one_training_compiling_again(tmp_path: Path) -> None:
    """jax803 RS_JIT_IN_LOOP=1: each epoch's new `jax.jit` read as a new model ("19 fits of
    19 models") and its compiles of known shapes as an argument changing shape."""
    run_python(JITTED_ANEW_EACH_EPOCH, tmp_path, env=child_env(tmp_path))
    records = read_single_trace(tmp_path)
    (start,) = of_type(records, "fit_start")
    # The step function is what the loop's "model" is known by, not a class of the hook's.
    assert start["model"]["name"] == "jax.jit <lambda>" and "optimizer" not in start, start
    epochs = of_type(records, "epoch")
    assert [(e["epoch_source"], e["steps"]) for e in epochs] == [("step_remade", 8)] * 3 + [
        ("window_steps", 8)
    ]
    causes = [c for e in epochs[1:] for c in e["retraces"]["functions"]["<lambda>"]["causes"]]
    assert {c["change"] for c in causes} == {"jitted_anew"}, causes
