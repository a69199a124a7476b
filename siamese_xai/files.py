"""Atomic file writes.

Every file the package writes goes through `atomic_path`: the content is
written to a temporary name in the same folder and renamed into place, so an
interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yields a temporary path beside `path`; renames it to `path` on success.

    On an exception the temporary file (or folder) is removed and `path` is
    left as it was.

    Args:
        path: the final file or folder path.
        suffix: suffix of the temporary name; defaults to `path`'s own suffix
            (Keras insists that a model file ends in `.keras`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = path.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # writers create it themselves (some write folders)
    try:
        yield Path(tmp)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(folder, names=None) -> list:
    """Removes the temporary files (or folders) a killed `atomic_path` left in `folder`.

    A process killed by a signal (SIGKILL, a power cut) cannot clean up; the
    next run of the same command calls this first. Only names of
    `atomic_path`'s form (`.NAME.RANDOM.tmpSUFFIX`) are touched.

    Args:
        folder: the folder.
        names: only the temporaries of these final file names (other
            processes may be writing the rest); all when None.

    Returns:
        The removed paths.
    """
    removed = []
    patterns = [".*.tmp*"] if names is None else [f".{name}.*.tmp*" for name in names]
    for tmp in (t for pattern in patterns for t in Path(folder).glob(pattern)):
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def write_json(path, obj) -> None:
    """Writes `obj` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_npy(path, array) -> None:
    """Writes a NumPy array, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(array))


def save_model(model, path) -> None:
    """Saves a Keras model to a `.keras` file, atomically."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


def read_json(path):
    """Reads a JSON file."""
    return json.loads(Path(path).read_text())
