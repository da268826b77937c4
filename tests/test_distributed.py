"""Distribution: a 2-replica step equals a single-device step on the same
global batch (MirroredStrategy over 2 logical CPUs), and 2 worker processes
under MultiWorkerMirroredStrategy end with identical weights equal to a
single-process run."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.distributed_helpers import fixed_images, free_ports, make_model

HERE = os.path.dirname(os.path.abspath(__file__))


def one_step(strategy, images, lr=0.5):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = make_model()
        model.compile(optimizer=keras.optimizers.SGD(lr))
    before = [w.numpy().copy() for w in model.contrastive_variables]
    logs = model.fit(images, batch_size=len(images), epochs=1, verbose=0, shuffle=False).history
    deltas = [(b - w.numpy()) / lr for b, w in zip(before, model.contrastive_variables)]
    return logs["loss"][0], deltas, model


def test_mirrored_loss_and_gradients_equal_single_device(mirrored_strategy):
    images = fixed_images(8)
    loss_1, grads_1, _ = one_step(tf.distribute.get_strategy(), images)
    loss_2, grads_2, _ = one_step(mirrored_strategy, images)
    assert loss_2 == pytest.approx(loss_1, rel=1e-5)
    assert max(np.abs(g).max() for g in grads_1) > 1e-4  # the step did something
    for g1, g2 in zip(grads_1, grads_2):
        np.testing.assert_allclose(g2, g1, rtol=1e-3, atol=2e-5)


def test_mirrored_without_global_bn_differs(mirrored_strategy):
    """Guards the test above: per-replica BN changes the result."""
    images = fixed_images(8)
    losses = []
    for strategy in (tf.distribute.get_strategy(), mirrored_strategy):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = make_model(sync=False)
            model.compile(optimizer=keras.optimizers.SGD(0.5))
        losses.append(model.fit(images, batch_size=8, epochs=1, verbose=0,
                                shuffle=False).history["loss"][0])
    assert abs(losses[0] - losses[1]) > 1e-4




@pytest.mark.slow
def test_multi_worker_two_processes_match_single_process(tmp_path):
    steps = 3
    script = os.path.join(HERE, "mw_worker.py")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    single = tmp_path / "single.npz"
    subprocess.run([sys.executable, script, str(single), "single", str(steps)],
                   check=True, env=env, timeout=300, capture_output=True)
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        cfg = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        procs.append(subprocess.Popen(
            [sys.executable, script, str(tmp_path / f"w{i}.npz"), "multi_worker", str(steps)],
            env={**env, "TF_CONFIG": cfg}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ))
    for p in procs:
        _, err = p.communicate(timeout=400)
        assert p.returncode == 0, err.decode()[-3000:]
    ref = np.load(single)
    w0, w1 = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    weight_keys = [k for k in ref.files if k.startswith("w")]
    for k in weight_keys:
        np.testing.assert_array_equal(w0[k], w1[k])
        np.testing.assert_allclose(w0[k], ref[k], rtol=1e-3, atol=1e-4)
    # Training moved the weights, so the equality above is not trivial.
    assert any(not np.allclose(ref[k], ref["i" + k[1:]]) for k in weight_keys)
    np.testing.assert_allclose(w0["loss"], ref["loss"], rtol=1e-4)
