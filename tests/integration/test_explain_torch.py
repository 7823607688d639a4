"""Explain on real eager PyTorch (issue 25, item 3): a step whose ops grow every epoch is
"inside the compiled step" at the user's line, and torch.profiler captures name the aten
ops that grew; TorchProfiler's thread rules on real torch.

Runs where torch is importable (a scratch environment: CI has none, see test_backends.py).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.support import child_env, of_type, read_single_trace, run_python

torch: Any = pytest.importorskip("torch")

# An eager loop whose sequence grows every epoch: the step's matmuls grow with it.
GROWING_STEP = """
import epochwatch.hook
import torch
from epochwatch import hook

torch.manual_seed(0)
torch.set_num_threads(1)
model = torch.nn.Sequential(
    torch.nn.Linear(64, 256), torch.nn.Tanh(), torch.nn.Linear(256, 256), torch.nn.Tanh(), torch.nn.Linear(256, 1)
)
opt = torch.optim.SGD(model.parameters(), lr=0.001)
data = torch.randn(16, 32 * 20, 64)
for epoch in range(20):  # long enough to pay for a baseline capture before the slow one
    x = data[:, : 32 * (1 + epoch)]  # the sequence grows every epoch
    y = x.sum(dim=2, keepdim=True)
    with hook.epoch(epoch):
        for step in range(6):
            loss = ((model(x) - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()  # PLANTED: the step's ops grow with the sequence
            opt.step()
"""

# The step's ops whose work grows with the sequence: the layers' matmuls (forward and
# gradients), the activations, the bias gradients' sums over the rows.
MODEL_OPS = ("aten::addmm", "aten::mm", "aten::tanh", "aten::tanh_backward", "aten::sum")


def test_an_eager_step_that_grows_is_inside_the_step_and_its_grown_aten_ops_are_named(tmp_path: Path) -> None:
    proc = run_python(GROWING_STEP, tmp_path, env=child_env(tmp_path))
    records = read_single_trace(tmp_path)
    found = [r for r in of_type(records, "explain") if r["explains"] == "slowdown"]
    assert found, [r["seconds"] for r in of_type(records, "epoch")]
    sampled = [r for r in found if r["method"] == "stack_sampling"]
    top = sampled[0]["where"][0]
    assert top["category"] == "inside the compiled step", sampled[0]
    # At the user's line that runs the ops (the backward, or the model's call): not torch's files.
    assert top["site"].startswith("train_script.py:"), top
    (profiled,) = [r for r in found if r["method"] == "profiler"]
    for key in ("profile_dir", "baseline_profile_dir"):
        assert list(Path(profiled[key]).glob("*.pt.trace.json")), profiled
    ops = profiled["ops"]
    assert ops and all(o["added_seconds_per_step"] > 0 for o in ops), ops
    # The matmuls lead; on this loaded 2-core host any one op can also hold a few ms of the
    # process waiting for a core (aten::sum once read 49%), so the rest is judged together.
    assert any(o["op"] in ("aten::mm (CPU)", "aten::addmm (CPU)") for o in ops[:2]), ops
    named = [o for o in ops if o["op"].rsplit(" ", 1)[0] in MODEL_OPS]
    assert sum(o["share"] for o in named) >= 0.6, ops
    assert "the ops whose time grew most" in profiled["summary"], profiled
    # kineto's own lines on stderr (not ours to silence): two a capture (a capture that held no
    # whole step is taken again).
    assert proc.stderr.count("profiler_start") >= 2, proc.stderr[-2000:]


def _training_step() -> Any:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(64, 16)

    def step() -> None:
        loss = (model(x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def test_a_stop_from_another_thread_is_carried_out_at_the_training_threads_next_step(tmp_path: Path) -> None:
    from epochwatch.integrations import torch_profile
    from epochwatch.integrations.torch_profile import TorchProfiler

    torch_profile.install()  # what the hook does when the script imports torch
    step = _training_step()
    step()
    profiler = TorchProfiler()
    assert profiler.start(str(tmp_path))
    for _ in range(2):
        step()
    timer = threading.Thread(target=profiler.stop)  # the capture's Timer
    timer.start()
    timer.join()
    # torch.profiler's CPU session is this thread's: still running until our next step ends.
    assert profiler.running and torch._C._autograd._profiler_enabled()
    step()
    assert not profiler.running and not torch._C._autograd._profiler_enabled()
    step()  # not recorded
    found = profiler.op_seconds(str(tmp_path))
    assert found is not None
    seconds, steps = found
    assert steps == 3, found
    assert {"aten::addmm (CPU)", "aten::tanh (CPU)"} <= set(seconds), seconds
    assert list(tmp_path.glob("*.pt.trace.json"))
    assert profiler.op_seconds(str(tmp_path)) is None  # read once


def test_raw_events_read_as_torchs_own_key_averages() -> None:
    """cpu_op_seconds (raw kineto events, nested per thread) against torch's key_averages()."""
    from epochwatch.integrations.torch_profile import cpu_op_seconds, op_seconds

    step = _training_step()
    step()
    prof = torch.autograd.profiler.profile(use_kineto=True)
    prof.__enter__()
    for _ in range(4):
        step()
    prof.__exit__(None, None, None)
    raw, reference = cpu_op_seconds(prof.kineto_results.events()), op_seconds(prof.key_averages())
    assert raw is not None and reference is not None and raw[1] == reference[1] == 4
    assert raw[0] == pytest.approx(reference[0], rel=1e-3, abs=1e-8), (raw, reference)


def test_a_scripts_own_profiler_session_makes_start_refuse(tmp_path: Path) -> None:
    from epochwatch.integrations.torch_profile import TorchProfiler

    profiler = TorchProfiler()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]):
        assert not profiler.start(str(tmp_path))
        seen: list[bool] = []
        other = threading.Thread(target=lambda: seen.append(profiler.start(str(tmp_path))))
        other.start()
        other.join()
        assert seen == [False]  # its session, started on another thread, counts too
    assert not profiler.running
    assert profiler.start(str(tmp_path))  # and ours, once the script's ended
    assert not profiler.start(str(tmp_path))  # one at a time
    profiler.stop()
    assert not profiler.running


def test_cuda_allocation_history_is_never_started_where_cuda_is_not_initialised() -> None:
    """Where CUDA is absent or the script never initialised it, the GPU window's recorder
    refuses (it never initialises CUDA itself) and stops as a no-op."""
    from epochwatch.integrations.torch_cuda_history import CudaHistory

    history = CudaHistory()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        pytest.skip("CUDA initialised in this process")
    assert not history.start()
    assert history.stop() is None
    assert not torch.cuda.is_initialized()
