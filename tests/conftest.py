"""Test-session setup shared by every test module.

Two logical CPU devices are configured before TensorFlow initialises its
runtime, so distribution tests can build a 2-replica ``MirroredStrategy`` on a
one-CPU machine. Everything else keeps running on ``/CPU:0`` as usual.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as the simclr-tf entry points set it

import tensorflow as tf  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under `pytest -n 2` on two cores each worker gets one core's worth of
    # threads: two workers with a pool each as wide as the machine contend.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(2)

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
    )
except RuntimeError:  # Runtime already initialised by an earlier import.
    pass

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One 2-replica MirroredStrategy per test process.

    Two MirroredStrategy objects over the same devices in one process can
    collide on collective instance keys ("Collective instance 100 expected
    type 0 ..."), so every test shares this one.
    """
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
