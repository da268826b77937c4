"""The ablation operators of the paper's figure 4: cutout, Sobel filtering,
Gaussian noise and rotation by {90, 180, 270} degrees.

None of them is in the paper's final recipe; they exist so the ablations can be
rerun. Keras core has ``GaussianNoise`` (a regulariser, additive noise with no
clipping, active only in training) and ``RandomRotation`` (continuous angles
through an image projective transform, which has no XLA kernel), neither of
which is the operator the paper studies, so these are written here on
``keras.ops``, each image drawing its own parameters. The paper does not give
the cutout size or noise level; the defaults below (a square of half the image
side as DeVries and Taylor use on CIFAR-10, noise standard deviation 0.1) are
our choices and are arguments.
"""

import keras
from keras import ops

from simclr_tf.augmentation import _base, _random
from simclr_tf.augmentation.color import rgb_to_grayscale


def _per_image(x):
    return ops.reshape(x, (-1, 1, 1, 1))


@keras.saving.register_keras_serializable(package="simclr_tf")
class Cutout(_base.BaseAugmentation):
    """Fills one random square per image with ``fill_value``.

    The square's side is ``size * min(height, width)`` pixels (a square on
    non-square images too, as DeVries and Taylor's cutout). Its centre is
    uniform over the image, so it may be clipped at the border.

    Args:
        size: side of the square as a fraction of the image's shorter side,
            in (0, 1].
        fill_value: value written into the square, in [0, 1].
        seed: int or None.

    Example:
    >>> import numpy as np
    >>> Cutout(size=0.5, seed=0)(np.ones((2, 8, 8, 3), "float32")).shape
    TensorShape([2, 8, 8, 3])

    Reference:
        DeVries and Taylor, "Improved Regularization of Convolutional Neural
        Networks with Cutout" (2017); Chen et al. (2020), figure 4.
    """

    def __init__(self, size=0.5, fill_value=0.0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not _base.is_finite_number(size) or not 0.0 < size <= 1.0:
            raise ValueError(f"`size` must be a fraction in (0, 1]. Received: size={size}")
        self.size = float(size)
        self.fill_value = _base.validate_rate("fill_value", fill_value)

    def augment(self, images, training):
        images = self.prepare(images)
        if not training:
            return images
        shape = ops.shape(images)
        height = ops.cast(shape[1], "float32")
        width = ops.cast(shape[2], "float32")
        centre = self.uniform((_base.batch_size(images), 2))
        half = self.size * ops.minimum(height, width) / 2.0
        rows = ops.cast(ops.arange(shape[1]), "float32")[None, :] + 0.5
        cols = ops.cast(ops.arange(shape[2]), "float32")[None, :] + 0.5
        in_rows = ops.abs(rows - centre[:, 0:1] * height) < half
        in_cols = ops.abs(cols - centre[:, 1:2] * width) < half
        inside = ops.logical_and(in_rows[:, :, None, None], in_cols[:, None, :, None])
        return ops.where(inside, self.fill_value, images)

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "fill_value": self.fill_value})
        return config


