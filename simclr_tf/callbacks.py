"""Training callbacks: a resumable atomic backup, bounded per-epoch checkpoints
and a non-finite loss guard.

Why our own backup instead of `keras.callbacks.BackupAndRestore` (Keras 3.15):
that callback overwrites `latest.weights.h5` in place and then writes
`training_metadata.json` as a second file, so a kill during the first write
leaves a truncated weights file under its final name, and a kill between the
two leaves weights and epoch counter out of step (the resumed run repeats or
skips an epoch). It also does not save the augmenter's random state (Keras
`SeedGenerator` states are not in `.weights.h5` files), writes from every
worker of a multi-worker job into the same file, and deletes the backup when
`fit` returns, so a job killed during the export after training retrains
from scratch. `ResumableBackup` writes each save as one folder renamed into
place, keeps the newest few, and falls back to an older one when the newest
cannot be read.
"""

import json
import os
import re
import shutil
import tempfile
import warnings

import keras
import numpy as np

from simclr_tf import _keras_compat, atomic
from simclr_tf.atomic import atomic_path

_CKPT = re.compile(r"^epoch_(\d+)\.weights\.h5$")
_BACKUP = re.compile(r"^ckpt-(\d+)$")
_WEIGHTS = "model.weights.h5"
_STATE = "state.json"


def _finite(logs):
    loss = (logs or {}).get("loss")
    if loss is None:
        return True
    try:
        return bool(np.all(np.isfinite(np.asarray(loss, dtype="float64"))))
    except (TypeError, ValueError):
        return True


def _weights_finite(model):
    """True when every floating variable of the model is finite."""
    for v in model.weights:
        if keras.backend.standardize_dtype(v.dtype).startswith(("float", "bfloat")):
            if not np.all(np.isfinite(keras.ops.convert_to_numpy(v))):
                return False
    return True


