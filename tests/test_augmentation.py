"""Tests for simclr_tf.augmentation: statistics, references, modes, contract,
and input and argument checks."""

import itertools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import simclr_tf
from simclr_tf import augmentation as aug
from simclr_tf import callbacks
from simclr_tf.augmentation import blur as blur_lib
from simclr_tf.augmentation import color as color_lib
from simclr_tf.augmentation import crop as crop_lib
from tests import layer_checks
from tests.layer_checks import LayerCase

ALL_LAYERS = [
    lambda **kw: aug.SimCLRAugmentation(16, seed=1, blur=True, **kw),
    lambda **kw: aug.RandomResizedCrop(16, seed=1, flip_rate=0.5, **kw),
    lambda **kw: aug.RandomFlip(seed=1, **kw),
    lambda **kw: aug.RandomColorJitter(seed=1, **kw),
    lambda **kw: aug.RandomGrayscale(seed=1, **kw),
    lambda **kw: aug.RandomGaussianBlur(seed=1, **kw),
    lambda **kw: aug.RandomApply(aug.RandomGrayscale(rate=1.0), rate=0.5, seed=1, **kw),
    lambda **kw: aug.ColorDistortion(seed=1, **kw),
    lambda **kw: aug.Cutout(seed=1, **kw),
    lambda **kw: aug.SobelFilter(**kw),
    lambda **kw: aug.GaussianNoise(seed=1, **kw),
    lambda **kw: aug.RandomRotate90(seed=1, **kw),
]
LAYER_IDS = [
    "SimCLRAugmentation", "RandomResizedCrop", "RandomFlip", "RandomColorJitter", "RandomGrayscale",
    "RandomGaussianBlur", "RandomApply", "ColorDistortion", "Cutout", "SobelFilter", "GaussianNoise",
    "RandomRotate90",
]


def _rgb(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype("float32")


def _uint8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape).astype("uint8")


def _per_image_changed(a, b, tol=1e-4):
    return np.abs(np.asarray(a) - np.asarray(b)).reshape(len(a), -1).max(axis=1) > tol


# ---------------------------------------------------------------- crop


def _expected_area_fraction(lo=0.08, hi=1.0):
    # Density of the accepted area fraction s for a square image: 1 where every
    # aspect ratio fits (s <= 3/4), else P(|log r| <= -log s) = -log(s) / log(4/3).
    s = np.linspace(lo, hi, 200001)
    density = np.where(s <= 0.75, 1.0, -np.log(s) / math.log(4 / 3))
    return np.trapezoid(s * density, s) / np.trapezoid(density, s)


def test_crop_boxes_statistics():
    gen = keras.random.SeedGenerator(0)
    y0, x0, h, w = (np.asarray(t) for t in crop_lib.sample_boxes(gen, 4000, 32, 32))
    area = h * w / (32 * 32)
    assert area.min() >= 0.08 - 1e-6 and area.max() <= 1.0 + 1e-6
    assert abs(area.mean() - _expected_area_fraction()) < 0.01
    ratio = w / h
    assert ratio.min() >= 3 / 4 - 1e-5 and ratio.max() <= 4 / 3 + 1e-5
    assert (y0 >= 0).all() and (x0 >= 0).all()
    assert (y0 + h <= 32 + 1e-4).all() and (x0 + w <= 32 + 1e-4).all()
    # Offsets spread over the free room, not pinned to a corner.
    room = 32 - w
    assert 0.45 < np.mean(x0[room > 1] / room[room > 1]) < 0.55


def test_crop_falls_back_to_whole_image():
    gen = keras.random.SeedGenerator(0)
    # Aspect ratios of at least 4 never fit a square image with area >= 0.5.
    boxes = crop_lib.sample_boxes(gen, 8, 10, 10, (0.5, 1.0), (4.0, 5.0), max_attempts=10)
    np.testing.assert_allclose(np.stack([np.asarray(b) for b in boxes]), [[0] * 8, [0] * 8, [10] * 8, [10] * 8])


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
@pytest.mark.parametrize("out", [(7, 5), (30, 40)])
def test_crop_resize_matches_tf_image_resize(interpolation, out):
    images = _rgb((2, 20, 17, 3))
    boxes = (np.zeros(2, "float32"), np.zeros(2, "float32"), np.full(2, 20.0, "float32"), np.full(2, 17.0, "float32"))
    ours = crop_lib.crop_resize(images, boxes, out, interpolation, antialias=True)
    ref = tf.clip_by_value(tf.image.resize(images, out, method=interpolation, antialias=True), 0.0, 1.0)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    # Inside the image, taps beyond the box read the neighbouring pixels: check
    # against a loop-based NumPy reference of that definition.
    boxes = (np.array([2.0, 5.5], "float32"), np.array([3.0, 0.25], "float32"),
             np.array([12.0, 14.5], "float32"), np.array([9.0, 16.75], "float32"))
    ours = crop_lib.crop_resize(images, boxes, out, interpolation, antialias=True)
    for i in range(2):
        rows = _numpy_weights(boxes[0][i], boxes[2][i], 20, out[0], interpolation)
        cols = _numpy_weights(boxes[1][i], boxes[3][i], 17, out[1], interpolation)
        ref = np.clip(np.einsum("oh,hwc,pw->opc", rows, images[i], cols), 0, 1)
        np.testing.assert_allclose(ours[i], ref, atol=1e-5)


def _numpy_weights(start, length, in_size, out_size, interpolation):
    def kernel(x):
        x = abs(x)
        if interpolation == "bilinear":
            return max(0.0, 1.0 - x)
        if x <= 1:
            return 1.5 * x**3 - 2.5 * x**2 + 1
        return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2 if x < 2 else 0.0

    step = length / out_size
    support = max(step, 1.0)
    weights = np.zeros((out_size, in_size))
    for i in range(out_size):
        centre = start + (i + 0.5) * step - 0.5
        for j in range(in_size):
            weights[i, j] = kernel((j - centre) / support)
        weights[i] /= weights[i].sum()
    return weights


def test_crop_uint8_scale_and_flip_folded():
    images = _uint8((4, 12, 12, 3))
    whole = dict(area_range=(1.0, 1.0), aspect_ratio_range=(1.0, 1.0))
    plain = aug.RandomResizedCrop(12, flip_rate=0.0, seed=0, **whole)(images)
    np.testing.assert_allclose(plain, images / 255.0, atol=1e-5)
    flipped = aug.RandomResizedCrop(12, flip_rate=1.0, seed=0, **whole)(images)
    np.testing.assert_allclose(flipped, images[:, :, ::-1] / 255.0, atol=1e-5)


def test_flip_rate_in_pipeline():
    # Whole-image crop, no colour, no blur: each view is the image or its mirror.
    images = np.repeat(_rgb((1, 8, 8, 3)), 2000, axis=0)
    layer = aug.SimCLRAugmentation(8, seed=3, crop_area_range=(1.0, 1.0), crop_aspect_ratio_range=(1.0, 1.0),
                                   jitter_rate=0.0, grayscale_rate=0.0, blur=False)
    views = np.asarray(layer(images))
    is_mirror = np.abs(views - images[:, :, ::-1]).reshape(2000, -1).max(1) < 1e-5
    is_same = np.abs(views - images).reshape(2000, -1).max(1) < 1e-5
    assert (is_mirror ^ is_same).all()
    assert 0.45 < is_mirror.mean() < 0.55


