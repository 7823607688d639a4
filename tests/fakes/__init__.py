"""The suite's fakes: only NVML (fake_pynvml.py), which cannot be reached for real here.

In the test process a test hands the fake to the sampler (`NvmlSampler(nvml=fake_pynvml)`);
a child process gets it through `with_fake_nvml(env)`, which puts nvml_site/ (a
sitecustomize that installs the fake as `pynvml`) first on the child's PYTHONPATH.
"""

from __future__ import annotations

import os
from pathlib import Path

NVML_SITE = Path(__file__).resolve().parent / "nvml_site"


def with_fake_nvml(env: dict[str, str]) -> dict[str, str]:
    """`env` (a child's environment, with the repository on PYTHONPATH) whose `pynvml` is the fake."""
    out = dict(env)
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NVML_SITE), env.get("PYTHONPATH", "")]))
    return out
