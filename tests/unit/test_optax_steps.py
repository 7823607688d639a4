"""optax updates as steps (integrations/optax_steps.py) in this process, without JAX (its
threads would make the suite's later forks unsafe): a jit stand-in whose first call "traces"
(runs the Python, with JAX's top-level check false) and whose later calls do not. Real
`jax.jit` and optax run in a child: tests/integration/test_shapes_jax.py."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

from epochwatch.integrations import optax_steps
from epochwatch.recorder import Recorder
from tests.support import of_type, read_single_trace

tracing = [False]


class Compiled:
    """`jax.jit(fun)`'s place: runs `fun`'s Python at the first call only (its trace)."""

    def __init__(self, fun: Any) -> None:
        self.fun, self.traced = fun, False
        self.lower = lambda *a: ("lowered", a)

    def __call__(self, *args: Any) -> Any:
        if self.traced:
            return "compiled result"
        self.traced, tracing[0] = True, True
        try:
            return self.fun(*args)
        finally:
            tracing[0] = False


def fake_jit(*args: Any, **options: Any) -> Any:
    return Compiled(args[0]) if args else Compiled


def _setup(tmp_path: Path) -> tuple[Recorder, Any, Any]:
    environ = {"EPOCHWATCH_DIR": str(tmp_path / "traces"), "EPOCHWATCH_SOCKET": str(tmp_path / "none.sock")}
    rec = Recorder(environ=environ)
    optax_steps.JitStep.count = staticmethod(optax_steps.counter(rec))
    apply_updates = optax_steps.wrap_apply_updates(lambda p, u: p + u, rec, lambda: not tracing[0])
    return rec, optax_steps.wrap_jit(fake_jit), apply_updates


def test_a_jitted_step_counts_each_call_and_an_eager_update_each_update(tmp_path: Path) -> None:
    rec, jit, apply_updates = _setup(tmp_path)
    step = jit(lambda p, g: apply_updates(p, -g))
    evaluate = jit(lambda p: p * 2)  # jitted, never an update: stays a plain Jitted
    for i in range(5):
        step(1.0, float(i))
        evaluate(1.0)
    assert type(step) is optax_steps.JitStep and type(evaluate) is optax_steps.Jitted
    rec.auto.close()
    for _ in range(3):  # eager: each update is a step, of one owner of its own
        apply_updates(1.0, 1.0)
    rec.finish("completed")
    records = read_single_trace(tmp_path)
    assert [e["steps"] for e in of_type(records, "epoch")] == [5, 3]  # the traced call included
    assert len(of_type(records, "fit_start")) == 2


def test_jit_with_options_as_a_method_copied_and_its_attributes(tmp_path: Path) -> None:
    rec, jit, _ = _setup(tmp_path)

    class Model:
        @functools.partial(jit, static_argnums=0)
        def twice(self, x: Any) -> Any:
            return 2 * x

    scaled = jit(static_argnums=1)(lambda x, k: x * k)
    assert type(scaled) is optax_steps.Jitted and scaled(2, 3) == 6
    assert Model().twice(2) == 4  # bound like JAX's own
    assert type(copy.copy(scaled)) is optax_steps.Jitted
    assert scaled.lower(1) == ("lowered", (1,))  # JAX's own attributes reach through
    rec.finish("completed")
