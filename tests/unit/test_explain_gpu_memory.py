"""torch's CUDA allocation history, without torch or a GPU: a snapshot dict of the shape
`torch.cuda.memory._snapshot()` documents, read into the allocating sites that grew
(explain/gpu_memory.py), and the window that records it, driven by epoch records."""

from __future__ import annotations

from typing import Any

from epochwatch.explain.controller import Explainer
from epochwatch.explain.gpu_memory import grown_sites, kept_allocations

TORCH = "/usr/lib/python3/site-packages/torch/"
TRAIN = "/home/me/train.py"
MIB = 1 << 20


def _frames(line: int, function: str = "<module>") -> list[dict[str, Any]]:
    """An allocating stack, innermost first (as torch's snapshot gives it)."""
    return [
        {"filename": TORCH + "nn/modules/linear.py", "line": 134, "name": "forward"},
        {"filename": TORCH + "nn/modules/module.py", "line": 1786, "name": "_call_impl"},
        {"filename": TRAIN, "line": line, "name": function},
        {"filename": TRAIN, "line": 1, "name": "<module>"},
    ]


def _snapshot(steps: int) -> dict[str, Any]:
    """Each step allocates an activation (freed) and keeps one output (never freed)."""
    trace: list[dict[str, Any]] = [
        {"action": "segment_alloc", "addr": 1 << 40, "size": 64 * MIB, "frames": []}
    ]
    addr = 1 << 30
    for _ in range(steps):
        addr += 1 << 24
        trace.append({"action": "alloc", "addr": addr, "size": 8 * MIB, "frames": _frames(20, "train_step")})
        trace.append({"action": "free_requested", "addr": addr, "size": 8 * MIB, "frames": []})
        trace.append({"action": "free_completed", "addr": addr, "size": 8 * MIB, "frames": []})
        addr += 1 << 24
        trace.append({"action": "alloc", "addr": addr, "size": MIB, "frames": _frames(31)})  # kept
    trace.append({"action": "alloc", "addr": 7, "size": 512, "frames": []})  # no stack at all
    return {
        "segments": [{"address": 1 << 40, "total_size": 64 * MIB, "blocks": []}],
        "device_traces": [trace],
    }


def test_the_allocations_that_stayed_are_named_by_their_users_line() -> None:
    snapshot = _snapshot(8)
    assert len(kept_allocations(snapshot)) == 9  # 8 kept outputs and the stackless one
    sites = grown_sites(snapshot, epochs=2)
    top = sites[0]
    assert top["site"] == f"{TRAIN}:31" and top["function"] == "<module>" and top["user_code"], top
    assert top["bytes_per_epoch"] == 4 * MIB and top["count_per_epoch"] == 4 and top["device"] == "GPU:0"
    assert all("train_step" not in s["function"] for s in sites)  # allocated and freed: no growth
    assert grown_sites({"segments": []}, 2) == []  # no history recorded


class _History:  # integrations/torch_cuda_history.CudaHistory's interface
    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.snapshot, self.on, self.starts = snapshot, False, 0

    def start(self) -> bool:
        self.on, self.starts = True, self.starts + 1
        return True

    def stop(self) -> dict[str, Any] | None:
        self.on = False
        return self.snapshot


def _epoch(explainer: Explainer, n: int, allocated: int) -> None:
    explainer.on_record(
        {
            "type": "epoch",
            "epoch": n,
            "seconds": 0.01,
            "torch_memory": {"GPU:0": {"current_bytes": allocated}},
        }
    )


def test_allocated_cuda_memory_rising_two_epochs_records_the_history_for_two_more() -> None:
    written: list[dict[str, Any]] = []
    history = _History(_snapshot(8))
    explainer = Explainer(lambda _t, **f: written.append(f), cuda_history=lambda: history)
    for n in range(3):
        _epoch(explainer, n, 100 * MIB)  # flat: nothing
    assert history.starts == 0
    for n in range(3, 8):
        _epoch(explainer, n, (100 + 4 * (n - 2)) * MIB)
        if n == 4:  # rose at 3 and at 4: the window opens at this record
            assert history.on
    explainer.finish()
    (found,) = [f for f in written if f.get("explains") == "gpu_memory_growth"]
    assert found["method"] == "cuda_memory_history" and found["epochs"] == [5, 6], found
    assert found["allocated_bytes_per_epoch"] == 4 * MIB and found["kept_bytes_per_epoch"] >= 4 * MIB
    assert found["where"][0]["site"] == f"{TRAIN}:31", found
    assert "train.py:31" in found["summary"] and "4.0 MiB" in found["summary"], found["summary"]
    assert history.starts == 1 and not history.on  # once a run, and off


def test_a_finding_arms_it_and_a_run_without_cuda_memory_never_records() -> None:
    history = _History(_snapshot(2))
    explainer = Explainer(lambda _t, **_f: None, cuda_history=lambda: history)
    explainer.on_record({"type": "epoch", "epoch": 0, "seconds": 0.01})  # no torch_memory
    explainer.on_record({"type": "finding", "kind": "gpu_memory_growth", "epoch": 0})
    explainer.on_record({"type": "epoch", "epoch": 1, "seconds": 0.01})
    assert history.starts == 0
    _epoch(explainer, 2, 10 * MIB)
    assert history.on  # armed by the finding, opened at the first record that has the memory
    explainer.close()
    assert not history.on
