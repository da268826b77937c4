"""Shared plumbing for the augmentation layers: input checks, dtype and channel
standardisation, argument validation and the base layer class.

Every layer accepts uint8 (or any integer dtype, read as [0, 255]) or floating
([0, 1]) images with 1 or 3 channels, batched ``(B, H, W, C)`` or one image
``(H, W, C)``, and returns float32 RGB in [0, 1] with the same rank. Shape and
dtype problems are reported when the call is traced, from static information,
so they surface as a ``ValueError`` naming the argument rather than as an error
deep inside TensorFlow.
"""

import numbers

import keras
import numpy as np
from keras import ops

from simclr_tf.augmentation import _random


# Resampling may overshoot [0, 1] by rounding; a 0-255 or standardised float
# image is far outside this.
_FLOAT_SLACK = 1e-3


def check_images(images, name="images"):
    """Converts to a tensor and checks rank, channels and dtype statically."""
    images = ops.convert_to_tensor(images) if not _is_tensor(images) else images
    dtype = keras.backend.standardize_dtype(images.dtype)
    if not (dtype.startswith("float") or dtype.startswith("int") or dtype.startswith("uint") or dtype == "bfloat16"):
        raise ValueError(
            f"`{name}` must be an integer image in [0, 255] or a floating image in [0, 1]. "
            f"Received: {name}.dtype={dtype}"
        )
    if getattr(images.shape, "rank", 0) is None:  # a graph tensor of unknown rank
        raise ValueError(
            f"`{name}` must have a known rank: 4 (batch, height, width, channels) or 3 (one image). "
            f"Received: {name} of unknown rank"
        )
    shape = tuple(images.shape)
    if len(shape) not in (3, 4):
        raise ValueError(
            f"`{name}` must have rank 4 (batch, height, width, channels) or rank 3 (one image). "
            f"Received: {name}.shape={shape}"
        )
    if shape[-1] not in (1, 3):
        raise ValueError(f"`{name}` must have 1 or 3 channels (last axis). Received: {name}.shape={shape}")
    if 0 in shape[-3:-1]:
        raise ValueError(f"`{name}` must have height and width >= 1. Received: {name}.shape={shape}")
    check_values(images, dtype, name)
    return images


def check_values(images, dtype, name="images"):
    """Checks pixel values when they are concrete (eager calls).

    Traced calls (`fit`, `tf.function`, `tf.data`, XLA) skip this: a pass over
    every pixel of every batch would cost training time, and the data loaders
    already check values where data enters.
    """
    try:
        values = np.asarray(keras.ops.convert_to_numpy(images))
    except Exception:  # noqa: BLE001 - symbolic tensors cannot be read
        return
    if values.size == 0 or dtype == "uint8":
        return
    if dtype.startswith("float") or dtype == "bfloat16":
        values = values.astype("float32")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"`{name}` contains NaN or Inf values. Received: {name}.dtype={dtype}")
        low, high = float(values.min()), float(values.max())
        if low < -_FLOAT_SLACK or high > 1.0 + _FLOAT_SLACK:
            raise ValueError(
                f"Floating `{name}` must lie in [0, 1] (integer images in [0, 255]). "
                f"Received: {name} with min={low}, max={high}"
            )
    else:
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"Integer `{name}` must lie in [0, 255]. Received: {name}.dtype={dtype} "
                f"with min={low}, max={high}"
            )


def _is_tensor(x):
    return hasattr(x, "dtype") and hasattr(x, "shape") and not hasattr(x, "__array_interface__")


def to_float(images):
    """Casts to float32 in [0, 1]: integer images are divided by 255."""
    dtype = keras.backend.standardize_dtype(images.dtype)
    images = ops.cast(images, "float32")
    if not (dtype.startswith("float") or dtype == "bfloat16"):
        return images / 255.0
    # Floats may come in up to _FLOAT_SLACK outside [0, 1]; the output must not.
    return ops.clip(images, 0.0, 1.0)


