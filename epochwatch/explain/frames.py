"""Whose code a stack is running: the user's line, a callback's method, the input pipeline,
the compiled step (for eager PyTorch: torch's op-running Python), tracing, or the
framework's own Python.

A stack is a tuple of `(filename, lineno, qualname)`, outermost first, as the stack sampler
(stacks.py) and tracemalloc (memory.py) see it. The question is not "which frame is on top"
(that is nearly always a C call in TensorFlow) but "who asked for this work": the innermost
frame of the user's own code, or the callback method Keras called, and what the library
code below it is doing. Pure functions of strings: tested without a framework.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

Frame = tuple[str, int, str]  # (filename, lineno, qualname)

USER = "user code"
CALLBACK = "callback"
INPUT = "input pipeline"
COMPILED = "inside the compiled step"
TRACING = "tracing (tf.function retrace)"
FRAMEWORK = "framework"
HOOK = "epochwatch"
# Explain's own work on the training thread (a window's start or end, a profiler capture's
# read): its cost is charged to the hook's overhead, and it is never named as where a
# slowdown's time went (added.py).
LOOK_INSIDE = "epochwatch (the look inside)"

_EPOCHWATCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_CLOCKS = os.path.join(_EPOCHWATCH, "integrations", "batch_clocks.py")


@lru_cache(maxsize=1)
def _roots() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(library roots, standard library roots): read once, when first needed (sysconfig
    is not imported with the hook)."""
    import sysconfig

    paths = sysconfig.get_paths()

    def norm(keys: tuple[str, ...]) -> tuple[str, ...]:
        return tuple({os.path.abspath(p) + os.sep for p in (paths.get(k) for k in keys) if p})

    return norm(("stdlib", "platstdlib", "purelib", "platlib")), norm(("stdlib", "platstdlib"))


_LIBRARY_PARTS = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")

# Library frames whose callee is executing a traced graph / compiled program (TF eager
# execution of a tf.function, JAX's dispatch of a jitted computation, torch.compile's graph).
_COMPILED = (
    ("tensorflow/python/eager/execute.py", ""),
    ("tensorflow/python/eager/context.py", "call_function"),
    ("tensorflow/python/eager/context.py", "sync_executors"),  # Keras 3 runs TF steps async
    ("tensorflow/python/eager/polymorphic_function/atomic_function.py", ""),
    ("tensorflow/python/eager/polymorphic_function/concrete_function.py", "_call_flat"),
    ("jax/_src/interpreters/pxla.py", ""),
    ("jax/_src/dispatch.py", ""),
    ("torch/_dynamo/eval_frame.py", ""),
    ("torch/_inductor/", ""),
)
# Eager PyTorch has no compiled step: its step is the ops torch's own Python runs for the
# user's line (autograd's backward from `loss.backward()`, an nn module's forward, an
# optimizer's update, a grad scaler's). Counted as the step's ops (COMPILED), so a step
# that grew is "inside the compiled step" at the user's line and gets a torch.profiler
# capture (captures.py) naming the aten ops that grew. A tensor op the user's line calls
# directly (`x @ w`, `torch.mm`) runs in C with no torch frame: it stays the user's code.
_TORCH_OPS = (
    "torch/autograd/",
    "torch/_tensor.py",
    "torch/nn/",
    "torch/functional.py",
    "torch/_ops.py",
    "torch/optim/",
    "torch/amp/",
)
# Tracing runs these; executing a traced function passes through other functions of the
# same modules (tracing_compilation.call_function), so the function names matter.
# Keras 3 dispatches TF steps asynchronously: the training loop's own frame, innermost,
# is waiting for the step dispatched before (at the loop head, or the logs it reads).
_STEP_LOOPS = (
    ("keras/src/backend/tensorflow/trainer.py", ".fit"),
    ("keras/src/backend/tensorflow/trainer.py", ".evaluate"),
    ("keras/src/backend/tensorflow/trainer.py", ".predict"),
)
_TRACING = (
    ("tensorflow/python/eager/polymorphic_function/tracing_compilation.py", "_create_concrete_function"),
    ("tensorflow/python/eager/polymorphic_function/tracing_compilation.py", "_maybe_define_function"),
    ("tensorflow/python/framework/func_graph.py", "func_graph_from_py_func"),
    ("jax/_src/interpreters/partial_eval.py", "trace_to_"),
    ("torch/_dynamo/convert_frame.py", ""),
)
# A user frame whose callee is one of these handed the work to the framework (`model.fit`).
_FRAMEWORKS = ("keras/", "tf_keras/", "tensorflow/", "torch/", "jax/", "lightning/", "pytorch_lightning/")
_INPUT = (
    "tensorflow/python/data/",
    "keras/src/trainers/data_adapters/",
    "keras/src/trainers/epoch_iterator.py",
    "tf_keras/src/engine/data_adapter.py",
    "torch/utils/data/",
)
# The frames that call a callback's methods: Keras 3, tf_keras, Lightning.
_CALLBACK_CALLERS = (
    "keras/src/callbacks/callback_list.py",
    "tf_keras/src/callbacks.py",
    "keras/callbacks.py",
    "lightning/pytorch/trainer/call.py",
    "pytorch_lightning/trainer/call.py",
)


