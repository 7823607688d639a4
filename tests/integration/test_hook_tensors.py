"""`hook.log` of framework tensors: kept on their device, summed once per epoch, no warnings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.support import of_type, read_single_trace, run_python

TF_LOOP = """
import warnings
warnings.simplefilter("error")  # any warning the hook causes fails the script
from epochwatch import hook
import tensorflow as tf

for n in range(3):
    with hook.epoch(n):
        for step in range(200):
            hook.log(loss=tf.constant(float(step)), half=tf.constant(0.5, dtype=tf.float16),
                     matrix=tf.ones([2, 2]))
print("done")
"""


def test_tf_eager_tensors_are_averaged_per_epoch(tmp_path: Path) -> None:
    proc = run_python(TF_LOOP, tmp_path)
    assert "done" in proc.stdout
    assert "disabled" not in proc.stderr  # nothing failed, nothing switched off
    epochs = of_type(read_single_trace(tmp_path), "epoch")
    assert len(epochs) == 3
    for e in epochs:
        assert e["metrics"]["loss"] == pytest.approx(99.5)  # mean of 0..199
        assert e["metrics"]["half"] == pytest.approx(0.5)
        assert "matrix" not in e["metrics"]  # not a number: left out, never an error
        assert e["steps"] == 200


TORCH_LOOP = """
import warnings
warnings.simplefilter("error")  # torch's "Converting a tensor with requires_grad=True" fails the script
import torch
from epochwatch import hook

w = torch.ones(3, requires_grad=True)
for n in range(2):
    with hook.epoch(n):
        for step in range(50):
            loss = (w * step).sum()          # requires grad
            hook.log(loss=loss, shaped=loss.reshape(1, 1))
        # more than the fold limit in one epoch: still one mean, still no warning
        for step in range(1100):
            hook.log(many=(w * 0 + 1).sum())
print("done")
"""


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed here")
def test_torch_tensors_that_require_grad_are_logged_without_a_warning(tmp_path: Path) -> None:
    proc = run_python(TORCH_LOOP, tmp_path)
    assert "done" in proc.stdout
    assert "requires_grad" not in proc.stderr and "disabled" not in proc.stderr
    for e in of_type(read_single_trace(tmp_path), "epoch"):
        assert e["metrics"]["loss"] == pytest.approx(3 * 24.5)
        assert e["metrics"]["shaped"] == pytest.approx(3 * 24.5)
        assert e["metrics"]["many"] == pytest.approx(3.0)


JAX_LOOP = """
import warnings
warnings.simplefilter("error")
import jax.numpy as jnp
from epochwatch import hook

for n in range(2):
    with hook.epoch(n):
        for step in range(40):
            hook.log(loss=jnp.float32(step) * 2)
print("done")
"""


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed here")
def test_jax_arrays_are_averaged_per_epoch(tmp_path: Path) -> None:
    proc = run_python(JAX_LOOP, tmp_path)
    assert "done" in proc.stdout and "disabled" not in proc.stderr
    for e in of_type(read_single_trace(tmp_path), "epoch"):
        assert e["metrics"]["loss"] == pytest.approx(39.0)
