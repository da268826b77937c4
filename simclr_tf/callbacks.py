"""Training callbacks: atomic, bounded checkpoints and a non-finite loss guard."""

import math
import os
import re

import keras

from simclr_tf.io import atomic_path

_CKPT = re.compile(r"^epoch_(\d+)\.weights\.h5$")


def _finite(logs):
    loss = (logs or {}).get("loss")
    if loss is None:
        return True
    try:
        return math.isfinite(float(loss))
    except (TypeError, ValueError):
        return True


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves model weights each epoch, atomically, keeping the newest `keep`.

    Files are `directory/epoch_NNNN.weights.h5`, written under a temporary
    name and renamed, so a crash never leaves a truncated checkpoint that
    looks complete. An epoch whose loss is NaN or Inf is not saved, so the
    newest file is always the last good state.

    Args:
        directory: folder for the checkpoints (created if missing).
        keep: how many of the newest checkpoints to keep (>= 1).
    """

    def __init__(self, directory, keep=3):
        super().__init__()
        if not isinstance(keep, int) or keep < 1:
            raise ValueError(f"`keep` must be an integer >= 1. Received: keep={keep!r}")
        self.directory = os.fspath(directory)
        self.keep = keep

    def checkpoints(self):
        """Existing checkpoint paths, oldest first."""
        if not os.path.isdir(self.directory):
            return []
        found = sorted(
            (int(m.group(1)), name)
            for name in os.listdir(self.directory)
            if (m := _CKPT.match(name))
        )
        return [os.path.join(self.directory, name) for _, name in found]

    def on_epoch_end(self, epoch, logs=None):
        if not _finite(logs):
            return
        path = os.path.join(self.directory, f"epoch_{epoch + 1:04d}.weights.h5")
        with atomic_path(path) as tmp:
            self.model.save_weights(tmp)
        for old in self.checkpoints()[: -self.keep]:
            os.remove(old)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first NaN/Inf loss with a message saying so.

    Keeps whatever was last saved (see `AtomicCheckpoint`), and records the
    failure in `self.stopped_at` as `(epoch, batch, loss)`.
    """

    def __init__(self):
        super().__init__()
        self.stopped_at = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if not _finite(logs):
            self.stopped_at = (self._epoch + 1, batch + 1, float(logs["loss"]))
            print(
                f"\nStopping: the loss became {logs['loss']} at epoch {self._epoch + 1}, "
                f"batch {batch + 1}. Try a lower learning rate or a higher temperature; "
                "the last good checkpoint is kept."
            )
            self.model.stop_training = True
