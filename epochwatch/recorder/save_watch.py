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


def _directory(path: Any) -> str | None:
    """The directory a save wrote into; None for one not worth watching (/, the home)."""
    if not isinstance(path, str) or not path:
        return None
    directory = os.path.dirname(os.path.abspath(path))
    if directory in (os.path.sep, os.path.expanduser("~")):
        return None
    return directory


def watch_saves(recorder: Recorder) -> None:
    """Listen to the run's records: each `save` record's directory is watched."""
    seen: set[str] = set()

    def on_record(record: dict[str, Any]) -> None:
        if record.get("type") != schema.SAVE:
            return
        directory = _directory(record.get("path"))
        if directory is not None and directory not in seen:
            seen.add(directory)
            recorder.watch(directory, "checkpoint")

    recorder.add_listener(on_record, PART)
