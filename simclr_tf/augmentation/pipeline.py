"""SimCLRAugmentation: the paper's whole augmentation policy as one layer.

Crop (with the flip folded into its interpolation matrix), colour distortion
and blur run as one vectorised pass over the batch, every image drawing its own
parameters. It reuses the component layers' code (``RandomResizedCrop.crop``,
``ColorDistortion.distort``, ``blur.random_blur``) with one seed generator, so
one seed fixes the whole view.
"""

import keras

from simclr_tf.augmentation import _base
from simclr_tf.augmentation.blur import default_kernel_size, random_blur
from simclr_tf.augmentation.color import JITTER_VARIANTS, ColorDistortion
from simclr_tf.augmentation.crop import INTERPOLATIONS, RandomResizedCrop


@keras.saving.register_keras_serializable(package="simclr_tf")
class SimCLRAugmentation(_base.BaseAugmentation):
    """The SimCLR augmentation: random resized crop, flip, colour distortion, blur.

    ``augmenter(images, training=True)`` returns one random view per image:
    float32 in [0, 1], shape ``(B, image_size, image_size, 3)``, from uint8
    ([0, 255]) or float ([0, 1]) images with 1 or 3 channels, any height and
    width, batched or one image. Two calls give two independent views.
    ``training=False`` gives the evaluation transform: the centred crop of
    ``eval_crop_fraction`` of the side, resized (the authors' ``center_crop``).

    Pixel values follow the rule of ``simclr_tf.augmentation``: uint8, floats
    on the 0-255 scale (``keras.utils.image_dataset_from_directory``,
    ``keras.Sequential`` on uint8) and floats in [0, 1] all work as they come.

    Args:
        image_size: output side in pixels.
        color_strength: colour distortion strength ``s`` (1.0 ImageNet, 0.5 CIFAR-10).
        blur: Gaussian blur on or off; None means on unless ``image_size <= 32``.
        seed: int or None. The same seed gives the same sequence of views
            when calls run one at a time (eagerly, in a model's step, or in a
            sequential `tf.data` map). Under `tf.distribute`, each replica
            draws its own views from the shared state. In a `tf.data` map
            with `num_parallel_calls` > 1, concurrent calls may read the
            generator state before either advances it (the read and the
            advance are two ops), so two batches can get the same random
            parameters and the order is not reproducible: map sequentially,
            or run the augmenter in the training step as `SimCLR` does.
        crop_area_range: crop area as a fraction of the image area.
        crop_aspect_ratio_range: crop aspect ratio (width / height), log-uniform.
        flip: horizontal flip with probability 0.5.
        jitter_rate: per-image probability of colour jitter.
        grayscale_rate: per-image probability of grayscale.
        blur_rate: per-image probability of blur (when blur is on).
        blur_sigma_range: per-image blur sigma range.
        jitter_variant: ``"v2"`` (multiplicative brightness) or ``"v1"`` (additive).
        interpolation: ``"bicubic"`` (the paper's) or ``"bilinear"``.
        antialias: widen the resize kernel when a crop is larger than the output.
        eval_crop_fraction: side fraction of the centred eval crop; None means
            0.875 unless ``image_size <= 32`` (then 1.0, a plain resize), as the
            authors' code.
        value_range: None (the default rule of ``simclr_tf.augmentation``)
            or the input's ``(low, high)`` for any dtype; the output is
            always [0, 1].

    Example:
    >>> import numpy as np
    >>> augment = SimCLRAugmentation(16, color_strength=0.5, seed=0)
    >>> images = np.random.randint(0, 256, (4, 24, 20, 3), dtype="uint8")
    >>> view1, view2 = augment(images), augment(images)
    >>> view1.shape, str(view1.dtype)
    (TensorShape([4, 16, 16, 3]), "<dtype: 'float32'>")

    Reference:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual
        Representations" (ICML 2020), appendix A; Chen et al., "Big
        Self-Supervised Models are Strong Semi-Supervised Learners" (2020).
    """

    def __init__(self, image_size, color_strength=1.0, blur=None, seed=None, crop_area_range=(0.08, 1.0),
                 crop_aspect_ratio_range=(3 / 4, 4 / 3), flip=True, jitter_rate=0.8, grayscale_rate=0.2,
                 blur_rate=0.5, blur_sigma_range=(0.1, 2.0), jitter_variant="v2", interpolation="bicubic",
                 antialias=True, eval_crop_fraction=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.image_size = _base.validate_positive_int("image_size", image_size)
        self.color_strength = _base.validate_non_negative("color_strength", color_strength)
        if blur is not None and not isinstance(blur, bool):
            raise ValueError(f"`blur` must be True, False or None. Received: blur={blur}")
        self.blur = blur
        self.use_blur = (self.image_size > 32) if blur is None else blur
        self.crop_area_range = _base.validate_range("crop_area_range", crop_area_range, 0.0, 1.0)
        if self.crop_area_range[1] <= 0:
            raise ValueError(
                f"`crop_area_range` must allow a positive area. Received: crop_area_range={crop_area_range}"
            )
        self.crop_aspect_ratio_range = _base.validate_range("crop_aspect_ratio_range", crop_aspect_ratio_range)
        if self.crop_aspect_ratio_range[0] <= 0:
            raise ValueError(
                "`crop_aspect_ratio_range` must be positive. "
                f"Received: crop_aspect_ratio_range={crop_aspect_ratio_range}"
            )
        if not isinstance(flip, bool):
            raise ValueError(f"`flip` must be a bool. Received: flip={flip}")
        self.flip = flip
        self.jitter_rate = _base.validate_rate("jitter_rate", jitter_rate)
        self.grayscale_rate = _base.validate_rate("grayscale_rate", grayscale_rate)
        self.blur_rate = _base.validate_rate("blur_rate", blur_rate)
        self.blur_sigma_range = _base.validate_range("blur_sigma_range", blur_sigma_range)
        if self.blur_sigma_range[0] <= 0:
            raise ValueError(f"`blur_sigma_range` must be positive. Received: blur_sigma_range={blur_sigma_range}")
        if jitter_variant not in JITTER_VARIANTS:
            raise ValueError(
                f"`jitter_variant` must be one of {JITTER_VARIANTS}. Received: jitter_variant={jitter_variant}"
            )
        self.jitter_variant = jitter_variant
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"`interpolation` must be one of {INTERPOLATIONS}. Received: interpolation={interpolation}")
        self.interpolation = interpolation
        self.antialias = _base.validate_bool("antialias", antialias)
        if eval_crop_fraction is not None and (
                not _base.is_number(eval_crop_fraction) or not 0.0 < eval_crop_fraction <= 1.0):
            raise ValueError(
                f"`eval_crop_fraction` must be in (0, 1] or None. Received: eval_crop_fraction={eval_crop_fraction}"
            )
        self.eval_crop_fraction = eval_crop_fraction
        fraction = eval_crop_fraction if eval_crop_fraction is not None else (
            1.0 if self.image_size <= 32 else 0.875)
        # Sub-layers hold the arguments; they are built on this layer's seed
        # generator (creating none of their own, and not tracking it again), so
        # the layer has exactly one random state and `variables` lists it once.
        self._crop = RandomResizedCrop(
            self.image_size, self.crop_area_range, self.crop_aspect_ratio_range, interpolation, self.antialias,
            flip_rate=0.5 if flip else 0.0, eval_crop_fraction=fraction, value_range=self.value_range,
            name=f"{self.name}_crop", _seed_generator=self.seed_generator,
        )
        self._color = ColorDistortion(
            self.color_strength, self.jitter_rate, self.grayscale_rate, variant=jitter_variant,
            name=f"{self.name}_color", _seed_generator=self.seed_generator,
        )
        self.kernel_size = default_kernel_size(self.image_size)

    def call(self, images, training=True):
        images = _base.check_images(images, layer=self.name, value_range=self.value_range)
        unbatched = len(images.shape) == 3
        if unbatched:
            images = keras.ops.expand_dims(images, 0)
        views = self._crop.crop(images, training=training)
        if training:
            views = self._color.distort(views)
            if self.use_blur and self.blur_rate > 0 and self.kernel_size > 1:
                views = random_blur(views, self.seed_generator, self.blur_sigma_range, self.blur_rate,
                                    self.kernel_size)
        return keras.ops.squeeze(views, 0) if unbatched else views

    def output_spatial_shape(self, height, width):
        return self.image_size, self.image_size

    def get_config(self):
        config = super().get_config()
        config.update({
            "image_size": self.image_size,
            "color_strength": self.color_strength,
            "blur": self.blur,
            "crop_area_range": self.crop_area_range,
            "crop_aspect_ratio_range": self.crop_aspect_ratio_range,
            "flip": self.flip,
            "jitter_rate": self.jitter_rate,
            "grayscale_rate": self.grayscale_rate,
            "blur_rate": self.blur_rate,
            "blur_sigma_range": self.blur_sigma_range,
            "jitter_variant": self.jitter_variant,
            "interpolation": self.interpolation,
            "antialias": self.antialias,
            "eval_crop_fraction": self.eval_crop_fraction,
        })
        return config
