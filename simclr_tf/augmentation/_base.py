"""Shared plumbing for the augmentation layers: input checks, dtype and channel
standardisation, argument validation and the base layer class.

The value-range rule (how pixel values are read, and which are refused) is
stated once, in the docstring of ``simclr_tf.augmentation``. Shape and dtype
problems are reported when the call is traced, from static information, so
they surface as a ``ValueError`` naming the argument rather than as an error
deep inside TensorFlow; symbolic use (``keras.Input``) gets the same checks.
The layers compute in float32 and do not autocast their input under a mixed
dtype policy.
"""

import math
import numbers

import keras
import numpy as np
from keras import ops

from simclr_tf.augmentation import _random


# Resampling may overshoot a scale by rounding (this fraction of its width); a
# standardised or 0-65535 float image is far outside it.
_FLOAT_SLACK = 1e-3
# Without `value_range`, a floating batch whose maximum lies in (1 + slack,
# _AMBIGUOUS_MAX] fits neither scale: [0, 1] images pushed above 1 (bicubic
# overshoot, unclipped arithmetic) or a 0-255 batch that is black to within
# 1% grey. Refused rather than guessed.
_AMBIGUOUS_MAX = 2.0


def check_image_spec(shape, dtype=None, name="images"):
    """The static part of the image checks: rank, channels, dtype, empty sides.

    Shared by ``check_images`` (calls) and the layers' ``compute_output_shape``
    / ``compute_output_spec`` (symbolic use, e.g. ``keras.Input``), so a model
    cannot be built on inputs the layers would refuse at call time. ``shape``
    is a tuple (or None for an unknown rank); ``dtype`` None skips the dtype check.
    """
    if dtype is not None:
        dtype = keras.backend.standardize_dtype(dtype)
        if not (dtype.startswith("float") or dtype.startswith("int") or dtype.startswith("uint")
                or dtype == "bfloat16"):
            raise ValueError(
                f"`{name}` must be an integer image in [0, 255] or a floating image in [0, 1] or [0, 255]. "
                f"Received: {name}.dtype={dtype}"
            )
    if shape is None:  # a graph tensor of unknown rank
        raise ValueError(
            f"`{name}` must have a known rank: 4 (batch, height, width, channels) or 3 (one image). "
            f"Received: {name} of unknown rank"
        )
    shape = tuple(shape)
    if len(shape) not in (3, 4):
        raise ValueError(
            f"`{name}` must have rank 4 (batch, height, width, channels) or rank 3 (one image). "
            f"Received: {name}.shape={shape}"
        )
    if shape[-1] not in (1, 3):
        raise ValueError(f"`{name}` must have 1 or 3 channels (last axis). Received: {name}.shape={shape}")
    if 0 in shape[-3:-1]:
        raise ValueError(f"`{name}` must have height and width >= 1. Received: {name}.shape={shape}")
    return shape


def check_images(images, name="images", layer=None, value_range=None):
    """Converts to a tensor, checks rank, channels and dtype statically, and
    checks pixel values (see ``simclr_tf.augmentation`` for the rule).

    Pixel values are checked on the host for concrete (eager) input; in traced
    calls floating input gets an in-graph range check (``check_float_range``).
    ``layer`` names the calling layer in that check's message; ``value_range``
    (already validated, or None for the default rule) is the declared input
    scale. Without ``value_range`` floating input comes back as float32 on the
    [0, 1] scale (a 0-255 batch divided by 255), so later steps read it as
    [0, 1]; otherwise the input comes back unchanged.
    """
    images = ops.convert_to_tensor(images) if not _is_tensor(images) else images
    dtype = keras.backend.standardize_dtype(images.dtype)
    rank = getattr(images.shape, "rank", 0)
    check_image_spec(None if rank is None else tuple(images.shape), dtype, name)
    high = None
    if not check_values(images, dtype, name, value_range):
        images, high = check_float_range(images, dtype, name, layer, value_range)
    if value_range is None and _is_float(dtype):
        images = _to_unit_scale(images, high)
    return images


