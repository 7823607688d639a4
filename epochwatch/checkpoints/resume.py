"""In the training process: find the parent of a restore, and raise restore findings while
the resumed run is still going.

At a restore (on the hashing thread, never the training thread) the watcher scans the
trace directory (and under a daemon the daemon's, where the user may list it: root; it is
0711 for others) for
the save with the same hash (`restore.scan.find_parent`, bounded), loads
that parent trace, writes the link into the restore record (`parent`), and returns the
findings that can be judged already (checkpoint modified, optimizer not restored, versions,
environment, slow restore). It then follows the run's own records: at the next `fit_start`
and at each of the first epochs after the restore it runs the same detector again and
writes any finding not written before (input shift and hyperparameters at fit start, loss
jump after the first epoch, slowdown once warm-up is over). After WINDOW epochs past the
restore it stops looking, so a long run pays nothing for an old restore.

Records are followed, from the first restore on, through `Recorder.add_listener`; without
it (a stand-in recorder in tests), only the restore-time findings are written.

Findings are written here only in embedded mode. With a daemon, the daemon's online
analyzer runs the same restore detector on the records it receives (the `parent` link
found here travels in the restore record), so writing them here too would say it twice.

The analysis is epochwatch.analysis.restore; this module is only the training process's
side of it: when to run it, on which records, and writing what it finds once.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from epochwatch.analysis import restore
from epochwatch.analysis.findings import clean
from epochwatch.analysis.restore import nothing
from epochwatch.analysis.restore.lineage import MATCH_PATH, Lineage, Link, restored_at, saved_at
from epochwatch.analysis.restore.parents import read_parent
from epochwatch.analysis.restore.scan import Found, find_parent
from epochwatch.analysis.run import Run
from epochwatch.trace import schema
from epochwatch.trace.reader import TraceError, iter_records

Record = dict[str, Any]
MAX_PARENT_BYTES = 256 * 1024 * 1024
WINDOW = restore.WINDOW + 2
# A server that loads its SavedModel for every request (tensorflow#40171) restores the same
# files hundreds of times: each is looked up in the trace directory once (its parent, by
# content and path), and the newest RESTORES_KEPT restores are judged (all of them, each
# time, made the hook's cost grow with the square of the loads and its memory without end).
RESTORES_KEPT = 16
# This run's own saves remembered (their bytes' hashes, and the newest save to each path):
# a checkpoint callback saving every epoch is remembered for its newest OWN_SAVES_KEPT.
OWN_SAVES_KEPT = 256


# Seconds the hash thread waits for the daemon's welcome (the sink's handshake takes 3 s at most).
WELCOME_WAIT = 3.0


class ResumeWatcher:
    """One per process; thread-safe. `on_restore` runs on the hashing thread, `observe` on
    whichever thread writes a record."""

    def __init__(self, recorder: Any, search_dirs: list[Path] | None = None) -> None:
        self._recorder = recorder
        self._dirs = search_dirs if search_dirs is not None else [Path(recorder.trace_dir)]
        self._lock = threading.Lock()
        self._child = Run(run_id=str(recorder.run_id))
        self._parents: dict[str, Run] = {}
        self._links: list[Link] = []
        self._emitted: set[tuple[Any, ...]] = set()
        self._looked_up: tuple[tuple[Any, ...], Link | None, Run | None, Record | None] | None = None
        self._nothing: str | None = None  # the API of a restore that found no checkpoint, until the next save
        self._own_saves: dict[str, tuple[float, str]] = {}  # path -> (saved_at, sha256), newest per path
        self._started = False
        # A restore whose objects may be made after it (TF's deferred restore): the path and
        # what to ask at the next epoch record; then what it said, per path.
        self._late: tuple[str, Callable[[], Record | None]] | None = None
        self._late_found: dict[str, Record] = {}
        self._attach_lock = threading.Lock()
        self.listening = False

    def attach(self) -> bool:
        """Start following the run's records (once). Called at the first restore, on the
        restoring thread, so a process that never restores is never touched, and the
        fit_start that follows a restore is seen."""
        if not self.listening:
            with self._attach_lock:
                add = getattr(self._recorder, "add_listener", None)  # a stand-in recorder may lack it
                if not self.listening and callable(add):
                    add(self.observe, "restore diagnostics")
                    self.listening = True
        return self.listening

    # -- at the restore (hashing thread) -------------------------------------------------

    def on_restore(self, record: Record) -> list[Record]:
        """Link the restore to its parent (adds `parent` to the record); return findings."""
        embedded = self._embedded()  # before our lock: it may take the Recorder's; it starts
        parent, link = self._parent_of(record)  # the run, whose daemon's traces are then searched too
        own_start, before = (
            self._own_history(restored_at(record)) if self._child.start is None else (None, [])
        )
        with self._lock:
            if self._child.start is None:
                self._child.start = own_start
                # The epochs before the first restore (followed only from it on): the losses a
                # restore of this run's own save is judged against, as `report` judges it.
                self._child.epochs[:0] = before
            self._child.restores.append(record)
            del self._child.restores[:-RESTORES_KEPT]
            if parent is not None and link is not None:
                self._parents[parent.run_id] = parent
                self._links.append(link)
                del self._links[:-RESTORES_KEPT]
            if not embedded:
                return []
            return self._new_findings()

    def recheck_at_next_epoch(self, path: str, check: Callable[[], Record | None]) -> None:
        """A restore that matched every variable the program held then; `check()` says at
        the next epoch record what it left without a value once the rest were made. Keras
        3 layers built after a `tf.train.Checkpoint` restore (tensorflow#39593) make a new
        kernel the waiting value never reaches: the restore's `unmatched` comes late."""
        with self._lock:
            self._late = (os.path.abspath(path), check)

    def restored_nothing(self, api: str) -> None:
        """A restore given no checkpoint (`restore(manager.latest_checkpoint)` with none found):
        the next save says whether it overwrote another run's (analysis/restore/nothing.py)."""
        self._nothing = api

    def on_save(self, record: Record) -> list[Record]:
        """On the hashing thread: the first save after a restore of nothing, looked up among
        the traces by its path; the finding when it overwrote another run's checkpoint."""
        api, sha, path, when = self._nothing, record.get("sha256"), record.get("path"), record.get("saved_at")
        if isinstance(sha, str) and isinstance(path, str):
            self._own_saves.pop(path, None)
            self._own_saves[path] = (saved_at(record), sha)
            while len(self._own_saves) > OWN_SAVES_KEPT:
                del self._own_saves[next(iter(self._own_saves))]
        if api is None or not isinstance(sha, str) or not isinstance(path, str):
            return []  # unhashed bytes (a save overwritten before its hash) cannot be told apart: the next
        self._nothing = None
        before = float(when) if isinstance(when, int | float) else None
        found = self._find(sha, path, before)
        finding = nothing.judge(api, record, found)
        if finding is None:
            return []
        with self._lock:
            self._emitted.add(finding.key)
        return [{**restore.record_fields(finding), "evidence": clean(finding.evidence)}]

    def _find(self, sha: str, path: Any, before: float | None) -> Found | None:
        """The save restored, looked for in the embedded traces' directory and, under a
        daemon, among the user's traces there: its `traces/` is 0711, so they are the names
        its welcome gave (a resumed run under a daemon had looked only where nothing of it
        was written, and found no parent)."""
        dirs = [Path(os.path.abspath(d)) for d in self._dirs]
        wait = getattr(self._recorder, "await_daemon", None)
        if wait is not None:  # a restore just after the run started: its welcome may be on its way
            wait(WELCOME_WAIT)
        held = getattr(self._recorder, "trace_path", None)
        daemon = Path(os.path.abspath(held)).parent if isinstance(held, str) and held else None
        if daemon is not None and daemon not in dirs:
            dirs.append(daemon)  # listable where the daemon runs as this user
        files = [Path(os.path.abspath(f)) for f in getattr(self._recorder, "own_traces", ())]
        return find_parent(dirs, sha, path, exclude_run_id=self._child.run_id, before=before, files=files)

    def _parent_of(self, record: Record) -> tuple[Run | None, Link | None]:
        """The parent run of a restore and its link (adding `parent` to the record), found
        in the trace directory; a restore of the same files as the last one found has the
        same parent, and is not looked up again."""
        sha = record.get("sha256")
        key = (sha, record.get("path"))
        if self._looked_up is not None and self._looked_up[0] == key and isinstance(sha, str):
            _, known, known_parent, field = self._looked_up
            if field is not None:
                record["parent"] = field
            return known_parent, None if known is None else replace(known, restore=record)
        found = None
        if isinstance(sha, str):
            found = self._find(sha, record.get("path"), restored_at(record))
        if found is not None and found.match == MATCH_PATH and self._own_save_is_newer(record, found):
            found = None
        parent: Run | None = None
        link: Link | None = None
        if found is not None:
            parent = read_parent(found.trace, MAX_PARENT_BYTES)
            if parent is not None:
                link = Link(self._child.run_id, parent.run_id, record, found.save, found.match)
                record["parent"] = link.parent_field(found.trace)
        self._looked_up = (key, link, parent, record.get("parent"))
        return parent, link

    def _own_save_is_newer(self, record: Record, found: Found) -> bool:
        """Whether a restore matched only by its path (no other run saved these bytes) reads
        this run's own save, or a file this run saved after the save found: then it has no
        parent there and was not modified (as `report`'s lineage says). A resumed run's
        ModelCheckpoint(save_best_only) wrote best.weights.h5 again, and the script's
        load_weights of it at the end read "not the file the parent saved there: something
        rewrote it" (keras#17012)."""
        when = restored_at(record)
        own = [entry for entry in self._own_saves.values() if entry[0] <= when]
        if any(sha == record.get("sha256") for _, sha in own):
            return True
        latest = self._own_saves.get(str(record.get("path")))
        return latest is not None and saved_at(found.save) <= latest[0] <= when

    def _embedded(self) -> bool:
        """Whether this process writes its own trace now (else a daemon analyzes it).

        Starts the run if needed (the restore record is about to, anyway). A daemon sink
        that fell back to a file mid-run no longer detects remotely.
        """
        if not self._started:
            try:
                self._recorder.start()
            except Exception:
                return False
            self._started = True
        return self._recorder.sink_description is not None and not self._recorder.remote_detection

    def _own_history(self, until: float) -> tuple[Record | None, list[Record]]:
        """Our run_start, if it was written before we could see it (embedded mode only), and
        our newest WINDOW epochs that began before `until` (read once, at the first restore)."""
        path = Path(self._recorder.trace_dir) / f"{self._child.run_id}.jsonl"
        start: Record | None = None
        epochs: deque[Record] = deque(maxlen=WINDOW)
        try:
            for i, rec in enumerate(iter_records(path)):
                if i == 0 and rec.get("type") != schema.RUN_START:
                    return None, []
                if i == 0:
                    start = rec
                elif (
                    rec.get("type") == schema.EPOCH
                    and isinstance(rec.get("start"), int | float)
                    and rec["start"] < until - 1e-3
                ):
                    epochs.append(rec)
        except TraceError:
            return start, []
        return start, list(epochs)

    # -- after it (the writing thread) ---------------------------------------------------

    def observe(self, rec: Record) -> None:
        """See one record of our own run; run the detector after fit_start/epoch records."""
        kind = rec.get("type")
        if kind == schema.RUN_START:
            with self._lock:
                if self._child.start is None:
                    self._child.start = rec
            return
        if kind == schema.FINDING:
            with self._lock:
                self._emitted.add((rec.get("kind"), rec.get("target")))
            return
        if kind not in (schema.FIT_START, schema.EPOCH, schema.SAVE):
            return  # restores arrive through on_restore (the same dict, with its parent)
        with self._lock:
            if kind == schema.EPOCH and self._late is not None:
                (path, check), self._late = self._late, None
                late = check()
                if late:
                    self._late_found[path] = late
            # Kept always, but bounded: the hash (and so on_restore) may finish after the
            # fit_start and first epochs that follow the restore. Saves: a resumed run's
            # first "best" save is judged against its parent's (analysis/restore/best.py).
            buffer = {schema.EPOCH: self._child.epochs, schema.FIT_START: self._child.fits}.get(
                kind, self._child.saves
            )
            buffer.append(rec)
            if len(buffer) > WINDOW:
                del buffer[0]
            # A restore of this run's own save has no parent link and is judged all the same
            # (the file's optimizer step, the losses before it): as `report` judges it.
            if not self._child.restores or not self._active() or not self._embedded():
                return
            found = self._new_findings()
        for f in found:
            self._recorder.emit(schema.FINDING, **f)

    def _active(self) -> bool:
        """Still within WINDOW epochs of the latest restore (call with the lock held)."""
        last = max(restored_at(r) for r in self._child.restores)
        after = sum(1 for e in self._child.epochs if float(e.get("start", 0.0)) >= last - 1e-3)
        return after < WINDOW

    def _new_findings(self) -> list[Record]:
        """Findings of the child so far not yet written (call with the lock held)."""
        # What a restore left that was made after it (recheck_at_next_epoch).
        for r in self._child.restores:
            late = self._late_found.get(str(r.get("path")))
            if late and not r.get("unmatched"):
                r["unmatched"] = late
        lineage = Lineage(runs={self._child.run_id: self._child, **self._parents}, links=list(self._links))
        out = []
        for f in restore.detect(self._child, lineage):
            if f.key in self._emitted:
                continue
            self._emitted.add(f.key)
            out.append({**restore.record_fields(f), "evidence": clean(f.evidence)})
        return out