def test_random_flip_layer():
    images = np.repeat(_rgb((1, 4, 6, 3)), 2000, axis=0)
    out = np.asarray(aug.RandomFlip(seed=0)(images))
    is_mirror = np.abs(out - images[:, :, ::-1]).reshape(2000, -1).max(1) < 1e-6
    assert 0.45 < is_mirror.mean() < 0.55
    np.testing.assert_array_equal(aug.RandomFlip(seed=0)(images, training=False), images)


def test_eval_transform_is_centre_crop_resize():
    images = _rgb((2, 32, 32, 3))
    layer = aug.SimCLRAugmentation(48, seed=0)  # image_size > 32: centre 87.5%
    out = layer(images, training=False)
    np.testing.assert_array_equal(out, layer(images, training=False))
    box = [np.asarray(b) for b in crop_lib.center_box(2, 32, 32, 48, 48, 0.875)]
    np.testing.assert_allclose(box, [[2, 2], [2, 2], [28, 28], [28, 28]], atol=1e-5)
    np.testing.assert_allclose(out, crop_lib.crop_resize(images, box, (48, 48)), atol=1e-6)
    # Away from the box edge (where taps read the neighbouring pixels) it is a plain resize of the slice.
    ref = tf.clip_by_value(tf.image.resize(images[:, 2:30, 2:30], (48, 48), "bicubic", antialias=True), 0, 1)
    np.testing.assert_allclose(out[:, 4:-4, 4:-4], ref[:, 4:-4, 4:-4], atol=1e-5)
    small = aug.SimCLRAugmentation(16, seed=0)(images, training=False)  # <= 32: plain resize
    ref = tf.clip_by_value(tf.image.resize(images, (16, 16), "bicubic", antialias=True), 0, 1)
    np.testing.assert_allclose(small, ref, atol=1e-5)


def _random_boxes(rng, batch, height, width):
    h = rng.uniform(0.05, 1.0, batch) * height
    w = rng.uniform(0.05, 1.0, batch) * width
    h[0], w[0] = height, width  # one whole-image box
    h[1], w[1] = 1.0, 1.0  # one tiny box (largest upscale)
    y0 = rng.uniform(0, 1, batch) * (height - h)
    x0 = rng.uniform(0, 1, batch) * (width - w)
    return tuple(np.asarray(v, "float32") for v in (y0, x0, h, w))


def _dense_crop(images, boxes, size, interpolation, antialias, flip):
    # The dense reference: the full per-image matrices.
    y0, x0, h, w = boxes
    scale = 1 / 255 if images.dtype == np.uint8 else 1.0
    rows = crop_lib.interpolation_matrix(y0, h, images.shape[1], size[0], interpolation, antialias, scale=scale)
    cols = crop_lib.interpolation_matrix(x0, w, images.shape[2], size[1], interpolation, antialias, flip=flip)
    return np.clip(np.asarray(crop_lib.resample(tf.cast(images, "float32"), rows, cols)), 0.0, 1.0)


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
@pytest.mark.parametrize("antialias", [True, False])
def test_banded_crop_matches_dense(interpolation, antialias):
    rng = np.random.default_rng(0)
    cases = [((96, 96), (96, 96)), ((256, 256), (224, 224)), ((50, 60), (96, 80)), ((300, 310), (64, 64)),
             ((40, 200), (96, 20))]
    for (height, width), size in cases:
        for dtype in ("uint8", "float32"):
            images = _uint8((5, height, width, 3), seed=height)
            if dtype == "float32":
                images = (images / 255).astype("float32")
            boxes = _random_boxes(rng, 5, height, width)
            flip = rng.random(5) < 0.5
            ref = _dense_crop(images, boxes, size, interpolation, antialias, flip)
            for block_size in (None, 7, 16, 32):
                ours = crop_lib.crop_resize(images, boxes, size, interpolation, antialias, flip, block_size=block_size)
                np.testing.assert_allclose(ours, ref, atol=1e-5, err_msg=f"{(height, width)} -> {size}, {block_size}")


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_banded_matrices_hold_every_dense_weight(interpolation):
    rng = np.random.default_rng(1)
    for in_size, out_size in [(96, 96), (256, 224), (50, 96), (300, 64), (17, 5)]:
        for antialias in (True, False):
            start, _, length, _ = _random_boxes(rng, 16, in_size, in_size)
            flip = rng.random(16) < 0.5
            dense = np.asarray(crop_lib.interpolation_matrix(start, length, in_size, out_size, interpolation,
                                                             antialias, flip=flip))
            for block_size in (5, 16, 32):
                plan = crop_lib.block_plan(in_size, out_size, interpolation, antialias, block_size)
                weights, first = crop_lib.banded_matrices(start, length, in_size, out_size, plan, interpolation,
                                                          antialias, flip=flip)
                block, blocks, window = plan
                weights, first = np.asarray(weights), np.asarray(first)
                assert weights.shape == (16, blocks, block, window) and first.min() >= 0
                assert first.max() + window <= in_size
                rebuilt = np.zeros((16, blocks * block, in_size), "float32")
                for j in range(blocks):
                    for b in range(16):
                        rebuilt[b, j * block:(j + 1) * block, first[b, j]:first[b, j] + window] = weights[b, j]
                # Equal everywhere: every nonzero dense weight lies in its window.
                np.testing.assert_allclose(rebuilt[:, :out_size], dense, atol=1e-6)
    # The dense path is kept where the window saves little, and for dynamic sizes.
    assert crop_lib.block_plan(32, 32) is None
    assert crop_lib.block_plan(96, 96) is not None and crop_lib.block_plan(256, 224) is not None
    assert crop_lib.block_plan(None, 96) is None and crop_lib.block_plan(96, 96, block_size=0) is None


@pytest.mark.parametrize("mode", ["function", "xla", "dataset"])
def test_banded_crop_modes(mode):
    rng = np.random.default_rng(2)
    images = _uint8((4, 96, 80, 3), seed=3)
    boxes = _random_boxes(rng, 4, 96, 80)
    flip = np.array([True, False, True, False])
    ref = _dense_crop(images, boxes, (96, 64), "bicubic", True, flip)

    def fn(x, y0, x0, h, w, f):
        return crop_lib.crop_resize(x, (y0, x0, h, w), (96, 64), flip=f, block_size=16)

    args = (images, *boxes, flip)
    if mode == "dataset":
        ds = tf.data.Dataset.from_tensor_slices(args).batch(4).map(fn)
        out = next(iter(ds))
    else:
        out = tf.function(fn, jit_compile=mode == "xla")(*args)
    np.testing.assert_allclose(out, ref, atol=1e-5)


# ---------------------------------------------------------------- colour


@pytest.fixture
def colour_batch():
    x = _rgb((4, 9, 7, 3))
    x[0, 0, :3] = [[0.5, 0.5, 0.5], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0]]  # grey, black, saturated
    return x


def _reference(op, images, factors):
    return np.stack([op(images[i], factors[i]).numpy() for i in range(len(images))])


