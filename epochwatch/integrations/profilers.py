"""Which framework's profiler explain's captures use (explain/captures.py): the one whose
steps the run takes.

torch's where a torch optimizer stepped (the torch integration's tracker saw one) or torch
is the only framework imported; TF's where TensorFlow is imported and no torch optimizer
stepped (a TF script that imports torch for something else); else none. Asked when a
capture is armed, after the run's first epochs, so the steps have been seen. Reads
`sys.modules` only: the framework was imported by the script, never here (an entry of None,
an import the script blocked, is none).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any


def for_run(modules: Mapping[str, object] | None = None) -> Any:
    """A new TorchProfiler, TFProfiler, or None (see the module docstring)."""
    found: Mapping[str, object] = sys.modules if modules is None else modules
    # A None entry is an import blocked (`sys.modules["tensorflow"] = None`): not imported.
    tf, torch = found.get("tensorflow") is not None, found.get("torch") is not None
    if torch:
        from epochwatch.integrations import torch as torch_integration

        loop = torch_integration.tracker()
        if not tf or (loop is not None and loop.stepped()):
            from epochwatch.integrations.torch_profile import TorchProfiler

            return TorchProfiler()
    if tf:
        from epochwatch.integrations.tf_profile import TFProfiler

        return TFProfiler()
    return None
