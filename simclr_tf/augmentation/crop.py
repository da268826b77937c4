"""Random resized crop as two batched interpolation-matrix products.

Why our own layer and not Keras core: ``keras.layers.RandomCrop`` crops a fixed
size and ``keras.layers.RandomZoom`` keeps the aspect ratio tied to one zoom
factor drawn per batch, neither samples the paper's (area, aspect ratio) box
per image; keras-cv's ``RandomCropAndResize`` relies on
``tf.image.crop_and_resize``, which has no XLA kernel and is bilinear only.

How: every image gets a box ``(y0, x0, h, w)`` in continuous pixel units. The
crop-and-resize of image ``X`` (one channel) is ``Ry @ X @ Rx^T`` where
``Ry (out_h, H)`` and ``Rx (out_w, W)`` hold, per output row/column, the
interpolation weights over the source rows/columns, built per image
(``interpolation_matrix``). The horizontal flip is folded into ``Rx`` by
reversing the output columns (free), and the uint8 -> [0, 1] scale into ``Ry``
(free).

These matrices are banded: a box never exceeds the image, so output rows
``i .. i + s`` read at most ``(s - 1) * H / out_h + 2 * radius * support``
consecutive source rows. Where the sizes are static and that cuts the
multiply-adds by at least 2x, each axis is done block-banded
(``banded_matrices``): the output rows are cut into blocks of ``s`` (16 up to
128 px, else 32), one ``take`` on the ``(B * H, W * C)`` rows gathers each
block's window of source rows (contiguous rows, on the raw dtype before the
cast), and one batched matmul ``(B * blocks, s, window) @ (B * blocks, window,
W * C)`` applies the same weights the dense matrix holds there (same kernel
values, renormalised over the same taps: equal to rounding, ~1e-7). Otherwise
(dynamic sizes, or 32 px where the window saves only 1.5x) the dense matrices
are used. Everything compiles under XLA.

Interpolation is bicubic (Keys, a = -0.5, the kernel of
``tf.image.resize(method="bicubic")`` and of the paper) or bilinear. With
``antialias=True`` the kernel is widened by the downscale factor when a crop is
larger than the output, as ``tf.image.resize(..., antialias=True)`` does; the
matrices equal ``tf.image.resize`` for a whole-image box. For a box inside the
image, kernel taps that fall outside the box read the neighbouring pixels (as
ROI-align and ``tf.image.crop_and_resize`` do) instead of being renormalised at
the box edge as slicing then resizing does; this only touches the outermost
output pixels. Bicubic overshoot is clipped to [0, 1].

Why block-banded only from 96 px up: the small block matmuls run far below
the dense ones' rate, so the gain (1.1-1.8x, ``benchmarks/resample.py``) is
well below the cut in multiply-adds, and at 32 px there is none, hence the
dense fallback. A gather of the 4 bicubic taps per output pixel is slower
(memory-bound; XLA's gather is very slow at 224 px). The measurements are in
docs/BENCHMARKS.md, "Why the layers are written as they are".
"""

import math

import keras
from keras import ops

from simclr_tf.augmentation import _base, _random

INTERPOLATIONS = ("bicubic", "bilinear")

# Block-banded resampling is used when it cuts the multiply-adds by at least
# this factor (at 32 -> 32 px it cuts them 1.5x and measured no faster).
_MIN_GAIN = 2.0


def _default_block(out_size):
    # Measured best at 96 px (16) and a tie between 16 and 32 at 224 px; 32
    # there gathers fewer overlapping rows.
    return 16 if out_size <= 128 else 32


def _cubic(x):
    # Keys cubic convolution kernel with a = -0.5, as tf.image.resize.
    x = ops.abs(x)
    x2 = x * x
    near = (1.5 * x - 2.5) * x2 + 1.0
    far = ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0
    return ops.where(x <= 1.0, near, ops.where(x < 2.0, far, 0.0))


def _triangle(x):
    return ops.maximum(1.0 - ops.abs(x), 0.0)


