"""A plain PyTorch loop with only `import epochwatch.hook`: steps from `optimizer.step()`,
epochs from the `DataLoader`'s passes, and a leak in it flagged.

Runs where torch is importable (a scratch environment: CI has none, see test_backends.py).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.support import child_env, latest_findings, of_type, read_single_trace, run_python

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch not installed")

LOOP = """
import epochwatch.hook
import torch
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
x = torch.randn(256, 8)
loader = DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=32)  # 8 steps a pass
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
kept = []
for epoch in range(14):
    for xb, yb in loader:
        loss = ((model(xb) - yb) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if {leak}:
            kept.append(torch.ones(512, 1024))  # 2 MiB a step kept alive
"""


def test_an_unmarked_torch_loop_gets_epochs_from_its_dataloader_and_a_leak_is_flagged(tmp_path: Path) -> None:
    run_python(LOOP.format(leak=True), tmp_path, env=child_env(tmp_path))
    records = read_single_trace(tmp_path)
    epochs = of_type(records, "epoch")
    assert len(epochs) == 14 and all(e["epoch_source"] == "data_pass" and e["steps"] == 8 for e in epochs)
    kinds = {f["kind"] for f in latest_findings(records)}
    assert "host_memory_growth" in kinds, latest_findings(records)


def test_the_same_loop_without_the_leak_is_quiet(tmp_path: Path) -> None:
    run_python(LOOP.format(leak=False), tmp_path, env=child_env(tmp_path))
    records = read_single_trace(tmp_path)
    assert len(of_type(records, "epoch")) == 14
    assert not [f for f in latest_findings(records) if f["severity"] != "info"], latest_findings(records)
