"""optax updates as steps (integrations/optax_steps.py) with real `jax.jit` and JAX tracing,
an update function in `optax.apply_updates`' place (optax itself is not in the dev extra;
tests/integration/test_shapes_jax.py runs the real one where it is installed)."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import pytest

from epochwatch.integrations import optax_steps
from epochwatch.recorder import Recorder
from tests.support import of_type, read_single_trace

jax = pytest.importorskip("jax")


def _apply_updates(params: Any, updates: Any) -> Any:
    return jax.tree.map(lambda p, u: p + u, params, updates)


def _setup(tmp_path: Path) -> tuple[Recorder, Any, Any]:
    from jax._src import core

    environ = {"EPOCHWATCH_DIR": str(tmp_path / "traces"), "EPOCHWATCH_SOCKET": str(tmp_path / "none.sock")}
    rec = Recorder(environ=environ)
    optax_steps.JitStep.count = staticmethod(optax_steps.counter(rec))
    apply_updates = optax_steps.wrap_apply_updates(_apply_updates, rec, core.trace_ctx.is_top_level)
    return rec, optax_steps.wrap_jit(jax.jit), apply_updates


def test_a_jitted_step_counts_each_call_and_an_eager_update_each_update(tmp_path: Path) -> None:
    rec, jit, apply_updates = _setup(tmp_path)
    jnp = jax.numpy

    @jit
    def step(params: Any, grads: Any) -> Any:
        return apply_updates(params, jax.tree.map(lambda g: -0.1 * g, grads))

    @jit
    def evaluate(params: Any) -> Any:  # jitted, never an update: stays a plain Jitted
        return jnp.sum(params["w"])

    params = {"w": jnp.ones(3)}
    for i in range(5):
        params = step(params, {"w": jnp.full(3, float(i))})
        evaluate(params)
    params = step(params, {"w": jnp.ones(4)[:3].reshape(3, 1)[:, 0] * 2})  # same shapes: no retrace
    assert type(step) is optax_steps.JitStep and type(evaluate) is optax_steps.Jitted
    assert float(evaluate(params)) == pytest.approx(3 - 0.1 * (0 + 1 + 2 + 3 + 4 + 2) * 3)
    assert step.lower(params, params) is not None  # JAX's own attributes still there
    rec.auto.close()
    for _ in range(3):  # eager: each update is a step of one owner of its own
        params = apply_updates(params, params)
    rec.finish("completed")
    records = read_single_trace(tmp_path)
    assert [e["steps"] for e in of_type(records, "epoch")] == [6, 3]
    assert len(of_type(records, "fit_start")) == 2


def test_jit_used_with_options_and_as_a_method_and_copied(tmp_path: Path) -> None:
    rec, jit, _ = _setup(tmp_path)

    class Model:
        @functools.partial(jit, static_argnums=0)  # as JAX wants a jitted method
        def twice(self, x: Any) -> Any:
            return 2 * x

    scaled = jit(static_argnums=1)(lambda x, k: x * k)
    assert float(scaled(jax.numpy.float32(2), 3)) == 6.0
    assert float(Model().twice(jax.numpy.float32(2))) == 4.0
    assert type(copy.copy(scaled)) is optax_steps.Jitted
    rec.finish("completed")