@keras.saving.register_keras_serializable(package="simclr_tf")
class SobelFilter(_base.BaseAugmentation):
    """Replaces each image by its Sobel edge magnitude (grayscale, 3 channels).

    The luma image is filtered with the 3x3 Sobel kernels (reflect borders, as
    ``tf.image.sobel_edges``), and the gradient magnitude is divided by its
    per-image maximum so the output spans [0, 1].

    Args:
        seed: unused (the filter is deterministic); kept for a uniform signature.

    Example:
    >>> import numpy as np
    >>> SobelFilter()(np.random.rand(1, 6, 6, 3).astype("float32")).shape
    TensorShape([1, 6, 6, 3])

    Reference:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual
        Representations" (2020), figure 4.
    """

    def augment(self, images, training):
        images = self.prepare(images)
        if not training:
            return images
        if any(side is not None and side < 2 for side in images.shape[1:3]):
            raise ValueError(
                "SobelFilter needs `images` at least 2 pixels high and wide (it reflects the borders). "
                f"Received: images.shape={tuple(images.shape)}"
            )
        gray = rgb_to_grayscale(images)[..., :1]
        padded = ops.pad(gray, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
        shape = ops.shape(images)
        h, w = shape[1], shape[2]

        def tap(dy, dx):
            return padded[:, dy:dy + h, dx:dx + w, :]

        gx = (tap(0, 2) + 2.0 * tap(1, 2) + tap(2, 2)) - (tap(0, 0) + 2.0 * tap(1, 0) + tap(2, 0))
        gy = (tap(2, 0) + 2.0 * tap(2, 1) + tap(2, 2)) - (tap(0, 0) + 2.0 * tap(0, 1) + tap(0, 2))
        magnitude = ops.sqrt(gx * gx + gy * gy)
        peak = ops.max(magnitude, axis=(1, 2, 3), keepdims=True)
        magnitude = magnitude / ops.maximum(peak, 1e-12)
        return ops.concatenate([magnitude, magnitude, magnitude], axis=-1)


@keras.saving.register_keras_serializable(package="simclr_tf")
class GaussianNoise(_base.BaseAugmentation):
    """Adds i.i.d. Gaussian noise and clips to [0, 1].

    Each image draws its own standard deviation uniformly from
    ``stddev_range`` (a fixed level when both ends are equal).

    Args:
        stddev_range: range of the per-image noise standard deviation.
        seed: int or None.

    Example:
    >>> import numpy as np
    >>> GaussianNoise((0.1, 0.1), seed=0)(np.full((1, 4, 4, 3), 0.5, "float32")).shape
    TensorShape([1, 4, 4, 3])

    Reference:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual
        Representations" (2020), figure 4.
    """

    def __init__(self, stddev_range=(0.1, 0.1), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.stddev_range = _base.validate_range("stddev_range", stddev_range, 0.0)

    def augment(self, images, training):
        images = self.prepare(images)
        if not training:
            return images
        stddev = self.uniform((_base.batch_size(images),), *self.stddev_range)
        noise = _random.normal(self.seed_generator, ops.shape(images))
        return ops.clip(images + noise * _per_image(stddev), 0.0, 1.0)

    def get_config(self):
        config = super().get_config()
        config.update({"stddev_range": self.stddev_range})
        return config


@keras.saving.register_keras_serializable(package="simclr_tf")
class RandomRotate90(_base.BaseAugmentation):
    """Rotates each image by 90, 180 or 270 degrees (uniformly, per image).

    In training, images must be square, batched or not (a 90-degree turn of
    a non-square image changes its shape, and a batch cannot mix shapes), with
    a height and width known when the call is traced. ``training=False``
    returns the images unchanged, of any shape.

    Args:
        seed: int or None.

    Example:
    >>> import numpy as np
    >>> RandomRotate90(seed=0)(np.random.rand(2, 4, 4, 3).astype("float32")).shape
    TensorShape([2, 4, 4, 3])

    Reference:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual
        Representations" (2020), figure 4.
    """

    def check_input_shape(self, shape, training=True):
        # On the shape as passed (not the internal batch of one), and before
        # tracing when the sides are known; a side of None is allowed for
        # symbolic inputs (`augment` refuses it if still unknown when traced).
        height, width = shape[-3], shape[-2]
        if training and height is not None and width is not None and height != width:
            raise ValueError(f"`RandomRotate90` needs square images. Received: images.shape={tuple(shape)}")

    def augment(self, images, training):
        images = self.prepare(images)
        if not training:
            return images
        height, width = images.shape[1], images.shape[2]
        if height is None or width is None:
            raise ValueError(
                "`RandomRotate90` needs square images of static height and width. "
                f"Received: images of height={height}, width={width}"
            )
        quarter = ops.floor(self.uniform((_base.batch_size(images),), 1.0, 4.0))
        transposed = ops.transpose(images, (0, 2, 1, 3))
        rot90 = ops.flip(transposed, axis=1)  # counter-clockwise, as tf.image.rot90
        rot180 = ops.flip(ops.flip(images, axis=1), axis=2)
        rot270 = ops.flip(transposed, axis=2)
        return _base.select_images(quarter == 1.0, rot90, _base.select_images(quarter == 2.0, rot180, rot270))
