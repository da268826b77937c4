"""Colour distortion: per-image colour jitter in a random order, and grayscale.

Why our own layers: ``keras.layers.RandomColorJitter`` (and keras-cv's) apply
brightness, contrast, saturation and hue in a fixed order with different factor
semantics, and Keras core's ``RandomGrayscale`` has no probability argument;
the paper draws per image the four factors *and* the order, clipping to [0, 1]
after each operation (the authors' ``color_jitter_rand``).

The batched operations equal the ``tf.image`` ones for per-image factors:
``adjust_brightness`` (v1, additive) or ``image * factor`` (v2),
``adjust_contrast``, ``adjust_saturation``, ``adjust_hue`` and
``rgb_to_grayscale`` (to float rounding, about 1e-6).

The work is done on the three channel planes ``(B, H, W)`` (one unstack at
the start, one stack at the end), so the per-pixel channel max and min are
plain elementwise ops rather than reductions over a last axis of 3. No HSV
round trip: saturation is ``V - k * (V - c)`` with ``k = min(s, V / (V - min))``
(exactly what scaling S with the clip to 1 does), and hue is the closed form of
``tf.image.adjust_hue`` (hue in sixths from the max channel, shifted, each
channel rebuilt as ``min + chroma * ramp``).

Random order with one hue pass: brightness, contrast and saturation are one
cheap per-image stage, ``x * scale + offset + mean * w + (1 - k) * (V - x)``,
with identity factors for images that have nothing to do there. Per image,
with hue at position ``p``, three "pre" stages run positions 0..2 (identity
from ``p`` on), then the hue of the whole batch, then three "post" stages run
positions 1..3 (identity up to ``p``). That is 6 cheap stages and 1 hue pass,
instead of 4 affine maps plus 4 HSV round trips; the result equals
applying the ops one by one (tested against the ``tf.image`` reference).

XLA on CPU is sensitive to how this chain is written. The hue wraps with
``x - 6 floor(x / 6)``, not ``mod``: XLA's float remainder does not
vectorise. The jittered planes are always blended with the pre-hue ones, even
when every image is jittered: without the blend XLA fuses the pre stages into
later fusions and recomputes them there. Fewer mean reductions (two contrast
slots with the per-pixel stages fused between them) are slower under XLA,
which recomputes long cross-channel chains per output channel. The
measurements are in docs/BENCHMARKS.md, "Why the layers are written as they
are".
"""

import keras
from keras import ops

from simclr_tf.augmentation import _base, _random

JITTER_VARIANTS = ("v2", "v1")
# tf.image.rgb_to_grayscale's weights.
LUMA = (0.2989, 0.5870, 0.1140)


def _per_image(x):
    return ops.reshape(x, (-1, 1, 1, 1))


def adjust_brightness(images, factor, variant="v2"):
    """v2: ``images * factor``; v1: ``images + factor`` (``tf.image.adjust_brightness``)."""
    factor = _per_image(factor)
    return images * factor if variant == "v2" else images + factor


def adjust_contrast(images, factor):
    """Per image ``(x - mean) * factor + mean``, mean per channel (``tf.image.adjust_contrast``)."""
    mean = ops.mean(images, axis=(1, 2), keepdims=True)
    return (images - mean) * _per_image(factor) + mean


def to_planes(images):
    """``(B, H, W, 3)`` -> a tuple of three ``(B, H, W)`` channel planes."""
    return tuple(ops.unstack(images, 3, axis=-1))


def from_planes(planes):
    """Three ``(B, H, W)`` planes -> ``(B, H, W, 3)``."""
    return ops.stack(planes, axis=-1)


def _plane_param(x):
    return ops.reshape(x, (-1, 1, 1))


def _max_min(planes):
    r, g, b = planes
    return ops.maximum(ops.maximum(r, g), b), ops.minimum(ops.minimum(r, g), b)


# Guards 0 / 0 on black or grey pixels, where any finite value gives the same result.
_TINY = 1e-30


def _saturation_scale(value, minimum, factor):
    # In HSV -> RGB every channel is c = V - V * S * g_c(H), so scaling S by
    # ``factor`` (clipped to S' <= 1) maps c to V - k * (V - c) with
    # k = S' / S = min(factor, 1 / S) = min(factor, V / (V - min)).
    return ops.minimum(factor, value / ops.maximum(value - minimum, _TINY))


def _saturation_planes(planes, factor):
    value, minimum = _max_min(planes)
    k = _saturation_scale(value, minimum, factor)
    return tuple(value - k * (value - c) for c in planes)


def adjust_saturation(images, factor):
    """Per-image saturation scale, as ``tf.image.adjust_saturation``.

    Closed form without an HSV round trip: ``V - k * (V - c)`` per channel with
    ``V`` the channel maximum and ``k = min(factor, V / (V - min))``.
    """
    return from_planes(_saturation_planes(to_planes(images), _plane_param(factor)))


