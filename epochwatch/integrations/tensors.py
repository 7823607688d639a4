"""`hook.log` of framework tensors: summed on their device once per epoch, one transfer per metric.

A custom loop logs `loss=loss` every step. Converting each value with `float()` would
copy it to the host and wait for the device every step; so the Recorder keeps the
tensors as they are and, at the epoch's end, hands each metric's list here: the values
are stacked and summed where they live (one small kernel) and only the sum crosses to
the host. Tensors that require gradients are summed under `torch.no_grad()` (no graph,
and no "Converting a tensor with requires_grad=True to a scalar" warning).

The framework is found by the tensor's type (`type(value).__module__`), and its module
is taken from `sys.modules`: a tensor of it exists, so the script imported it; nothing
here imports a framework.
"""

from __future__ import annotations

import sys
from typing import Any

from epochwatch.logged import to_float

_FRAMEWORKS = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax", "jaxlib": "jax"}  # by root module


def framework(value: Any) -> str | None:
    """'torch', 'tensorflow' or 'jax' for a tensor of that framework, else None."""
    return _FRAMEWORKS.get(type(value).__module__.partition(".")[0])


def reduce_sum(values: list[Any]) -> tuple[float, int] | None:
    """(sum, count) of scalar tensors of one framework, computed on their device with one
    transfer; None when they are not all scalar tensors of one framework we know (the
    caller then converts each value itself)."""
    if not values:
        return None
    name = framework(values[0])
    if name is None or any(type(v) is not type(values[0]) for v in values):
        return None
    module = sys.modules.get(name)
    if module is None:
        return None
    return {"torch": _torch, "tensorflow": _tf, "jax": _jax}[name](module, values)


def scalar(value: Any) -> float | None:
    """One tensor to a float, detached first (no autograd warning); None if it is not a number."""
    detach = getattr(value, "detach", None)
    if callable(detach) and framework(value) == "torch":
        value = detach()
    return to_float(value)


def _torch(torch: Any, values: list[Any]) -> tuple[float, int] | None:
    if any(v.numel() != 1 for v in values):
        return None
    with torch.no_grad():
        flat = torch.stack([v.reshape(()) for v in values]) if values[0].dim() else torch.stack(values)
        total = flat.to(torch.float64 if flat.device.type == "cpu" else torch.float32).sum().item()
    return float(total), len(values)


def _tf(tf: Any, values: list[Any]) -> tuple[float, int] | None:
    if any(v.shape.num_elements() != 1 for v in values):
        return None
    if values[0].device.endswith("CPU:0"):
        # Already in host memory: no transfer to save, and one eager op costs more than
        # reading each value (TF's eager ops take tens of microseconds on a CPU).
        return float(sum(float(v.numpy()) for v in values)), len(values)
    if values[0].dtype in (tf.float32, tf.float64) and all(v.shape.rank == 0 for v in values):
        return float(tf.add_n(values).numpy()), len(values)  # one op, one transfer
    flat = tf.reshape(tf.stack(values), [-1])
    return float(tf.reduce_sum(tf.cast(flat, tf.float64)).numpy()), len(values)


def _jax(jax: Any, values: list[Any]) -> tuple[float, int] | None:
    if any(getattr(v, "size", 0) != 1 for v in values):
        return None
    # Not jnp.stack: JAX compiles an op per operand count, so each new number of steps
    # would compile anew. device_get fetches the whole list in one call (one wait).
    device = next(iter(values[0].devices()), None)
    if device is not None and device.platform == "cpu":
        return float(sum(float(v) for v in values)), len(values)  # host memory: nothing to batch
    return float(sum(float(v) for v in jax.device_get(values))), len(values)