@pytest.mark.parametrize(
    "ours, ref, factors",
    [
        (color_lib.adjust_contrast, tf.image.adjust_contrast, [0.3, 1.0, 1.7, 0.0]),
        (color_lib.adjust_saturation, tf.image.adjust_saturation, [0.2, 1.0, 1.8, 0.0]),
        (color_lib.adjust_hue, tf.image.adjust_hue, [-0.2, 0.0, 0.13, 0.5]),
        (lambda x, f: color_lib.adjust_brightness(x, f, "v1"), tf.image.adjust_brightness, [-0.3, 0.0, 0.2, 0.8]),
        (lambda x, f: color_lib.adjust_brightness(x, f, "v2"), lambda x, f: tf.constant(x * f), [0.2, 1.0, 1.8, 0.0]),
    ],
    ids=["contrast", "saturation", "hue", "brightness_v1", "brightness_v2"],
)
def test_colour_ops_match_tf_image(colour_batch, ours, ref, factors):
    factors = np.asarray(factors, "float32")
    np.testing.assert_allclose(ours(colour_batch, factors), _reference(ref, colour_batch, factors), atol=1e-5)


def test_grayscale_matches_tf_image(colour_batch):
    ref = tf.tile(tf.image.rgb_to_grayscale(colour_batch), [1, 1, 1, 3])
    np.testing.assert_allclose(color_lib.rgb_to_grayscale(colour_batch), ref, atol=1e-6)


def _jitter_one_by_one(images, b, c, s, h, orders, variant):
    """The paper's jitter image by image with tf.image ops, clipping after each."""
    bright = (lambda x, i: x * b[i]) if variant == "v2" else (lambda x, i: tf.image.adjust_brightness(x, b[i]))
    ops = [bright, lambda x, i: tf.image.adjust_contrast(x, c[i]),
           lambda x, i: tf.image.adjust_saturation(x, s[i]), lambda x, i: tf.image.adjust_hue(x, h[i])]
    refs = []
    for i, order in enumerate(orders):
        x = tf.constant(images[i])
        for k in order:
            x = tf.clip_by_value(ops[k](x, i), 0.0, 1.0)
        refs.append(x.numpy())
    return np.stack(refs)


@pytest.mark.parametrize("variant", ["v2", "v1"])
def test_jitter_random_order_matches_sequential_reference(colour_batch, variant):
    order = np.array([[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2]])
    b = np.array([0.5, 1.5, 1.2, 0.9] if variant == "v2" else [-0.3, 0.4, 0.1, 0.0], "float32")
    c = np.array([1.6, 0.4, 1.1, 0.2], "float32")
    s = np.array([0.2, 1.8, 0.0, 1.3], "float32")
    h = np.array([0.1, -0.2, 0.05, 0.19], "float32")
    ours = color_lib.jitter_in_order(colour_batch, b, c, s, h, order, variant)
    np.testing.assert_allclose(ours, _jitter_one_by_one(colour_batch, b, c, s, h, order, variant), atol=1e-5)


@pytest.mark.parametrize("variant", ["v2", "v1"])
def test_jitter_every_order_matches_sequential_reference(variant):
    # All 24 orders of the four ops, one image each, with strong factors so
    # that the clip after each op matters: the batched stage plan (pre
    # stages, one hue pass, post stages) must run every op of every order
    # in that order.
    orders = np.array(list(itertools.permutations(range(4))))
    rng = np.random.default_rng(7)
    images = _rgb((24, 6, 5, 3), seed=11)
    b = (rng.uniform(0.2, 1.8, 24) if variant == "v2" else rng.uniform(-0.5, 0.5, 24)).astype("float32")
    c, s = (rng.uniform(0.2, 1.8, 24).astype("float32") for _ in range(2))
    h = rng.uniform(-0.2, 0.2, 24).astype("float32")
    ours = color_lib.jitter_in_order(images, b, c, s, h, orders, variant)
    np.testing.assert_allclose(ours, _jitter_one_by_one(images, b, c, s, h, orders, variant), atol=1e-5)


def test_jitter_factor_ranges():
    assert np.allclose(color_lib.jitter_ranges(1.0), [(0.2, 1.8), (0.2, 1.8), (0.2, 1.8), (-0.2, 0.2)])
    assert np.allclose(color_lib.jitter_ranges(0.5, "v1")[0], (-0.4, 0.4))
    assert np.allclose(color_lib.jitter_ranges(2.0)[1], (0.0, 2.6))


def test_jitter_and_grayscale_rates():
    images = np.repeat(_rgb((1, 4, 4, 3)), 2000, axis=0)
    jittered = aug.ColorDistortion(jitter_rate=0.8, mode="jitter", seed=5)(images)
    assert 0.77 < _per_image_changed(jittered, images).mean() < 0.83
    gray = np.asarray(aug.ColorDistortion(grayscale_rate=0.2, mode="grayscale", seed=5)(images))
    is_gray = np.ptp(gray, axis=-1).reshape(2000, -1).max(1) < 1e-6
    assert 0.17 < is_gray.mean() < 0.23
    assert not _per_image_changed(gray[~is_gray], images[~is_gray]).any()
    # In the full pipeline only grayscale makes the three channels equal.
    views = np.asarray(aug.SimCLRAugmentation(8, seed=2, blur=False)(np.repeat(_uint8((1, 8, 8, 3)), 2000, 0)))
    assert 0.17 < (np.ptp(views, axis=-1).reshape(2000, -1).max(1) < 1e-6).mean() < 0.23


def test_random_grayscale_and_jitter_layers():
    images = np.repeat(_rgb((1, 4, 4, 3)), 1000, axis=0)
    gray = np.asarray(aug.RandomGrayscale(rate=0.2, seed=0)(images))
    assert 0.16 < (np.ptp(gray, axis=-1).reshape(1000, -1).max(1) < 1e-6).mean() < 0.24
    out = aug.RandomColorJitter(strength=0.5, rate=1.0, seed=0)(images)
    assert _per_image_changed(out, images).all()
    assert len(np.unique(np.asarray(out).reshape(1000, -1).round(5), axis=0)) == 1000


# ---------------------------------------------------------------- blur


def test_blur_matches_depthwise_reference():
    images = _rgb((3, 12, 10, 3))
    kernels = blur_lib.gaussian_kernels(np.array([0.5, 1.0, 2.0], "float32"), 5)
    ours = blur_lib.separable_blur(images, kernels)
    for i in range(3):
        k = tf.tile(tf.reshape(kernels[i], [5, 1, 1, 1]), [1, 1, 3, 1])
        x = tf.pad(images[i:i + 1], [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT")
        x = tf.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], "VALID")
        x = tf.nn.depthwise_conv2d(x, tf.reshape(k, [1, 5, 3, 1]), [1, 1, 1, 1], "VALID")
        np.testing.assert_allclose(ours[i], x[0], atol=1e-5)
    np.testing.assert_allclose(np.sum(kernels, axis=1), 1.0, atol=1e-6)