def _save_weights_atomically(model, path):
    # `save_weights` insists on a name ending in `.weights.h5`, so the
    # temporary file keeps the final name inside a hidden scratch folder.
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".tmp-", dir=folder)
    try:
        tmp = os.path.join(scratch, os.path.basename(path))
        model.save_weights(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def remove_temporaries(folder, names=None):
    """Deletes what an interrupted atomic write left in `folder`: hidden
    entries `.<name>.<random>.tmp...` (or `.tmp-<random>` scratch folders),
    only for the artefact `names` given (any when None). A directory that
    `atomic_path` had moved aside (`.<name>.<random>.tmp.old`) when the
    process died goes back under its name if nothing took its place."""
    if not os.path.isdir(folder):
        return
    for entry in sorted(os.listdir(folder)):
        final = atomic.old_artefact_name(entry)
        if final is None or (names is not None and final not in names):
            continue
        if not os.path.isdir(os.path.join(folder, entry)) or os.path.islink(os.path.join(folder, entry)):
            continue  # only directories are moved aside; a file named so is an unfinished write
        if not os.path.lexists(os.path.join(folder, final)):
            os.replace(os.path.join(folder, entry), os.path.join(folder, final))
    for entry in os.listdir(folder):
        if not entry.startswith(".") or ".tmp" not in entry:
            continue
        if names is not None and not any(entry.startswith(f".{n}.") for n in names):
            continue
        path = os.path.join(folder, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)


def _flatten(info, prefix=""):
    """{"config": {"epochs": 2}} -> {"config.epochs": 2}, so a changed setting
    is named by its dotted key rather than by a whole nested dict."""
    flat = {}
    for key, value in info.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _fsync(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def is_chief(strategy):
    """Whether this process writes shared artefacts: True except on the
    non-chief workers of a multi-worker job (the chief, or else worker 0,
    writes)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return True
    cluster = resolver.cluster_spec().as_dict()
    if not cluster:
        return True
    if resolver.task_type == "chief":
        return True
    return "chief" not in cluster and resolver.task_type == "worker" and resolver.task_id == 0


def worker_scratch(parent, strategy):
    """A fresh folder `parent/.worker-<task id>.tmp` for a non-chief worker's
    saves: inside the output folder (nothing is written outside it), and
    under a fixed name, so a killed worker's leftovers are replaced by its
    next run (or removed by `remove_temporaries`)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task = f"{resolver.task_type}{resolver.task_id}" if resolver is not None else "0"
    path = os.path.join(parent, f".worker-{task}.tmp")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def _seed_states(model):
    # `SeedGenerator` states are model variables but are not written by
    # `save_weights`, so the augmenter would restart its random stream. They
    # are matched by position (model structure), not by path: layer names get
    # suffixes (`_1`) when a process builds the model twice.
    return [v for v in model.variables if v.name == _keras_compat.SEED_STATE_NAME]


def _as_float(value):
    try:
        return float(np.asarray(value).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return None


class ResumableBackup(keras.callbacks.Callback):
    """Backs up the whole training state atomically; `fit` resumes from it.

    Each save is a folder `directory/ckpt-<optimizer step>/` holding
    `model.weights.h5` (model weights and optimizer variables, including
    `optimizer.iterations`, which drives the learning-rate schedule) and
    `state.json` (completed epochs, steps into the current epoch, the
    augmenter's random-generator states, the history so far and `run_info`).
    The folder is written under a temporary name and renamed, so a folder
    under its final name is always complete. The newest `keep` are kept.

    At the start of `fit` (or earlier, by calling `restore(model)`), the
    newest backup that loads is restored and `fit` starts at its epoch; an
    unreadable one is skipped with a warning. States whose loss or weights
    are NaN/Inf are never saved, so the newest backup is the last good state.
    A backup written after `n` steps into an epoch restores those weights,
    and the epoch then runs again from its first step (Keras's `fit` starts
    at epoch boundaries): no completed epoch is repeated. The backup is kept
    after `fit` ends, so re-running a finished job trains zero epochs.

    Under `MultiWorkerMirroredStrategy` every worker runs the save (it may
    read distributed variables), but only the chief (or worker 0) writes into
    `directory`; the others write into a hidden scratch folder inside it
    that is deleted after each save.

    Args:
        directory: folder for the backups (created on the first save).
        save_freq: "epoch", or an integer N to also save every N steps.
        keep: how many backups to keep (>= 1; 2 survives a corrupt newest).
        run_info: optional JSON-serialisable dict describing the run (e.g.
            its config); restoring a backup written with different
            `run_info` raises a ValueError naming the differing keys.

    Example:

    >>> backup = ResumableBackup("/tmp/run/backup", save_freq=100)  # doctest: +SKIP
    >>> model.fit(ds, epochs=10, steps_per_epoch=500, callbacks=[backup])  # doctest: +SKIP
    """

    def __init__(self, directory, save_freq="epoch", keep=2, run_info=None):
        super().__init__()
        if save_freq != "epoch" and (
            isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1
        ):
            raise ValueError(
                f'`save_freq` must be "epoch" or an integer >= 1. Received: save_freq={save_freq!r}'
            )
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"`keep` must be an integer >= 1. Received: keep={keep!r}")
        self.directory = os.fspath(directory)
        self.save_freq = save_freq
        self.keep = keep
        self.run_info = json.loads(json.dumps(run_info)) if run_info is not None else None
        self.restored = None
        self._restore_done = False
        self._history = {}
        self._epoch = 0
        self._steps_in_epoch = 0
        self._since_save = 0

    # -- reading --------------------------------------------------------

    def backups(self):
        """Complete backup folders, oldest first."""
        if not os.path.isdir(self.directory):
            return []
        found = []
        for name in os.listdir(self.directory):
            m = _BACKUP.match(name)
            path = os.path.join(self.directory, name)
            if m and os.path.isfile(os.path.join(path, _STATE)) and os.path.isfile(
                os.path.join(path, _WEIGHTS)
            ):
                found.append((int(m.group(1)), path))
        return [path for _, path in sorted(found)]

    def restore(self, model=None):
        """Loads the newest readable backup into `model`.

        Returns its state dict (`epoch`: completed epochs, `step`: optimizer
        step, `steps_in_epoch`, `history`), or None when there is none.
        Raises ValueError if backups exist but none can be loaded, or if the
        newest readable one was written by a run with different `run_info`.
        """
        model = model if model is not None else self.model
        self._restore_done = True
        if is_chief(model.distribute_strategy):
            remove_temporaries(self.directory)
        errors = []
        for path in reversed(self.backups()):
            try:
                with open(os.path.join(path, _STATE)) as f:
                    state = json.load(f)
                epoch = int(state["epoch"])
            except (OSError, ValueError, KeyError, TypeError) as err:
                errors.append((path, err))
                warnings.warn(f"Skipping unreadable backup {path}: {err}", stacklevel=2)
                continue
            self._check_run_info(path, state.get("run_info"))
            try:
                if model.optimizer is not None and not model.optimizer.built:
                    model.optimizer.build(model.trainable_variables)
                model.load_weights(os.path.join(path, _WEIGHTS))
            except (OSError, ValueError, KeyError) as err:
                errors.append((path, err))
                warnings.warn(f"Skipping unreadable backup {path}: {err}", stacklevel=2)
                continue
            seeds, saved = _seed_states(model), state.get("seed_states", [])
            if len(seeds) != len(saved):
                warnings.warn(
                    f"The backup holds {len(saved)} random-generator states but the model has "
                    f"{len(seeds)}; the augmenter's random stream is not restored.",
                    stacklevel=2,
                )
            else:
                for variable, value in zip(seeds, saved):
                    variable.assign(np.asarray(value, dtype=variable.dtype))
            self.restored = dict(state, epoch=epoch, path=path)
            self._history = {k: list(v) for k, v in state.get("history", {}).items()}
            self._epoch = epoch
            _keras_compat.set_initial_epoch(model, epoch)
            if errors and is_chief(model.distribute_strategy):
                # Unreadable backups newer than this one would count as the
                # newest when pruning, and the good ones written from here on
                # would be deleted first: set them aside, kept for a look.
                for bad, _ in errors:
                    aside = f"{bad}.unreadable"
                    for n in range(1, 1000):  # the same step can fail again after a resume
                        if not os.path.lexists(aside):
                            break
                        aside = f"{bad}.unreadable{n}"
                    try:
                        os.replace(bad, aside)
                    except OSError as err:
                        warnings.warn(f"Could not set aside unreadable backup {bad}: {err}", stacklevel=2)
                warnings.warn(f"Set aside {len(errors)} unreadable backup(s) as '<name>.unreadable'.",
                              stacklevel=2)
            return self.restored
        if errors:
            path, err = errors[0]
            raise ValueError(
                f"No backup under {self.directory!r} could be loaded; the newest, {path!r}, "
                f"failed with: {err}. Delete the folder to start over."
            )
        return None

    def _check_run_info(self, path, saved):
        if self.run_info is None or saved is None or saved == self.run_info:
            return
        old, new = _flatten(saved), _flatten(self.run_info)
        missing = object()
        differ = sorted(k for k in set(old) | set(new) if old.get(k, missing) != new.get(k, missing))
        detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in differ[:5])
        raise ValueError(
            f"The backup {path!r} was written by a run with different settings ({detail}). "
            "Resuming it would not continue the same training: use another output folder, "
            f"or delete {self.directory!r} to start over."
        )

    # -- writing --------------------------------------------------------

    def _save(self, logs):
        if not _finite(logs) or not _weights_finite(self.model):
            warnings.warn(
                "Not backing up a state with a NaN/Inf loss or weights; "
                "the previous backup stays the newest.",
                stacklevel=2,
            )
            return
        optimizer = self.model.optimizer
        step = int(keras.ops.convert_to_numpy(optimizer.iterations)) if optimizer is not None else 0
        state = {
            "epoch": self._epoch,
            "steps_in_epoch": self._steps_in_epoch,
            "step": step,
            "seed_states": [keras.ops.convert_to_numpy(v).tolist() for v in _seed_states(self.model)],
            "history": self._history,
            "run_info": self.run_info,
        }
        strategy = self.model.distribute_strategy
        chief = is_chief(strategy)
        folder = self.directory if chief else worker_scratch(self.directory, strategy)
        target = os.path.join(folder, f"ckpt-{step:012d}")
        try:
            with atomic_path(target, directory=True) as tmp:
                os.makedirs(tmp)
                self.model.save_weights(os.path.join(tmp, _WEIGHTS))
                with open(os.path.join(tmp, _STATE), "w") as f:
                    json.dump(state, f, indent=1)
                _fsync(os.path.join(tmp, _WEIGHTS))
                _fsync(os.path.join(tmp, _STATE))
        finally:
            if not chief:
                shutil.rmtree(folder, ignore_errors=True)
        if chief:
            for old in self.backups()[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)

    # -- hooks ----------------------------------------------------------

    def on_train_begin(self, logs=None):
        if not self._restore_done:
            self.restore(self.model)

    def on_train_end(self, logs=None):
        # Keras reads the initial epoch at every `fit` and never clears it: a
        # later `fit` of the same model would silently skip the restored
        # number of epochs.
        _keras_compat.set_initial_epoch(self.model, None)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._steps_in_epoch = 0
        self._since_save = 0

    def on_train_batch_end(self, batch, logs=None):
        done = batch + 1  # `batch` is the last step of the execution, 0-based.
        self._since_save += done - self._steps_in_epoch
        self._steps_in_epoch = done
        if self.save_freq != "epoch" and self._since_save >= self.save_freq:
            self._since_save = 0
            self._save(logs)

    def on_epoch_end(self, epoch, logs=None):
        if not _finite(logs):
            self._save(logs)  # refuses, with the warning
            return
        for key, value in (logs or {}).items():
            value = _as_float(value)
            if value is not None:
                self._history.setdefault(key, []).append(value)
        self._epoch = epoch + 1
        self._steps_in_epoch = 0
        self._since_save = 0
        self._save(logs)

    @property
    def history(self):
        """Per-epoch logs of every epoch so far, restored ones included."""
        return {k: list(v) for k, v in self._history.items()}


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves model weights each epoch, atomically, keeping the newest `keep`.

    Files are `directory/epoch_NNNN.weights.h5`, written under a temporary
    name and renamed, so a crash never leaves a truncated checkpoint that
    looks complete. An epoch whose loss or weights are NaN or Inf is not
    saved, so the newest file is always the last good state. Under
    multi-worker training only the chief (or worker 0) writes.

    Args:
        directory: folder for the checkpoints (created if missing).
        keep: how many of the newest checkpoints to keep (>= 1).
    """

    def __init__(self, directory, keep=3):
        super().__init__()
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"`keep` must be an integer >= 1. Received: keep={keep!r}")
        self.directory = os.fspath(directory)
        self.keep = keep

    def on_train_begin(self, logs=None):
        if is_chief(self.model.distribute_strategy):
            remove_temporaries(self.directory)

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
        if not _finite(logs) or not _weights_finite(self.model):
            return
        strategy = self.model.distribute_strategy
        chief = is_chief(strategy)
        folder = self.directory if chief else worker_scratch(self.directory, strategy)
        try:
            _save_weights_atomically(self.model, os.path.join(folder, f"epoch_{epoch + 1:04d}.weights.h5"))
        finally:
            if not chief:
                shutil.rmtree(folder, ignore_errors=True)
        if chief:
            for old in self.checkpoints()[: -self.keep]:
                os.remove(old)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first NaN/Inf loss with a message saying so.

    Keeps whatever was last saved (`ResumableBackup` and `AtomicCheckpoint`
    never save a non-finite state), and records the failure in
    `self.stopped_at` as `(epoch, batch, loss)`, both 1-based.
    """

    def __init__(self):
        super().__init__()
        self.stopped_at = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if not _finite(logs):
            loss = _as_float(logs["loss"])
            self.stopped_at = (self._epoch + 1, batch + 1, loss)
            print(
                f"\nStopping: the loss became {loss} at epoch {self._epoch + 1}, "
                f"batch {batch + 1}. Try a lower learning rate or a higher temperature; "
                "the last good checkpoint is kept."
            )
            self.model.stop_training = True
