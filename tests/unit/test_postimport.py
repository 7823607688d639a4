from __future__ import annotations

import importlib
import importlib.resources
import sys
from pathlib import Path
from types import ModuleType

import pytest

from epochwatch.postimport import when_imported


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    name = f"ew_fake_pkg_{tmp_path.name.replace('-', '_')}"
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from . import data\nVALUE = 42\n")
    (pkg / "data.txt").write_text("resource")
    (pkg / "data.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod]


def test_callback_runs_after_the_module_body(fake_package: str) -> None:
    seen: list[int] = []
    when_imported(fake_package, lambda m: seen.append(m.VALUE))
    assert seen == []
    module = importlib.import_module(fake_package)
    assert seen == [42]
    # the real loader is back in place: resources and reloads work as without us
    assert type(module.__loader__).__name__ == "SourceFileLoader"
    assert (importlib.resources.files(fake_package) / "data.txt").read_text() == "resource"
    importlib.reload(module)
    assert seen == [42]  # once only


def test_already_imported_module_fires_at_once(fake_package: str) -> None:
    importlib.import_module(fake_package)
    seen: list[ModuleType] = []
    when_imported(fake_package, seen.append)
    assert [m.__name__ for m in seen] == [fake_package]


def test_only_top_level_names(fake_package: str) -> None:
    with pytest.raises(ValueError):
        when_imported(f"{fake_package}.data", lambda m: None)


def test_modules_that_do_not_exist_still_raise_import_error() -> None:
    when_imported("ew_no_such_module_anywhere", lambda m: None)
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("ew_no_such_module_anywhere")