def interpolation_matrix(start, length, in_size, out_size, interpolation="bicubic", antialias=True, flip=None,
                         scale=1.0):
    """Per-image resampling matrices ``(B, out_size, in_size)``.

    Output pixel ``i`` of image ``b`` samples the source at the continuous
    coordinate ``start[b] + (i + 0.5) * length[b] / out_size - 0.5``; weights are
    the interpolation kernel at the distance to each source pixel (widened by the
    downscale factor if ``antialias``), renormalised over the source pixels that
    exist, as ``tf.image.resize`` does at the borders.

    Args:
        start, length: float tensors ``(B,)``, the box along this axis in pixels.
        in_size: source size (int or scalar tensor). out_size: output size (int).
        flip: optional bool ``(B,)``; True reverses the output order.
        scale: a constant folded into the weights (1/255 for uint8 sources).
    """
    kernel = _cubic if interpolation == "bicubic" else _triangle
    centers, support = _sample_points(start, length, out_size, out_size, antialias, flip)
    source = ops.cast(ops.arange(in_size), "float32")
    weights = kernel((source[None, None, :] - centers[:, :, None]) / support[:, None, None])
    total = ops.sum(weights, axis=-1, keepdims=True)
    return weights * (scale / total)


def _sample_points(start, length, out_size, count, antialias, flip):
    """Source coordinates ``(B, count)`` of output pixels ``0 .. count - 1``
    (indices past ``out_size - 1`` repeat the last one), and the kernel's
    support ``(B,)``: widened by the downscale factor if ``antialias``."""
    step = length / out_size
    out_index = ops.cast(ops.minimum(ops.arange(count), out_size - 1), "float32")[None, :]
    if flip is not None:
        out_index = ops.where(flip[:, None], (out_size - 1.0) - out_index, out_index)
    centers = start[:, None] + (out_index + 0.5) * step[:, None] - 0.5
    support = ops.maximum(step, 1.0) if antialias else ops.ones_like(step)
    return centers, support


def resample(images, rows, cols):
    """``rows @ image @ cols^T`` per image and channel as two batched matmuls.

    images ``(B, H, W, C)``, rows ``(B, out_h, H)``, cols ``(B, out_w, W)`` ->
    ``(B, out_h, out_w, C)``.
    """
    shape = ops.shape(images)
    b, h, w = shape[0], shape[1], shape[2]
    c = images.shape[-1]
    # Static when known (the crop's output size); the blur's matrices are as
    # large as an input whose size may be known only at run time.
    out_h = rows.shape[1] if rows.shape[1] is not None else ops.shape(rows)[1]
    out_w = cols.shape[1] if cols.shape[1] is not None else ops.shape(cols)[1]
    x = ops.matmul(rows, ops.reshape(images, (b, h, w * c)))  # (B, out_h, W*C)
    x = ops.transpose(ops.reshape(x, (b, out_h, w, c)), (0, 2, 1, 3))
    x = ops.matmul(cols, ops.reshape(x, (b, w, out_h * c)))  # (B, out_w, out_h*C)
    return ops.transpose(ops.reshape(x, (b, out_w, out_h, c)), (0, 2, 1, 3))


def _radius(interpolation):
    return 2 if interpolation == "bicubic" else 1