def test_blur_kernel_size_and_rate():
    assert [blur_lib.default_kernel_size(s) for s in (32, 96, 224)] == [3, 9, 23]
    images = np.repeat(_rgb((1, 20, 20, 3)), 2000, axis=0)
    out = aug.RandomGaussianBlur(rate=0.5, seed=0)(images)
    assert 0.45 < _per_image_changed(out, images, 1e-6).mean() < 0.55
    # Every blurred image has its own sigma (below about 0.3 a 3-tap kernel is the identity).
    blurred = np.asarray(aug.RandomGaussianBlur(sigma_range=(0.5, 2.0), rate=1.0, seed=0)(images[:50]))
    assert len(np.unique(blurred.reshape(50, -1).round(5), axis=0)) == 50


def test_blur_rate_in_pipeline():
    images = np.repeat(_rgb((1, 40, 40, 3)), 2000, axis=0)
    kwargs = dict(crop_area_range=(1.0, 1.0), crop_aspect_ratio_range=(1.0, 1.0), flip=False, jitter_rate=0.0,
                  grayscale_rate=0.0, seed=4)
    sharp = aug.SimCLRAugmentation(40, blur=False, **kwargs)(images)
    blurred = aug.SimCLRAugmentation(40, blur_rate=0.5, **kwargs)(images)
    assert 0.45 < _per_image_changed(blurred, sharp, 1e-6).mean() < 0.55


# ---------------------------------------------------------------- ablations


def test_ablation_operators():
    images = np.full((64, 8, 8, 3), 0.5, "float32")
    cut = np.asarray(aug.Cutout(size=0.5, seed=0)(images))
    zeros = (cut == 0).all(-1).reshape(64, -1).sum(1)
    assert (zeros > 0).all() and (zeros <= 16).all() and (zeros == 16).any()
    np.testing.assert_array_equal(aug.SobelFilter()(images), np.zeros_like(images))
    step = np.zeros((1, 6, 6, 3), "float32")
    step[:, :, 3:] = 1.0
    edges = np.asarray(aug.SobelFilter()(step))
    assert edges.max() == pytest.approx(1.0) and (edges[0, :, 0] == 0).all() and (edges[0, :, 2] > 0).all()
    noisy = np.asarray(aug.GaussianNoise((0.05, 0.05), seed=0)(images))
    assert abs((noisy - 0.5).std() - 0.05) < 0.003 and abs((noisy - 0.5).mean()) < 0.003
    x = _rgb((300, 5, 5, 3))
    rotated = np.asarray(aug.RandomRotate90(seed=0)(x))
    candidates = np.stack([np.rot90(x, k, axes=(1, 2)) for k in (1, 2, 3)])
    match = np.abs(candidates - rotated[None]).reshape(3, 300, -1).max(-1) < 1e-7
    assert match.sum(0).tolist() == [1] * 300
    assert (match.mean(1) > 0.25).all()
    with pytest.raises(ValueError, match="square"):
        aug.RandomRotate90()(np.zeros((1, 4, 5, 3), "float32"))


# ---------------------------------------------------------------- contract


def _pipeline():
    layer = aug.SimCLRAugmentation(40, seed=1, blur=True)
    assert layer.kernel_size == 5  # at 40 px the blur has 5 taps (at 16 px, 1: a no-op)
    return layer


IMAGES = _uint8((4, 8, 8, 3), seed=9)
# Rates of 0.5 so that both outcomes occur in a batch of 4 (and the checks that
# two calls, or two seeds, differ can pass).
LAYER_CASES = [
    LayerCase("SimCLRAugmentation", _pipeline, IMAGES, random=True),
    LayerCase("SimCLRAugmentation-eval", _pipeline, IMAGES, {"training": False}),
    LayerCase("RandomResizedCrop", lambda: aug.RandomResizedCrop(6, seed=1, flip_rate=0.5), IMAGES, random=True),
    LayerCase("RandomFlip", lambda: aug.RandomFlip(seed=1), IMAGES, random=True),
    LayerCase("RandomColorJitter", lambda: aug.RandomColorJitter(rate=0.5, seed=1), IMAGES, random=True),
    LayerCase("RandomGrayscale", lambda: aug.RandomGrayscale(rate=0.5, seed=1), IMAGES, random=True),
    LayerCase("RandomGaussianBlur", lambda: aug.RandomGaussianBlur(kernel_size=3, seed=1), IMAGES, random=True),
    LayerCase("RandomApply", lambda: aug.RandomApply(aug.RandomGrayscale(rate=1.0), rate=0.5, seed=1), IMAGES,
              random=True),
    LayerCase("ColorDistortion", lambda: aug.ColorDistortion(seed=1), IMAGES, random=True),
    LayerCase("Cutout", lambda: aug.Cutout(seed=1), IMAGES, random=True),
    LayerCase("SobelFilter", aug.SobelFilter, IMAGES),
    LayerCase("GaussianNoise", lambda: aug.GaussianNoise(seed=1), IMAGES, random=True),
    LayerCase("RandomRotate90", lambda: aug.RandomRotate90(seed=1), IMAGES, random=True),
]


def test_every_public_layer_has_layer_checks():
    tested = {type(case.make()).__name__ for case in LAYER_CASES}
    public = {name for name in aug.__all__ if issubclass(getattr(aug, name), keras.layers.Layer)}
    assert public <= tested, sorted(public - tested)


@layer_checks.parametrize(LAYER_CASES)
def test_layer_checks(case, check, tmp_path):
    layer_checks.run_check(case, check, tmp_path)



@pytest.mark.parametrize("make", ALL_LAYERS, ids=LAYER_IDS)
def test_contract_dtype_range_channels_rank(make):
    layer = make()
    for images in (_uint8((3, 20, 20, 3)), _rgb((3, 20, 20, 3)), _uint8((3, 20, 20, 1)), _rgb((20, 20, 1))):
        out = layer(images)
        assert out.dtype == "float32"
        assert tuple(out.shape) == tuple(layer.compute_output_shape(images.shape[:-1] + (3,)))
        assert out.shape[-1] == 3 and len(out.shape) == images.ndim
        assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 1.0
    assert not layer.trainable_weights


@pytest.mark.parametrize("make", ALL_LAYERS, ids=LAYER_IDS)
def test_value_range_0_255_floats_give_the_uint8_views(make):
    # keras.Sequential casts a uint8 batch to float32 on the 0-255 scale;
    # declared as value_range=(0, 255), it must give the uint8 batch's views.
    images = _uint8((3, 20, 20, 3), seed=4)
    expected = np.asarray(make()(images))
    layer = make(value_range=(0, 255))
    np.testing.assert_allclose(layer(images.astype("float32")), expected, atol=2e-6)
    np.testing.assert_allclose(make(value_range=(0, 255))(images), expected, atol=2e-6)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert clone.value_range == (0.0, 255.0) and layer.get_config()["value_range"] == (0.0, 255.0)
    np.testing.assert_allclose(clone(images.astype("float32")), expected, atol=2e-6)


def test_value_range_maps_its_ends_to_zero_and_one():
    x = np.linspace(-1.0, 1.0, 2 * 4 * 4 * 3, dtype="float32").reshape(2, 4, 4, 3)
    np.testing.assert_allclose(aug.ColorDistortion(value_range=(-1, 1))(x, training=False), (x + 1) / 2,
                               atol=1e-6)
    # The crop folds the scale into its weights and adds the offset after: the
    # eval transform of a 4 x 4 image to 4 x 4 samples the pixel centres.
    np.testing.assert_allclose(aug.RandomResizedCrop(4, value_range=(-1, 1))(x, training=False), (x + 1) / 2,
                               atol=1e-6)
    np.testing.assert_allclose(aug.RandomFlip(rate=0.0, value_range=(0, 65535))(
        np.full((1, 2, 2, 1), 65535, "uint16")), np.ones((1, 2, 2, 3)))