def _hue_planes(planes, delta):
    """Rotates the hue by ``delta`` turns (per image, ``(B, 1, 1)``).

    The closed form of ``tf.image.adjust_hue``: hue ``h`` in sixths of a turn
    from the channel that holds the maximum (as ``rgb_to_hsv``), shifted and
    wrapped to [0, 6), and each channel rebuilt as ``min + (max - min) * d_c(h)``
    with the piecewise-linear ramps of ``hsv_to_rgb``. Grey pixels (max == min)
    come back unchanged.
    """
    r, g, b = planes
    value, minimum = _max_min(planes)
    chroma = value - minimum
    inverse = 1.0 / ops.maximum(chroma, _TINY)
    hue = ops.where(r == value, (g - b) * inverse, ops.where(g == value, (b - r) * inverse + 2.0,
                                                             (r - g) * inverse + 4.0))
    hue = hue + delta * 6.0
    hue = hue - 6.0 * ops.floor(hue * (1.0 / 6.0))  # mod 6: floor vectorises under XLA, fmod does not
    ramps = (ops.abs(hue - 3.0) - 1.0, 2.0 - ops.abs(hue - 2.0), 2.0 - ops.abs(hue - 4.0))
    return tuple(minimum + chroma * ops.clip(d, 0.0, 1.0) for d in ramps)


def adjust_hue(images, delta):
    """Per-image hue rotation by ``delta`` (in turns), as ``tf.image.adjust_hue``."""
    return from_planes(_hue_planes(to_planes(images), _plane_param(delta)))


def rgb_to_grayscale(images):
    """Luma with ``tf.image.rgb_to_grayscale``'s weights, kept as 3 channels."""
    gray = images[..., 0:1] * LUMA[0] + images[..., 1:2] * LUMA[1] + images[..., 2:3] * LUMA[2]
    return ops.concatenate([gray, gray, gray], axis=-1)


def grayscale_planes(planes, mask):
    """Grayscale where ``mask`` (bool ``(B,)``) is True, as one exact blend per plane."""
    r, g, b = planes
    gray = r * LUMA[0] + g * LUMA[1] + b * LUMA[2]
    m = _plane_param(ops.cast(mask, "float32"))
    gray = gray * m
    keep = 1.0 - m
    return tuple(gray + c * keep for c in planes)


def _cheap_stage(planes, scale, offset, mean_weight, saturation):
    """One position of the jitter for ops other than hue, per image, then clip.

    ``y = x * scale + offset + mean * mean_weight + (1 - k) * (V - x)``: with
    per-image ``scale`` = brightness (v2) or contrast factor, ``offset`` = the
    v1 brightness delta, ``mean_weight`` = ``1 - contrast`` for contrast, and
    ``k`` the saturation scale (exactly 1 when ``saturation`` is 1). Identity
    (1, 0, 0, 1) returns ``x`` bit for bit.
    """
    value, minimum = _max_min(planes)
    pull = 1.0 - _saturation_scale(value, minimum, saturation)
    out = []
    for c in planes:
        mean = ops.mean(c, axis=(1, 2), keepdims=True)
        out.append(ops.clip(c * scale + (offset + mean * mean_weight) + pull * (value - c), 0.0, 1.0))
    return tuple(out)


def jitter_planes(planes, brightness, contrast, saturation, hue, order, variant="v2", mask=None):
    """``jitter_in_order`` on a tuple of three channel planes ``(B, H, W)``."""
    order = ops.convert_to_tensor(order)
    brightness, contrast, saturation, hue = (
        ops.convert_to_tensor(f, "float32") for f in (brightness, contrast, saturation, hue))
    one = ops.ones_like(brightness)
    zero = ops.zeros_like(brightness)
    hue_position = ops.argmax(ops.cast(order == 3, "int32"), axis=-1)
    # Always blend after hue, even with no mask (all True): the blend makes
    # XLA keep the pre-hue planes in memory instead of recomputing the three
    # pre stages inside every later fusion, several times slower at 32 px
    # (docs/BENCHMARKS.md, "Why the layers are written as they are").
    active = ops.ones_like(brightness, "bool") if mask is None else ops.convert_to_tensor(mask)
    if variant == "v2":
        bright_scale, bright_offset = brightness, zero
    else:
        bright_scale, bright_offset = one, brightness

    def stage(x, position, pre):
        op = order[:, position]
        runs = hue_position > position if pre else hue_position < position
        runs = ops.logical_and(runs, active)
        is_bright, is_contrast, is_sat = (ops.logical_and(runs, op == i) for i in range(3))
        scale = ops.where(is_bright, bright_scale, ops.where(is_contrast, contrast, one))
        offset = ops.where(is_bright, bright_offset, zero)
        mean_weight = ops.where(is_contrast, 1.0 - contrast, zero)
        sat = ops.where(is_sat, saturation, one)
        return _cheap_stage(x, *(_plane_param(t) for t in (scale, offset, mean_weight, sat)))

    for position in range(3):
        planes = stage(planes, position, pre=True)
    hued = tuple(ops.clip(c, 0.0, 1.0) for c in _hue_planes(planes, _plane_param(hue)))
    # Unjittered images come back bit for bit (an exact 0/1 blend).
    m = _plane_param(ops.cast(active, "float32"))
    keep = 1.0 - m
    planes = tuple(h * m + c * keep for h, c in zip(hued, planes))
    for position in range(1, 4):
        planes = stage(planes, position, pre=False)
    return planes


