"""Run ids, and what a run is called when it lives in a notebook kernel.

A script's run is named after the script (`train-20260101T000000-1234-ab12cd`). A
notebook's kernel is `ipykernel_launcher.py`, which says nothing; the kernel knows the
notebook only where its front end told it: Jupyter Server (JupyterLab, Notebook 7) sets
JPY_SESSION_NAME in the kernel's environment (ipykernel copies it to `__session__`), VS
Code sets `__vsc_ipynb_file__` in the user namespace. nbclient, `jupyter nbconvert
--execute` and papermill set neither (only the kernel's working directory, the notebook's
folder): a kernel they start inherits their environment, so `JPY_SESSION_NAME=<notebook>`
set for them names the runs; without it the runs are called `notebook-...`. The name comes
from there, never from a network call to the server.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from epochwatch.trace import schema


def _shell() -> Any:
    """The running IPython kernel's shell, or None (never imports IPython ourselves)."""
    if "ipykernel" not in sys.modules:
        return None
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    try:
        shell = get() if callable(get) else None
    except Exception:
        return None
    return shell if shell is not None and hasattr(shell, "kernel") else None


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where the process outlives each fit)."""
    return _shell() is not None


def notebook_name() -> str | None:
    """The notebook's file stem where the kernel was told it, else None."""
    candidates: list[Any] = []
    shell = _shell()
    if shell is not None:
        ns = getattr(shell, "user_ns", None) or {}
        candidates += [ns.get("__vsc_ipynb_file__"), ns.get("__session__")]
    candidates.append(os.environ.get("JPY_SESSION_NAME"))
    stems = [Path(value.strip()).stem for value in candidates if isinstance(value, str) and value.strip()]
    return next((stem for stem in stems if stem), None)


def new_run_id() -> str:
    """`<script or notebook>-<UTC time>-<pid>-<random>`: sortable, readable, unique across hosts."""
    name = (notebook_name() or "notebook") if in_notebook() else None
    if name is None:
        argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "python"
        name = Path(argv0).stem if argv0 not in ("-c", "-m") else "python"
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return schema.safe_run_id(f"{name}-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