def test_random_apply_refuses_an_inner_layer_with_value_range():
    inner = aug.RandomGrayscale(rate=1.0, value_range=(0, 255))
    with pytest.raises(ValueError, match=r"`layer` receives .* Received: layer\.value_range=\(0\.0, 255\.0\)"):
        aug.RandomApply(inner, rate=1.0, value_range=(0, 255))


def test_sequential_on_uint8_gives_the_uint8_views():
    # keras.Sequential casts the uint8 batch to float32 on the 0-255 scale,
    # which the layers read as such (or as declared by value_range).
    images = _uint8((4, 24, 24, 3), seed=5)
    expected = np.asarray(aug.SimCLRAugmentation(16, seed=0)(images))
    plain = keras.Sequential([aug.SimCLRAugmentation(16, seed=0)])
    np.testing.assert_allclose(plain(images), expected, atol=1e-6)
    declared = keras.Sequential([aug.SimCLRAugmentation(16, seed=0, value_range=(0, 255))])
    np.testing.assert_allclose(declared(images), expected, atol=1e-6)
    typed = keras.Sequential([keras.Input((24, 24, 3), dtype="uint8"), aug.SimCLRAugmentation(16, seed=0)])
    np.testing.assert_allclose(typed(images), expected, atol=1e-6)


def test_value_range_is_checked_on_the_host_and_in_graph():
    layer = aug.RandomFlip(seed=0, value_range=(0, 255))
    white = np.full((2, 4, 4, 3), 255.0, "float32")
    traced = tf.function(lambda x: layer(x))
    assert float(tf.reduce_min(traced(white))) == 1.0
    with pytest.raises(tf.errors.InvalidArgumentError, match="value_range"):
        traced(white + 100.0)
    with pytest.raises(ValueError, match=r"value_range.*max=355"):
        layer(white + 100.0)
    with pytest.raises(ValueError, match=r"value_range.*max=7"):
        aug.RandomFlip(value_range=(0, 1))(np.full((1, 2, 2, 3), 7, "uint8"))


@pytest.mark.parametrize("bad", [(1, 1), (2, 1), "0-255", (0,), (0, float("inf")), (0, True), 255, (0, 1e-39),
                                 (-1e308, 1e308)])
def test_bad_value_range_is_refused_by_name(bad):
    for make in (lambda: aug.SimCLRAugmentation(16, value_range=bad), lambda: aug.RandomFlip(value_range=bad)):
        with pytest.raises(ValueError, match=r"`value_range` must (be a pair|be a range|span).*Received: value_range="):
            make()
    if bad == (1, 1):
        with pytest.raises(ValueError, match="min < max"):
            aug.RandomFlip(value_range=bad)


def test_pipeline_output_contract_and_views():
    layer = aug.SimCLRAugmentation(16, color_strength=0.5, seed=0)
    images = np.repeat(_uint8((1, 24, 20, 3)), 16, axis=0)
    v1, v2 = layer(images), layer(images)
    assert v1.shape == (16, 16, 16, 3) and v1.dtype == "float32"
    # Every image of a batch of identical images gets its own view, and calls differ.
    flat = np.asarray(v1).reshape(16, -1)
    assert (np.abs(flat[:, None] - flat[None]).max(-1) + np.eye(16) > 1e-3).all()
    assert _per_image_changed(v1, v2).all()
    # The same seed replays the same views.
    again = aug.SimCLRAugmentation(16, color_strength=0.5, seed=0)
    np.testing.assert_array_equal(again(images), v1)
    np.testing.assert_array_equal(again(images), v2)
    assert aug.SimCLRAugmentation(64).use_blur and not aug.SimCLRAugmentation(32).use_blur