def jitter_in_order(images, brightness, contrast, saturation, hue, order, variant="v2", mask=None):
    """Applies the four jitter ops with per-image factors in a per-image order.

    Args:
        images: float32 ``(B, H, W, 3)`` in [0, 1].
        brightness, contrast, saturation, hue: per-image factors ``(B,)``
            (brightness is a factor for v2, a delta for v1; hue is a delta).
        order: int ``(B, 4)``, a permutation of 0..3 per image where
            0 = brightness, 1 = contrast, 2 = saturation, 3 = hue.
        variant: ``"v2"`` (multiplicative brightness) or ``"v1"`` (additive).
        mask: optional bool ``(B,)``; images where it is False are returned
            unchanged (bit for bit).

    Each op is followed by a clip to [0, 1], as in the paper.

    Hue is the only op that does not fit a cheap per-pixel form, so the batch
    makes one hue pass: per image, with hue at position ``p``, the ops at
    positions ``< p`` run first (three "pre" stages for positions 0..2,
    identity where the position is ``>= p``), then the hue shift of the whole
    batch, then the ops at positions ``> p`` (three "post" stages for
    positions 1..3). Brightness, contrast and saturation are all one cheap
    stage (``_cheap_stage``) with per-image factors, identity factors for
    images with nothing to do there.
    """
    planes = jitter_planes(to_planes(images), brightness, contrast, saturation, hue, order, variant, mask)
    return from_planes(planes)


def jitter_ranges(strength, variant="v2"):
    """The paper's factor ranges for colour strength ``s``."""
    s = float(strength)
    if variant == "v2":
        brightness = (max(0.0, 1.0 - 0.8 * s), 1.0 + 0.8 * s)
    else:
        brightness = (-0.8 * s, 0.8 * s)
    factor = (max(0.0, 1.0 - 0.8 * s), 1.0 + 0.8 * s)
    return brightness, factor, factor, (-0.2 * s, 0.2 * s)


def sample_jitter(seed_generator, batch, ranges):
    """Per-image factors ``(B,)`` for the four ops and a random order ``(B, 4)``."""
    factors = [_random.uniform(seed_generator, (batch,), lo, hi) for lo, hi in ranges]
    order = ops.argsort(_random.uniform(seed_generator, (batch, 4)), axis=-1)
    return factors, order


def _validate_variant(variant):
    if variant not in JITTER_VARIANTS:
        raise ValueError(f"`variant` must be one of {JITTER_VARIANTS}. Received: variant={variant}")
    return variant


