"""Every save the hook sees puts its directory under watch (role `checkpoint`).

Saves are recorded from every code path the integrations wrap (`save_weights`/`save`
called by a callback or a loop, `tf.train.Checkpoint.write`, `torch.save`), but only the
fit's own callbacks' directories, the temp dir and `hook.watch()` used to be measured: a
callback saving into its own directory every batch grew it unseen. Now the `save`
record's directory is watched from then on (once per directory), so `disk_growth` judges
it wherever the script writes.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from epochwatch.trace import schema

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "checkpoint watching"


def written_directory(path: Any, *, is_directory: bool = False) -> str | None:
    """The directory a write to the file `path` goes into (`path` itself with is_directory);
    None for no path (a tensor, an in-memory cache's ""), or a directory not worth watching
    whole (the file system's root, the home directory)."""
    if not isinstance(path, str | os.PathLike):
        return None
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        return None
    absolute = os.path.abspath(text)
    directory = absolute if is_directory else os.path.dirname(absolute)
    return None if directory in (os.path.sep, os.path.expanduser("~")) else directory


def watch_saves(recorder: Recorder) -> None:
    """Listen to the run's records: each `save` record's directory is watched."""
    seen: set[str] = set()

    def on_record(record: dict[str, Any]) -> None:
        if record.get("type") != schema.SAVE:
            return
        directory = written_directory(record.get("path"))
        if directory is not None and directory not in seen:
            seen.add(directory)
            recorder.watch(directory, "checkpoint")

    recorder.add_listener(on_record, PART)
