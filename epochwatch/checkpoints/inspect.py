"""Whether a Keras file holds optimizer state, and how much, read from the file itself.

A restore record says what the file held (`optimizer_included`, `file_optimizer_variables`)
next to what the optimizer holds after loading (`optimizer`): "the file had Adam's 10
variables, the optimizer after load_weights has 2 and was never built" is the whole story
of a resume whose moments were dropped, told without relying on a warning being printed.

Keras 3 files keep optimizer variables under `optimizer/vars/<i>` in the weights HDF5 (inside
the `.keras` zip as `model.weights.h5`, stored uncompressed, so h5py reads it in place);
legacy `.h5` models keep them under `optimizer_weights`. Only group names and the scalar
step counter are read, never the weights.
"""

from __future__ import annotations

import os
import zipfile
from typing import Any

from epochwatch.checkpoints.files import H5, KERAS, WEIGHTS_H5

_WEIGHTS_MEMBER = "model.weights.h5"


def inspect_file(path: str, fmt: str) -> dict[str, Any]:
    """`{"optimizer_included": bool, "file_optimizer_variables": n}`, or {} when unknown."""
    if fmt not in (KERAS, WEIGHTS_H5, H5):
        return {}  # not a Keras file: h5py (and the import it costs) has nothing to read
    try:
        import h5py  # Keras needs it for these formats, so it is importable when they are used
    except ImportError:
        return {}
    try:
        if fmt == KERAS and not os.path.isdir(path):
            with zipfile.ZipFile(path) as zf, zf.open(_WEIGHTS_MEMBER) as member, h5py.File(member, "r") as f:
                return _keras3_optimizer(f)
        # An unzipped Keras model's weights file; a sharded `.weights.json` is not read.
        file = os.path.join(path, _WEIGHTS_MEMBER) if fmt == KERAS else path
        if fmt == H5 or file.endswith(".h5"):
            with h5py.File(file, "r") as f:
                return _legacy_optimizer(f) if fmt == H5 else _keras3_optimizer(f)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return {}
    return {}


def _keras3_optimizer(f: Any) -> dict[str, Any]:
    group = f.get("optimizer")
    if group is None:
        return {"optimizer_included": False}
    variables = group.get("vars")
    n = len(variables.keys()) if variables is not None else 0
    out: dict[str, Any] = {"optimizer_included": n > 0, "file_optimizer_variables": n}
    # Keras 3 creates the step counter first, so it is variable 0: the step the file was saved at.
    first = variables.get("0") if variables is not None else None
    if first is not None and first.shape == () and first.dtype.kind in "iu":
        out["file_iterations"] = int(first[()])
    return out


def _legacy_optimizer(f: Any) -> dict[str, Any]:
    group = f.get("optimizer_weights")
    if group is None:
        return {"optimizer_included": False}
    count = 0

    def visit(_name: str, obj: Any) -> None:
        nonlocal count
        if hasattr(obj, "shape"):
            count += 1

    group.visititems(visit)
    return {"optimizer_included": count > 0, "file_optimizer_variables": count}
