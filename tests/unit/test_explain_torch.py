"""Explain on eager PyTorch, without torch: torch's op-running frames are the step's ops
(frames.py), a capture's `key_averages()` rows read as own seconds per step
(integrations/torch_profile.py), and the hook's choice of profiler."""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any

import pytest

from epochwatch.explain.captures import describe_ops, grown_ops
from epochwatch.explain.frames import COMPILED, INPUT, USER, Place, classify
from epochwatch.integrations import profilers
from epochwatch.integrations import torch as torch_integration
from epochwatch.integrations.torch_profile import TorchProfiler, op_seconds

SITE = "/usr/lib/python3/site-packages/"
TRAIN = "/home/me/train.py"
LOOP = (TRAIN, 30, "<module>")


def test_autograd_backward_is_the_steps_ops_at_the_users_line() -> None:
    backward = (
        LOOP,
        (SITE + "torch/_tensor.py", 625, "Tensor.backward"),
        (SITE + "torch/autograd/__init__.py", 354, "backward"),
        (SITE + "torch/autograd/graph.py", 841, "_engine_run_backward"),
    )
    place = classify(backward)
    assert place.category == COMPILED and place.site == f"{TRAIN}:30", place


def test_a_modules_forward_is_the_steps_ops_at_the_users_forward_line() -> None:
    forward = (
        LOOP,
        (SITE + "torch/nn/modules/module.py", 1775, "Module._wrapped_call_impl"),
        (SITE + "torch/nn/modules/module.py", 1786, "Module._call_impl"),
        (TRAIN, 12, "Net.forward"),
        (SITE + "torch/nn/modules/module.py", 1786, "Module._call_impl"),
        (SITE + "torch/nn/modules/linear.py", 134, "Linear.forward"),
    )
    place = classify(forward)
    assert place.category == COMPILED and place.site == f"{TRAIN}:12" and place.function == "Net.forward"
    # The user's own Python inside forward is still the user's code.
    assert classify(forward[:4]).category == USER
    step = (
        LOOP,
        (SITE + "torch/optim/optimizer.py", 516, "wrapper"),
        (SITE + "torch/optim/sgd.py", 80, "SGD.step"),
    )
    assert classify(step).category == COMPILED


def test_a_dataloader_stays_the_input_pipeline() -> None:
    loader = (
        LOOP,
        (SITE + "torch/utils/data/dataloader.py", 733, "_BaseDataLoaderIter.__next__"),
        (SITE + "torch/utils/data/_utils/collate.py", 200, "collate"),
        (SITE + "torch/_tensor.py", 100, "Tensor.__torch_function__"),
    )
    assert classify(loader).category == INPUT


@dataclass
class _Row:  # a key_averages() row: what op_seconds reads of torch's FunctionEventAvg
    key: str
    count: int
    self_cpu_time_total: float  # us
    self_device_time_total: float = 0.0
    device_type: str = "DeviceType.CPU"
    is_user_annotation: bool = False


def test_op_rows_are_own_seconds_per_optimizer_step_cpu_and_gpu_apart() -> None:
    rows = [
        _Row("Optimizer.step#SGD.step", 4, 400.0),
        _Row("aten::addmm", 8, 8000.0, self_device_time_total=2000.0),
        _Row("aten::tanh", 4, 1000.0),
        # The kernel's own row: its time is counted once, on the op that launched it.
        _Row("void gemm_kernel<float>", 8, 0.0, 2000.0, "DeviceType.CUDA"),
        _Row("aten::zeros", 1, 0.0),
        _Row("my_forward_range", 4, 90000.0, is_user_annotation=True),  # the script's record_function
    ]
    found = op_seconds(rows)
    assert found is not None
    seconds, steps = found
    assert steps == 4
    assert seconds == pytest.approx(
        {  # the optimizer's record_function range counts the steps, not as an op
            "aten::addmm (CPU)": 2e-3,
            "aten::addmm (GPU)": 5e-4,
            "aten::tanh (CPU)": 2.5e-4,
        }
    )
    assert op_seconds(rows[1:]) is None  # no optimizer step: no per-step answer
    grown = grown_ops({"aten::addmm (CPU)": 1e-3, "aten::tanh (CPU)": 2.5e-4}, seconds)
    assert grown[0]["op"] == "aten::addmm (CPU)"
    said = describe_ops(grown, True, "/t/run.profile", TorchProfiler.how_to_open("/t/run.profile"))
    assert "% aten::addmm (CPU)" in said and "pt.trace.json" in said and "Profile)" not in said, said


def test_the_hook_picks_the_profiler_of_the_framework_whose_steps_the_run_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Loop:
        steps = False

        def stepped(self) -> bool:
            return self.steps

    loop = Loop()
    monkeypatch.setattr(torch_integration, "_tracker", loop)

    def picked(*imported: str) -> str:
        return type(profilers.for_run(dict.fromkeys(imported, object()))).__name__

    assert picked() == "NoneType"
    assert picked("torch") == "TorchProfiler"  # torch alone
    assert picked("tensorflow") == "TFProfiler"
    assert picked("torch", "tensorflow") == "TFProfiler"  # both imported, no torch step
    loop.steps = True
    assert picked("torch", "tensorflow") == "TorchProfiler"
    # An import the script blocked (`sys.modules["tensorflow"] = None`) is no framework imported.
    blocked = {"tensorflow": None}
    assert profilers.for_run(blocked) is None
    assert type(profilers.for_run({**blocked, "torch": object()})).__name__ == "TorchProfiler"


