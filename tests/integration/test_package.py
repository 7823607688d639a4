"""The package as an index or a new user gets it: `python -m build` makes an sdist and a wheel
(the wheel built from the sdist) that `twine check --strict` passes; both carry the license,
the sdist the changelog, the wheel the service files; and the wheel installed alone into a
fresh venv runs.

The build runs without isolation (hatchling from the dev extra), so it needs no network. The
fresh venv gets the wheel from pip with its light dependencies (psutil, nvidia-ml-py,
watchdog, orjson, prometheus-client) from the configured index; TensorFlow is not installed
there. For the traced fit, TensorFlow is not downloaded again: a `.pth` file appends the
site-packages that hold this interpreter's TensorFlow to the venv's path, after the venv's own
site-packages, so epochwatch still comes from the wheel (the test checks which file it imported).
"""

from __future__ import annotations

import email
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import venv
import zipfile
from email.message import Message
from pathlib import Path

import pytest

from epochwatch import __version__
from epochwatch.cli.service import FILES, SHARE
from tests.support import REPO, TF_ENV

NAME = f"epochwatch-{__version__}"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for module in ("build", "hatchling", "twine"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (the dev extra: pip install -e '.[dev]')")
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _wheel(dist: Path) -> Path:
    return dist / f"{NAME}-py3-none-any.whl"


def _sdist(dist: Path) -> Path:
    return dist / f"{NAME}.tar.gz"


def _metadata(dist: Path) -> Message:
    with zipfile.ZipFile(_wheel(dist)) as whl:
        return email.message_from_bytes(whl.read(f"{NAME}.dist-info/METADATA"))


def test_build_makes_an_sdist_and_a_wheel_that_twine_accepts(dist: Path) -> None:
    assert sorted(p.name for p in dist.iterdir()) == sorted([_sdist(dist).name, _wheel(dist).name])
    proc = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.count("PASSED") == 2, proc.stdout + proc.stderr


def test_both_carry_the_license_the_sdist_the_changelog(dist: Path) -> None:
    license_text = (REPO / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    with zipfile.ZipFile(_wheel(dist)) as whl:
        assert whl.read(f"{NAME}.dist-info/licenses/LICENSE").decode() == license_text
    with tarfile.open(_sdist(dist)) as sdist:
        names = set(sdist.getnames())
        assert {f"{NAME}/LICENSE", f"{NAME}/CHANGELOG.md", f"{NAME}/README.md"} <= names
        member = sdist.extractfile(f"{NAME}/LICENSE")
        assert member is not None and member.read().decode() == license_text


def test_the_wheel_carries_the_service_files_and_the_run_shim(dist: Path) -> None:
    with zipfile.ZipFile(_wheel(dist)) as whl:
        names = set(whl.namelist())
        for name in FILES.values():
            assert whl.read(f"epochwatch/share/{name}") == (SHARE / name).read_bytes(), name
        assert "epochwatch/_hooks/sitecustomize.py" in names and "epochwatch/py.typed" in names
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_metadata_for_the_index_page(dist: Path) -> None:
    meta = _metadata(dist)
    assert meta["Version"] == __version__  # the one place: epochwatch/__init__.py
    assert meta["License-Expression"] == "Apache-2.0" and meta["License-File"] == "LICENSE"
    assert meta["Author"] or meta["Author-email"]
    assert meta["Keywords"] and "keras" in meta["Keywords"]
    classifiers = meta.get_all("Classifier") or []
    assert "Programming Language :: Python :: 3.10" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # PEP 639: the expression only
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Source", "Issues", "Changelog"} <= set(urls)
    assert {"tensorflow", "cpu", "dev"} <= set(meta.get_all("Provides-Extra") or [])
    assert meta["Description-Content-Type"] == "text/markdown"
    # the index renders the README without the repository: no relative link or image
    description = meta.get_payload()
    assert isinstance(description, str) and description.startswith("# epochwatch")
    relative = [u for u in re.findall(r"\]\(([^)\s]+)\)", description) if not u.startswith("https://")]
    assert relative == []


@pytest.fixture(scope="module")
def fresh_venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with nothing but the wheel and its own dependencies."""
    root = tmp_path_factory.mktemp("venv") / "ew"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(root)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(
        [str(root / "bin" / "python"), "-m", "pip", "install", "-q", str(_wheel(dist))],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=root,
    )
    if proc.returncode != 0 and re.search(r"No matching distribution|Could not find a version", proc.stderr):
        pytest.skip(f"the wheel's dependencies cannot be installed here: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def _in(root: Path, *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("EPOCHWATCH_")}
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=300, env={**clean, **(env or {})}, cwd=cwd or root
    )
    assert proc.returncode == 0, f"{argv}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout


def test_the_wheel_alone_runs_without_tensorflow(fresh_venv: Path) -> None:
    bin_dir = fresh_venv / "bin"
    assert _in(fresh_venv, str(bin_dir / "epochwatch"), "--version").strip() == f"epochwatch {__version__}"
    probe = "import importlib.util as u, epochwatch; print(u.find_spec('tensorflow') is None, epochwatch.__file__)"
    no_tf, where = _in(fresh_venv, str(bin_dir / "python"), "-c", probe).split()
    assert no_tf == "True" and where.startswith(str(fresh_venv))
    # the service files come from the installed package, the unit starts this venv's epochwatch
    unit = _in(fresh_venv, str(bin_dir / "epochwatch"), "service", "print", "unit")
    assert f"ExecStart={bin_dir / 'epochwatch'} daemon " in unit
    prefix = fresh_venv / "root"
    prefix.mkdir()
    _in(fresh_venv, str(bin_dir / "epochwatch"), "service", "install", "--prefix", str(prefix))
    tool = shutil.which("systemd-analyze")
    if tool:
        proc = subprocess.run(
            [tool, "verify", str(prefix / "etc/systemd/system/epochwatch.service")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0 and "epochwatch" not in proc.stderr, proc.stderr


def test_the_wheel_with_tensorflow_traces_a_fit(fresh_venv: Path, tmp_path: Path) -> None:
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or spec.origin is None:
        pytest.skip("TensorFlow is not installed in the test interpreter (the cpu extra)")
    site = Path(spec.origin).parent.parent
    (venv_site,) = (fresh_venv / "lib").glob("python3*/site-packages")
    (venv_site / "zz_tensorflow_from_the_test_env.pth").write_text(f"{site}\n")
    (tmp_path / "train.py").write_text(
        textwrap.dedent(
            """\
            import epochwatch, keras, numpy as np
            assert "__EPOCHWATCH__" in epochwatch.__file__, epochwatch.__file__
            x = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
            model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(1)])
            model.compile(optimizer="adam", loss="mse")
            model.fit(x, x[:, :1], epochs=3, batch_size=64, verbose=0)
            """
        ).replace("__EPOCHWATCH__", str(venv_site / "epochwatch"))
    )
    env = {
        **TF_ENV,
        "EPOCHWATCH_DIR": str(tmp_path / "traces"),
        "EPOCHWATCH_SOCKET": str(tmp_path / "none.sock"),
    }
    bin_dir = fresh_venv / "bin"
    _in(
        fresh_venv,
        str(bin_dir / "epochwatch"),
        "run",
        "--",
        str(bin_dir / "python"),
        "train.py",
        env=env,
        cwd=tmp_path,
    )
    (trace,) = (tmp_path / "traces").glob("*.jsonl")
    report = _in(fresh_venv, str(bin_dir / "epochwatch"), "report", str(trace), "--format", "json")
    (run,) = json.loads(report)["runs"]
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    assert [r["epoch"] for r in lines if r["type"] == "epoch"] == [0, 1, 2]
    assert lines[0]["type"] == "run_start" and lines[0]["epochwatch"] == __version__
    assert run["run_id"] == lines[0]["run_id"]