def test_unknown_shapes_and_tf_data():
    layer = aug.SimCLRAugmentation(16, seed=0, blur=True)
    fn = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8)])
    assert fn(_uint8((3, 30, 25, 3))).shape == (3, 16, 16, 3)
    ds = tf.data.Dataset.from_tensor_slices(_uint8((6, 24, 24, 3))).batch(4).map(layer)
    assert [tuple(b.shape) for b in ds] == [(4, 16, 16, 3), (2, 16, 16, 3)]
    ds = tf.data.Dataset.from_tensor_slices(_uint8((3, 24, 24, 1))).map(layer)  # one image per call
    assert [tuple(b.shape) for b in ds] == [(16, 16, 3)] * 3
    inputs = keras.Input((24, 24, 3), dtype="uint8")
    model = keras.Model(inputs, layer(inputs))
    assert model.output_shape == (None, 16, 16, 3)
    # A blur with a fixed kernel on images whose size is known only at run time.
    blur = aug.RandomGaussianBlur(kernel_size=5, rate=1.0, seed=0)
    images = _uint8((2, 13, 21, 3))
    fn = tf.function(blur, input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8)])
    np.testing.assert_allclose(fn(images), aug.RandomGaussianBlur(kernel_size=5, rate=1.0, seed=0)(images),
                               atol=1e-5)
    ds = tf.data.Dataset.from_tensor_slices(images).map(blur)
    assert [tuple(b.shape) for b in ds] == [(13, 21, 3)] * 2
    # A run-time side below the kernel radius cannot be refused at trace
    # time; the border repeats instead of losing kernel weight (no darkening).
    wide = tf.function(aug.RandomGaussianBlur(kernel_size=9, rate=1.0, seed=0),
                       input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    flat = np.full((2, 3, 3, 3), 0.5, "float32")
    np.testing.assert_allclose(wide(flat), flat, atol=1e-6)


def test_random_apply_wraps_keras_layers():
    images = np.repeat(_rgb((1, 6, 6, 3)), 1000, axis=0)
    layer = aug.RandomApply(keras.layers.Lambda(lambda x: 1.0 - x), rate=0.3, seed=0)
    out = np.asarray(layer(images))
    inverted = np.abs(out - (1.0 - images)).reshape(1000, -1).max(1) < 1e-6
    assert 0.26 < inverted.mean() < 0.34
    assert (inverted | (np.abs(out - images).reshape(1000, -1).max(1) < 1e-6)).all()
    with pytest.raises(ValueError, match="keep the image shape"):
        aug.RandomApply(aug.RandomResizedCrop(4), rate=0.5)(images)


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((2, 4, 4, 3, 1), "uint8"), "rank"),
        (np.zeros((4, 4), "uint8"), "rank"),
        (np.zeros((2, 4, 4, 2), "uint8"), "channels"),
        (np.zeros((2, 4, 4, 3), bool), "dtype=bool"),
        (np.full((2, 4, 4, 3), "a"), "dtype=string"),
    ],
)
def test_bad_inputs_raise_value_error(images, match):
    with pytest.raises(ValueError, match=match):
        aug.SimCLRAugmentation(8)(tf.constant(images))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: aug.SimCLRAugmentation(0), "image_size=0"),
        (lambda: aug.SimCLRAugmentation(8, jitter_rate=1.5), "jitter_rate=1.5"),
        (lambda: aug.SimCLRAugmentation(8, grayscale_rate=-0.1), "grayscale_rate=-0.1"),
        (lambda: aug.SimCLRAugmentation(8, blur_rate=2), "blur_rate=2"),
        (lambda: aug.SimCLRAugmentation(8, crop_area_range=(0.9, 0.1)), "crop_area_range"),
        (lambda: aug.SimCLRAugmentation(8, crop_aspect_ratio_range=(2, 1)), "crop_aspect_ratio_range"),
        (lambda: aug.SimCLRAugmentation(8, blur_sigma_range=(2.0, 0.1)), "blur_sigma_range"),
        (lambda: aug.SimCLRAugmentation(8, jitter_variant="v3"), "jitter_variant=v3"),
        (lambda: aug.SimCLRAugmentation(8, interpolation="nearest"), "interpolation=nearest"),
        (lambda: aug.SimCLRAugmentation(8, color_strength=-1), "color_strength=-1"),
        (lambda: aug.RandomResizedCrop((8, 0)), "image_size"),
        (lambda: aug.RandomFlip(rate=1.1), "rate=1.1"),
        (lambda: aug.RandomGaussianBlur(kernel_size=4), "kernel_size=4"),
        (lambda: aug.ColorDistortion(mode="hue"), "mode=hue"),
        (lambda: aug.RandomColorJitter(variant="v9"), "variant=v9"),
        (lambda: aug.RandomApply("flip", rate=0.5), "layer="),
        (lambda: aug.Cutout(size=0.0), "size=0.0"),
        (lambda: aug.GaussianNoise((0.2, 0.1)), "stddev_range"),
        # The pipeline's own argument names, not its sub-layers'.
        (lambda: aug.SimCLRAugmentation(8, crop_area_range=(0, 0)), r"`crop_area_range` must allow"),
        (lambda: aug.SimCLRAugmentation(8, crop_aspect_ratio_range=(0, 1)), r"`crop_aspect_ratio_range` must be"),
        (lambda: aug.SimCLRAugmentation(8, eval_crop_fraction="a"), "eval_crop_fraction=a"),
        (lambda: aug.RandomResizedCrop(8, eval_crop_fraction=None), "eval_crop_fraction=None"),
        (lambda: aug.SimCLRAugmentation(8, seed=1.5), "seed=1.5"),
        (lambda: aug.SimCLRAugmentation(np.float32(8)), "image_size=np.float32"),
    ],
)
def test_bad_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_numpy_scalars_are_accepted_as_arguments():
    layer = aug.SimCLRAugmentation(np.int64(8), seed=np.int64(3), jitter_rate=np.float32(0.5),
                                   color_strength=np.float64(0.5), crop_area_range=(np.float32(0.2), 1.0))
    reference = aug.SimCLRAugmentation(8, seed=3, jitter_rate=0.5, color_strength=0.5, crop_area_range=(0.2, 1.0))
    assert type(layer.image_size) is int and type(layer.seed) is int
    images = _uint8((2, 12, 12, 3))
    np.testing.assert_array_equal(layer(images), reference(images))
    assert aug.RandomResizedCrop((np.int32(6), 8)).image_size == (6, 8)


def test_unknown_rank_and_tiny_sobel_inputs_name_images():
    fn = tf.function(lambda x: aug.RandomFlip(seed=0)(x), input_signature=[tf.TensorSpec(None, tf.uint8)])
    with pytest.raises(ValueError, match="`images` must have a known rank"):
        fn.get_concrete_function()
    with pytest.raises(ValueError, match=r"at least 2 pixels .* Received: images.shape=\(1, 1, 5, 3\)"):
        aug.SobelFilter()(np.zeros((1, 1, 5, 3), "uint8"))


def test_float_input_within_slack_comes_out_in_range():
    images = np.full((2, 6, 6, 3), 1.0005, "float32")  # allowed: resampling may overshoot slightly
    for layer in (aug.RandomFlip(seed=0), aug.ColorDistortion(seed=0), aug.SimCLRAugmentation(4, seed=0)):
        for training in (True, False):
            out = np.asarray(layer(images, training=training))
            assert out.max() <= 1.0 and out.min() >= 0.0, (type(layer).__name__, training, out.max())


def test_under_mirrored_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        layer = aug.SimCLRAugmentation(8, seed=0)
    images = tf.constant(_uint8((4, 12, 12, 3)))
    step = tf.function(lambda x: layer(x))
    for _ in range(2):
        views = strategy.experimental_local_results(strategy.run(step, args=(images,)))
        assert all(t.shape == (4, 8, 8, 3) for t in views)
        # Each replica draws its own parameters for the same input images.
        assert float(tf.reduce_max(tf.abs(views[0] - views[1]))) > 0.1
        assert all(float(tf.reduce_max(tf.abs(views[0][i] - views[1][i]))) > 0 for i in range(4))


@pytest.mark.kerascv
def test_keras_cv_layers_are_drop_in_members():
    keras_cv = pytest.importorskip("keras_cv")
    # keras.Sequential casts the uint8 batch to float32 in [0, 255]: the first
    # layer declares that scale.
    pipeline = keras.Sequential([
        aug.RandomResizedCrop(16, flip_rate=0.5, seed=0, value_range=(0, 255)),
        aug.RandomApply(keras_cv.layers.RandomColorJitter(
            value_range=(0, 1), brightness_factor=0.5, contrast_factor=0.5, saturation_factor=(0.3, 0.7),
            hue_factor=0.2, seed=0), rate=0.8, seed=0),
        keras_cv.layers.Grayscale(output_channels=3),
        aug.RandomGaussianBlur(rate=0.5, seed=0),
        keras_cv.layers.RandomGaussianBlur(3, factor=(0.1, 2.0)),
        aug.ColorDistortion(seed=0),
    ])
    images = _uint8((4, 24, 24, 3))
    for call in (pipeline, tf.function(pipeline)):
        out = call(images)
        assert out.shape == (4, 16, 16, 3) and out.dtype == "float32"
        assert 0.0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 1.0 + 1e-5
    ds = tf.data.Dataset.from_tensor_slices(images).batch(2).map(lambda x: pipeline(x))
    assert [tuple(b.shape) for b in ds] == [(2, 16, 16, 3)] * 2


def test_saturation_closed_form_clips_like_tf_image():
    # Strong factors push S past 1 on most pixels of a vivid batch; small ones
    # nearly grey it; grey and black pixels must pass through.
    x = _rgb((6, 8, 8, 3), seed=3)
    x[:, 0, 0] = [0.0, 0.0, 0.0]
    x[:, 0, 1] = [0.4, 0.4, 0.4]
    x[:, 0, 2] = [1.0, 0.999, 0.0]
    factors = np.array([0.0, 0.05, 1.0, 2.0, 5.0, 50.0], "float32")
    ref = np.stack([tf.image.adjust_saturation(x[i], factors[i]).numpy() for i in range(6)])
    np.testing.assert_allclose(color_lib.adjust_saturation(x, factors), ref, atol=1e-5)


