"""ResNet encoders (v1, as in the SimCLR paper) as functional Keras models.

`resnet(depth, ...)` maps float images in [0, 1] to globally average-pooled
features h. Basic blocks for depths 10, 18 and 34, bottleneck blocks for 14,
50, 101 and 152 (10 and 14: one block per stage, CPU-budget encoders that
are not in the paper; 14's bottleneck gives an h 4x the last stage's
width); widths scale with `width_multiplier` (1x/2x/4x in the paper; a
fraction such as 0.25 gives the small 16-128 layout used on CPUs). The last
batch norm of each residual block starts with gamma = 0 so every block starts
as the identity, as in the paper (following Goyal et al., 2017). BN uses
momentum 0.9 and epsilon 1e-5 like the authors' code; `sync_batch_norm=True`
computes BN statistics over the global batch across replicas ("global BN").

The result is a plain functional `keras.Model`, so it serialises to `.keras`,
fine-tunes, and plugs into `keras.Sequential([encoder, Dense(10)])`.
"""

import keras
import numpy as np
from keras import layers

from simclr_tf.validation import is_int, is_real

_BLOCKS = {
    10: ("basic", (1, 1, 1, 1)),
    14: ("bottleneck", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5


def _bn(name, sync, zero_gamma=False):
    return layers.BatchNormalization(
        momentum=_BN_MOMENTUM,
        epsilon=_BN_EPSILON,
        gamma_initializer="zeros" if zero_gamma else "ones",
        synchronized=sync,
        name=name,
    )


def _conv(filters, kernel, stride, name):
    return layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )


def _block(x, filters, stride, kind, name, sync, zero_gamma):
    out_filters = filters * 4 if kind == "bottleneck" else filters
    shortcut = x
    if stride != 1 or x.shape[-1] != out_filters:
        shortcut = _conv(out_filters, 1, stride, f"{name}_proj_conv")(x)
        shortcut = _bn(f"{name}_proj_bn", sync)(shortcut)
    if kind == "basic":
        x = _conv(filters, 3, stride, f"{name}_conv1")(x)
        x = _bn(f"{name}_bn1", sync)(x)
        x = layers.ReLU(name=f"{name}_relu1")(x)
        x = _conv(filters, 3, 1, f"{name}_conv2")(x)
        x = _bn(f"{name}_bn2", sync, zero_gamma=zero_gamma)(x)
    else:
        x = _conv(filters, 1, 1, f"{name}_conv1")(x)
        x = _bn(f"{name}_bn1", sync)(x)
        x = layers.ReLU(name=f"{name}_relu1")(x)
        x = _conv(filters, 3, stride, f"{name}_conv2")(x)
        x = _bn(f"{name}_bn2", sync)(x)
        x = layers.ReLU(name=f"{name}_relu2")(x)
        x = _conv(out_filters, 1, 1, f"{name}_conv3")(x)
        x = _bn(f"{name}_bn3", sync, zero_gamma=zero_gamma)(x)
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.ReLU(name=f"{name}_out")(x)


def resnet(
    depth,
    width_multiplier=1,
    input_shape=(224, 224, 3),
    small_images=False,
    sync_batch_norm=False,
    zero_init_residual=True,
    stem_stride=1,
    stage_widths=None,
    stem_pool=False,
    name=None,
):
    """Builds a ResNet v1 encoder from images to pooled features.

    Args:
        depth: one of 10, 14, 18, 34, 50, 101, 152 (10 and 14: one basic
            or bottleneck block per stage, cheap encoders for CPU budgets;
            not in the paper).
        width_multiplier: positive factor on the channel widths (64, 128,
            256, 512 at 1x); the paper uses 1, 2 and 4 for ResNet-50.
            Fractions give small CPU-sized encoders (0.25 -> 16..128).
        input_shape: (height, width, channels) of the float [0, 1] input;
            height and width may be None.
        small_images: the CIFAR-style stem (3x3 stride-1 convolution, no
            max-pool) for images of about 32 px.
        sync_batch_norm: global BN: batch statistics over all replicas.
        stem_stride: stride of the small-image stem (1 in the paper; 2
            quarters the compute of every later layer, a CPU budget option).
        zero_init_residual: start the last BN gamma of each residual block
            at 0 (the paper's choice); False gives the plain He/ones init.
        stage_widths: optional 4 positive ints, the channel width of each
            stage (the stem takes the first); overrides the widths that
            `width_multiplier` gives (which may then be None). A wide last
            stage is a cheap way to a wider h on small images, where the
            last stage runs at 2x2.
        stem_pool: with the small-image stem at stride 1, add a 3x3 stride-2
            max-pool after it (as the ImageNet stem has): the later layers
            cost what `stem_stride=2` makes them cost, but the stem
            convolution sees every pixel instead of every other one.
        name: model name; defaults to `resnet{depth}`.

    Returns:
        A functional `keras.Model` whose output is (batch, features), with
        features = 512 * width (basic blocks) or 2048 * width (bottleneck),
        or the last of `stage_widths` (times 4 for bottleneck blocks).

    Example:

    >>> encoder = resnet(18, width_multiplier=0.125, input_shape=(32, 32, 3),
    ...                  small_images=True)
    >>> encoder.output_shape
    (None, 64)

    Reference:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016;
        Chen et al., SimCLR, ICML 2020 (appendix B.9 for small images).
    """
    if not is_int(depth) or depth not in _BLOCKS:
        raise ValueError(
            f"`depth` must be one of {sorted(_BLOCKS)}. Received: depth={depth!r}"
        )
    depth = int(depth)
    if (stage_widths is None or width_multiplier is not None) and (
        not is_real(width_multiplier) or not width_multiplier > 0
    ):
        raise ValueError(
            "`width_multiplier` must be a positive number. "
            f"Received: width_multiplier={width_multiplier!r} "
            f"(type {type(width_multiplier).__name__})"
        )
    if width_multiplier is not None:
        width_multiplier = float(width_multiplier)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise ValueError(
            "`input_shape` must be (height, width, channels) with 1 or 3 "
            f"channels. Received: input_shape={input_shape}"
        )
    if isinstance(stem_stride, (bool, np.bool_)) or stem_stride not in (1, 2):
        raise ValueError(f"`stem_stride` must be 1 or 2. Received: stem_stride={stem_stride!r}")
    stem_stride = int(stem_stride)
    if not isinstance(stem_pool, (bool, np.bool_)):
        raise ValueError(f"`stem_pool` must be True or False. Received: stem_pool={stem_pool!r}")
    if stem_pool and not (small_images and stem_stride == 1):
        raise ValueError(
            "`stem_pool=True` needs the small-image stem at stride 1 (the ImageNet stem "
            "already pools). Received: "
            f"small_images={small_images!r}, stem_stride={stem_stride!r}"
        )
    kind, counts = _BLOCKS[depth]
    if stage_widths is None:
        base = max(1, int(round(64 * width_multiplier)))
        stage_widths = tuple(base * 2**stage for stage in range(4))
    elif (
        not isinstance(stage_widths, (list, tuple))
        or len(stage_widths) != 4
        or not all(is_int(w) and w > 0 for w in stage_widths)
    ):
        raise ValueError(
            "`stage_widths` must be 4 positive ints (one per stage). "
            f"Received: stage_widths={stage_widths!r}"
        )
    stage_widths = tuple(int(w) for w in stage_widths)
    base = stage_widths[0]

    inputs = keras.Input(shape=input_shape, name="images")
    if small_images:
        x = _conv(base, 3, stem_stride, "stem_conv")(inputs)
        x = _bn("stem_bn", sync_batch_norm)(x)
        x = layers.ReLU(name="stem_relu")(x)
        if stem_pool:
            x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    else:
        x = _conv(base, 7, 2, "stem_conv")(inputs)
        x = _bn("stem_bn", sync_batch_norm)(x)
        x = layers.ReLU(name="stem_relu")(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, count in enumerate(counts):
        filters = stage_widths[stage]
        for block in range(count):
            stride = 2 if (stage > 0 and block == 0) else 1
            x = _block(
                x, filters, stride, kind, f"stage{stage + 1}_block{block + 1}",
                sync_batch_norm,
                zero_init_residual,
            )
    outputs = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, outputs, name=name or f"resnet{depth}")