@lru_cache(maxsize=4096)
def is_user(filename: str) -> bool:
    """Neither the standard library, an installed package, epochwatch, nor a frozen module."""
    if filename.startswith("<"):
        return filename in ("<string>", "<stdin>") or filename.startswith("<ipython-input")
    path = os.path.abspath(filename)
    if path.startswith(_EPOCHWATCH):
        return False
    if any(part in path for part in _LIBRARY_PARTS) or path.startswith(framework_dirs()):
        return False
    return not path.startswith(_roots()[0]) or path.startswith(os.path.abspath(os.getcwd()) + os.sep)


# The frameworks' top-level packages: wherever they were imported from (a source checkout,
# a scratch directory on PYTHONPATH, not only site-packages), their files are not the user's.
_FRAMEWORK_PACKAGES = ("tensorflow", "keras", "tf_keras", "torch", "jax", "lightning", "pytorch_lightning")


def framework_dirs(modules: Mapping[str, object] | None = None) -> tuple[str, ...]:
    """The directories of the imported framework packages (`sys.modules` by default)."""
    found: Mapping[str, object] = sys.modules if modules is None else modules
    paths = (getattr(found.get(name), "__path__", None) or () for name in _FRAMEWORK_PACKAGES)
    return tuple(os.path.abspath(str(entry)) + os.sep for entries in paths for entry in entries)


def _norm(filename: str) -> str:
    return filename.replace(os.sep, "/") if os.sep != "/" else filename


def _matches(frame: Frame, table: tuple[tuple[str, str], ...]) -> bool:
    name = _norm(frame[0])
    return any(path in name and (not fn or fn in frame[2]) for path, fn in table)


def _in(frame: Frame, paths: tuple[str, ...]) -> bool:
    name = _norm(frame[0])
    return any(p in name for p in paths)


@dataclass(frozen=True)
class Place:
    """Who a stack (a sample, an allocation) is charged to.

    `label` is what a person recognises (`MyCallback.on_train_batch_end`, `train.py:42
    remember`), `site` the file:line to open, `function` the qualified name there.
    """

    category: str
    label: str
    site: str
    function: str

    def to_dict(self) -> dict[str, str]:
        return {"category": self.category, "label": self.label, "site": self.site, "function": self.function}


def site(frame: Frame) -> str:
    return f"{short_path(frame[0])}:{frame[1]}"


def short_path(filename: str) -> str:
    """A path a person can read: relative to the working directory when under it,
    from the package root (`keras/src/...`) for installed code."""
    path = os.path.abspath(filename) if not filename.startswith("<") else filename
    cwd = os.path.abspath(os.getcwd()) + os.sep
    if path.startswith(cwd):
        return path[len(cwd) :]
    if path.startswith(_EPOCHWATCH):
        return "epochwatch/" + path[len(_EPOCHWATCH) :]
    for part in _LIBRARY_PARTS:
        if part in path:
            return path.split(part, 1)[1]
    return path


def _callback_frame(stack: tuple[Frame, ...]) -> int | None:
    """The index of the outermost frame that a callback list called (a callback's hook)."""
    for i in range(1, len(stack)):
        if _in(stack[i - 1], _CALLBACK_CALLERS) and not _in(stack[i], _CALLBACK_CALLERS):
            return i
    return None


_OWN_WORK = tuple(os.path.join(_EPOCHWATCH, part) + os.sep for part in ("recorder", "explain"))
_EXPLAIN = os.path.join(_EPOCHWATCH, "explain") + os.sep


def hook_inside(stack: tuple[Frame, ...]) -> bool:
    """The innermost frame outside the standard library is epochwatch's: the hook's own
    work (its callback, its recorder), not the fit wrapper that every fit's stack holds;
    or the recorder or explain is on the stack, whatever it calls (an epoch record's
    writers; a profiler capture's start or read, in torch's own profiler code)."""
    if any(frame[0].startswith(_OWN_WORK) for frame in stack):
        return True
    for frame in reversed(stack):
        path = os.path.abspath(frame[0]) if not frame[0].startswith("<") else frame[0]
        if path.startswith(_EPOCHWATCH):
            return True
        if not stdlib(path):
            return False
    return False


