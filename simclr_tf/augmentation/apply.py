"""RandomApply: applies any image layer to a random subset of a batch.

The wrapped layer runs on the whole batch (one vectorised pass) and a per-image
mask selects its output or the input, so the cost is one call of the layer plus
a select. The wrapped layer may be ours, a Keras core layer or a keras-cv layer:
it receives float32 RGB in [0, 1] and must keep the shape.
"""

import keras
from keras import ops

from simclr_tf.augmentation import _base


@keras.saving.register_keras_serializable(package="simclr_tf")
class RandomApply(_base.BaseAugmentation):
    """Applies ``layer`` to each image with probability ``rate``.

    Args:
        layer: a Keras layer mapping ``(B, H, W, 3)`` float32 to the same shape.
        rate: per-image probability of applying it.
        seed: int or None (the mask's seed; the layer keeps its own).

    Example:
    >>> import numpy as np
    >>> from simclr_tf.augmentation import RandomGrayscale
    >>> apply = RandomApply(RandomGrayscale(rate=1.0), rate=0.5, seed=0)
    >>> apply(np.random.rand(4, 2, 2, 3).astype("float32")).shape
    TensorShape([4, 2, 2, 3])

    Reference:
        The authors' ``random_apply`` (google-research/simclr, ``data_util.py``),
        done per image on a batch.
    """

    def __init__(self, layer, rate=0.5, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if isinstance(layer, dict):
            layer = keras.saving.deserialize_keras_object(layer)
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(f"`layer` must be a keras.layers.Layer. Received: layer={layer!r}")
        if isinstance(layer, _base.BaseAugmentation) and layer.value_range is not None:
            raise ValueError(
                "`layer` receives this layer's float [0, 1] batch, so it must be built without "
                "`value_range` (declare the input's scale on the RandomApply instead). "
                f"Received: layer.value_range={layer.value_range}"
            )
        self.layer = layer
        self.rate = _base.validate_rate("rate", rate)

    def augment(self, images, training):
        images = self.prepare(images)
        if not training or self.rate == 0.0:
            return images
        out = self.layer(images, training=training)
        known = zip(tuple(out.shape), tuple(images.shape))
        if len(out.shape) != len(images.shape) or any(a is not None and b is not None and a != b for a, b in known):
            raise ValueError(
                f"`layer` must keep the image shape. Received: layer={self.layer.name} mapping "
                f"{tuple(images.shape)} to {tuple(out.shape)}"
            )
        out = ops.cast(out, "float32")
        if self.rate == 1.0:
            return out
        return _base.select_images(self.bernoulli(_base.batch_size(images), self.rate), out, images)

    def get_config(self):
        config = super().get_config()
        config.update({"layer": keras.saving.serialize_keras_object(self.layer), "rate": self.rate})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)
