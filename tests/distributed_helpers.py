"""Deterministic pieces for distribution-equivalence tests.

A distributed step can only equal a single-device step when nothing random
differs between them, so these tests use a deterministic augmenter: both views
are the image itself scaled to [0, 1] (the positive pair is then identical,
and the gradient comes from the 2N - 2 negatives). With global
(synchronised) batch norm, NT-Xent over the gathered global batch is invariant
to how images are split across replicas.
"""

import keras
import numpy as np

import simclr_tf


@keras.saving.register_keras_serializable(package="simclr_tf_tests")
class IdentityViews(keras.layers.Layer):
    """uint8 images to float [0, 1], unchanged otherwise."""

    def call(self, images, training=False):
        return keras.ops.cast(images, "float32") / 255.0


def make_model(size=8, sync=True):
    return simclr_tf.SimCLR(
        encoder=simclr_tf.resnet(18, 0.0625, (size, size, 3), small_images=True,
                                 sync_batch_norm=sync),
        projection_head=simclr_tf.ProjectionHead(output_dim=8, sync_batch_norm=sync),
        augmenter=IdentityViews(),
        temperature=0.5,
    )


def fixed_images(n=8, size=8, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (n, size, size, 3), dtype=np.uint8)