def test_a_stop_from_another_thread_waits_for_the_training_threads_step() -> None:
    """The thread rule without torch: a stop from elsewhere is only asked for; the starting
    thread's next optimizer step end (after_step) carries it out."""
    import threading

    from epochwatch.integrations import torch_profile

    class Session:  # a torch.autograd.profiler.profile session, entered
        stopped = 0

        def __exit__(self, *_exc: object) -> None:
            self.stopped += 1

    profiler = TorchProfiler()
    session: Any = Session()
    profiler._prof, profiler._thread, profiler._logdir = session, threading.get_ident(), "/p"
    other = threading.Thread(target=profiler.stop)
    other.start()
    other.join()
    assert session.stopped == 0 and torch_profile._stopping is profiler
    elsewhere = threading.Thread(target=torch_profile.after_step)  # another thread's step
    elsewhere.start()
    elsewhere.join()
    assert session.stopped == 0
    torch_profile.after_step()  # this thread's next optimizer step ends
    assert session.stopped == 1 and torch_profile._stopping is None and not profiler.running
    assert profiler._stopped == {"/p": session}


def test_a_framework_imported_from_outside_site_packages_is_not_user_code() -> None:
    """torch from a source checkout or a directory on PYTHONPATH: its files are the
    framework's, found by the imported package's own path."""
    from epochwatch.explain import frames

    torch_like = types.SimpleNamespace(__path__=["/opt/scratch/torch"])
    assert frames.framework_dirs({"torch": torch_like, "numpy": torch_like}) == ("/opt/scratch/torch/",)
    assert frames.framework_dirs({}) == ()


def test_the_steps_time_spread_over_other_lines_is_compared_as_one_place() -> None:
    """A place is (category, label); its site is each window's busiest line. An eager torch
    step's time moves between its forward, backward and update lines from one window to
    the next: the baseline's time there still counts as the place's before."""
    from collections import Counter

    from epochwatch.explain.added import added_time
    from epochwatch.explain.frames import Place
    from epochwatch.explain.stacks import Profile

    def window(line: int, n: int, epoch_seconds: float) -> Profile:
        place = Place(COMPILED, COMPILED, f"train.py:{line}", "<module>")
        return Profile(n, epoch_seconds, 1, epoch_seconds, Counter({place: n}))

    (where,) = added_time(window(18, 50, 0.1), window(16, 50, 0.4))
    assert where["site"] == "train.py:16" and where["baseline_seconds_per_epoch"] == 0.1, where
    assert abs(where["added_seconds_per_epoch"] - 0.3) < 1e-9


def test_the_hooks_own_capture_work_in_torchs_profiler_is_the_hook() -> None:
    """An epoch record's explain work calls torch's profiler (a capture's start, its read):
    torch's files below the user's line, but the hook's time, not the step's."""
    from epochwatch.explain import frames

    own = frames._EPOCHWATCH
    stack = (
        LOOP,
        (own + "recorder/__init__.py", 300, "Recorder.end_epoch"),
        (own + "explain/captures.py", 120, "Captures._read"),
        (own + "integrations/torch_profile.py", 140, "TorchProfiler.op_seconds"),
        (SITE + "torch/autograd/profiler.py", 614, "profile._parse_kineto_results"),
    )
    place = classify(stack)
    assert place.category == "epochwatch" and place.label == frames.LOOK_INSIDE
    recording = (
        LOOP,
        (own + "recorder/__init__.py", 300, "Recorder.end_epoch"),
        (SITE + "torch/_tensor.py", 9, "f"),
    )
    assert classify(recording).label == "epochwatch (the hook itself)"
    # Never named as where a slowdown's time went: its cost is the hook's overhead.
    from collections import Counter

    from epochwatch.explain.added import added_time
    from epochwatch.explain.stacks import Profile

    step = Place(COMPILED, COMPILED, "train.py:30", "<module>")
    base = Profile(100, 1.0, 1, 0.1, Counter({step: 100}))
    slow = Profile(100, 1.0, 1, 0.3, Counter({step: 50, place: 50}))
    assert [w["label"] for w in added_time(base, slow)] == [COMPILED]


@dataclass
class _Event:  # a raw kineto event: what cpu_op_seconds reads
    _name: str
    start: int  # ns
    duration: int
    thread: int = 1
    annotation: bool = False
    device: str = "DeviceType.CPU"

    def name(self) -> str:
        return self._name

    def start_ns(self) -> int:
        return self.start

    def duration_ns(self) -> int:
        return self.duration

    def start_thread_id(self) -> int:
        return self.thread

    def device_type(self) -> str:
        return self.device

    def is_async(self) -> bool:
        return False

    def is_user_annotation(self) -> bool:
        return self.annotation


def test_raw_events_give_each_ops_own_time_per_step() -> None:
    from epochwatch.integrations.torch_profile import cpu_op_seconds

    events = []
    for step in range(2):
        t = step * 1_000_000
        events += [
            _Event("aten::linear", t, 300_000),
            _Event("aten::addmm", t + 10_000, 250_000),  # inside linear: its own 250 us
            _Event("aten::tanh", t + 400_000, 100_000, thread=2),  # autograd's thread, nested apart
            _Event("Optimizer.step#SGD.step", t + 600_000, 200_000, annotation=True),
            _Event("aten::add_", t + 610_000, 50_000),
        ]
    found = cpu_op_seconds(events)
    assert found is not None
    seconds, steps = found
    assert steps == 2
    assert seconds == pytest.approx(
        {
            "aten::linear (CPU)": 50e-6,
            "aten::addmm (CPU)": 250e-6,
            "aten::tanh (CPU)": 100e-6,
            "aten::add_ (CPU)": 50e-6,
        }
    )
    assert cpu_op_seconds(events[:3]) is None  # no optimizer step