@keras.saving.register_keras_serializable(package="simclr_tf")
class RandomColorJitter(_base.BaseAugmentation):
    """The paper's colour jitter with per-image factors and a per-image order.

    Brightness, contrast and saturation factors are drawn from
    ``U(max(0, 1 - 0.8 s), 1 + 0.8 s)`` and the hue delta from
    ``U(-0.2 s, 0.2 s)`` for strength ``s``; the four ops run in a random order
    per image, each followed by a clip to [0, 1]. ``variant="v1"`` uses the
    additive brightness of SimCLR v1 (delta in ``U(-0.8 s, 0.8 s)``).

    Args:
        strength: colour distortion strength ``s`` (1.0 ImageNet, 0.5 CIFAR-10).
        rate: probability that an image is jittered at all (1.0 here; the
            paper's 0.8 is applied by ``ColorDistortion``).
        variant: ``"v2"`` (multiplicative brightness, default) or ``"v1"``.
        seed: int or None.

    Example:
    >>> import numpy as np
    >>> jitter = RandomColorJitter(strength=0.5, seed=0)
    >>> jitter(np.random.rand(2, 4, 4, 3).astype("float32")).shape
    TensorShape([2, 4, 4, 3])

    Reference:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual
        Representations" (2020), appendix A and its TF2 code (``color_jitter_rand``).
    """

    def __init__(self, strength=1.0, rate=1.0, variant="v2", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.strength = _base.validate_non_negative("strength", strength)
        self.rate = _base.validate_rate("rate", rate)
        self.variant = _validate_variant(variant)

    def augment(self, images, training):
        images = self.prepare(images)
        if not training:
            return images
        batch = _base.batch_size(images)
        factors, order = sample_jitter(self.seed_generator, batch, jitter_ranges(self.strength, self.variant))
        mask = self.bernoulli(batch, self.rate) if self.rate < 1.0 else None
        return jitter_in_order(images, *factors, order, self.variant, mask=mask)

    def get_config(self):
        config = super().get_config()
        config.update({"strength": self.strength, "rate": self.rate, "variant": self.variant})
        return config


@keras.saving.register_keras_serializable(package="simclr_tf")
class RandomGrayscale(_base.BaseAugmentation):
    """Converts each image to grayscale (kept as 3 channels) with probability ``rate``.

    Luma weights are those of ``tf.image.rgb_to_grayscale``.

    Args:
        rate: per-image probability (the paper's 0.2).
        seed: int or None.

    Example:
    >>> import numpy as np
    >>> RandomGrayscale(rate=1.0)(np.ones((1, 2, 2, 3), "uint8")).shape
    TensorShape([1, 2, 2, 3])

    Reference:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual
        Representations" (2020), appendix A.
    """

    def __init__(self, rate=0.2, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _base.validate_rate("rate", rate)

    def augment(self, images, training):
        images = self.prepare(images)
        if not training:
            return images
        mask = self.bernoulli(_base.batch_size(images), self.rate)
        return from_planes(grayscale_planes(to_planes(images), mask))

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate})
        return config


COLOR_MODES = ("both", "jitter", "grayscale")


@keras.saving.register_keras_serializable(package="simclr_tf")
class ColorDistortion(_base.BaseAugmentation):
    """The paper's colour distortion: jitter with p = 0.8, then grayscale with p = 0.2.

    ``mode="jitter"`` and ``mode="grayscale"`` keep only one half, for the
    ablations of the paper's figure 5 (jitter-only with jitter applied at
    ``jitter_rate``, grayscale-only at ``grayscale_rate``).

    Args:
        strength: colour strength ``s`` of the jitter.
        jitter_rate: per-image probability of the jitter.
        grayscale_rate: per-image probability of grayscale, drawn independently.
        mode: ``"both"``, ``"jitter"`` or ``"grayscale"``.
        variant: brightness variant of the jitter, ``"v2"`` or ``"v1"``.
        seed: int or None.

    Example:
    >>> import numpy as np
    >>> ColorDistortion(strength=0.5, seed=1)(np.zeros((2, 4, 4, 1), "uint8")).shape
    TensorShape([2, 4, 4, 3])

    Reference:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual
        Representations" (2020), appendix A (``random_color_jitter``).
    """

    def __init__(self, strength=1.0, jitter_rate=0.8, grayscale_rate=0.2, mode="both", variant="v2", seed=None,
                 **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.strength = _base.validate_non_negative("strength", strength)
        self.jitter_rate = _base.validate_rate("jitter_rate", jitter_rate)
        self.grayscale_rate = _base.validate_rate("grayscale_rate", grayscale_rate)
        if mode not in COLOR_MODES:
            raise ValueError(f"`mode` must be one of {COLOR_MODES}. Received: mode={mode}")
        self.mode = mode
        self.variant = _validate_variant(variant)

    def augment(self, images, training):
        images = self.prepare(images)
        if not training:
            return images
        return self.distort(images)

    def distort(self, images):
        """The layer's work on a float RGB batch; reused by ``SimCLRAugmentation``.

        Works on the three channel planes from start to end (one unstack, one stack).
        """
        batch = _base.batch_size(images)
        planes = to_planes(images)
        if self.mode in ("both", "jitter") and self.jitter_rate > 0:
            factors, order = sample_jitter(self.seed_generator, batch, jitter_ranges(self.strength, self.variant))
            mask = self.bernoulli(batch, self.jitter_rate) if self.jitter_rate < 1.0 else None
            planes = jitter_planes(planes, *factors, order, self.variant, mask=mask)
        if self.mode in ("both", "grayscale") and self.grayscale_rate > 0:
            planes = grayscale_planes(planes, self.bernoulli(batch, self.grayscale_rate))
        return from_planes(planes)

    def get_config(self):
        config = super().get_config()
        config.update({
            "strength": self.strength,
            "jitter_rate": self.jitter_rate,
            "grayscale_rate": self.grayscale_rate,
            "mode": self.mode,
            "variant": self.variant,
        })
        return config
