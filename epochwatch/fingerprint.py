"""The environment fingerprint in `run_start`: what a resumed or compared run is checked against.

Only reads what the process already has: versions come from modules already imported
(falling back to installed metadata for the few that matter), never from importing
TensorFlow ourselves.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import socket
import sys
from typing import Any

import psutil

# Packages whose versions change how training behaves or how checkpoints load.
_PACKAGES = (
    "tensorflow",
    "keras",
    "numpy",
    "tf_keras",
    "h5py",
    "protobuf",
    "ml_dtypes",
    "jax",
    "torch",
)
_FRAMEWORKS = ("tensorflow", "keras", "torch", "jax")
_DIST_NAMES = {
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tf-nightly"),
    "tf_keras": ("tf-keras",),
}


@functools.cache
def _installed(name: str) -> str | None:
    """The installed distribution's version (a scan of site-packages: cached, and warmed
    up off the training thread by the hook)."""
    for dist in _DIST_NAMES.get(name, (name,)):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def package_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for name in _PACKAGES:
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None) if module is not None else None
        if version is None and name in ("tensorflow", "keras", "numpy"):
            version = _installed(name)
        if version is not None:
            versions[name] = str(version)
    return versions


def collect(memory_limit: int | None = None) -> dict[str, Any]:
    """Host, interpreter and process facts; cheap (well under a millisecond but for metadata lookups)."""
    vm = psutil.virtual_memory()
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_total_bytes": vm.total,
        "script": os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] not in ("", "-c", "-m") else None,
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "uid": os.getuid() if hasattr(os, "getuid") else None,
        "packages": package_versions(),
        # The frameworks the script has imported by now (what decides which hints apply).
        "frameworks": [name for name in _FRAMEWORKS if sys.modules.get(name) is not None],
    }
    if memory_limit is not None:
        env["memory_limit_bytes"] = memory_limit
    return {k: v for k, v in env.items() if v is not None}
