"""Files of the command line: the output folder, an earlier run's checkpoints,
and how many batches a finite dataset holds."""

import os
import re
import time

import tensorflow as tf


def check_output_dir(path, flag="--output_dir"):
    """Refuses an output folder that cannot be created or written, without creating it.

    The nearest existing folder on the way must be a writable folder (a
    path under a file, or on a read-only file system, is refused).
    """
    path = os.path.abspath(path)
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    name = flag.lstrip("-")
    if not os.path.isdir(existing):
        where = "exists and is not a folder" if existing == path else f"is under {existing!r}, a file"
        raise ValueError(f"`{flag}` {where}. Received: {name}={path!r}")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" ({existing!r}, the nearest existing folder)"
        raise ValueError(f"`{flag}` is not writable{where}. Received: {name}={path!r}")


_CHECKPOINT = re.compile(r"^epoch_\d+\.weights\.h5$")  # simclr_tf.callbacks.AtomicCheckpoint's names


def move_stale_checkpoints(folder):
    """Moves the per-epoch weights `AtomicCheckpoint` wrote in `folder` aside.

    For a fresh start in a folder an earlier run used: its `epoch_NNNN`
    files would sort as newer than the new run's and have those pruned.
    They go to a subfolder `earlier_run_<UTC time>` (nothing is deleted;
    nothing else in `folder` is touched). Returns (names moved, subfolder),
    or ([], None) when there is nothing to move.
    """
    if not os.path.isdir(folder):
        return [], None
    stale = sorted(name for name in os.listdir(folder) if _CHECKPOINT.match(name))
    if not stale:
        return [], None
    aside = os.path.join(folder, time.strftime("earlier_run_%Y%m%dT%H%M%S", time.gmtime()))
    base, suffix = aside, 1
    while os.path.exists(aside):  # a second fresh start within the same second
        aside, suffix = f"{base}.{suffix}", suffix + 1
    os.makedirs(aside)
    for name in stale:
        os.replace(os.path.join(folder, name), os.path.join(aside, name))
    return stale, aside


def count_batches(dataset):
    """Batches in one pass of a finite dataset (iterates if TF can't tell)."""
    n = int(dataset.cardinality())
    if n == tf.data.INFINITE_CARDINALITY:
        raise ValueError("The training dataset must be finite before `.repeat()`.")
    if n < 0:
        n = sum(1 for _ in dataset)
    if n == 0:
        raise ValueError(
            "The training dataset has no full batch: it is empty or smaller than `batch_size`."
        )
    return n
