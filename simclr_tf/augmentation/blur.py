"""Gaussian blur with a per-image sigma, as two batched banded-matrix products.

Why our own layer: Keras core's ``RandomGaussianBlur`` (like the authors'
``batch_random_blur``) draws one sigma for the whole batch and has no
probability argument; the paper's recipe wants an independent sigma per image
and blur on half of the images.

How: each image gets a normalised 1-D Gaussian of ``kernel_size`` taps (its own
sigma; images that are not blurred get the identity kernel, so no select is
needed). The separable blur of image ``X`` is ``Gh @ X @ Gw^T`` with banded
matrices ``Gh (H, H)`` and ``Gw (W, W)`` built per image, which also fold in the
border handling, so the batch is blurred by the same two batched matmuls as the
crop (``crop.resample``). Border: reflection (``d c b | a b c d``), which keeps
the border brightness; the authors' code pads with zeros, which darkens a
border of ``kernel_size // 2`` pixels.

Why matrices: a sum of ``kernel_size`` shifted slices was slower under
``tf.function`` and not reliably faster under XLA, despite the matrices'
multiplies by zero; ``DepthwiseConv2D`` is very slow under XLA on CPU and
cannot take a kernel per image without folding the batch into channels.
Why dense, where the crop is block-banded: a block-banded blur cuts the
multiply-adds but building its overlapping windows costs as much memory
traffic as the matmul saves; the crop, whose dense matrices are wider and
whose gather moves uint8, does gain from it. The measurements are in
docs/BENCHMARKS.md, "Why the layers are written as they are".

The kernel side defaults to 10% of the image side made odd, as the authors'
code computes it: ``2 * ((side // 10) // 2) + 1``.
"""

import keras
from keras import ops

from simclr_tf.augmentation import _base, _random
from simclr_tf.augmentation.crop import resample


def default_kernel_size(side):
    return 2 * ((side // 10) // 2) + 1


def gaussian_kernels(sigma, kernel_size):
    """Normalised 1-D Gaussian kernels ``(B, kernel_size)`` for sigmas ``(B,)``."""
    radius = kernel_size // 2
    taps = ops.arange(-radius, radius + 1, dtype="float32")
    sigma = ops.reshape(sigma, (-1, 1))
    weights = ops.exp(-(taps[None, :] ** 2) / (2.0 * sigma * sigma))
    return weights / ops.sum(weights, axis=-1, keepdims=True)


def _reflect(index, size):
    index = ops.abs(index)
    reflected = ops.where(index > size - 1, 2 * (size - 1) - index, index)
    # In range whenever the kernel radius is below the side (checked when the
    # side is static); for a side known only at run time that is too small,
    # the clip repeats the edge instead of dropping kernel weight.
    return ops.clip(reflected, 0, size - 1)


def blur_matrices(kernels, size):
    """Per-image banded matrices ``(B, size, size)`` applying 1-D ``kernels``
    ``(B, K)`` with reflect borders: row ``i`` gathers ``i + t - K // 2``."""
    taps = kernels.shape[-1]
    offsets = ops.arange(taps) - taps // 2
    source = _reflect(ops.arange(size)[None, :] + offsets[:, None], size)  # (K, size)
    onehot = ops.cast(source[:, :, None] == ops.arange(size)[None, None, :], "float32")  # (K, size, size)
    return ops.reshape(ops.matmul(kernels, ops.reshape(onehot, (taps, -1))), (-1, size, size))


def separable_blur(images, kernels):
    """Blurs ``(B, H, W, C)`` images with per-image 1-D kernels ``(B, K)`` along
    both spatial axes (reflect borders; needs ``K // 2 < min(H, W)``)."""
    shape = ops.shape(images)
    rows = blur_matrices(kernels, images.shape[1] if images.shape[1] is not None else shape[1])
    cols = blur_matrices(kernels, images.shape[2] if images.shape[2] is not None else shape[2])
    return resample(images, rows, cols)


def random_blur(images, seed_generator, sigma_range, rate, kernel_size):
    """Blurs each image with probability ``rate`` and its own sigma."""
    batch = _base.batch_size(images)
    sigma = _random.uniform(seed_generator, (batch,), sigma_range[0], sigma_range[1])
    kernels = gaussian_kernels(sigma, kernel_size)
    if rate < 1.0:
        blur = _random.uniform(seed_generator, (batch,)) < rate
        identity = ops.cast(ops.arange(kernel_size) == kernel_size // 2, "float32")
        kernels = ops.where(blur[:, None], kernels, identity[None, :])
    return separable_blur(images, kernels)


@keras.saving.register_keras_serializable(package="simclr_tf")
class RandomGaussianBlur(_base.BaseAugmentation):
    """Gaussian blur with an independent sigma per image.

    Args:
        kernel_size: odd kernel side, or None for 10% of the shorter image side
            made odd (the paper's). None needs static height and width.
        sigma_range: sigma drawn uniformly per image from this range.
        rate: per-image probability of blurring (1.0 here; the paper's 0.5 is
            set by ``SimCLRAugmentation`` or ``RandomApply``).
        seed: int or None.

    Example:
    >>> import numpy as np
    >>> blur = RandomGaussianBlur(kernel_size=3, seed=0)
    >>> blur(np.random.rand(2, 8, 8, 3).astype("float32")).shape
    TensorShape([2, 8, 8, 3])

    Reference:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual
        Representations" (2020), appendix A.
    """

    def __init__(self, kernel_size=None, sigma_range=(0.1, 2.0), rate=1.0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        kernel_size = _base.validate_positive_int("kernel_size", kernel_size, allow_none=True)
        if kernel_size is not None and kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be odd. Received: kernel_size={kernel_size}")
        self.kernel_size = kernel_size
        self.sigma_range = _base.validate_range("sigma_range", sigma_range)
        if self.sigma_range[0] <= 0:
            raise ValueError(f"`sigma_range` must be positive. Received: sigma_range={sigma_range}")
        self.rate = _base.validate_rate("rate", rate)

    def augment(self, images, training):
        images = self.prepare(images)
        if not training:
            return images
        height, width = images.shape[1], images.shape[2]
        kernel_size = self.kernel_size
        if kernel_size is None:
            if height is None or width is None:
                raise ValueError(
                    "`RandomGaussianBlur(kernel_size=None)` needs static height and width to size the kernel. "
                    f"Received: images.shape={tuple(images.shape)}"
                )
            kernel_size = default_kernel_size(min(height, width))
        known = [s for s in (height, width) if s is not None]
        if known and kernel_size // 2 >= min(known):
            raise ValueError(
                f"`kernel_size` must be smaller than twice the image side. Received: kernel_size={kernel_size}, "
                f"images.shape={tuple(images.shape)}"
            )
        if kernel_size == 1:
            return images
        return random_blur(images, self.seed_generator, self.sigma_range, self.rate, kernel_size)

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size, "sigma_range": self.sigma_range, "rate": self.rate})
        return config
