"""Reliability: resumable atomic backups, SIGKILL-and-resume of the pretrain
entry point, the non-finite loss guard, atomic artefacts, and safe loading."""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings

import h5py
import keras
import numpy as np
import pytest

import simclr_tf
from simclr_tf import callbacks as callbacks_lib
from simclr_tf import evaluation
from simclr_tf.atomic import save_keras, write_json
from tests.distributed_helpers import free_ports

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 16


def tiny_model(seed=0):
    encoder = keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Conv2D(8, 3, strides=2, use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
    ], name="tiny")
    model = simclr_tf.SimCLR(
        encoder=encoder,
        projection_head=simclr_tf.ProjectionHead(output_dim=8),
        # A seeded flip: it has a random state to restore and traces in a
        # fraction of the full augmentation's time.
        augmenter=simclr_tf.RandomFlip(seed=seed),
        temperature=0.5,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def images(n=24, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def state_of(path):
    with open(os.path.join(path, "state.json")) as f:
        return json.load(f)


def weights_of(model):
    return [keras.ops.convert_to_numpy(v) for v in model.weights]


# -- ResumableBackup in process ------------------------------------------------


def test_backup_bounded_complete_and_resumes_epoch_optimizer_and_rng(tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny_model()
    backup = callbacks_lib.ResumableBackup(tmp_path / "backup", save_freq=2, keep=2)
    model.fit(images(), batch_size=8, epochs=2, verbose=0, callbacks=[backup])
    kept = backup.backups()
    assert [os.path.basename(p) for p in kept] == ["ckpt-000000000005", "ckpt-000000000006"]
    assert [(state_of(p)["epoch"], state_of(p)["steps_in_epoch"]) for p in kept] == [(1, 2), (2, 0)]
    assert len(backup.history["loss"]) == 2
    assert not [n for n in os.listdir(tmp_path / "backup") if n.startswith(".")]

    fresh = tiny_model(seed=123)  # other RNG state: restored from the backup
    state = callbacks_lib.ResumableBackup(tmp_path / "backup").restore(fresh)
    assert state["epoch"] == 2 and state["step"] == 6
    assert int(fresh.optimizer.iterations) == 6  # the LR schedule's step
    for a, b in zip(weights_of(model), weights_of(fresh)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fresh.augmenter.seed_generator.state.numpy(),
                                  model.augmenter.seed_generator.state.numpy())
    # fit starts at the restored epoch: only epoch 3 of 3 runs.
    resumed = callbacks_lib.ResumableBackup(tmp_path / "backup")
    history = fresh.fit(images(), batch_size=8, epochs=3, verbose=0, callbacks=[resumed])
    assert history.epoch == [2]
    assert len(resumed.history["loss"]) == 3  # restored epochs + this one


def test_corrupt_or_partial_backup_falls_back_to_previous(tmp_path):
    model = tiny_model()
    backup = callbacks_lib.ResumableBackup(tmp_path, keep=3)
    model.fit(images(), batch_size=8, epochs=2, verbose=0, callbacks=[backup])
    older, newest = backup.backups()
    # A kill mid-write leaves only a hidden temporary folder: never picked.
    os.makedirs(tmp_path / ".ckpt-000000000009.abc.tmp")
    with open(os.path.join(newest, "model.weights.h5"), "r+b") as f:
        f.truncate(100)  # a damaged disk file under a complete name
    with pytest.warns(UserWarning, match="Skipping unreadable backup"):
        state = callbacks_lib.ResumableBackup(tmp_path).restore(tiny_model())
    assert state["path"] == older and state["epoch"] == 1


def test_unreadable_newer_backups_are_set_aside_not_kept_as_newest(tmp_path):
    tiny_model().fit(images(), batch_size=8, epochs=2, verbose=0,
                     callbacks=[callbacks_lib.ResumableBackup(tmp_path, keep=2)])
    older, newest = callbacks_lib.ResumableBackup(tmp_path).backups()
    with open(os.path.join(newest, "model.weights.h5"), "r+b") as f:
        f.truncate(100)
    model = tiny_model()
    # keep=1 and a backup every step: before, pruning kept the damaged
    # "newest" and deleted the good backup just written.
    resumed = callbacks_lib.ResumableBackup(tmp_path, keep=1, save_freq=1)
    with pytest.warns(UserWarning, match="unreadable"):
        model.fit(images(), batch_size=8, epochs=2, steps_per_epoch=1, verbose=0, callbacks=[resumed])
    assert os.path.isdir(newest + ".unreadable")
    backups = callbacks_lib.ResumableBackup(tmp_path).backups()
    assert len(backups) == 1 and backups[0] != older
    state = callbacks_lib.ResumableBackup(tmp_path).restore(tiny_model())  # loads, no error
    assert state["path"] == backups[0]
    # The same step number damaged again later: set aside under a new name.
    os.makedirs(newest)
    for name in ("state.json", "model.weights.h5"):
        with open(os.path.join(newest, name), "w") as f:
            f.write("damaged")
    with pytest.warns(UserWarning, match="unreadable"):
        state = callbacks_lib.ResumableBackup(tmp_path).restore(tiny_model())
    assert state["path"] == backups[0] and os.path.isdir(newest + ".unreadable1")


def test_restored_epoch_does_not_leak_into_a_later_fit(tmp_path):
    tiny_model().fit(images(), batch_size=8, epochs=2, verbose=0,
                     callbacks=[callbacks_lib.ResumableBackup(tmp_path)])
    model = tiny_model()
    model.fit(images(), batch_size=8, epochs=2, verbose=0, callbacks=[callbacks_lib.ResumableBackup(tmp_path)])
    epochs = []
    model.fit(images(), batch_size=8, epochs=2, verbose=0,
              callbacks=[keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: epochs.append(e))])
    assert epochs == [0, 1]


def test_no_readable_backup_and_changed_settings_are_clear_errors(tmp_path):
    model = tiny_model()
    info = {"config": {"epochs": 2, "augment": {"crop_area_range": (0.2, 1.0)}}, "steps_per_epoch": 3}  # as pretrain's
    backup = callbacks_lib.ResumableBackup(tmp_path, run_info=info)
    model.fit(images(), batch_size=8, epochs=1, verbose=0, callbacks=[backup])
    changed = {**info, "config": {**info["config"], "epochs": 5}}
    with pytest.raises(ValueError, match=r"different settings \(config.epochs: 2 -> 5\)\. Resuming"):
        callbacks_lib.ResumableBackup(tmp_path, run_info=changed).restore(tiny_model())
    # Same settings (tuples come back from JSON as lists): no complaint.
    callbacks_lib.ResumableBackup(tmp_path, run_info=info).restore(tiny_model())
    for path in glob.glob(str(tmp_path / "*" / "model.weights.h5")):
        with open(path, "wb") as f:
            f.write(b"not hdf5")
    with pytest.raises(ValueError, match="No backup under .* could be loaded"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        callbacks_lib.ResumableBackup(tmp_path).restore(tiny_model())


@pytest.mark.parametrize("kwargs, match", [
    ({"save_freq": 0}, "save_freq=0"),
    ({"save_freq": "batch"}, "save_freq='batch'"),
    ({"keep": 0}, "keep=0"),
])
def test_backup_arguments_are_checked(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        callbacks_lib.ResumableBackup(tmp_path, **kwargs)


def test_non_finite_loss_stops_and_keeps_last_good_state(tmp_path, capsys):
    model = tiny_model()

    def poison(epoch, logs):
        if epoch == 0:  # epoch 1 ends fine, then the weights go bad
            kernel = model.projection_head.trainable_variables[0]
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))

    guard = callbacks_lib.StopOnNonFiniteLoss()
    backup = callbacks_lib.ResumableBackup(tmp_path / "backup", save_freq=1, keep=5)
    ckpt = callbacks_lib.AtomicCheckpoint(tmp_path / "checkpoints", keep=5)
    with pytest.warns(UserWarning, match="Not backing up a state with a NaN/Inf"):
        history = model.fit(images(), batch_size=8, epochs=4, verbose=0, callbacks=[
            backup, ckpt, keras.callbacks.LambdaCallback(on_epoch_end=poison), guard])
    assert guard.stopped_at[:2] == (2, 1) and np.isnan(guard.stopped_at[2])
    assert "Stopping: the loss became nan at epoch 2, batch 1" in capsys.readouterr().out
    assert history.epoch == [0, 1]  # stopped during epoch 2
    assert state_of(backup.backups()[-1])["epoch"] == 1
    assert [os.path.basename(p) for p in ckpt.checkpoints()] == ["epoch_0001.weights.h5"]
    restored = tiny_model()
    callbacks_lib.ResumableBackup(tmp_path / "backup").restore(restored)
    assert all(np.isfinite(w).all() for w in weights_of(restored))


def test_atomic_checkpoint_bounded(tmp_path):
    model = tiny_model()
    ckpt = callbacks_lib.AtomicCheckpoint(tmp_path, keep=2)
    model.fit(images(16), batch_size=8, epochs=3, verbose=0, callbacks=[ckpt])
    assert sorted(os.listdir(tmp_path)) == ["epoch_0002.weights.h5", "epoch_0003.weights.h5"]
    with pytest.raises(ValueError, match="keep=0"):
        callbacks_lib.AtomicCheckpoint(tmp_path, keep=0)


# -- atomic artefacts ------------------------------------------------------------


def test_interrupted_writers_leave_old_artefact_or_nothing(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json(path, {"a": object()})  # fails half-way through json.dump
    assert json.loads(path.read_text()) == {"a": 1}

    model = tiny_model()
    save_keras(model.encoder, tmp_path / "encoder.keras")
    before = (tmp_path / "encoder.keras").read_bytes()

    def crash(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_keras(model.encoder, tmp_path / "encoder.keras")
    assert (tmp_path / "encoder.keras").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["encoder.keras", "metrics.json"]


def _write_dir(path, name, text):
    from simclr_tf.atomic import atomic_path
    with atomic_path(path, directory=True) as tmp:
        os.makedirs(tmp)
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)


def test_directory_replacement_never_loses_the_old_artefact(tmp_path, monkeypatch):
    target = tmp_path / "saved_model"
    _write_dir(target, "v1", "old")
    real_replace, calls = os.replace, []

    def fail_second(src, dst):  # dies after the old copy moved aside
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_second)
    with pytest.raises(KeyboardInterrupt):
        _write_dir(target, "v2", "new")
    monkeypatch.setattr(os, "replace", real_replace)
    assert os.listdir(target) == ["v1"] and os.listdir(tmp_path) == ["saved_model"]

    # A process killed between the two renames leaves only the moved-aside
    # copy; the next start's clean-up puts it back under its name.
    os.replace(target, tmp_path / ".saved_model.abcd1234.tmp.old")
    (tmp_path / ".saved_model.efgh5678.tmp").mkdir()  # the unfinished new one
    callbacks_lib.remove_temporaries(tmp_path, ["saved_model"])
    assert sorted(os.listdir(tmp_path)) == ["saved_model"] and os.listdir(target) == ["v1"]
    # Killed after the second rename: the new one stays, the old copy goes.
    (tmp_path / ".saved_model.ijkl9012.tmp.old").mkdir()
    (tmp_path / ".saved_model.ijkl9012.tmp.old" / "v0").write_text("older")
    callbacks_lib.remove_temporaries(tmp_path, ["saved_model"])
    assert sorted(os.listdir(tmp_path)) == ["saved_model"] and os.listdir(target) == ["v1"]
    # A *file* with that suffix is an unfinished write of an artefact named
    # "x.old", never a moved-aside copy: deleted, not promoted.
    (tmp_path / ".x.mnop3456.tmp.old").write_text("partial")
    callbacks_lib.remove_temporaries(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["saved_model"]


# -- security ----------------------------------------------------------------------


def test_keras_loading_keeps_safe_mode(tmp_path):
    unsafe = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Lambda(lambda x: x * 2.0),
                               keras.layers.GlobalAveragePooling2D()])
    unsafe.save(tmp_path / "encoder.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        evaluation.load_encoder(str(tmp_path / "encoder.keras"))


def test_no_pickle_or_unsafe_loading_in_library_code():
    pattern = re.compile(r"\bimport pickle|\bpickle\.|allow_pickle=True|safe_mode=False|\bmarshal\.|"
                         r"\bdill\b|\bcloudpickle\b|enable_unsafe_deserialization")
    offenders = []
    for folder in ("simclr_tf", "experiments"):
        for path in glob.glob(os.path.join(ROOT, folder, "**", "*.py"), recursive=True):
            with open(path) as f:
                for number, line in enumerate(f, 1):
                    if pattern.search(line):
                        offenders.append(f"{path}:{number}: {line.strip()}")
    assert not offenders


# -- the entry point: SIGKILL, restart, same result ----------------------------------

TINY = ["--set", "encoder.stage_widths=[4,8,16,32]", "--batch_size=32", "--steps_per_epoch=3",
        "--epochs=3", "--noprobe"]


class _Run:
    """A pretrain subprocess whose output goes to a log file (a pipe that is
    not read could fill up and block it)."""

    def __init__(self, out, args, log, env=None):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
               "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
        self.log_path = log
        with open(self.log_path, "wb") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "experiments.pretrain", f"--output_dir={out}", *args],
                cwd=os.path.dirname(out), env=env, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.pid = self.proc.pid

    def poll(self):
        return self.proc.poll()

    def wait(self, timeout=None):
        return self.proc.wait(timeout=timeout)

    @property
    def returncode(self):
        return self.proc.returncode

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def communicate(self, timeout=None):
        self.proc.wait(timeout=timeout)
        return self.output(), None


def _pretrain(out, *extra, logs):
    # --deterministic: oneDNN off (its multi-threaded CPU kernels differ in the
    # last bits from run to run) and TF op determinism on, so that a resumed
    # run can be compared with an uninterrupted one bit for bit.
    return _Run(out, [*TINY, "--deterministic", *extra], log=os.path.join(logs, f"{os.path.basename(out)}.{time.time_ns()}.log"))


def _newest_backup(out):
    paths = callbacks_lib.ResumableBackup(os.path.join(out, "backup")).backups()
    return paths[-1] if paths else None


def _wait_for_epoch(proc, out, epoch, deadline):
    while True:
        newest = _newest_backup(out)
        if newest and state_of(newest)["epoch"] >= epoch:
            return
        assert proc.poll() is None, proc.output()[-3000:]
        assert time.time() < deadline, f"no backup of epoch {epoch} in {out}"
        time.sleep(0.1)


def _kill(proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _h5_arrays(path):
    result = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: result.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    return result


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_and_matches_uninterrupted_run(tmp_path):
    """About two pretrain lifetimes: the reference overlaps the other runs."""
    work, logs = tmp_path / "work", str(tmp_path)
    work.mkdir()
    ref_out, out = str(work / "reference"), str(work / "run")
    deadline = time.time() + 500
    reference = _pretrain(ref_out, logs=logs)
    victim = _pretrain(out, logs=logs)
    _wait_for_epoch(victim, out, 1, deadline)
    _kill(victim)
    done_before_kill = state_of(_newest_backup(out))["epoch"]
    assert 1 <= done_before_kill < 3, "killed too late to test resuming"
    assert not os.path.exists(os.path.join(out, "metrics.json"))
    # A symlink planted where an artefact goes must be replaced, not followed.
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched")
    os.symlink(outside, os.path.join(out, "metrics.json"))

    resumed = _pretrain(out, logs=logs)
    # The reference is only needed up to its last backup (after epoch 3).
    _wait_for_epoch(reference, ref_out, 3, deadline)
    _kill(reference)
    log = resumed.communicate(timeout=max(1, deadline - time.time()))[0]
    assert resumed.returncode == 0, log[-3000:]

    assert f"Resuming from {out}/backup/ckpt-{3 * done_before_kill:012d}: " \
           f"{done_before_kill} of 3 epochs done" in log
    ran = [int(e) for e in re.findall(r"Epoch (\d+)/3", log)]
    assert ran == list(range(done_before_kill + 1, 4))  # no completed epoch repeated
    metrics = json.loads(open(os.path.join(out, "metrics.json")).read())
    assert metrics["resumed_from_epoch"] == done_before_kill
    for name in ("encoder.keras", "simclr.keras", "saved_model/saved_model.pb"):
        assert os.path.isfile(os.path.join(out, name)), name
    assert outside.read_text() == "untouched" and not os.path.islink(os.path.join(out, "metrics.json"))
    # Nothing written outside the output folders, no temporaries left.
    assert sorted(os.listdir(work)) == ["reference", "run"]
    assert not glob.glob(os.path.join(out, "**", ".*"), recursive=True)

    # Same data order, augmenter stream and optimizer step: same weights
    # (bit-identical on CPU when measured; the tolerance allows for
    # reductions whose order depends on thread scheduling).
    ref_backup, backup = _newest_backup(ref_out), _newest_backup(out)
    assert state_of(backup)["step"] == state_of(ref_backup)["step"] == 9
    np.testing.assert_allclose(metrics["history"]["loss"], state_of(ref_backup)["history"]["loss"],
                               rtol=1e-5)
    assert state_of(backup)["seed_states"] == state_of(ref_backup)["seed_states"]
    ref_weights = _h5_arrays(os.path.join(ref_backup, "model.weights.h5"))
    weights = _h5_arrays(os.path.join(backup, "model.weights.h5"))
    assert sorted(ref_weights) == sorted(weights)
    for name in ref_weights:
        np.testing.assert_allclose(weights[name], ref_weights[name], rtol=1e-4, atol=1e-6, err_msg=name)




def _workers(out, epochs, logs):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    args = [a if not a.startswith("--epochs") else f"--epochs={epochs}" for a in TINY]
    return [
        _Run(out, [*args, "--strategy=multi_worker"],
             env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})},
             log=os.path.join(logs, f"worker{i}.{time.time_ns()}.log"))
        for i in range(2)
    ]


