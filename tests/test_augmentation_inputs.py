"""Input and argument checks of simclr_tf.augmentation: non-finite arguments,
the value-range rule (uint8, 0-255 and [0, 1] floats, refused scales, old
configs), symbolic inputs, mixed precision, cutout shape, seed state
tracking, RandomRotate90 messages. Tiny inputs only."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import simclr_tf
from simclr_tf import augmentation as aug
from simclr_tf import callbacks

NAN, INF = float("nan"), float("inf")


def _uint8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape).astype("uint8")


# ---------------------------------------------------------------- defect 1: arguments


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


# ---------------------------------------------------------------- the value-range rule


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


# ---------------------------------------------------------------- defect 3: symbolic inputs


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


# ---------------------------------------------------------------- defect 4: mixed precision


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


# ---------------------------------------------------------------- defect 5: cutout


def test_cutout_hole_is_square_on_non_square_images():
    images = np.ones((32, 8, 24, 1), "float32")
    holes = np.asarray(aug.Cutout(size=0.5, seed=0)(images))[..., 0] == 0.0
    rows = holes.any(axis=2).sum(axis=1)
    cols = holes.any(axis=1).sum(axis=1)
    # Side 0.5 * min(8, 24) = 4 pixels, clipped at the border.
    assert rows.max() == 4 and cols.max() == 4
    assert (rows >= 1).all() and (cols >= 1).all()
    assert ((rows == 4) & (cols == 4)).any()


# ---------------------------------------------------------------- defect 6: seed state


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


# ---------------------------------------------------------------- defect 7: RandomRotate90


def test_rotate90_error_shows_the_shape_passed():
    with pytest.raises(ValueError, match=r"square images. Received: images.shape=\(5, 7, 3\)"):
        aug.RandomRotate90(seed=0)(np.zeros((5, 7, 3), "float32"))
    with pytest.raises(ValueError, match=r"Received: images.shape=\(2, 5, 7, 3\)"):
        aug.RandomRotate90(seed=0)(np.zeros((2, 5, 7, 3), "float32"))
    # Evaluation is the identity, for any shape.
    images = np.full((5, 7, 3), 0.5, "float32")
    np.testing.assert_array_equal(aug.RandomRotate90(seed=0)(images, training=False), images)