def block_plan(in_size, out_size, interpolation="bicubic", antialias=True, block_size=None):
    """``(block, blocks, window)`` for the block-banded resampling, or None.

    Output rows are cut into ``blocks`` blocks of ``block`` rows (the last one
    padded); the rows of one block only read a window of ``window`` consecutive
    source rows, because a box never exceeds the image (step <= in / out) and
    the kernel reaches ``radius * support`` pixels either side of a centre.
    None (use the dense matrices) when ``in_size`` is not static, or, with
    ``block_size=None``, when the window does not cut the multiply-adds by at
    least ``_MIN_GAIN``. ``block_size=0`` always answers None (dense).
    """
    if block_size == 0 or not isinstance(in_size, int) or isinstance(in_size, bool):
        return None
    block = _default_block(out_size) if block_size is None else int(block_size)
    block = max(1, min(block, out_size))
    blocks = -(-out_size // block)
    max_step = in_size / out_size
    max_support = max(1.0, max_step) if antialias else 1.0
    # +2: one pixel for flooring the window start, one for float rounding.
    window = min(in_size, math.ceil((block - 1) * max_step + 2 * _radius(interpolation) * max_support) + 2)
    if block_size is None and in_size * out_size < _MIN_GAIN * window * blocks * block:
        return None
    return block, blocks, window


def banded_matrices(start, length, in_size, out_size, plan, interpolation="bicubic", antialias=True, flip=None,
                    scale=1.0):
    """The nonzero blocks of ``interpolation_matrix``.

    Returns ``weights (B, blocks, block, window)`` and ``first (B, blocks)``
    int32: output row ``j * block + i`` (rows past ``out_size`` repeat the last
    one) has weight ``weights[b, j, i, t]`` on source row ``first[b, j] + t``
    and zero elsewhere. The weights are the dense ones (same kernel values,
    renormalised over the same nonzero taps), so both forms agree to rounding.
    Needs boxes no longer than the image (``length <= in_size``), as
    ``sample_boxes`` and ``center_box`` give.
    """
    block, blocks, window = plan
    kernel = _cubic if interpolation == "bicubic" else _triangle
    centers, support = _sample_points(start, length, out_size, blocks * block, antialias, flip)
    centers = ops.reshape(centers, (-1, blocks, block))
    low = ops.min(centers, axis=-1) - _radius(interpolation) * support[:, None]
    first = ops.cast(ops.clip(ops.floor(low), 0.0, float(in_size - window)), "int32")  # (B, blocks)
    source = ops.cast(first[:, :, None] + ops.arange(window, dtype="int32")[None, None, :], "float32")
    weights = kernel((source[:, :, None, :] - centers[..., None]) / support[:, None, None, None])
    total = ops.sum(weights, axis=-1, keepdims=True)
    return weights * (scale / total), first


def _banded_axis1(images, weights, first, out_size):
    """Applies banded weights along axis 1 of ``(B, H, W, C)`` (static H, W, C):
    one gather of contiguous source rows, one batched matmul. Any dtype in,
    float32 out (the gather runs on the raw dtype, then casts the window)."""
    b = ops.shape(images)[0]
    h, w, c = images.shape[1], images.shape[2], images.shape[3]
    blocks, block, window = weights.shape[1], weights.shape[2], weights.shape[3]
    flat = ops.reshape(images, (-1, w * c))
    index = ops.arange(b, dtype="int32")[:, None, None] * h + first[:, :, None] + ops.arange(window, dtype="int32")
    rows = ops.take(flat, ops.reshape(index, (-1, window)), axis=0)  # (B*blocks, window, W*C)
    x = ops.matmul(ops.reshape(weights, (-1, block, window)), ops.cast(rows, "float32"))
    x = ops.reshape(x, (b, blocks * block, w, c))
    return x[:, :out_size] if blocks * block != out_size else x


def _resize_axis1(images, start, length, out_size, interpolation, antialias, flip, scale, block_size):
    """Resamples axis 1 of ``(B, H, W, C)`` to ``out_size``: block-banded when
    ``block_plan`` says so, else the dense matrix. Returns float32."""
    h, w, c = images.shape[1], images.shape[2], images.shape[3]
    plan = block_plan(h, out_size, interpolation, antialias, block_size) if w is not None else None
    if plan is not None:
        weights, first = banded_matrices(start, length, h, out_size, plan, interpolation, antialias, flip, scale)
        return _banded_axis1(images, weights, first, out_size)
    shape = ops.shape(images)
    b, h, w = shape[0], shape[1], shape[2]
    matrix = interpolation_matrix(start, length, h, out_size, interpolation, antialias, flip, scale)
    x = ops.matmul(matrix, ops.reshape(ops.cast(images, "float32"), (b, h, w * c)))
    return ops.reshape(x, (b, out_size, w, c))


def sample_boxes(seed_generator, batch, height, width, area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3),
                 max_attempts=100):
    """Samples one crop box per image, as the paper (and Inception) does.

    Each image draws ``max_attempts`` candidates: area fraction uniform in
    ``area_range``, aspect ratio (width / height) log-uniform in
    ``aspect_ratio_range``; it keeps the first candidate that fits inside the
    image, or the whole image when none does. The offset is uniform over the
    positions where the box fits. Boxes are continuous (sub-pixel), which the
    interpolation matrices handle directly.

    Returns float32 ``(y0, x0, h, w)``, each ``(B,)``, in pixels.
    """
    height = ops.cast(height, "float32")
    width = ops.cast(width, "float32")
    shape = (batch, max_attempts)
    area = _random.uniform(seed_generator, shape, area_range[0], area_range[1]) * (height * width)
    log_ratio = _random.uniform(
        seed_generator, shape, math.log(aspect_ratio_range[0]), math.log(aspect_ratio_range[1])
    )
    ratio = ops.exp(log_ratio)
    w = ops.sqrt(area * ratio)
    h = ops.sqrt(area / ratio)
    fits = ops.logical_and(w <= width, h <= height)
    first = ops.argmax(ops.cast(fits, "int32"), axis=1)[:, None]
    found = ops.any(fits, axis=1)
    h = ops.where(found, ops.take_along_axis(h, first, axis=1)[:, 0], height)
    w = ops.where(found, ops.take_along_axis(w, first, axis=1)[:, 0], width)
    offsets = _random.uniform(seed_generator, (batch, 2))
    y0 = offsets[:, 0] * (height - h)
    x0 = offsets[:, 1] * (width - w)
    return y0, x0, h, w