def to_rgb(images):
    """Tiles a 1-channel image to 3 channels; 3-channel images pass through."""
    if images.shape[-1] == 1:
        return ops.concatenate([images, images, images], axis=-1)
    return images


def integer_scale(dtype):
    """The factor that maps an input dtype to [0, 1]: 1/255 for integers, else 1."""
    dtype = keras.backend.standardize_dtype(dtype)
    return 1.0 if (dtype.startswith("float") or dtype == "bfloat16") else 1.0 / 255.0


def batch_size(images):
    """Static batch size when known, else the dynamic one."""
    return images.shape[0] if images.shape[0] is not None else ops.shape(images)[0]


def select_images(mask, if_true, if_false):
    """Per-image choice between two batches: ``mask`` is bool ``(B,)``.

    Written as ``a * m + b * (1 - m)`` rather than a broadcasting ``where``:
    TensorFlow's broadcasting select is about 3x slower on CPU, and the blend is
    exact for a 0/1 mask and finite inputs.
    """
    m = ops.reshape(ops.cast(mask, if_true.dtype), (-1, 1, 1, 1))
    return if_true * m + if_false * (1.0 - m)


def is_integer(value):
    """A Python or NumPy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_number(value):
    """A Python or NumPy real number, not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def validate_rate(name, value):
    if not is_number(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"`{name}` must be a probability in [0, 1]. Received: {name}={value!r}")
    return float(value)


def validate_range(name, value, low=None, high=None, allow_equal=True):
    """A (min, max) pair of numbers with min <= max, optionally inside [low, high]."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a pair (min, max) of numbers. Received: {name}={value}") from None
    if lo > hi or (not allow_equal and lo == hi):
        raise ValueError(f"`{name}` must be a range (min, max) with min <= max. Received: {name}={value}")
    if (low is not None and lo < low) or (high is not None and hi > high):
        raise ValueError(f"`{name}` must lie inside [{low}, {high}]. Received: {name}={value}")
    return (lo, hi)


def validate_positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if not is_integer(value) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def validate_non_negative(name, value):
    if not is_number(value) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative number. Received: {name}={value}")
    return float(value)


class BaseAugmentation(keras.layers.Layer):
    """Base class: seed generator, input standardisation, rank-3 handling.

    Subclasses implement ``augment(images, training)`` on float32 RGB batches
    ``(B, H, W, 3)`` in [0, 1] and may override ``prepare`` when they want the
    raw input (the crop folds the dtype scale into its interpolation matrices).
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        if seed is not None and not is_integer(seed):
            raise ValueError(f"`seed` must be an integer or None. Received: seed={seed!r}")
        self.seed = None if seed is None else int(seed)
        # Created here, not in build, so no variable appears after compile.
        self.seed_generator = keras.random.SeedGenerator(self.seed, name=f"{self.name}_seed")
        self.built = True

    def prepare(self, images):
        return to_rgb(to_float(images))

    def call(self, images, training=True):
        images = check_images(images)
        unbatched = len(images.shape) == 3
        if unbatched:
            images = ops.expand_dims(images, 0)
        outputs = self.augment(images, training=training)
        if unbatched:
            outputs = ops.squeeze(outputs, 0)
        return outputs

    def augment(self, images, training):
        raise NotImplementedError

    def output_spatial_shape(self, height, width):
        return height, width

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        h, w = self.output_spatial_shape(input_shape[-3], input_shape[-2])
        return input_shape[:-3] + (h, w, 3)

    def compute_output_spec(self, images, training=True):
        return keras.KerasTensor(self.compute_output_shape(images.shape), dtype="float32")

    def uniform(self, shape, minval=0.0, maxval=1.0):
        return _random.uniform(self.seed_generator, shape, minval, maxval)

    def bernoulli(self, batch, rate):
        """A per-image boolean mask that is True with probability ``rate``."""
        return self.uniform((batch,)) < rate

    def get_config(self):
        config = super().get_config()
        config.update({"seed": self.seed})
        return config
