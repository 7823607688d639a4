"""Run a function right after a module finishes importing, without importing it ourselves.

`import epochwatch.hook` may come before `import keras` or `import tensorflow`, and
importing TensorFlow on our own would cost the user seconds (and the daemon and CLI
must never pay it). So we wait: a meta-path finder notices the import of a watched
module, lets the real finder locate it, and wraps its loader so our callback runs once
the module body has executed. Modules already imported get the callback at once.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

Callback = Callable[[ModuleType], None]


class _LoaderProxy(importlib.abc.Loader):
    """Delegates everything to the real loader and calls back after exec_module."""

    def __init__(self, loader: Any, on_loaded: Callable[[ModuleType], None]) -> None:
        self._loader = loader
        self._on_loaded = on_loaded

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        created: ModuleType | None = self._loader.create_module(spec)
        return created

    def exec_module(self, module: ModuleType) -> None:
        # Put the real loader back so importlib.resources and friends see the real thing.
        spec = getattr(module, "__spec__", None)
        if spec is not None:
            spec.loader = self._loader
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        self._on_loaded(module)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callback]] = {}
        self._lock = threading.RLock()
        self._resolving = threading.local()

    def add(self, name: str, callback: Callback) -> None:
        with self._lock:
            self._callbacks.setdefault(name, []).append(callback)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self._callbacks:
            return None
        resolving: set[str] = self._resolving.__dict__.setdefault("names", set())
        if fullname in resolving:
            return None
        resolving.add(fullname)
        try:  # the first other finder's spec
            others = (f for f in sys.meta_path if f is not self and hasattr(f, "find_spec"))
            spec = next((s for f in others if (s := f.find_spec(fullname, path, target)) is not None), None)
        finally:
            resolving.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _LoaderProxy(spec.loader, self._fire)
        return spec

    def _fire(self, module: ModuleType) -> None:
        with self._lock:
            callbacks = self._callbacks.pop(module.__name__, [])
        for callback in callbacks:
            callback(module)


_finder: _Finder | None = None
_finder_lock = threading.Lock()


def when_imported(name: str, callback: Callback) -> None:
    """Call `callback(module)` once `name` is imported (now, if it already is).

    Only top-level names are supported, which is all we need (keras, tensorflow) and
    keeps the finder off the path of every other import.
    """
    global _finder
    if "." in name:
        raise ValueError("when_imported takes top-level module names only")
    module = sys.modules.get(name)
    if module is not None and not _still_importing(module):
        callback(module)
        return
    with _finder_lock:
        if _finder is None:
            _finder = _Finder()
            sys.meta_path.insert(0, _finder)
    _finder.add(name, callback)
    module = sys.modules.get(name)
    if module is not None and not _still_importing(module):
        # Imported between our first look and the registration: fire now, once.
        _finder._fire(module)


def _still_importing(module: ModuleType) -> bool:
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))
