"""`.keras` files saved by earlier releases still load and compute the same h."""

import os

import keras
import numpy as np

import simclr_tf

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def test_release_0_1_0_keras_file_loads_and_gives_the_same_features():
    model = keras.models.load_model(os.path.join(DATA, "simclr_release_0_1_0.keras"))
    assert isinstance(model, simclr_tf.SimCLR)
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    h = keras.ops.convert_to_numpy(model.encoder(images[:2].astype("float32") / 255.0, training=False))
    expected = np.load(os.path.join(DATA, "simclr_release_0_1_0_h.npy"))
    np.testing.assert_allclose(h, expected, rtol=1e-4, atol=1e-5)