def center_box(batch, height, width, out_height, out_width, crop_fraction=1.0):
    """The evaluation box: the largest centred box of the output's aspect ratio,
    scaled by ``crop_fraction`` per side (the authors' ``center_crop``)."""
    height = ops.cast(height, "float32")
    width = ops.cast(width, "float32")
    aspect = out_width / out_height
    h = ops.minimum(height, width / aspect) * crop_fraction
    w = h * aspect
    ones = ops.ones((batch,), "float32")
    return (height - h) / 2 * ones, (width - w) / 2 * ones, h * ones, w * ones


def crop_resize(images, boxes, size, interpolation="bicubic", antialias=True, flip=None, block_size=None,
                value_range=None):
    """Crops ``boxes`` out of raw images (any dtype, 1 or 3 channels) and resizes
    them to ``size``; returns float32 RGB in [0, 1].

    ``block_size``: None picks the block-banded form per axis where it pays
    (static sizes) and the dense matrices elsewhere; 0 forces the dense
    matrices; a positive int forces blocks of that many output rows (static
    sizes needed, else dense). All give the same result to rounding.
    ``value_range``: the input scale (``_base.input_affine``); its scale is
    folded into the row weights and its offset added after (the weights of
    every output pixel sum to one).
    """
    y0, x0, h, w = boxes
    scale, offset = _base.input_affine(images.dtype, value_range)
    x = _resize_axis1(images, y0, h, size[0], interpolation, antialias, None, scale, block_size)
    x = ops.transpose(x, (0, 2, 1, 3))  # (B, W, out_h, C)
    x = _resize_axis1(x, x0, w, size[1], interpolation, antialias, flip, 1.0, block_size)
    out = ops.transpose(x, (0, 2, 1, 3))
    if offset:
        out = out + offset
    return _base.to_rgb(ops.clip(out, 0.0, 1.0))


def validate_size(name, value):
    if _base.is_integer(value):
        value = (value, value)
    try:
        h, w = value
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a positive int or a pair (height, width). Received: {name}={value!r}") from None
    for v in (h, w):
        if not _base.is_integer(v) or v <= 0:
            raise ValueError(f"`{name}` must be a positive int or a pair of them. Received: {name}={value!r}")
    return (int(h), int(w))


