"""Unreadable files met by a folder pipeline: the tally and the callback that reports it.

The decoding runs inside the `tf.data` graph, where a Python counter cannot
be incremented; `from_folder` calls `UnreadableFiles.skipped` through
`tf.py_function` only for a file that failed, so readable files cost nothing
and the tally is readable from Python at any time (per worker under a
multi-worker strategy).
"""

import logging
import threading
import warnings

import keras
import tensorflow as tf

_SHOWN = 3


def _message(error):
    text = getattr(error, "message", None) or str(error)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(error).__name__


class UnreadableFiles:
    """The files of one folder pipeline that could not be decoded.

    Args:
        path: the folder, as messages show it.
        num_files: files listed under it.
        on_error: "skip" records a file and goes on; "raise" raises a
            ValueError naming it.

    Example:

    >>> tally = UnreadableFiles("/photos", num_files=10, on_error="skip")
    >>> tally.count, tally.report()
    (0, '')
    """

    def __init__(self, path, num_files, on_error="skip"):
        self.path, self.num_files, self.on_error = str(path), int(num_files), on_error
        self._reasons = {}
        self._skips = 0
        self._lock = threading.Lock()

    @property
    def count(self):
        """Distinct files found unreadable so far."""
        return len(self._reasons)

    @property
    def skips(self):
        """Times an unreadable file was skipped in the stream (once per epoch it is met)."""
        return self._skips

    @property
    def files(self):
        """The unreadable files found so far, in the order they were met."""
        with self._lock:
            return list(self._reasons)

    def reason(self, file):
        """The decoder's message for `file`, or None if it was not found unreadable."""
        return self._reasons.get(file)

    def report(self):
        """One line: how many files were skipped and the first few names; '' if none."""
        with self._lock:
            files = list(self._reasons)
        if not files:
            return ""
        named = ", ".join(repr(f) for f in files[:_SHOWN]) + (", ..." if len(files) > _SHOWN else "")
        return (
            f"Skipping {len(files)} of {self.num_files} image files under {self.path!r} that could "
            f"not be decoded: {named}"
        )

    def record(self, file, error):
        """Notes that `file` failed with `error`; raises instead with on_error="raise"."""
        reason = _message(error)
        if self.on_error == "raise":
            raise ValueError(
                f"Cannot decode image file {file!r}: {reason}. Pass on_error='skip' to skip such files."
            )
        with self._lock:
            first = not self._reasons
            new = file not in self._reasons
            if new:
                self._reasons[file] = reason
        if first:
            warnings.warn(self.report(), stacklevel=3)
        return new

    def skipped(self, file, used, tries):
        """Called from the stream when `file` failed; returns `used`, the substitute's index."""
        try:
            tf.io.decode_image(tf.io.read_file(file), channels=3, expand_animations=False)
            error = "decoded on retry"  # read while being written, or a flaky file system
        except (tf.errors.OpError, ValueError) as err:
            error = err
        self.record(file, error)
        with self._lock:
            self._skips += 1
        if used < 0:
            raise ValueError(
                f"{tries} image files in a row could not be decoded, from {file!r} on; "
                f"{self.count} unreadable so far under {self.path!r}."
            )
        return used


class UnreadableFilesReport(keras.callbacks.Callback):
    """Logs, at the end of each epoch and of training, the files a folder pipeline skipped.

    Args:
        unreadable: the dataset returned by `from_folder` (or `load` of a
            "folder:" name) or its `unreadable` attribute.
        logger: a `logging.Logger`; None uses the "simclr_tf" logger.

    Example:

    >>> import tempfile, PIL.Image
    >>> from simclr_tf.data import from_folder
    >>> root = tempfile.mkdtemp()
    >>> PIL.Image.new("RGB", (8, 8)).save(f"{root}/a.png")
    >>> report = UnreadableFilesReport(from_folder(root, batch_size=1))
    >>> report.unreadable.count
    0
    """

    def __init__(self, unreadable, logger=None):
        super().__init__()
        unreadable = getattr(unreadable, "unreadable", unreadable)
        if not isinstance(unreadable, UnreadableFiles):
            raise ValueError(
                "`unreadable` must be a dataset from `from_folder` or its `unreadable` attribute. "
                f"Received: unreadable={unreadable!r}"
            )
        self.unreadable = unreadable
        self.logger = logger or logging.getLogger("simclr_tf")
        self._reported = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.unreadable.count > self._reported:  # only when new files were found
            self._reported = self.unreadable.count
            self.logger.warning("Epoch %d: %s", epoch + 1, self.unreadable.report())

    def on_train_end(self, logs=None):
        if self.unreadable.count:
            self.logger.warning("End of training: %s", self.unreadable.report())