def test_jitter_mask_leaves_images_bit_exact(colour_batch):
    gen = keras.random.SeedGenerator(0)
    factors, order = color_lib.sample_jitter(gen, 4, color_lib.jitter_ranges(1.0))
    mask = np.array([True, False, True, False])
    out = np.asarray(color_lib.jitter_in_order(colour_batch, *factors, order, mask=mask))
    np.testing.assert_array_equal(out[~mask], colour_batch[~mask])
    full = np.asarray(color_lib.jitter_in_order(colour_batch, *factors, order))
    np.testing.assert_allclose(out[mask], full[mask], atol=1e-6)


# ---------------------------------------------------------------- inputs
# Input and argument checks, tiny inputs only: non-finite arguments, the
# value-range rule, symbolic inputs, mixed precision, cutout shape, seed state
# tracking, RandomRotate90 messages.

NAN, INF = float("nan"), float("inf")


# ---------------------------------------------------------------- inputs: arguments


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: aug.ColorDistortion(strength=NAN), "strength=nan"),
        (lambda: aug.RandomColorJitter(strength=INF), "strength=inf"),
        (lambda: aug.SimCLRAugmentation(8, color_strength=NAN), "color_strength=nan"),
        (lambda: aug.SimCLRAugmentation(8, blur_sigma_range=(0.1, INF)), r"blur_sigma_range=\(0.1, inf\)"),
        (lambda: aug.SimCLRAugmentation(8, crop_aspect_ratio_range=(NAN, 1.0)), "crop_aspect_ratio_range"),
        (lambda: aug.RandomGaussianBlur(3, sigma_range=(0.1, NAN)), r"sigma_range=\(0.1, nan\)"),
        (lambda: aug.GaussianNoise(stddev_range=(0.0, INF)), r"stddev_range=\(0.0, inf\)"),
        (lambda: aug.RandomResizedCrop(8, area_range=(0.08, NAN)), r"area_range=\(0.08, nan\)"),
        (lambda: aug.RandomResizedCrop(8, antialias="false"), "antialias='false'"),
        (lambda: aug.RandomResizedCrop(8, antialias=1), "antialias=1"),
        (lambda: aug.SimCLRAugmentation(8, antialias="false"), "antialias='false'"),
        (lambda: aug.SimCLRAugmentation(8, antialias=None), "antialias=None"),
    ],
)
def test_non_finite_and_non_bool_arguments_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_numpy_bool_antialias_is_accepted():
    assert aug.RandomResizedCrop(8, antialias=np.bool_(False)).antialias is False
    assert aug.SimCLRAugmentation(8, antialias=False).get_config()["antialias"] is False


# ---------------------------------------------------------------- inputs: the value-range rule


_LAYERS = {
    "pipeline": lambda: aug.SimCLRAugmentation(8, seed=0),
    "crop": lambda: aug.RandomResizedCrop(8, flip_rate=0.5, seed=0),
    "flip": lambda: aug.RandomFlip(seed=0),
    "color": lambda: aug.ColorDistortion(seed=0),
}


@pytest.mark.parametrize("layer", sorted(_LAYERS))
def test_uint8_0_255_floats_and_unit_floats_give_the_same_views(layer):
    # The default rule (simclr_tf.augmentation): uint8, float32 on the 0-255
    # scale (image_dataset_from_directory) and floats in [0, 1] are one image.
    images = _uint8((2, 10, 10, 3))
    expected = np.asarray(_LAYERS[layer]()(images))
    for x in (images.astype("float32"), images.astype("float32") / 255.0, images.astype("float64")):
        np.testing.assert_allclose(_LAYERS[layer]()(x), expected, atol=2e-6)
        np.testing.assert_allclose(tf.function(_LAYERS[layer]())(tf.constant(x)), expected, atol=2e-6)
    ds = tf.data.Dataset.from_tensors(images.astype("float32")).map(_LAYERS[layer]())
    np.testing.assert_allclose(next(iter(ds)), expected, atol=2e-6)


def test_the_scale_is_chosen_per_batch_and_resampled_0_255_floats_work():
    # tf.image.resize of uint8 data inside a tf.data map: floats on the 0-255 scale.
    layer = aug.SimCLRAugmentation(8, seed=0)
    ds = tf.data.Dataset.from_tensor_slices(_uint8((4, 10, 10, 3))).batch(2)
    views = [v.numpy() for v in ds.map(lambda x: layer(tf.image.resize(x, (8, 8)), training=False))]
    assert all(v.shape == (2, 8, 8, 3) and 0.0 <= v.min() and v.max() <= 1.0 for v in views)
    # A black [0, 1] batch and a 0-255 batch in one traced function.
    flip = tf.function(aug.RandomFlip(rate=0.0, seed=0))
    np.testing.assert_allclose(flip(tf.fill((1, 2, 2, 3), 0.5)), np.full((1, 2, 2, 3), 0.5))
    np.testing.assert_allclose(flip(tf.fill((1, 2, 2, 3), 127.5)), np.full((1, 2, 2, 3), 0.5))
    # Round-off just outside either scale is clipped.
    assert float(tf.reduce_max(flip(tf.fill((2, 4, 4, 3), 1.0000001)))) == 1.0
    assert float(tf.reduce_max(flip(tf.fill((2, 4, 4, 3), 255.1)))) == 1.0


