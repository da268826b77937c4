"""The seven operators of the paper's composition study (figure 5) and the
per-cell augmenter that applies an ordered pair of them.

As in the paper, every image is first brought to one fixed size (here a
deterministic resize of the whole image: at 28-96 px there is no room for the
random crop the paper uses on ImageNet before the studied transforms), then
the first operator, then the second, each at full rate (no `RandomApply`
around them). A diagonal cell (the same operator twice) applies it once.

Operator parameters come from the config's `operators` section; what the
paper leaves open (cutout size, noise level) is our choice and lives there.
"""

import keras

import simclr_tf

OPERATORS = ("crop", "cutout", "color", "sobel", "noise", "blur", "rotate")


def _crop(size, params, seed):
    return simclr_tf.RandomResizedCrop(size, seed=seed, **params)


def _cutout(size, params, seed):
    return simclr_tf.Cutout(seed=seed, **params)


def _color(size, params, seed):
    return simclr_tf.ColorDistortion(seed=seed, **params)


def _sobel(size, params, seed):
    return simclr_tf.SobelFilter(**params)


def _noise(size, params, seed):
    return simclr_tf.GaussianNoise(seed=seed, **params)


def _blur(size, params, seed):
    return simclr_tf.RandomGaussianBlur(seed=seed, **params)


def _rotate(size, params, seed):
    return simclr_tf.RandomRotate90(seed=seed, **params)


# name -> factory(image_size, params, seed) -> layer mapping float32 RGB
# (B, S, S, 3) in [0, 1] to the same shape.
FACTORIES = {
    "crop": _crop,
    "cutout": _cutout,
    "color": _color,
    "sobel": _sobel,
    "noise": _noise,
    "blur": _blur,
    "rotate": _rotate,
}


class ComposedAugmenter(keras.layers.Layer):
    """Fixed resize to `image_size`, then `transforms` in order.

    `training=False` (evaluation, and the untouched branch of a one-branch
    cell) gives the resized image alone.

    Args:
        image_size: output side in pixels.
        transforms: layers applied in order after the resize.
    """

    def __init__(self, image_size, transforms, **kwargs):
        super().__init__(**kwargs)
        self.image_size = image_size
        # eval_crop_fraction=1 and training=False: the whole image, resized.
        self.base = simclr_tf.RandomResizedCrop(image_size, eval_crop_fraction=1.0, name="resize")
        self.transforms = list(transforms)
        self.built = True

    def call(self, images, training=True):
        views = self.base(images, training=False)
        if training:
            for layer in self.transforms:
                views = layer(views, training=True)
        return views

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-3]) + (self.image_size, self.image_size, 3)


def pair_augmenter(pair, image_size, params=None, seed=None, factories=None):
    """The augmenter of composition cell `pair = (first, second)`.

    Args:
        pair: two operator names; `(op, op)` is the single operator.
        image_size: output side in pixels.
        params: `{operator: kwargs}` for the factories (the config's
            `operators` section).
        seed: int or None; operator i gets `seed + i`.
        factories: `{name: factory(image_size, kwargs, seed)}`; defaults to
            `FACTORIES` (tests pass deterministic stand-ins).

    Returns:
        A `ComposedAugmenter`.

    Raises:
        ValueError: naming an unknown operator.
    """
    factories = FACTORIES if factories is None else factories
    params = params or {}
    names = list(pair)
    if len(names) != 2:
        raise ValueError(f"A composition cell is a pair (first, second). Received: pair={pair!r}")
    for name in names:
        if name not in factories:
            raise ValueError(f"Unknown operator; known: {sorted(factories)}. Received: {name!r}")
    if names[0] == names[1]:
        names = names[:1]
    transforms = [
        factories[name](image_size, dict(params.get(name, {})), None if seed is None else seed + i)
        for i, name in enumerate(names)
    ]
    return ComposedAugmenter(image_size, transforms, name="compose_" + "_".join(names))
