"""Writes simclr_release_0_1_0.keras: a tiny SimCLR model saved by release 0.1.0.

tests/test_compat.py loads it to prove that `.keras` files saved by an earlier
release still load after modules move. Run with the release's code on the path:

    python tests/data/make_release_fixture.py
"""

import os

import keras
import numpy as np

import simclr_tf


def main():
    keras.utils.set_random_seed(0)
    model = simclr_tf.SimCLR(
        encoder=simclr_tf.resnet(18, width_multiplier=0.125, input_shape=(32, 32, 3), small_images=True),
        projection_head=simclr_tf.ProjectionHead(num_layers=2, output_dim=8),
        augmenter=simclr_tf.SimCLRAugmentation(32, color_strength=0.5, blur=False, seed=0),
        temperature=0.5,
        num_classes=3,
    )
    model.compile(optimizer=simclr_tf.LARS(0.1))
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    model.fit(images, np.arange(8) % 3, batch_size=4, epochs=1, verbose=0)
    here = os.path.dirname(os.path.abspath(__file__))
    model.save(os.path.join(here, "simclr_release_0_1_0.keras"))
    np.save(os.path.join(here, "simclr_release_0_1_0_h.npy"),
            keras.ops.convert_to_numpy(model.encoder(images[:2].astype("float32") / 255.0, training=False)))


# pytest --doctest-modules imports every module under tests/: only a direct run writes the files.
if __name__ == "__main__":
    main()