def _to_unit_scale(images, high=None):
    """Float images of a batch read on [0, 1] or on [0, 255] (the default
    rule) as float32 on [0, 1]; ``high``: the batch maximum, if known."""
    images = ops.cast(images, "float32")
    if high is None:
        high = ops.max(images, initial=0.0)  # an empty batch has no maximum
    return images * ops.where(ops.cast(high, "float32") <= 1.0 + _FLOAT_SLACK, 1.0, 1.0 / 255.0)


def validate_value_range(value_range):
    """None (integers in [0, 255], floats in [0, 1]) or a ``(low, high)`` pair
    of finite numbers with ``low < high``; returned as a tuple of floats."""
    if value_range is None:
        return None
    lo, hi = validate_range("value_range", value_range, allow_equal=False)
    # The layers scale by 1 / (high - low) in float32.
    if not 1e-30 <= hi - lo <= 1e30:
        raise ValueError(
            f"`value_range` must span a width in [1e-30, 1e30] (it is scaled in float32). "
            f"Received: value_range={value_range}"
        )
    return lo, hi


def _is_float(dtype):
    return dtype.startswith("float") or dtype == "bfloat16"


def _default_float_message(name):
    return (f"Floating `{name}` must lie in [0, 1] or on the 0-255 scale (in [0, 255] with a maximum above "
            f"{_AMBIGUOUS_MAX:g}: a maximum in (1, {_AMBIGUOUS_MAX:g}] fits neither scale). Clip resampled images "
            "to their scale, or pass `value_range=(low, high)` for another scale")


def check_values(images, dtype, name="images", value_range=None):
    """Checks pixel values when they are concrete (eager calls); returns
    whether it could (False for symbolic and traced tensors).

    Traced calls (`fit`, `tf.function`, `tf.data`, XLA) skip these full checks
    (NaN, integer range): a pass over every pixel of every batch would cost
    training time, and the data loaders already check values where data
    enters. Floating input still gets ``check_float_range`` there.
    """
    try:
        values = np.asarray(keras.ops.convert_to_numpy(images))
    except Exception:  # noqa: BLE001 - symbolic tensors cannot be read
        return False
    if values.size == 0 or (dtype == "uint8" and value_range is None):
        return True
    if _is_float(dtype):
        values = values.astype("float32")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"`{name}` contains NaN or Inf values. Received: {name}.dtype={dtype}")
    if value_range is not None:
        low, high = float(values.min()), float(values.max())
        lo, hi = value_range
        slack = _FLOAT_SLACK * (hi - lo)
        if low < lo - slack or high > hi + slack:
            raise ValueError(
                f"`{name}` must lie in `value_range`={value_range}. Received: {name}.dtype={dtype} "
                f"with min={low}, max={high}"
            )
    elif _is_float(dtype):
        low, high = float(values.min()), float(values.max())
        if not _default_float_ok(low, high):
            raise ValueError(f"{_default_float_message(name)}. Received: {name} with min={low}, max={high}")
    else:
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"Integer `{name}` must lie in [0, 255]. Received: {name}.dtype={dtype} "
                f"with min={low}, max={high}"
            )
    return True


def _default_float_ok(low, high):
    """The default rule for a floating batch's (min, max): [0, 1], or [0, 255]
    with a maximum above _AMBIGUOUS_MAX. Works on floats and on tensors (NaN fails)."""
    unit = (high <= 1.0 + _FLOAT_SLACK) & (low >= -_FLOAT_SLACK)
    byte = (high > _AMBIGUOUS_MAX) & (high <= 255.0 * (1.0 + _FLOAT_SLACK)) & (low >= -255.0 * _FLOAT_SLACK)
    return unit | byte