@pytest.mark.slow
def test_multi_worker_kill_one_worker_then_restart_resumes(tmp_path):
    """2 workers on 127.0.0.1: SIGKILL worker 1 after the first backup; worker
    0's collectives abort (UnavailableError) and it exits; the restarted job
    resumes from the chief's backup and finishes."""
    out = str(tmp_path / "run")
    deadline = time.time() + 540
    first = _workers(out, epochs=2, logs=str(tmp_path))
    _wait_for_epoch(first[0], out, 1, deadline)
    _kill(first[1])
    try:
        first[0].wait(timeout=120)  # measured: ~20 s to notice the lost peer
    except subprocess.TimeoutExpired:
        _kill(first[0])
        pytest.fail("worker 0 did not notice that worker 1 died")
    assert first[0].returncode != 0
    assert "UnavailableError" in first[0].output()
    done_before_kill = state_of(_newest_backup(out))["epoch"]
    assert done_before_kill == 1

    second = _workers(out, epochs=2, logs=str(tmp_path))
    logs = [p.communicate(timeout=max(1, deadline - time.time()))[0] for p in second]
    for proc, log in zip(second, logs):
        assert proc.returncode == 0, log[-3000:]
        assert f"Resuming from {out}/backup/ckpt-000000000003: 1 of 2 epochs done" in log
        assert re.findall(r"Epoch (\d+)/2", log) == ["2"]
    metrics = json.loads(open(os.path.join(out, "metrics.json")).read())
    assert metrics["resumed_from_epoch"] == 1 and len(metrics["history"]["loss"]) == 2
    for name in ("encoder.keras", "simclr.keras", "saved_model/saved_model.pb"):
        assert os.path.isfile(os.path.join(out, name)), name
    assert not glob.glob(os.path.join(out, "**", ".*"), recursive=True)  # no worker scratch left
