"""Content hashes of saves, computed on a background thread so a multi-GB save costs the
training thread a `stat` and a queue put, not seconds of reading.

The hash of a single-file save is the plain SHA-256 of its bytes (what `sha256sum` prints,
so users can check it by hand). A save made of several files (a TF checkpoint, a
SavedModel) hashes a manifest: one `<sha256>  <relative name>` line per file, sorted,
like `sha256sum` output; relative names make a copied or moved save hash the same.

A file can change between the save and the moment its hash is taken (ModelCheckpoint
overwriting the same path each epoch, CheckpointManager deleting old checkpoints). The
worker compares a stat snapshot taken on the training thread with one taken around the
read: if they differ, the hash is of other bytes, so it reports why it has none instead
of a wrong one. A job superseded by a later save of the same path is not read at all.

The worker thread starts on the first job and exits after IDLE_EXIT_SECONDS without
work, so a process that saves once does not keep a thread, and tests can wait for it.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from epochwatch.checkpoints.files import FileStat, snapshot
from epochwatch.samplers.own_rss import own_rss_bytes, trim_heap

CHUNK_BYTES = 1 << 20
IDLE_EXIT_SECONDS = 1.0
# Background-thread niceness: hashing should take idle CPU, not the input pipeline's.
WORKER_NICE = 10


# RSS the jobs left (each job's rise, summed) before their thread's freed pages are given
# back: tensorflow#7946's saves left about 3 MiB each, kept by glibc (a flat run grew 737 ->
# 809 MiB hooked against 727 -> 748 plain).
TRIM_RESIDUE = 4 << 20
# Digests of files as last hashed, by their stat snapshot (size, mtime, inode of each): a
# loop that loads the same SavedModel for every request (tensorflow#40171) read its 16 MB
# anew at each of 400 loads, 6 s of the hook's CPU on a 23 s script.
KNOWN_DIGESTS = 64


@dataclass
class HashResult:
    """What hashing one save produced: a digest, or the reason there is none."""

    sha256: str | None
    hash_seconds: float
    error: str | None = None


def hash_files(stats: tuple[FileStat, ...], root: str | None) -> str:
    """The content hash of a save (see the module docstring); raises OSError on a read error.

    `root` None means a single-file save: the plain SHA-256 of that file. Otherwise the
    manifest hash, with names relative to `root`.
    """
    if root is None:
        if len(stats) != 1:
            raise ValueError("a single-file hash needs exactly one file")
        return _sha256_file(stats[0].path)
    named = sorted((os.path.relpath(s.path, root), s.path) for s in stats)
    lines = [f"{_sha256_file(path)}  {rel.replace(os.sep, '/')}\n" for rel, path in named]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    buf = bytearray(CHUNK_BYTES)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            h.update(view[:n])  # releases the GIL for large buffers
    return h.hexdigest()


def hash_if_unchanged(stats: tuple[FileStat, ...], root: str | None) -> HashResult:
    """Hash the files only if they are still the ones `stats` describes, before and after."""
    t0 = time.perf_counter()
    if not stats:
        return HashResult(None, 0.0, "no files to hash")
    paths = [s.path for s in stats]
    if snapshot(paths) != stats:
        return HashResult(None, time.perf_counter() - t0, "changed or removed before it was hashed")
    try:
        digest = hash_files(stats, root)
    except OSError as exc:
        return HashResult(None, time.perf_counter() - t0, f"read failed: {exc.strerror or exc}")
    if snapshot(paths) != stats:
        return HashResult(None, time.perf_counter() - t0, "changed while it was being hashed")
    return HashResult(digest, time.perf_counter() - t0)


@dataclass
class HashJob:
    """One save or restore waiting for its hash; `done` gets the result, on the worker."""

    key: str
    stats: tuple[FileStat, ...]
    root: str | None
    done: Callable[[HashResult], None]
    queued: float = field(default_factory=time.perf_counter)


class HashWorker:
    """A single background thread that hashes saves in order and then calls back.

    `submit` never blocks on I/O. `drain(timeout)` waits for queued work (at exit, or in
    tests); whatever is left after the timeout is answered without a hash.
    """

    def __init__(self, idle_exit: float = IDLE_EXIT_SECONDS) -> None:
        self._idle_exit = idle_exit
        self._cond = threading.Condition()
        self._queue: collections.deque[HashJob] = collections.deque()
        self._pending_keys: collections.Counter[str] = collections.Counter()
        self._thread: threading.Thread | None = None
        self._busy = False
        self._closed = False
        self._residue = 0  # RSS the jobs left since the last trim (TRIM_RESIDUE)
        self._known: collections.OrderedDict[tuple[Any, ...], str] = collections.OrderedDict()
        self.on_error: Callable[[BaseException], None] | None = None

    def submit(self, job: HashJob) -> None:
        with self._cond:
            if self._closed:
                self._answer(job, HashResult(None, 0.0, "epochwatch was shutting down"))
                return
            self._queue.append(job)
            self._pending_keys[job.key] += 1
            if self._thread is None:
                try:
                    self._thread = threading.Thread(target=self._loop, name="epochwatch-hash", daemon=True)
                    self._thread.start()
                except RuntimeError:  # interpreter shutting down: no new threads
                    self._thread = None
                    self._queue.pop()
                    self._pending_keys[job.key] -= 1
                    self._run(job)
                    return
            self._cond.notify()

    def _loop(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # Linux's per-thread nice; elsewhere none
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
        while True:
            with self._cond:
                deadline = time.monotonic() + self._idle_exit
                while not self._queue:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._closed:
                        self._thread = None
                        self._cond.notify_all()
                        return
                    self._cond.wait(left)
                job = self._queue.popleft()
                superseded = self._pending_keys[job.key] > 1
                self._pending_keys[job.key] -= 1
                if not self._pending_keys[job.key]:
                    del self._pending_keys[job.key]
                self._busy = True
            try:
                if superseded:
                    self._answer(
                        job, HashResult(None, 0.0, "overwritten by a later save before it was hashed")
                    )
                else:
                    self._run(job)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _run(self, job: HashJob) -> None:
        before = own_rss_bytes()
        try:
            result = self._hash(job)
        except Exception as exc:  # never let a thread die silently with a job unanswered
            result = HashResult(None, 0.0, f"{type(exc).__name__}: {exc}")
        self._answer(job, result)  # its `done` inspects the files too (checkpoints/events.py)
        after = own_rss_bytes()
        if before is not None and after is not None:
            self._residue += max(0, after - before)
        if self._residue >= TRIM_RESIDUE:
            # What this thread's arena freed goes back, once the jobs left this much: a trim
            # gives back the training's free pages too, which it faults in again.
            trim_heap()
            self._residue = 0

    def _hash(self, job: HashJob) -> HashResult:
        """The job's digest: the one known for the same files, unchanged since (KNOWN_DIGESTS),
        or read."""
        key = (job.stats, job.root)
        known = self._known.get(key)
        if known is not None:
            t0 = time.perf_counter()
            if snapshot([s.path for s in job.stats]) == job.stats:
                self._known.move_to_end(key)
                return HashResult(known, time.perf_counter() - t0)
        result = hash_if_unchanged(job.stats, job.root)
        if result.sha256 is not None:
            self._known[key] = result.sha256
            while len(self._known) > KNOWN_DIGESTS:
                self._known.popitem(last=False)
        return result

    def _answer(self, job: HashJob, result: HashResult) -> None:
        try:
            job.done(result)
        except Exception as exc:
            if self.on_error is not None:
                self.on_error(exc)

    def drain(self, timeout: float) -> bool:
        """Wait until the queue is empty and the worker idle; True when it got there in time."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Finish what can be finished in `timeout`, answer the rest without a hash, stop.

        Joins the thread, so after close() no epochwatch hashing thread is alive.
        """
        self.drain(timeout)
        with self._cond:
            self._closed = True
            left = list(self._queue)
            self._queue.clear()
            self._pending_keys.clear()
            thread = self._thread
            self._cond.notify_all()
        for job in left:
            self._answer(job, HashResult(None, 0.0, "the process ended before it was hashed"))
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(self._idle_exit * 2, 1.0))

    def reset_after_fork(self) -> None:
        """In a forked child the thread is gone: forget it and the parent's queue."""
        self._cond = threading.Condition()
        self._queue.clear()
        self._pending_keys.clear()
        self._thread = None
        self._busy = False

    @property
    def alive(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()


def describe(result: HashResult) -> dict[str, Any]:
    """The record fields for a hash result: `sha256` and `hash_seconds`, or `hash_error`."""
    out: dict[str, Any] = {"hash_seconds": round(result.hash_seconds, 6)}
    if result.sha256 is not None:
        out["sha256"] = result.sha256
    if result.error:
        out["hash_error"] = result.error
    return out
