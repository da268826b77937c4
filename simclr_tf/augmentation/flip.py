"""Random horizontal flip, per image.

Why our own layer rather than ``keras.layers.RandomFlip``: the Keras layer
flips both axes by default, has no probability argument and keeps uint8 input
on the [0, 255] scale, while every layer here returns float32 RGB in [0, 1].
In ``SimCLRAugmentation`` the flip is not a separate pass: it is folded into
the crop's horizontal interpolation matrix (``RandomResizedCrop(flip_rate=)``).
"""

import keras
from keras import ops

from simclr_tf.augmentation import _base


@keras.saving.register_keras_serializable(package="simclr_tf")
class RandomFlip(_base.BaseAugmentation):
    """Flips each image left-right with probability ``rate``.

    Args:
        rate: per-image flip probability (the paper's 0.5).
        seed: int or None.

    Example:
    >>> import numpy as np
    >>> RandomFlip(rate=1.0)(np.arange(2, dtype="float32").reshape(1, 1, 2, 1))[..., 0]
    <tf.Tensor: shape=(1, 1, 2), dtype=float32, numpy=array([[[1., 0.]]], dtype=float32)>

    Reference:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual
        Representations" (2020), appendix A.
    """

    def __init__(self, rate=0.5, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _base.validate_rate("rate", rate)

    def augment(self, images, training):
        images = self.prepare(images)
        if not training:
            return images
        flip = self.bernoulli(_base.batch_size(images), self.rate)
        return _base.select_images(flip, ops.flip(images, axis=2), images)

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate})
        return config