def check_float_range(images, dtype, name="images", layer=None, value_range=None):
    """In-graph check that traced floating images follow the default rule
    (``simclr_tf.augmentation``), or lie in ``value_range`` when one is given
    (with slack). Returns ``(images, batch maximum)``, the maximum None when
    no check was added (integer input, eager tensors, other backends).

    NaN and Inf pixels fail it too. It catches, e.g., a bicubic resize that
    overshoots the scale, or standardised images: without it the pixels would
    be clipped without a word. It costs one max and one min reduction per
    batch (the maximum also picks the default rule's scale); integer input is
    skipped. Raises ``InvalidArgumentError`` when the graph runs. Under XLA
    (``jit_compile=True``) TensorFlow compiles ``Assert`` to a no-op, so the
    check is dropped there.
    """
    if not _is_float(dtype) or keras.backend.backend() != "tensorflow":
        return images, None
    import tensorflow as tf

    if tf.executing_eagerly():
        return images, None
    who = f"{layer}: " if layer else ""
    high = tf.cast(tf.reduce_max(images), "float32")
    low = tf.cast(tf.reduce_min(images), "float32")
    if value_range is None:
        # NaN fails every comparison, so NaN pixels are caught here as well.
        ok = _default_float_ok(low, high)
        message = f"{who}{_default_float_message(name)}. Received: {name} with (min, max) ="
        check = tf.debugging.Assert(ok, [message, low, high], summarize=1)
        with tf.control_dependencies([check]):
            return tf.identity(images), high
    lo, hi = value_range
    message = f"{who}`{name}` must lie in `value_range`={value_range}. Received: {name} with"
    slack = _FLOAT_SLACK * (hi - lo)
    checks = [
        # NaN fails these comparisons too, so NaN pixels are caught here as well.
        tf.debugging.assert_less_equal(high, hi + slack, message=f"{message} max > {hi:g} (or NaN)",
                                       summarize=1),
        tf.debugging.assert_greater_equal(low, lo - slack, message=f"{message} min < {lo:g} (or NaN)",
                                          summarize=1),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(images), high


def _is_tensor(x):
    return hasattr(x, "dtype") and hasattr(x, "shape") and not hasattr(x, "__array_interface__")


def to_float(images, value_range=None):
    """Casts checked images (``check_images``) to float32 in [0, 1]: integer
    images are divided by 255, floats are clipped, and with a ``value_range``
    any input maps ``low -> 0`` and ``high -> 1``."""
    dtype = keras.backend.standardize_dtype(images.dtype)
    images = ops.cast(images, "float32")
    if value_range is None:
        if not _is_float(dtype):
            return images / 255.0
        # Floats may come in up to _FLOAT_SLACK outside [0, 1]; the output must not.
        return ops.clip(images, 0.0, 1.0)
    scale, offset = input_affine(dtype, value_range)
    return ops.clip(images * scale + offset, 0.0, 1.0)


def to_rgb(images):
    """Tiles a 1-channel image to 3 channels; 3-channel images pass through."""
    if images.shape[-1] == 1:
        return ops.concatenate([images, images, images], axis=-1)
    return images


def input_affine(dtype, value_range=None):
    """``(scale, offset)`` mapping checked input to [0, 1] as ``x * scale + offset``:
    ``(1/255, 0)`` for integers and ``(1, 0)`` for floats (``check_images``
    already brought them to [0, 1]), or from ``value_range``."""
    if value_range is not None:
        lo, hi = value_range
        return 1.0 / (hi - lo), -lo / (hi - lo)
    dtype = keras.backend.standardize_dtype(dtype)
    return (1.0, 0.0) if _is_float(dtype) else (1.0 / 255.0, 0.0)


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


def is_finite_number(value):
    """A Python or NumPy real number, not a bool, NaN or infinite."""
    return is_number(value) and math.isfinite(value)


def validate_bool(name, value):
    """A real bool (Python or NumPy): ``bool("false")`` would be True."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return bool(value)


def validate_rate(name, value):
    if not is_number(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"`{name}` must be a probability in [0, 1]. Received: {name}={value!r}")
    return float(value)


def validate_range(name, value, low=None, high=None, allow_equal=True):
    """A (min, max) pair of numbers with min <= max, optionally inside [low, high]."""
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a pair (min, max) of numbers. Received: {name}={value}") from None
    if not (is_finite_number(lo) and is_finite_number(hi)):
        raise ValueError(f"`{name}` must be a pair (min, max) of finite numbers. Received: {name}={value}")
    lo, hi = float(lo), float(hi)
    if lo > hi or (not allow_equal and lo == hi):
        relation = "<=" if allow_equal else "<"
        raise ValueError(f"`{name}` must be a range (min, max) with min {relation} max. Received: {name}={value}")
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
    if not is_finite_number(value) or value < 0:
        raise ValueError(f"`{name}` must be a finite non-negative number. Received: {name}={value}")
    return float(value)


class BaseAugmentation(keras.layers.Layer):
    """Base class: seed generator, input standardisation, rank-3 handling.

    Subclasses implement ``augment(images, training)`` on float32 RGB batches
    ``(B, H, W, 3)`` in [0, 1] and may override ``prepare`` when they want the
    raw input (the crop folds the dtype scale into its interpolation matrices).

    Every subclass takes ``value_range``: None (the default rule: integer
    images in [0, 255], floats in [0, 1] or on the 0-255 scale, told apart per
    batch) or the input's ``(low, high)`` for any dtype. The output is always
    float32 in [0, 1]. The rule is stated in ``simclr_tf.augmentation``.
    """

    def __init__(self, seed=None, value_range=None, **kwargs):
        # The layers compute in float32 whatever the global dtype policy: with
        # Keras's default autocast, a `mixed_float16` / `mixed_bfloat16` policy
        # would quantise float32 images before `call` (the outputs stay float32).
        kwargs.setdefault("autocast", False)
        # Private: a generator owned (and tracked) by a parent layer that reuses
        # this layer's code (`SimCLRAugmentation`); see `_share_seed_generator`.
        shared = kwargs.pop("_seed_generator", None)
        super().__init__(**kwargs)
        if seed is not None and not is_integer(seed):
            raise ValueError(f"`seed` must be an integer or None. Received: seed={seed!r}")
        self.seed = None if seed is None else int(seed)
        self.value_range = validate_value_range(value_range)
        if shared is not None:
            self._share_seed_generator(shared)
        else:
            # Created here, not in build, so no variable appears after compile.
            self.seed_generator = keras.random.SeedGenerator(self.seed, name=f"{self.name}_seed")
        self.built = True

    def _share_seed_generator(self, seed_generator):
        # Bypasses Keras's attribute tracking: the parent tracks the generator;
        # tracked here too, `variables` would list its state twice (Keras does
        # not deduplicate seed states across sub-layers).
        object.__setattr__(self, "seed_generator", seed_generator)

    def prepare(self, images):
        return to_rgb(to_float(images, self.value_range))

    def call(self, images, training=True):
        images = check_images(images, layer=self.name, value_range=self.value_range)
        self.check_input_shape(tuple(images.shape), training)
        unbatched = len(images.shape) == 3
        if unbatched:
            images = ops.expand_dims(images, 0)
        outputs = self.augment(images, training=training)
        if unbatched:
            outputs = ops.squeeze(outputs, 0)
        return outputs

    def augment(self, images, training):
        raise NotImplementedError

    def check_input_shape(self, shape, training=True):
        """Layer-specific static checks on the input shape as passed (rank 3
        or 4, already through ``check_image_spec``); none by default."""

    def output_spatial_shape(self, height, width):
        return height, width

    def compute_output_shape(self, input_shape):
        input_shape = check_image_spec(None if input_shape is None else tuple(input_shape))
        self.check_input_shape(input_shape)
        h, w = self.output_spatial_shape(input_shape[-3], input_shape[-2])
        return input_shape[:-3] + (h, w, 3)

    def compute_output_spec(self, images, training=True):
        rank = getattr(images.shape, "rank", len(images.shape) if images.shape is not None else None)
        shape = check_image_spec(None if rank is None else tuple(images.shape), images.dtype)
        self.check_input_shape(shape, training)
        h, w = self.output_spatial_shape(shape[-3], shape[-2])
        return keras.KerasTensor(shape[:-3] + (h, w, 3), dtype="float32")

    def uniform(self, shape, minval=0.0, maxval=1.0):
        return _random.uniform(self.seed_generator, shape, minval, maxval)

    def bernoulli(self, batch, rate):
        """A per-image boolean mask that is True with probability ``rate``."""
        return self.uniform((batch,)) < rate

    def get_config(self):
        config = super().get_config()
        config.update({"seed": self.seed, "value_range": self.value_range})
        return config
