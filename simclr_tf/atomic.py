"""Atomic writes: nothing half-written ever sits under its final name.

Every artefact (checkpoints, `.keras` files, SavedModels, result files) is
written to a temporary sibling and moved into place with `os.replace`, which
is atomic on POSIX file systems, so an interrupted run leaves either the old
complete artefact or the new complete one.
"""

import contextlib
import json
import math
import os
import shutil
import tempfile

import numpy as np


# The suffix of a directory moved aside while its replacement moves in.
OLD_SUFFIX = ".old"


def old_artefact_name(entry):
    """The final name of a `.<name>.<random>.tmp.old` entry left by
    `atomic_path`, or None for any other entry."""
    if not (entry.startswith(".") and entry.endswith(".tmp" + OLD_SUFFIX)):
        return None
    parts = entry[1:].rsplit(".", 3)
    return parts[0] if len(parts) == 4 and parts[0] else None


@contextlib.contextmanager
def atomic_path(path, directory=False):
    """Yields a temporary path next to `path`; moves it there on success.

    Args:
        path: the final file or directory path.
        directory: True when the artefact is a directory (a SavedModel).

    On an exception the temporary file or directory is removed and `path`
    is left as it was.
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(path)
    if directory:
        tmp = tempfile.mkdtemp(prefix=f".{base}.", suffix=".tmp", dir=parent)
        shutil.rmtree(tmp)  # the writer creates it
    else:
        _, ext = os.path.splitext(base)
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{ext}", dir=parent)
        os.close(fd)
        os.remove(tmp)  # some writers refuse to overwrite
    try:
        yield tmp
        if directory and os.path.isdir(path):
            # Two renames (POSIX cannot swap directories in one): if the
            # second fails the old artefact goes back; if the process dies
            # between them, `callbacks.remove_temporaries` puts it back at
            # the next start (OLD_SUFFIX).
            old = tmp + OLD_SUFFIX
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.remove(tmp)


def _jsonable(value):
    """`value` with NumPy scalars and arrays as Python ones, NaN and Inf as None.

    Strict JSON has no NaN (Python writes a bare `NaN` that other parsers
    refuse); a diverged loss is written as `null`.
    """
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path, data):
    """Writes `data` as indented JSON, atomically.

    NumPy numbers and arrays are written as JSON numbers and lists; NaN and
    Inf as `null`.
    """
    data = _jsonable(data)
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())


def save_keras(model, path):
    """`model.save(path)` for a `.keras` file, atomically."""
    if not os.fspath(path).endswith(".keras"):
        raise ValueError(f"`path` must end in '.keras'. Received: path={path!r}")
    with atomic_path(path) as tmp:
        model.save(tmp)
