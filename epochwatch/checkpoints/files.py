"""Which files make up one save, in each format, and a cheap snapshot of them.

A save is not always one file: a TF checkpoint is `<prefix>.index` plus
`<prefix>.data-NNNNN-of-MMMMM`, a SavedModel or an unzipped Keras model is a directory,
sharded Keras weights are a `.weights.json` plus shards. Everything downstream (the hash,
the byte count, "was it changed on disk?") works on the list this module returns, so
formats differ in one place only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# `format` values written into save/restore records.
KERAS = "keras"  # .keras zip (or an unzipped Keras model directory)
H5 = "h5"  # legacy whole-model HDF5 (.h5/.hdf5)
WEIGHTS_H5 = "weights.h5"  # Keras weights-only HDF5 (.weights.h5, or sharded .weights.json)
TF_CHECKPOINT = "tf_checkpoint"
SAVED_MODEL = "saved_model"
TORCH = "torch"  # torch.save of a state dict or a checkpoint dict (one file)

# A save directory with more files than this is not walked on the training thread's behalf.
MAX_FILES = 10_000


@dataclass(frozen=True)
class FileStat:
    """What identifies one file's bytes without reading them: enough to notice a rewrite."""

    path: str
    size: int
    mtime_ns: int
    inode: int


def keras_format(path: str) -> str:
    """The format of a Keras save or load, from its name, as Keras itself decides it."""
    lower = path.lower()
    if lower.endswith((".weights.h5", ".weights.json")):
        return WEIGHTS_H5
    if lower.endswith((".h5", ".hdf5")):
        return H5
    return KERAS


def checkpoint_files(path: str, fmt: str) -> list[str]:
    """The files of a save, sorted; empty when nothing is there (yet, or any more)."""
    p = Path(path)
    if fmt == TF_CHECKPOINT:
        return _tf_checkpoint_files(p)
    if p.is_dir():
        return _walk(p)
    if fmt == WEIGHTS_H5 and p.name.lower().endswith(".weights.json"):
        return _sharded_weights(p)
    return [str(p)] if p.is_file() else []


def _tf_checkpoint_files(prefix: Path) -> list[str]:
    if prefix.is_dir():  # a SavedModel directory passed to Checkpoint.restore
        return _walk(prefix / "variables") or _walk(prefix)
    parent, name = prefix.parent, prefix.name
    try:
        entries = os.listdir(parent)
    except OSError:
        return []
    return sorted(
        str(parent / e)
        for e in entries
        if e == f"{name}.index" or (e.startswith(f"{name}.data-") and "-of-" in e)
    )


def _sharded_weights(index: Path) -> list[str]:
    """A sharded `.weights.json` and the shard files next to it that share its stem."""
    files = [str(index)] if index.is_file() else []
    stem = index.name[: -len(".json")]
    try:
        entries = os.listdir(index.parent)
    except OSError:
        return files
    files += [str(index.parent / e) for e in entries if e.startswith(stem) and e.endswith(".h5")]
    return sorted(files)


def _walk(root: Path) -> list[str]:
    out: list[str] = []
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            out.append(os.path.join(dirpath, n))
            if len(out) > MAX_FILES:
                return sorted(out)
    return sorted(out)


def snapshot(files: list[str]) -> tuple[FileStat, ...]:
    """Sizes and modification stamps of `files`; a file that vanished is left out."""
    stats = []
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            continue
        stats.append(FileStat(f, st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(stats)


def manifest_root(path: str, files: list[str]) -> str | None:
    """None for a single-file save (hashed as plain bytes); else the directory that manifest
    names are relative to, so a copied or moved save hashes the same."""
    p = Path(path)
    if p.is_dir():
        return str(p)
    if len(files) == 1 and os.path.abspath(files[0]) == os.path.abspath(path):
        return None
    return str(p.parent)