@pytest.mark.parametrize("value, low, high", [
    (1.5, "1.5", "1.5"),        # fits neither scale
    (2.0, "2.0", "2.0"),
    (300.0, "300.0", "300.0"),  # above the 0-255 scale
    (-0.5, "-0.5", "-0.5"),     # standardised or [-1, 1] data
])
def test_floats_outside_the_rule_are_refused_eagerly_and_in_graph(value, low, high):
    images = np.full((2, 4, 4, 3), value, "float32")
    message = r"must lie in \[0, 1\] or on the 0-255 scale .*value_range=\(low, high\)"
    with pytest.raises(ValueError, match=message + rf".* Received: images with min={low}, max={high}"):
        aug.RandomFlip(seed=0)(images)
    flip = tf.function(aug.RandomFlip(seed=0, name="flip_under_test"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="flip_under_test: Floating `images` " + message):
        flip(images)
    # The remedy the message names: declare the scale.
    lo, hi = min(value, 0.0), max(value, 1.0)
    assert aug.RandomFlip(seed=0, value_range=(lo, hi))(images).shape == (2, 4, 4, 3)


def test_nan_pixels_are_refused_in_graph():
    flip = tf.function(aug.RandomFlip(seed=0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="must lie in"):
        flip(tf.fill((2, 4, 4, 3), float("nan")))


def test_simclr_accepts_value_range_0_255_and_refuses_other_scales():
    from tests.test_model import tiny_encoder

    def build(augmenter):
        return simclr_tf.SimCLR(tiny_encoder(8), simclr_tf.ProjectionHead(output_dim=4), augmenter)

    assert build(aug.SimCLRAugmentation(8, value_range=(0, 255))).augmenter.value_range == (0.0, 255.0)
    with pytest.raises(ValueError, match=r"read uint8 images as \[0, 255\].* Received: \w+\.value_range=\(0\.0, 1\.0\)"):
        build(aug.SimCLRAugmentation(8, value_range=(0, 1)))


@pytest.mark.parametrize("config_value", ["absent", None])
def test_configs_saved_before_the_0_255_default_load_with_the_old_meaning(config_value):
    # Release 0.1.0 wrote `value_range: None`; configs written by hand may
    # lack the key. Both read uint8 and [0, 1] floats exactly as before.
    config = aug.SimCLRAugmentation(8, seed=0).get_config()
    assert config["value_range"] is None  # the default rule is still spelled None
    if config_value == "absent":
        del config["value_range"]
    clone = aug.SimCLRAugmentation.from_config(config)
    images = _uint8((2, 10, 10, 3))
    expected = np.asarray(aug.SimCLRAugmentation(8, seed=0)(images))
    np.testing.assert_allclose(clone(images.astype("float32") / 255.0), expected, atol=2e-6)


def test_traced_range_check_is_one_reduction_and_skipped_for_integers():
    layer = aug.RandomFlip(seed=0)

    def op_types(dtype):
        graph = tf.function(layer).get_concrete_function(tf.TensorSpec((2, 4, 4, 3), dtype)).graph
        types = [op.type for op in graph.get_operations()]
        for function in graph.as_graph_def().library.function:  # the assert's branches
            types += [node.op for node in function.node_def]
        return types

    floats, ints = op_types(tf.float32), op_types(tf.uint8)
    assert "Assert" in floats and floats.count("Max") == 1 and floats.count("Min") == 1
    assert "Assert" not in ints and "Max" not in ints and "Min" not in ints


def test_range_check_compiles_under_xla():
    # TensorFlow compiles Assert to a no-op under XLA: the check is dropped
    # there, but the layer must still compile and run.
    flip = tf.function(aug.RandomFlip(rate=0.0, seed=0), jit_compile=True)
    images = np.full((2, 4, 4, 3), 0.25, "float32")
    np.testing.assert_array_equal(flip(images), images)


# ---------------------------------------------------------------- inputs: symbolic inputs


@pytest.mark.parametrize(
    "make, inputs, match",
    [
        (lambda: aug.SimCLRAugmentation(8, seed=0), lambda: keras.Input((16, 16, 4), dtype="uint8"), "channels"),
        (lambda: aug.RandomFlip(seed=0), lambda: keras.Input((16, 16, 3), dtype="bool"), "dtype=bool"),
        (lambda: aug.RandomFlip(seed=0), lambda: keras.Input((16,)), "rank"),
        (lambda: aug.RandomResizedCrop(8, seed=0), lambda: keras.Input((16, 0, 3)), "height and width"),
        (lambda: aug.RandomRotate90(seed=0), lambda: keras.Input((16, 12, 3)), "square"),
    ],
)
def test_symbolic_inputs_are_checked(make, inputs, match):
    with pytest.raises(ValueError, match=match):
        make()(inputs())


def test_compute_output_shape_checks_rank_and_channels():
    with pytest.raises(ValueError, match=r"rank.*Received: images.shape=\(32,\)"):
        aug.RandomFlip().compute_output_shape((32,))
    with pytest.raises(ValueError, match="channels"):
        aug.SimCLRAugmentation(8).compute_output_shape((None, 16, 16, 2))
    assert aug.SimCLRAugmentation(8).compute_output_shape((None, 16, 12, 1)) == (None, 8, 8, 3)
    inputs = keras.Input((None, None, 1), dtype="uint8")
    assert keras.Model(inputs, aug.RandomRotate90(seed=0)(inputs)).output_shape == (None, None, None, 3)


# ---------------------------------------------------------------- inputs: mixed precision


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_float32_inputs_are_not_quantised_under_mixed_policy(policy):
    images = np.random.default_rng(0).random((2, 8, 8, 3)).astype("float32")
    reference = np.asarray(aug.ColorDistortion(seed=0)(images))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        identity = aug.RandomFlip(rate=0.0, seed=0)
        out = identity(images)
        assert out.dtype == "float32"
        np.testing.assert_array_equal(out, images)
        distorted = aug.ColorDistortion(seed=0)(images)
        assert distorted.dtype == "float32"
        np.testing.assert_allclose(distorted, reference, atol=1e-6)
    finally:
        keras.config.set_dtype_policy(previous)


# ---------------------------------------------------------------- inputs: cutout


def test_cutout_hole_is_square_on_non_square_images():
    images = np.ones((32, 8, 24, 1), "float32")
    holes = np.asarray(aug.Cutout(size=0.5, seed=0)(images))[..., 0] == 0.0
    rows = holes.any(axis=2).sum(axis=1)
    cols = holes.any(axis=1).sum(axis=1)
    # Side 0.5 * min(8, 24) = 4 pixels, clipped at the border.
    assert rows.max() == 4 and cols.max() == 4
    assert (rows >= 1).all() and (cols >= 1).all()
    assert ((rows == 4) & (cols == 4)).any()


# ---------------------------------------------------------------- inputs: seed state


def test_pipeline_tracks_exactly_one_seed_state():
    layer = aug.SimCLRAugmentation(16, seed=0)
    assert len(layer.variables) == 1
    assert layer.variables[0] is layer.seed_generator.state
    assert layer._crop.seed_generator is layer.seed_generator  # noqa: SLF001
    assert layer._color.seed_generator is layer.seed_generator  # noqa: SLF001
    assert not layer._crop.variables and not layer._color.variables  # noqa: SLF001
    inputs = keras.Input((24, 20, 3), dtype="uint8")
    model = keras.Model(inputs, layer(inputs))
    assert len(callbacks._seed_states(model)) == 1  # noqa: SLF001


def test_pipeline_views_for_a_seed_are_unchanged():
    # Recorded before the seed-generator change: the same seed gives the same views.
    images = np.random.default_rng(0).integers(0, 256, (4, 24, 20, 3)).astype("uint8")
    layer = aug.SimCLRAugmentation(16, seed=0, blur=False)
    first, second = np.asarray(layer(images)), np.asarray(layer(images))
    np.testing.assert_allclose(first.reshape(4, -1).mean(1), [0.7046211, 0.5348635, 0.6012422, 0.7509563], atol=2e-6)
    np.testing.assert_allclose(first[:, 3, 5, 1], [0.8719199, 0.9961905, 0.9999, 1.0], atol=2e-5)
    np.testing.assert_allclose(second.reshape(4, -1).mean(1), [0.5640492, 0.4703701, 0.120814, 0.5636231], atol=2e-6)
    np.testing.assert_allclose(second[:, 3, 5, 1], [0.5121688, 0.0625789, 0.1488504, 0.0737811], atol=2e-5)


# ---------------------------------------------------------------- inputs: RandomRotate90


def test_rotate90_error_shows_the_shape_passed():
    with pytest.raises(ValueError, match=r"square images. Received: images.shape=\(5, 7, 3\)"):
        aug.RandomRotate90(seed=0)(np.zeros((5, 7, 3), "float32"))
    with pytest.raises(ValueError, match=r"Received: images.shape=\(2, 5, 7, 3\)"):
        aug.RandomRotate90(seed=0)(np.zeros((2, 5, 7, 3), "float32"))
    # Evaluation is the identity, for any shape.
    images = np.full((5, 7, 3), 0.5, "float32")
    np.testing.assert_array_equal(aug.RandomRotate90(seed=0)(images, training=False), images)
