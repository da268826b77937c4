"""`from_arrays`: a batched pipeline from NumPy arrays already in memory."""

import numpy as np  # noqa: F401  (the docstring example uses np)
import tensorflow as tf

from simclr_tf.data.pipeline import (
    check_batch_size,
    check_images,
    check_labels,
    check_shuffle_buffer,
    finish,
    image_and_label_fn,
    to_rgb,
)


def from_arrays(
    images,
    labels=None,
    *,
    batch_size=256,
    shuffle=False,
    repeat=False,
    drop_remainder=False,
    seed=None,
    shuffle_buffer=None,
):
    """Builds a batched pipeline from in-memory NumPy arrays.

    Images are kept as uint8 with their own channel count (one for
    grayscale) and expanded to three channels per batch inside the pipeline.

    Args:
        images: array of shape (N, H, W), (N, H, W, 1) or (N, H, W, 3); uint8
            (or another integer type with values in [0, 255]) or float with
            values in [0, 1], which is scaled by 255 and rounded to uint8.
        labels: optional integer array of shape (N,); cast to int32.
        batch_size: images per batch, >= 1.
        shuffle: whether to shuffle the examples (reshuffled every epoch).
        repeat: whether to repeat forever (use with `steps_per_epoch`).
        drop_remainder: whether to drop the last, smaller batch.
        seed: shuffle seed; None gives a different order every run.
        shuffle_buffer: shuffle buffer size; None means the whole dataset
            (an exact permutation; the buffer holds uint8 images).

    Returns:
        A `tf.data.Dataset` of uint8 `(batch, H, W, 3)` images, or of
        `(images, labels)` tuples with int32 labels when `labels` is given.

    Raises:
        ValueError: if `images` is empty, has the wrong rank, 2 or 4
            channels, a non-numeric or bool dtype, NaN/Inf, or values out of
            range; if `labels` is not one integer per image; if
            `batch_size` or `shuffle_buffer` is not an integer >= 1.

    Example:

    >>> ds = from_arrays(np.zeros((10, 8, 8), np.uint8), np.arange(10), batch_size=4)
    >>> [tuple(x.shape) for x, _ in ds]
    [(4, 8, 8, 3), (4, 8, 8, 3), (2, 8, 8, 3)]
    """
    batch_size = check_batch_size(batch_size)
    shuffle_buffer = check_shuffle_buffer(shuffle_buffer)
    images = check_images(images)
    with_labels = labels is not None
    if with_labels:
        labels = check_labels(labels, len(images))
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
    else:
        ds = tf.data.Dataset.from_tensor_slices(images)
    batch_fn = image_and_label_fn(to_rgb, with_labels) if images.shape[-1] == 1 else None
    return finish(
        ds,
        element_fn=None,
        batch_fn=batch_fn,
        batch_size=batch_size,
        shuffle=shuffle,
        shuffle_buffer=shuffle_buffer or len(images),
        repeat=repeat,
        drop_remainder=drop_remainder,
        seed=seed,
    )
