"""Attach epochwatch to a Python process started by `epochwatch run`, with no change to the script.

`epochwatch run` puts this directory first on PYTHONPATH, so Python imports this file at
start-up instead of any other `sitecustomize`. We first run the one we shadowed (a
site's own customisation must keep working), then import the hook. Nothing here may
stop the user's program: every failure is one line on stderr.
"""

import importlib.machinery
import importlib.util
import os
import sys


def _chain_shadowed_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


def _attach() -> None:
    if os.environ.get("EPOCHWATCH_RUN") != "1":
        return
    try:
        import epochwatch.hook
    except ImportError:
        # The script runs in an interpreter without epochwatch installed: borrow the copy
        # `epochwatch run` came from, at the end of sys.path so it shadows nothing.
        fallback = os.environ.get("EPOCHWATCH_PATH", "")
        if not fallback or fallback in sys.path:
            raise
        sys.path.append(fallback)
        import epochwatch.hook  # noqa: F401


try:
    _chain_shadowed_sitecustomize()
except Exception as exc:
    sys.stderr.write(f"epochwatch: the site's own sitecustomize failed: {type(exc).__name__}: {exc}\n")
try:
    _attach()
except Exception as exc:
    sys.stderr.write(f"epochwatch: not attached: {type(exc).__name__}: {exc}\n")
