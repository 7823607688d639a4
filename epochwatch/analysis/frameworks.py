"""Which framework a run trained with, and the advice worded for it.

A finding's fix must be one the user can apply: `tf.config.experimental.get_memory_info`
means nothing to a PyTorch loop, and a JAX user does not write tf.functions. The run says
what it used in `run_start.env`: `keras_backend` (Keras 3 on TF, JAX or PyTorch) and
`frameworks` (what the script had imported). Detectors keep their TensorFlow wording as
the default and ask `hint()` for another framework's, from the one table below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TENSORFLOW, TORCH, JAX = "tensorflow", "torch", "jax"

# Names a function's compilation goes by, for titles ("tf.function `train_step` retraced").
COMPILED = {TENSORFLOW: "tf.function", TORCH: "torch.compile'd function", JAX: "jitted function"}

# How a leak's fix says where to look, until the hook's look inside named the code itself.
TRACEMALLOC = "tracemalloc snapshots two epochs apart show where"
NAMED = "start with the code the look inside named (where)"
# Every framework's slowdown advice begins so (a clause up to its first ";"): built from it.
PROFILE_IT = "compare a slow epoch with an early one in a profile"
PROFILED = (
    "the slow steps' profile is saved (where), beside an early one when it was taken: find what "
    "makes the ops named there do more work each epoch (an input, a sequence or a kept tensor that "
    "grows, a loop's trip count) and keep it fixed"
)
# A slowdown the stack samples found inside the compiled step, not profiled: what grows a step.
IN_STEP = (
    "the added time is inside the compiled step (where), not in Python: usual causes are an input, "
    "a sequence or a kept tensor that grows, or a loop's trip count that rises each epoch"
)
# A slowdown the stack samples put on a line of the script (a callback, the loop, the input).
AT_LINE = "start with the code the look inside named (where): find what it does more of each epoch and keep it constant"
# explain/frames.py's categories (analysis sits below explain: named here again)
_PYTHON_PLACES = ("user code", "callback", "input pipeline")
_IN_STEP_PLACE = "inside the compiled step"
PYTHON_SHARE = 0.2  # of the added time: a place of the script that holds it

# (topic, framework) -> advice. Topics are finding kinds, or `kind:detail` where a kind's
# advice has several parts (retrace causes).
_HINTS: dict[tuple[str, str], str] = {
    ("gpu_memory_growth", TORCH): (
        "tensors stay alive across epochs: look for Python lists of CUDA tensors (losses or outputs "
        "kept without .item()/.detach().cpu()), a loss accumulated with `total += loss` (keeps every "
        "step's graph), and modules or optimizers created every epoch; torch.cuda.memory_allocated() "
        "per epoch confirms the growth (memory_reserved() growing alone is the caching allocator, not "
        "a leak; torch.cuda.memory_summary() shows what holds it)"
    ),
    ("gpu_memory_growth", JAX): (
        "device arrays stay alive across epochs: look for Python lists or dicts of jax.Array (outputs, "
        "losses kept without float()/np.asarray()), callbacks that keep a batch's results, and jitted "
        "functions recompiled every epoch (each keeps its executable and constants); "
        "jax.devices()[0].memory_stats()['bytes_in_use'] per epoch confirms the growth, "
        "jax.live_arrays() lists what is held"
    ),
    ("gpu_memory_pressure", TORCH): (
        "the model is about to run out of GPU memory: lower the batch size, use mixed precision "
        "(torch.autocast with a GradScaler), gradient checkpointing (torch.utils.checkpoint), free tensors "
        "kept between steps, or move other processes off this GPU; PYTORCH_CUDA_ALLOC_CONF="
        "expandable_segments:True reduces fragmentation"
    ),
    ("gpu_memory_pressure", JAX): (
        "the model is about to run out of GPU memory: lower the batch size, use bfloat16 parameters or "
        "activations, rematerialise (jax.checkpoint), or move other processes off this GPU; "
        "XLA_PYTHON_CLIENT_MEM_FRACTION sets how much JAX reserves when several jobs share a device"
    ),
    ("retrace_storm:none", TORCH): (
        "the function is compiled anew without a changing input: torch.compile is probably called "
        "again every epoch (or a new module is compiled each time); compile once, outside the loop"
    ),
    ("retrace_storm:none", JAX): (
        "the function is compiled anew without a changing argument: it is probably wrapped in jax.jit "
        "again every epoch (or a new model is built each time); jit it once, outside the loop"
    ),
    ("retrace_storm:jitted_anew", JAX): (
        "the function compiles again for argument types it compiled before: jax.jit is called again "
        "inside the loop (a new jitted function each time, a lambda or a closure made per epoch), and "
        "each new one compiles every shape anew and keeps its executables; jit it once, outside the loop"
    ),
    ("retrace_storm:shape", TORCH): (
        "an input changes shape ({was} -> {now}) and torch.compile specialises on it: mark the varying "
        "dimension dynamic (torch._dynamo.mark_dynamic(x, 0), or torch.compile(dynamic=True)), or make "
        "batches the same shape (drop_last=True in the DataLoader, padding or bucketing)"
    ),
    ("retrace_storm:shape", JAX): (
        "argument `{arg}` changes shape ({was} -> {now}) and jax.jit compiles once per shape: make "
        "batches the same shape (drop the last partial batch, pad to a few bucket sizes), or pass the "
        "varying size as data rather than as a shape"
    ),
    ("retrace_storm:value", TORCH): (
        "a Python value the function reads changes ({was} -> {now}) and torch.compile guards on it: "
        "pass it as a tensor, or keep it out of the compiled function"
    ),
    ("retrace_storm:value", JAX): (
        "a static argument changes value ({was} -> {now}): every new value of a static_argnums/"
        "static_argnames argument compiles again; pass it as an array instead"
    ),
    ("retrace_storm:dtype", TORCH): (
        "an input changes dtype ({was} -> {now}): cast it to one dtype before the call"
    ),
    ("retrace_storm:dtype", JAX): (
        "argument `{arg}` changes dtype ({was} -> {now}): cast it to one dtype before the call"
    ),
    ("retrace_storm:other", TORCH): (
        "a guard keeps failing ({was} -> {now}): keep what the compiled function reads (input shapes, "
        "dtypes, Python values, module attributes) fixed between calls; TORCH_LOGS=recompiles prints each reason"
    ),
    ("retrace_storm:other", JAX): (
        "the function's inputs keep changing ({change}: {was} -> {now}): keep argument structure, shapes "
        "and dtypes fixed; jax.config.update('jax_explain_cache_misses', True) prints each reason"
    ),
    ("slowdown", TORCH): (
        f"{PROFILE_IT} (torch.profiler.profile around a few "
        "steps of each; py-spy dump --pid <pid> for the Python side); usual causes are Python-side "
        "state that grows every epoch (losses or outputs kept as tensors, metrics kept forever), a "
        "dataset or cache that grows, or hooks and callbacks doing more work each epoch"
    ),
    ("slowdown", JAX): (
        f"{PROFILE_IT} (jax.profiler.trace around a few steps "
        "of each; py-spy dump --pid <pid> for the Python side); usual causes are Python-side state that "
        "grows every epoch (outputs kept as arrays, metrics kept forever), functions jitted anew, or "
        "callbacks doing more work each epoch"
    ),
    ("slowdown:step", TORCH): (
        "something changed at that epoch and stayed: compare a profile of an epoch before and after it "
        "(torch.profiler.profile around a few steps of each); usual causes are a schedule that starts at "
        "that epoch, data that changed (longer sequences, a bigger dataset), another job on the same machine, or a device that fell back to a "
        "slower path"
    ),
    ("slowdown:step", JAX): (
        "something changed at that epoch and stayed: compare a profile of an epoch before and after it "
        "(jax.profiler.trace around a few steps of each); usual causes are a schedule that starts at that "
        "epoch, data that changed (longer sequences: a new shape compiles anew), another job on the same machine, or a device that fell "
        "back to a slower path"
    ),
    ("host_memory_growth", TORCH): (
        "something keeps a reference to data every epoch: look for lists that append losses or outputs "
        "(keep `loss.item()`, not the tensor: a tensor that requires grad keeps its whole graph), "
        "DataLoader workers that cache samples, modules or optimizers created inside the loop, and numpy "
        "arrays cached per epoch; " + TRACEMALLOC
    ),
    ("host_memory_growth", JAX): (
        "something keeps a reference to data every epoch: look for lists that append outputs or metrics "
        "(keep float(x), not the array), functions jitted anew inside the loop (each compilation is "
        "cached), and numpy arrays cached per epoch; " + TRACEMALLOC
    ),
    ("host_contention", TORCH): (
        "other processes compete for the CPU: find them (`epochwatch status`, top), move them or this "
        "job, pin with taskset/cgroups, or lower torch.set_num_threads() and the DataLoader's "
        "num_workers to the cores that are free"
    ),
    ("host_contention", JAX): (
        "other processes compete for the CPU: find them (`epochwatch status`, top), move them or this "
        "job, pin with taskset/cgroups, or limit XLA's CPU threads (XLA_FLAGS="
        "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=N) to the cores that are free"
    ),
    ("optimizer_state_not_restored", TORCH): (
        "The checkpoint did not bring the optimizer's state back (`optimizer.state` was empty at the "
        "first step of the resumed run). Save all of it: `torch.save({'model': model.state_dict(), "
        "'optimizer': optimizer.state_dict(), 'scheduler': scheduler.state_dict(), 'scaler': "
        "scaler.state_dict(), 'epoch': epoch}, path)`, and after building model and optimizer call "
        "`model.load_state_dict(ckpt['model'])`, `optimizer.load_state_dict(ckpt['optimizer'])` (and the "
        "scheduler's and scaler's) before the first step."
    ),
    ("loss_jump_after_restore", TORCH): (
        "The resumed run is not continuing where its parent stopped. Look at the other restore "
        "findings of this run for the cause: optimizer state not restored, inputs scaled differently "
        "(input_distribution_shift: a scaler refitted instead of reloaded), a changed learning rate or "
        "scheduler position. Restore the full state (model, optimizer, scheduler and GradScaler "
        "state_dicts) and feed the inputs through the same preprocessing as the parent."
    ),
}


def framework(start: Mapping[str, Any] | None) -> str:
    """The run's framework: Keras' backend if it used Keras, else the one framework it imported."""
    env = (start or {}).get("env") if isinstance(start, Mapping) else None
    if not isinstance(env, Mapping):
        return TENSORFLOW
    backend = env.get("keras_backend")
    if backend in (TENSORFLOW, TORCH, JAX):
        return str(backend)
    imported = env.get("frameworks")
    if isinstance(imported, list):
        if TENSORFLOW in imported:
            return TENSORFLOW
        for name in (TORCH, JAX):
            if name in imported:
                return name
    return TENSORFLOW


def after_look_inside(findings: list[dict[str, Any]]) -> None:
    """A fix never sends the user to find what the look inside already found, nor names
    causes its evidence ruled out: a finding dict whose `where` names code
    (analysis/explained.py) gets NAMED for TRACEMALLOC; a slowdown whose slow steps were
    profiled gets PROFILED (the ops are named), one sampled inside the compiled step the
    profiler's advice and IN_STEP's causes, one on a line of the script AT_LINE; the usual
    Python-side causes stay only where a place of the script holds PYTHON_SHARE of the time."""
    for f in findings:
        where = f.get("where")
        if not isinstance(where, Mapping):
            continue
        said = str(f.get("hint"))
        if where.get("places") and TRACEMALLOC in said:
            f["hint"] = said.replace(TRACEMALLOC, NAMED)
        elif said.startswith(PROFILE_IT):
            f["hint"] = _slowdown_after_look_inside(where, said)


def _slowdown_after_look_inside(where: Mapping[str, Any], said: str) -> str:
    places = [p for p in where.get("places") or [] if isinstance(p, Mapping)]
    # A place of the script holding a good share keeps the Python-side causes in the fix
    # (on a loaded host a callback's growth also shows as time inside the compiled step).
    in_python = any(
        p.get("category") in _PYTHON_PLACES and p.get("site") and _share(p) >= PYTHON_SHARE for p in places
    )
    in_step = bool(places) and places[0].get("category") == _IN_STEP_PLACE
    profile, causes = said.split(";", 1) if ";" in said else (said, "")
    if where.get("profile_dir"):
        return f"{PROFILED};{causes}" if in_python and causes else PROFILED
    if in_python and not in_step:
        return f"{AT_LINE};{causes}" if causes else AT_LINE
    if in_step and not in_python:
        return f"{profile}; {IN_STEP}"
    return said


def _share(place: Mapping[str, Any]) -> float:
    share = place.get("share")
    return float(share) if isinstance(share, (int, float)) else 0.0


def hint(topic: str, fw: str, default: str, **fields: str) -> str:
    """`default` (the TensorFlow wording) unless the table has advice for `fw`, formatted with `fields`."""
    text = _HINTS.get((topic, fw))
    if text is None:
        return default
    try:
        return text.format(**fields)
    except (KeyError, IndexError, ValueError):
        return text