def stdlib(path: str) -> bool:
    return path.startswith(_roots()[1]) and not any(part in path for part in _LIBRARY_PARTS)


def _unclocked(stack: tuple[Frame, ...]) -> tuple[Frame, ...]:
    """The stack without the hook's clocks around the user's callback hooks (they call the
    callback: the callback list's own frames, as it were)."""
    return tuple(f for f in stack if f[0] != _CLOCKS)


def classify(stack: tuple[Frame, ...]) -> Place:
    """The place a stack's time (or allocation) belongs to; see the module docstring."""
    stack = _unclocked(stack)
    if not stack:
        return Place(FRAMEWORK, "unknown", "", "")
    users = [i for i, f in enumerate(stack) if is_user(f[0])]
    inner_user = users[-1] if users else None
    if any(frame[0].startswith(_EXPLAIN) for frame in stack):
        return Place(HOOK, LOOK_INSIDE, site(stack[-1]), stack[-1][2])
    if hook_inside(stack):
        return Place(HOOK, "epochwatch (the hook itself)", site(stack[-1]), stack[-1][2])
    at = _callback_frame(stack)
    if at is not None:
        cb = stack[at]
        if cb[0].startswith(_EPOCHWATCH):  # the hook's own callback, in whatever it calls
            return Place(HOOK, "epochwatch (the hook itself)", site(cb), cb[2])
        anchor = stack[inner_user] if inner_user is not None and inner_user >= at else cb
        return Place(CALLBACK, cb[2], site(anchor), anchor[2])
    tracing = next((i for i, f in enumerate(stack) if _matches(f, _TRACING)), None)
    if tracing is not None:  # user code run while tracing (a layer's call) is tracing too
        owner = next((stack[i] for i in reversed(range(tracing)) if is_user(stack[i][0])), stack[tracing])
        return Place(TRACING, TRACING, site(owner), owner[2])
    below = stack[inner_user + 1 :] if inner_user is not None else stack
    # The library work under the user's innermost frame (or the whole stack): what it does.
    if _matches(stack[-1], _STEP_LOOPS):
        owner = stack[inner_user] if inner_user is not None else stack[-1]
        return Place(COMPILED, COMPILED, site(owner), owner[2])
    for category, test in (
        (INPUT, lambda f: _in(f, _INPUT)),
        (COMPILED, lambda f: _matches(f, _COMPILED) or _in(f, _TORCH_OPS)),
    ):
        if any(test(f) for f in below):
            owner = stack[inner_user] if inner_user is not None else below[-1]
            return Place(category, category, site(owner), owner[2])
    inner = stack[-1]
    callee = next((f for f in below if not f[0].startswith(_EPOCHWATCH)), None)  # past the fit wrapper
    if inner_user is not None and not (callee is not None and _in(callee, _FRAMEWORKS)):
        frame = stack[inner_user]
        return Place(USER, f"{frame[2]} ({site(frame)})", site(frame), frame[2])
    return Place(FRAMEWORK, f"{FRAMEWORK}: {short_path(inner[0])}", site(inner), inner[2])


def classify_other(stack: tuple[Frame, ...]) -> Place | None:
    """A thread other than the training thread, when it runs work the training waits for:
    a callback Keras dispatched to its thread pool, or the user's code feeding the input
    pipeline (a generator or `PyDataset.__getitem__` that tf.data runs on its threads).
    Anything else on other threads is not the training's time: None."""
    stack = _unclocked(stack)
    if not stack or hook_inside(stack):
        return None
    if _callback_frame(stack) is not None:
        return classify(stack)
    feeding = next((i for i, f in enumerate(stack) if _in(f, _INPUT)), None)
    if feeding is None:
        return None
    user = next((stack[i] for i in reversed(range(feeding + 1, len(stack))) if is_user(stack[i][0])), None)
    if user is None:
        return None
    return Place(INPUT, f"{INPUT}: {user[2]}", site(user), user[2])


def current_stack(frame: object, depth: int = 96) -> tuple[Frame, ...]:
    """A live frame's stack, outermost first, at most `depth` frames (innermost kept)."""
    out: list[Frame] = []
    f = frame
    while f is not None and len(out) < depth:
        code = f.f_code  # type: ignore[attr-defined]
        out.append((code.co_filename, f.f_lineno or 0, getattr(code, "co_qualname", code.co_name)))  # type: ignore[attr-defined]
        f = f.f_back  # type: ignore[attr-defined]
    out.reverse()
    return tuple(out)
