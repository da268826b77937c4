"""SimCLR augmentation layers: vectorised, per-image random, XLA-compilable.

Every layer takes uint8 ([0, 255]) or float ([0, 1]) images with 1 or 3
channels, batched or single, and returns float32 RGB in [0, 1];
``value_range=(low, high)`` declares another input scale (e.g. ``(0, 255)``
for floats, as ``keras.Sequential`` passes uint8 data on). See
``SimCLRAugmentation`` for the paper's whole policy.
"""

from simclr_tf.augmentation.extra import Cutout, GaussianNoise, RandomRotate90, SobelFilter
from simclr_tf.augmentation.apply import RandomApply
from simclr_tf.augmentation.blur import RandomGaussianBlur
from simclr_tf.augmentation.color import ColorDistortion, RandomColorJitter, RandomGrayscale
from simclr_tf.augmentation.crop import RandomResizedCrop
from simclr_tf.augmentation.flip import RandomFlip
from simclr_tf.augmentation.pipeline import SimCLRAugmentation

__all__ = [
    "SimCLRAugmentation",
    "RandomResizedCrop",
    "RandomFlip",
    "RandomColorJitter",
    "RandomGrayscale",
    "RandomGaussianBlur",
    "RandomApply",
    "ColorDistortion",
    "Cutout",
    "SobelFilter",
    "GaussianNoise",
    "RandomRotate90",
]
