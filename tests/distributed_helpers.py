"""Deterministic pieces for distribution-equivalence tests.

A distributed step can only equal a single-device step when nothing random
differs between them, so these tests use a deterministic augmenter: both views
are the image itself scaled to [0, 1] (the positive pair is then identical,
and the gradient comes from the 2N - 2 negatives). With global
(synchronised) batch norm, NT-Xent over the gathered global batch is invariant
to how images are split across replicas.
"""

import socket

import keras
import numpy as np

import simclr_tf


@keras.saving.register_keras_serializable(package="simclr_tf_tests")
class IdentityViews(keras.layers.Layer):
    """uint8 images to float [0, 1], unchanged otherwise."""

    def call(self, images, training=False):
        return keras.ops.cast(images, "float32") / 255.0


def small_encoder(size=8, sync=True):
    """Conv-BN-ReLU twice and pooling: BN is what global BN is about, and a
    ResNet's graph would only make these tests slower to trace."""
    layers = keras.layers
    return keras.Sequential([
        keras.Input((size, size, 3)),
        layers.Conv2D(8, 3, padding="same", use_bias=False),
        layers.BatchNormalization(synchronized=sync),
        layers.ReLU(),
        layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False),
        layers.BatchNormalization(synchronized=sync),
        layers.ReLU(),
        layers.GlobalAveragePooling2D(),
    ], name="small")


def make_model(size=8, sync=True):
    return simclr_tf.SimCLR(
        encoder=small_encoder(size, sync),
        projection_head=simclr_tf.ProjectionHead(output_dim=8, sync_batch_norm=sync),
        augmenter=IdentityViews(),
        temperature=0.5,
    )


def fixed_images(n=8, size=8, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (n, size, size, 3), dtype=np.uint8)


def free_ports(n):
    """`n` currently unused TCP ports on 127.0.0.1 for a local cluster."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports
