"""SimCLR augmentation layers: vectorised, per-image random, XLA-compilable.

Every layer takes images with 1 or 3 channels, batched ``(B, H, W, C)`` or
one image ``(H, W, C)``, and returns float32 RGB in [0, 1] of the same rank.
See ``SimCLRAugmentation`` for the paper's whole policy.

Pixel values. The layers read their input the way Keras's image layers do,
on the 0-255 scale by default, and they also take images already scaled to
[0, 1]:

- Integer images (uint8 from TFDS, ``tf.io.decode_image`` and the
  ``simclr_tf.data`` loaders) are read as [0, 255].
- Floating images are read on the 0-255 scale (what
  ``keras.utils.image_dataset_from_directory`` yields, and what
  ``keras.Sequential`` passes on when it casts uint8 batches to float32),
  except that a batch whose values all lie in [0, 1] is read as [0, 1]
  (``x / 255``, ``tf.image.convert_image_dtype``, the output of another of
  these layers). The choice is made per batch from its maximum.
- ``value_range=(low, high)``, the argument Keras's image layers take,
  pins the scale for every dtype instead: ``low`` becomes 0 and ``high`` 1,
  e.g. ``(0, 255)`` for 0-255 floats whose batches may be all but black,
  ``(0, 1)``, ``(-1, 1)``, or ``(0, 65535)`` for 16-bit images.
- Refused, with an error naming the values: integers outside [0, 255]; floats
  below 0 or above 255; a floating batch whose maximum lies above 1 but not
  above 2 (it fits neither scale: [0, 1] images that resampling pushed above
  1, or a 0-255 batch black to within 1% grey); NaN and Inf; with
  ``value_range``, values outside it. Each scale allows 1e-3 of its width for
  resampling round-off (the output is clipped to [0, 1]).

Eager calls check every pixel. Traced calls (``fit``, ``tf.function``,
``tf.data``) check floating input with one min/max reduction per batch, an
in-graph assert that XLA drops; integer input is not value-checked there
(the data loaders check it where data enters). Models saved before the
0-255 default load with it: every input they accepted gives the same views
(errors in docs/ERRORS.md, rows A*).
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
