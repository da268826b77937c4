"""One process of the multi-worker test (run by tests/test_distributed.py).

Usage: python tests/mw_worker.py OUT.npz [multi_worker|single] STEPS
Under `multi_worker`, TF_CONFIG in the environment names the cluster.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tests.distributed_helpers import fixed_images, make_model  # noqa: E402

GLOBAL_BATCH = 8


def main(out, mode, steps):
    if mode == "multi_worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = make_model()
        model.compile(optimizer=keras.optimizers.SGD(0.05))
    initial = {f"i{i}": w.numpy() for i, w in enumerate(model.encoder.weights)}
    images = fixed_images(GLOBAL_BATCH * steps)
    ds = tf.data.Dataset.from_tensor_slices(images).batch(GLOBAL_BATCH)
    history = model.fit(ds, epochs=1, verbose=0)
    weights = {f"w{i}": w.numpy() for i, w in enumerate(model.encoder.weights)}
    np.savez(out, loss=np.array(history.history["loss"]), **weights, **initial)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
