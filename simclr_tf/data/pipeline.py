"""What every loader shares: argument checks and the pipeline's tail.

Each source (arrays, folders, TFDS) builds a dataset of single examples and
hands it to `finish`, which shuffles, repeats, maps in parallel, batches and
prefetches in one fixed order, so that all loaders batch the same way.
"""

import numpy as np
import tensorflow as tf

from simclr_tf import validation

AUTOTUNE = tf.data.AUTOTUNE


def check_batch_size(batch_size):
    return validation.check_int("batch_size", batch_size, minimum=1)


def check_shuffle_buffer(shuffle_buffer):
    return validation.check_int("shuffle_buffer", shuffle_buffer, minimum=1, allow_none=True)


def check_image_size(image_size):
    """None, an int or a (height, width) pair of ints >= 1 -> None or (height, width)."""
    if image_size is None:
        return None
    if validation.is_int(image_size):
        image_size = (image_size, image_size)
    try:
        height, width = image_size
        ok = all(validation.is_int(v) and v >= 1 for v in (height, width))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            "`image_size` must be None, an integer >= 1 or a (height, width) pair of them. "
            f"Received: image_size={image_size!r}"
        )
    return int(height), int(width)


def check_images(images, name="images"):
    """Returns `images` as a uint8 array of shape (N, H, W, C), C in {1, 3}."""
    images = np.asarray(images)
    if images.dtype.kind not in "uif":
        raise ValueError(
            f"`{name}` must hold uint8 or float values in [0, 1]. Received: {name}.dtype={images.dtype}"
        )
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4:
        raise ValueError(
            f"`{name}` must have shape (N, H, W), (N, H, W, 1) or (N, H, W, 3). "
            f"Received: {name}.shape={images.shape}"
        )
    if images.shape[-1] not in (1, 3):
        raise ValueError(
            f"`{name}` must have 1 or 3 channels (grayscale or RGB). Received: {name}.shape={images.shape}"
        )
    if images.size == 0:
        raise ValueError(f"`{name}` is empty. Received: {name}.shape={images.shape}")
    if images.dtype.kind == "f":
        if not np.all(np.isfinite(images)):
            raise ValueError(f"`{name}` contains NaN or Inf values. Received: {name}.dtype={images.dtype}")
        low, high = float(images.min()), float(images.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"Float `{name}` must lie in [0, 1]. Received: {name} with min={low}, max={high}"
            )
        return np.round(images * 255.0).astype(np.uint8)
    if images.dtype != np.uint8:
        low, high = int(images.min()), int(images.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"Integer `{name}` must lie in [0, 255]. Received: {name}.dtype={images.dtype} "
                f"with min={low}, max={high}"
            )
        images = images.astype(np.uint8)
    return images


def check_labels(labels, num_images, name="labels"):
    """Returns `labels` as int32 class ids, one per image (validation's check, then int32)."""
    labels = validation.check_labels(name, labels, num_rows=num_images, per="image")
    if labels.max() > np.iinfo(np.int32).max:
        raise ValueError(f"`{name}` must fit in int32. Received: max({name})={labels.max()}")
    return labels.astype(np.int32)


def to_rgb(images):
    """Repeats a single channel three times; leaves RGB unchanged."""
    if images.shape[-1] == 1:
        return tf.image.grayscale_to_rgb(images)
    return images


def image_and_label_fn(fn, with_labels):
    """Lifts an image function to `(image, label)` elements when needed."""
    if fn is None:
        return None
    if with_labels:
        return lambda image, label: (fn(image), label)
    return fn


def finish(
    ds,
    *,
    element_fn,
    batch_fn,
    batch_size,
    shuffle,
    shuffle_buffer,
    repeat,
    drop_remainder,
    seed,
):
    """Shuffle -> repeat -> per-element map -> batch -> batched map -> prefetch.

    `element_fn` does work that must happen per element (decoding, resizing
    to a common size); `batch_fn` does work that vectorises over a batch
    (channel expansion), which is cheaper than per element for small images.
    Either may be None.
    """
    if shuffle:
        # Shuffle before repeat so that every epoch is a full permutation.
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if element_fn is not None:
        ds = ds.map(element_fn, num_parallel_calls=AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if batch_fn is not None:
        ds = ds.map(batch_fn, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)
