"""What a tf.data pipeline writes to disk, watched: `snapshot(path)` directories and the
directories of `cache(filename)` files (role `data`).

A sweep whose trials each snapshot their inputs into a directory of their own
(`ds.snapshot(tempfile.mkdtemp())`) left 442 MiB in /tmp over 14 trials, said nowhere: no
save went there, so nothing watched it. Wrapped: `tf.data.Dataset.snapshot` and `.cache`
(DatasetV1's calls DatasetV2's), where a pipeline is built, never per batch; only a path
given as a Python string (a tensor's value is not read). `cache("")` keeps the data in
memory and writes nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from epochwatch.integrations import patch
from epochwatch.recorder.save_watch import written_directory

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "tf.data file watching"
ROLE = "data"


def _wrap(original: Callable[..., Any], method: str, recorder: Recorder, argument: str) -> Callable[..., Any]:
    snapshot = method == "snapshot"  # writes into `path`; a cache into the directory of its file

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        path = args[0] if args else kwargs.get(argument)
        directory = recorder.guard.run(PART, lambda: written_directory(path, is_directory=snapshot), None)
        if directory is not None:
            recorder.guard.run(PART, lambda: recorder.watch(directory, ROLE), None)
        return original(self, *args, **kwargs)

    return wrapper


def install(recorder: Recorder) -> None:
    from tensorflow.python.data.ops import dataset_ops

    cls = dataset_ops.DatasetV2
    for method, argument in (("snapshot", "path"), ("cache", "filename")):
        patch(cls, method, functools.partial(_wrap, method=method, recorder=recorder, argument=argument))
