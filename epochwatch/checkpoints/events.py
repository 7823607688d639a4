"""Turn "a save/restore just happened" into `save`/`restore` records, hashing off-thread.

The saving integration calls `saved()`/`restored()` on the training thread right after
Keras or TF returns. What happens there is bounded and small: list the save's files and
`stat` them (a TF checkpoint is two files; a SavedModel directory a few dozen), then queue
a job. Everything that reads file contents (the hash, the version metadata, whether the
file holds optimizer state) runs on the HashWorker, which then writes the record. So a
`save` record can land a little after the epoch record that follows it in time; its
`saved_at` field says when the save finished.

For a restore, once the hash is known, `on_restore` (set by the integration) may look up the
run that saved those bytes, add a `parent` link to the record and return findings, which
are written as `finding` records right after it; see `epochwatch.analysis.restore`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from epochwatch.checkpoints import files as cfiles
from epochwatch.checkpoints.hashing import HashJob, HashResult, HashWorker, describe
from epochwatch.checkpoints.versions import written_with

Emit = Callable[..., None]
Inspector = Callable[[str, str], dict[str, Any]]


class SaveEvents:
    """Records saves and restores for one process. Thread-safe; never raises from a record."""

    def __init__(
        self,
        emit: Emit,
        *,
        inspect: Inspector | None = None,
        on_restore: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None,
        on_save: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None,
        report_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self._emit = emit
        self.worker = HashWorker()
        self._inspect = inspect
        self.on_restore = on_restore
        self.on_save = on_save
        self._report_error = report_error
        self.worker.on_error = lambda exc: self._error("saving.emit", exc)

    def _error(self, part: str, exc: BaseException) -> None:
        if self._report_error is not None:
            self._report_error(part, exc)

    def saved(self, path: str, fmt: str, api: str, seconds: float, **fields: Any) -> None:
        """A save finished on this thread; the record follows once the bytes are hashed."""
        record = self._base(path, fmt, api, fields)
        record["save_seconds"] = round(seconds, 6)
        record["saved_at"] = time.time()
        self._submit(record, "save")

    def restored(
        self, path: str, fmt: str, api: str, seconds: float, warnings: list[str], **fields: Any
    ) -> None:
        """A restore finished on this thread; the record follows once the bytes are hashed."""
        record = self._base(path, fmt, api, fields)
        record["load_seconds"] = round(seconds, 6)
        record["restored_at"] = time.time()
        if warnings:
            record["warnings"] = list(warnings)
        self._submit(record, "restore")

    def _base(self, path: str, fmt: str, api: str, fields: dict[str, Any]) -> dict[str, Any]:
        given = {k: v for k, v in fields.items() if v is not None}
        return {"path": os.path.abspath(path), "format": fmt, "api": api, **given}

    def _submit(self, record: dict[str, Any], type_: str) -> None:
        path, fmt = record["path"], record["format"]
        names = cfiles.checkpoint_files(path, fmt)
        stats = cfiles.snapshot(names)
        record["bytes"] = sum(s.size for s in stats)
        record["files"] = len(stats)
        root = cfiles.manifest_root(path, names)

        def done(result: HashResult) -> None:
            record.update(describe(result))
            if result.sha256 is not None:
                self._add_file_facts(record, type_ == "restore")
            findings: list[dict[str, Any]] = []
            lineage = f"on_{type_}"  # on_restore may add `parent` to the record
            if getattr(self, lineage) is not None:
                try:
                    findings = getattr(self, lineage)(record)
                except Exception as exc:
                    self._error("saving.lineage", exc)
                    setattr(self, lineage, None)
            self._emit(type_, **record)
            for finding in findings:
                self._emit("finding", **finding)

        self.worker.submit(HashJob(key=f"{type_}:{path}", stats=stats, root=root, done=done))

    def _add_file_facts(self, record: dict[str, Any], restore: bool) -> None:
        path, fmt = record["path"], record["format"]
        if restore:
            ww = written_with(path, fmt)
            if ww:
                record["written_with"] = ww
        if self._inspect is not None:
            try:
                extra = self._inspect(path, fmt)
            except Exception as exc:
                self._error("saving.inspect", exc)
                self._inspect = None
                return
            for k, v in extra.items():
                record.setdefault(k, v)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is still being hashed (waiting up to `timeout`), then stop the thread."""
        self.worker.close(timeout)
