"""The versions a saved file says it was written with.

A `.keras` zip carries `metadata.json` (`keras_version`, `date_saved`); a legacy `.h5` model
carries `keras_version` and `backend` as root attributes. `.weights.h5` and TF checkpoints
carry nothing of the kind, and that is said by leaving the field out. Reading these costs a
zip directory and one small member, or the HDF5 superblock and root attributes: cheap, but
still done on the hashing thread rather than the training thread.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

from epochwatch.checkpoints.files import H5, KERAS

MAX_METADATA_BYTES = 64 * 1024


def written_with(path: str, fmt: str) -> dict[str, Any] | None:
    """`{"keras": ..., "backend": ..., "date_saved": ...}` as the file says, or None."""
    try:
        if fmt == KERAS:
            return _keras_dir(path) if os.path.isdir(path) else _keras_zip(path)
        if fmt == H5:
            return _legacy_h5(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    return None


def _from_metadata(meta: Any) -> dict[str, Any] | None:
    if not isinstance(meta, dict):
        return None
    out: dict[str, Any] = {}
    if isinstance(meta.get("keras_version"), str):
        out["keras"] = meta["keras_version"]
    if isinstance(meta.get("date_saved"), str):
        out["date_saved"] = meta["date_saved"]
    return out or None


def _keras_zip(path: str) -> dict[str, Any] | None:
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("metadata.json")
        if info.file_size > MAX_METADATA_BYTES:
            return None
        return _from_metadata(json.loads(zf.read(info)))


def _keras_dir(path: str) -> dict[str, Any] | None:
    meta = os.path.join(path, "metadata.json")
    if os.path.getsize(meta) > MAX_METADATA_BYTES:
        return None
    with open(meta, "rb") as fh:
        return _from_metadata(json.loads(fh.read()))


def _legacy_h5(path: str) -> dict[str, Any] | None:
    try:
        import h5py  # Keras needs it for .h5 files, so it is there when one was loaded
    except ImportError:
        return None
    with h5py.File(path, "r") as f:
        out: dict[str, Any] = {}
        for attr, key in (("keras_version", "keras"), ("backend", "backend")):
            value = f.attrs.get(attr)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if isinstance(value, str):
                out[key] = value
        return out or None
