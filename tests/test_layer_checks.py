"""The shared layer checks fail on the faults they are there to catch."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from tests import layer_checks
from tests.layer_checks import LayerCase

IMAGES = np.random.default_rng(0).random((2, 4, 4, 3)).astype("float32")


@keras.saving.register_keras_serializable(package="simclr_tf_tests")
class NoiseLayer(keras.layers.Layer):
    """Adds seeded uniform noise with ``keras.random``, or our counter-based RNG."""

    def __init__(self, seed=None, keep_seed=True, counter_rng=True, **kwargs):
        super().__init__(**kwargs)
        self.seed, self.keep_seed, self.counter_rng = seed, keep_seed, counter_rng
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images):
        if self.counter_rng:
            from simclr_tf.augmentation import _random

            return images + _random.uniform(self.seed_generator, ops.shape(images))
        return images + keras.random.uniform(ops.shape(images), seed=self.seed_generator)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(keep_seed=self.keep_seed, counter_rng=self.counter_rng)
        if self.keep_seed:
            config["seed"] = self.seed
        return config


@keras.saving.register_keras_serializable(package="simclr_tf_tests")
class CropLayer(keras.layers.Layer):
    def call(self, images):
        boxes = tf.constant([[0.0, 0.0, 0.5, 0.5]] * 2)
        return tf.image.crop_and_resize(images, boxes, tf.range(2), (2, 2))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2, 2, input_shape[-1])


def test_a_well_behaved_layer_passes(tmp_path):
    layer_checks.check_layer(LayerCase("noise", lambda: NoiseLayer(seed=1), IMAGES, random=True), tmp_path)


def test_a_seed_missing_from_the_config_fails_the_config_check(tmp_path):
    case = LayerCase("forgets_seed", lambda: NoiseLayer(seed=1, keep_seed=False), IMAGES, random=True)
    with pytest.raises(AssertionError, match="from_config clone"):
        layer_checks.run_check(case, "config", tmp_path)


def test_an_rng_that_differs_under_xla_fails_the_xla_check(tmp_path):
    # keras.random's stateless draws lower to different numbers under XLA,
    # which is why the augmentation layers use their own counter-based RNG.
    case = LayerCase("keras_random", lambda: NoiseLayer(seed=1, counter_rng=False), IMAGES, random=True)
    layer_checks.run_check(case, "function", tmp_path)
    with pytest.raises(AssertionError, match="XLA"):
        layer_checks.run_check(case, "xla", tmp_path)


def test_an_op_without_an_xla_kernel_skips_only_when_the_case_says_why(tmp_path):
    reason = "tf.image.crop_and_resize has no XLA kernel"
    with pytest.raises(pytest.skip.Exception, match="CropAndResize"):
        layer_checks.run_check(LayerCase("crop", CropLayer, IMAGES, no_xla=reason), "xla", tmp_path)
    with pytest.raises(pytest.fail.Exception, match="no_xla"):
        layer_checks.run_check(LayerCase("crop", CropLayer, IMAGES), "xla", tmp_path)
    with pytest.raises(pytest.fail.Exception, match="stale"):
        layer_checks.run_check(LayerCase("noise", lambda: NoiseLayer(seed=1), IMAGES, no_xla=reason), "xla", tmp_path)


def test_a_layer_whose_state_does_not_advance_fails_the_eager_check(tmp_path):
    case = LayerCase("frozen", lambda: NoiseLayer(seed=1), IMAGES, random=True)
    frozen = LayerCase("frozen", lambda: keras.layers.Identity(), IMAGES, random=True)
    layer_checks.run_check(case, "eager", tmp_path)
    with pytest.raises(AssertionError, match="does not advance"):
        layer_checks.run_check(frozen, "eager", tmp_path)


def test_every_layer_of_the_package_has_layer_checks():
    import importlib
    import pkgutil

    import simclr_tf
    from tests import test_augmentation, test_heads

    found = set()
    for info in pkgutil.walk_packages(simclr_tf.__path__, "simclr_tf."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, keras.layers.Layer)
                    and not issubclass(value, keras.Model) and value.__module__.startswith("simclr_tf")
                    and not value.__name__.startswith(("_", "Base"))):
                found.add(value.__name__)
    tested = {type(case.make()).__name__ for case in test_augmentation.LAYER_CASES + test_heads.LAYER_CASES}
    assert found and found <= tested, sorted(found - tested)
