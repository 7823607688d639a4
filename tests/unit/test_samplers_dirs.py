"""DirWatcher and DirsSampler with real temporary directories and real watchdog.

Events arrive asynchronously, so every check polls `totals()` until it holds or a few
seconds pass.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from epochwatch.samplers import dirwatch as dirs_module
from epochwatch.samplers.base import Sampler
from epochwatch.samplers.dirs import DirsSampler
from epochwatch.samplers.dirwatch import DirWatcher
from tests.support import wait_until

Totals = dict[str, dict[str, Any]]


@pytest.fixture
def watcher() -> Iterator[DirWatcher]:
    w = DirWatcher(idle_seconds=0.05)
    yield w
    w.close()


def wait_for(w: DirWatcher, check: Callable[[Totals], bool], timeout: float = 3.0) -> Totals:
    deadline = time.monotonic() + timeout
    totals = w.totals()
    while not check(totals):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last totals: {totals}")
        time.sleep(0.01)
        totals = w.totals()
    return totals


def has(path: Path, bytes_: int, files: int) -> Callable[[Totals], bool]:
    def check(totals: Totals) -> bool:
        entry = totals.get(str(path))
        return entry is not None and entry["bytes"] == bytes_ and entry["files"] == files

    return check


def write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def test_is_a_sampler(watcher: DirWatcher) -> None:
    sampler = DirsSampler(watcher)
    assert isinstance(sampler, Sampler)
    assert sampler.name == "dirs"
    assert sampler.sample() is None  # nothing watched


def test_initial_scan_counts_what_is_there(watcher: DirWatcher, tmp_path: Path) -> None:
    write(tmp_path / "a.ckpt", 1000)
    write(tmp_path / "sub" / "b.ckpt", 234)
    (tmp_path / "link").symlink_to(tmp_path / "a.ckpt")  # not followed, not counted
    assert watcher.watch(tmp_path, "checkpoint")
    totals = wait_for(watcher, has(tmp_path, 1234, 2))
    assert totals[str(tmp_path)]["role"] == "checkpoint"
    # The trace's form (schema 2): a list of {path, role, bytes, files}, queryable across runs,
    # with the free space of the directory's file system as the run's user sees it, read off
    # the training thread (a hung network file system must not stop an epoch's end): from the
    # sample after the first read.
    sampler = DirsSampler(watcher)
    first = sampler.sample()
    assert first is not None and "free_bytes" not in first[0]
    wait_until(lambda: not sampler._reading, what="the free space read")
    sampled = sampler.sample()
    assert sampled is not None
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    assert [{k: v for k, v in e.items() if k != "free_bytes"} for e in sampled] == [
        {"path": p, **block} for p, block in totals.items()
    ]
    assert abs(sampled[0]["free_bytes"] - free) < 64 << 20, (sampled, free)


def test_write_grow_delete(watcher: DirWatcher, tmp_path: Path) -> None:
    watcher.watch(tmp_path, "tensorboard")
    wait_for(watcher, has(tmp_path, 0, 0))
    log = tmp_path / "events.out.tfevents"
    write(log, 100)
    wait_for(watcher, has(tmp_path, 100, 1))
    with open(log, "ab") as f:  # appended and kept open, as TensorBoard writers do
        f.write(b"y" * 50)
        f.flush()
        wait_for(watcher, has(tmp_path, 150, 1))
    write(tmp_path / "deep" / "er" / "f", 7)
    wait_for(watcher, has(tmp_path, 157, 2))
    log.unlink()
    wait_for(watcher, has(tmp_path, 7, 1))


def test_directory_moved_out_and_in(watcher: DirWatcher, tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    write(root / "keep", 10)
    write(root / "ckpt-1" / "variables" / "data", 1000)
    write(root / "ckpt-1" / "index", 24)
    watcher.watch(root, "checkpoint")
    wait_for(watcher, has(root, 1034, 3))
    (root / "ckpt-1").rename(outside)
    wait_for(watcher, has(root, 10, 1))
    outside.rename(root / "ckpt-2")
    wait_for(watcher, has(root, 1034, 3))
    (root / "ckpt-2").rename(root / "ckpt-3")  # moved within the tree: no change
    time.sleep(0.1)
    wait_for(watcher, has(root, 1034, 3))
    write(root / "ckpt-3" / "variables" / "more", 6)  # still watched after the moves
    wait_for(watcher, has(root, 1040, 4))


def test_nested_roots(watcher: DirWatcher, tmp_path: Path) -> None:
    temp, ckpt = tmp_path / "tmp", tmp_path / "tmp" / "run" / "ckpt"
    write(temp / "scratch", 5)
    write(ckpt / "a", 100)
    watcher.watch(temp, "temp")
    watcher.watch(ckpt, "checkpoint")
    wait_for(watcher, lambda t: has(temp, 105, 2)(t) and has(ckpt, 100, 1)(t))
    write(ckpt / "b", 20)
    write(temp / "scratch2", 1)
    wait_for(watcher, lambda t: has(temp, 126, 4)(t) and has(ckpt, 120, 2)(t))
    watcher.unwatch(temp)
    write(ckpt / "c", 3)
    wait_for(watcher, lambda t: str(temp) not in t and has(ckpt, 123, 3)(t))


def test_symlinked_root_is_watched_and_reported_as_given(watcher: DirWatcher, tmp_path: Path) -> None:
    real, link = tmp_path / "real", tmp_path / "link"
    write(real / "a", 5)
    link.symlink_to(real, target_is_directory=True)
    assert watcher.watch(link, "checkpoint")
    assert watcher.watch(real, "checkpoint")  # the same directory: one root
    wait_for(watcher, has(link, 5, 1))
    write(real / "b", 6)
    totals = wait_for(watcher, has(link, 11, 2))
    assert list(totals) == [str(link)]
    assert watcher.totals([real]) == totals


def test_root_created_after_watch(watcher: DirWatcher, tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints" / "run1"
    assert watcher.watch(ckpt, "checkpoint")
    time.sleep(0.1)
    assert str(ckpt) not in watcher.totals()
    assert watcher.status()[str(ckpt)]["state"] == "pending"
    write(ckpt / "model.keras", 4096)
    wait_for(watcher, has(ckpt, 4096, 1))
    write(ckpt / "model-2.keras", 4)
    wait_for(watcher, has(ckpt, 4100, 2))


def test_root_deleted_and_recreated(watcher: DirWatcher, tmp_path: Path) -> None:
    root = tmp_path / "backup"
    write(root / "state", 10)
    watcher.watch(root, "backup")
    wait_for(watcher, has(root, 10, 1))
    (root / "state").unlink()
    root.rmdir()
    wait_for(watcher, lambda t: str(root) not in t)
    write(root / "state", 11)
    wait_for(watcher, has(root, 11, 1))


def test_huge_tree_degrades_to_top_level(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(5):
        write(tmp_path / f"d{i}" / "f", 100)
    write(tmp_path / "top", 3)
    with contextlib.closing(DirWatcher(max_dirs=3, idle_seconds=0.05)) as w:
        w.watch(tmp_path, "temp")
        totals = wait_for(w, has(tmp_path, 3, 1))
        assert totals[str(tmp_path)]["top_level_only"] is True
        write(tmp_path / "top2", 4)
        write(tmp_path / "d0" / "g", 1000)  # below the top level: not counted
        wait_for(w, has(tmp_path, 7, 2))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "top level" in lines[0] and "more than 3" in lines[0]


class _FullObserver:
    """An observer whose watches fail as inotify_add_watch does at the watch limit."""

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")


def test_watch_limit_falls_back_to_polling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dirs_module, "_POLL_MIN_SECONDS", 0.05)
    with contextlib.closing(DirWatcher(idle_seconds=0.05)) as w:
        monkeypatch.setattr(w._events, "_ensure_observer", lambda: _FullObserver())
        a, b = tmp_path / "a", tmp_path / "b"
        write(a / "x", 1)
        write(b / "y", 2)
        assert w.watch(a, "checkpoint") and w.watch(b, "backup")
        wait_for(w, lambda t: has(a, 1, 1)(t) and has(b, 2, 1)(t))
        assert w.status()[str(a)]["mode"] == "poll"
        write(a / "sub" / "z", 40)
        (b / "y").unlink()
        wait_for(w, lambda t: has(a, 41, 2)(t) and has(b, 0, 0)(t))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert "inotify watch limit reached" in lines[0] and "rescanned" in lines[0]


def test_lost_events_are_repaired_by_the_rare_rescan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dirs_module, "_RECONCILE_MIN_SECONDS", 0.1)
    with contextlib.closing(DirWatcher(idle_seconds=0.05)) as w:
        write(tmp_path / "a", 1)
        w.watch(tmp_path, "checkpoint")
        wait_for(w, has(tmp_path, 1, 1))
        assert w.status()[str(tmp_path)]["mode"] == "events"
        monkeypatch.setattr(w._events, "_on_path", lambda path: None)  # every event from now on is lost
        write(tmp_path / "sub" / "b", 10)
        (tmp_path / "a").unlink()
        wait_for(w, has(tmp_path, 10, 1))


def test_not_a_directory(watcher: DirWatcher, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "file", 1)
    assert watcher.watch(tmp_path / "file", "user") is False
    assert watcher.watch(tmp_path / "file", "user") is False
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "not a directory" in lines[0]
    with pytest.raises(ValueError):
        watcher.watch(tmp_path, "scratch")


def test_idempotent_with_owners(watcher: DirWatcher, tmp_path: Path) -> None:
    write(tmp_path / "f", 9)
    assert watcher.watch(tmp_path, "user", owner="run-a")
    assert watcher.watch(str(tmp_path) + "/", "checkpoint", owner="run-a")
    assert watcher.watch(tmp_path, "user", owner="run-b")
    totals = wait_for(watcher, has(tmp_path, 9, 1))
    assert list(totals) == [str(tmp_path)]
    assert totals[str(tmp_path)]["role"] == "checkpoint"  # a specific role beats "user"
    watcher.unwatch(tmp_path, owner="run-a")
    assert str(tmp_path) in watcher.totals()
    assert watcher.totals([tmp_path]) == watcher.totals()
    watcher.unwatch(tmp_path, owner="run-b")
    assert watcher.totals() == {}
    assert DirsSampler(watcher).sample() is None


def test_close_joins_every_thread(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    w = DirWatcher()
    write(tmp_path / "a" / "f", 1)
    w.watch(tmp_path / "a", "checkpoint")
    w.watch(tmp_path / "not-yet", "checkpoint")
    wait_for(w, has(tmp_path / "a", 1, 1))
    assert set(threading.enumerate()) - before  # worker, observer, emitter(s)
    w.close()
    w.close()
    assert set(threading.enumerate()) - before == set()
    assert w.watch(tmp_path, "user") is False


def test_close_without_watching_starts_nothing() -> None:
    before = threading.active_count()
    w = DirWatcher()
    assert w.totals() == {}
    w.close()
    assert threading.active_count() == before


def test_a_hung_file_system_never_holds_an_epochs_end(
    watcher: DirWatcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The free space is read off the training thread: a statvfs of a directory whose network
    file system stopped answering blocks, and the dirs sample runs at each epoch's end."""
    from epochwatch.samplers import dirs as dirs_sampler

    release = threading.Event()

    def hung(_path: str) -> int | None:
        release.wait(10)
        return None

    monkeypatch.setattr(dirs_sampler, "_free_bytes", hung)
    write(tmp_path / "a.ckpt", 10)
    assert watcher.watch(tmp_path, "checkpoint")
    wait_for(watcher, has(tmp_path, 10, 1))
    sampler = DirsSampler(watcher)
    t0 = time.perf_counter()
    for _ in range(3):
        assert sampler.sample() is not None
    assert time.perf_counter() - t0 < 0.5
    release.set()
