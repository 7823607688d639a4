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
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "tf.data file watching"
ROLE = "data"


def written_directory(method: str, path: Any) -> str | None:
    """The directory `method` ("snapshot", "cache") writes into for its `path` argument;
    None for no file (an in-memory cache), a tensor, or a directory not worth watching whole
    (the file system's root, the home directory)."""
    if not isinstance(path, str | os.PathLike):
        return None
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        return None
    absolute = os.path.abspath(text)
    directory = absolute if method == "snapshot" else os.path.dirname(absolute)
    if directory in (os.path.sep, os.path.expanduser("~")):
        return None
    return directory


def _wrap(original: Callable[..., Any], method: str, recorder: Recorder, argument: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        path = args[0] if args else kwargs.get(argument)
        directory = recorder.guard.run(PART, lambda: written_directory(method, path), None)
        if directory is not None:
            recorder.guard.run(PART, lambda: recorder.watch(directory, ROLE), None)
        return original(self, *args, **kwargs)

    wrapper.__epochwatch__ = True  # type: ignore[attr-defined]
    return wrapper


def install(recorder: Recorder) -> None:
    from tensorflow.python.data.ops import dataset_ops

    cls = dataset_ops.DatasetV2
    for method, argument in (("snapshot", "path"), ("cache", "filename")):
        original = getattr(cls, method, None)
        if callable(original) and not getattr(original, "__epochwatch__", False):
            setattr(cls, method, _wrap(original, method, recorder, argument))