@keras.saving.register_keras_serializable(package="simclr_tf")
class RandomResizedCrop(_base.BaseAugmentation):
    """Random resized crop with per-image box sampling (the paper's crop).

    Every image draws its own box: area fraction uniform in ``area_range``,
    aspect ratio log-uniform in ``aspect_ratio_range``, up to ``max_attempts``
    tries, else the whole image. The box is resized to ``image_size``. With
    ``training=False`` it returns the centred box of the output's aspect ratio
    scaled by ``eval_crop_fraction`` per side, resized.

    Args:
        image_size: output size, an int (square) or ``(height, width)``.
        area_range: range of the box area as a fraction of the image area.
        aspect_ratio_range: range of the box aspect ratio (width / height).
        interpolation: ``"bicubic"`` (the paper's) or ``"bilinear"``.
        antialias: widen the kernel when downscaling, as ``tf.image.resize``.
        flip_rate: probability of a horizontal flip, folded into the resize
            for free. 0 (the default) gives the crop alone.
        max_attempts: candidate boxes per image before using the whole image.
        eval_crop_fraction: side fraction of the centred eval crop.
        seed: int or None.

    Example:
    >>> import numpy as np
    >>> crop = RandomResizedCrop(8, seed=0)
    >>> crop(np.zeros((2, 16, 12, 3), "uint8")).shape
    TensorShape([2, 8, 8, 3])

    Reference:
        Szegedy et al., "Going deeper with convolutions" (2015); Chen et al.,
        "A Simple Framework for Contrastive Learning of Visual Representations"
        (2020), appendix A.
    """

    def __init__(self, image_size, area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3),
                 interpolation="bicubic", antialias=True, flip_rate=0.0, max_attempts=100,
                 eval_crop_fraction=1.0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.image_size = validate_size("image_size", image_size)
        self.area_range = _base.validate_range("area_range", area_range, 0.0, 1.0)
        if self.area_range[1] <= 0:
            raise ValueError(f"`area_range` must allow a positive area. Received: area_range={area_range}")
        self.aspect_ratio_range = _base.validate_range("aspect_ratio_range", aspect_ratio_range)
        if self.aspect_ratio_range[0] <= 0:
            raise ValueError(f"`aspect_ratio_range` must be positive. Received: aspect_ratio_range={aspect_ratio_range}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"`interpolation` must be one of {INTERPOLATIONS}. Received: interpolation={interpolation}")
        self.interpolation = interpolation
        self.antialias = _base.validate_bool("antialias", antialias)
        self.flip_rate = _base.validate_rate("flip_rate", flip_rate)
        self.max_attempts = _base.validate_positive_int("max_attempts", max_attempts)
        if not _base.is_number(eval_crop_fraction) or not 0.0 < eval_crop_fraction <= 1.0:
            raise ValueError(f"`eval_crop_fraction` must be in (0, 1]. Received: eval_crop_fraction={eval_crop_fraction}")
        self.eval_crop_fraction = float(eval_crop_fraction)

    def prepare(self, images):
        return images

    def call(self, images, training=True):
        images = _base.check_images(images, layer=self.name, value_range=self.value_range)
        unbatched = len(images.shape) == 3
        if unbatched:
            images = ops.expand_dims(images, 0)
        out = self.crop(images, training)
        return ops.squeeze(out, 0) if unbatched else out

    def crop(self, images, training=True):
        """The layer's work on a raw batch; reused by ``SimCLRAugmentation``."""
        batch = _base.batch_size(images)
        shape = ops.shape(images)
        if training:
            boxes = sample_boxes(self.seed_generator, batch, shape[1], shape[2], self.area_range,
                                 self.aspect_ratio_range, self.max_attempts)
            flip = self.bernoulli(batch, self.flip_rate) if self.flip_rate > 0 else None
        else:
            boxes = center_box(batch, shape[1], shape[2], *self.image_size, self.eval_crop_fraction)
            flip = None
        return crop_resize(images, boxes, self.image_size, self.interpolation, self.antialias, flip,
                           value_range=self.value_range)

    def output_spatial_shape(self, height, width):
        return self.image_size

    def get_config(self):
        config = super().get_config()
        config.update({
            "image_size": self.image_size,
            "area_range": self.area_range,
            "aspect_ratio_range": self.aspect_ratio_range,
            "interpolation": self.interpolation,
            "antialias": self.antialias,
            "flip_rate": self.flip_rate,
            "max_attempts": self.max_attempts,
            "eval_crop_fraction": self.eval_crop_fraction,
        })
        return config
