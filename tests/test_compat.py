"""Compatibility: `.keras` files saved by earlier releases still load and
compute the same h, and each private Keras hook of `simclr_tf._keras_compat`
still behaves as that module relies on."""

import inspect
import os

import keras
import numpy as np
import tensorflow as tf

import simclr_tf
from simclr_tf import _keras_compat

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def test_release_0_1_0_keras_file_loads_and_gives_the_same_features():
    model = keras.models.load_model(os.path.join(DATA, "simclr_release_0_1_0.keras"))
    assert isinstance(model, simclr_tf.SimCLR)
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    h = keras.ops.convert_to_numpy(model.encoder(images[:2].astype("float32") / 255.0, training=False))
    expected = np.load(os.path.join(DATA, "simclr_release_0_1_0_h.npy"))
    np.testing.assert_allclose(h, expected, rtol=1e-4, atol=1e-5)


def test_release_0_1_0_model_reads_uint8_and_unit_floats_as_before():
    # Its augmenter's config says `value_range: None`, the default rule: uint8
    # and [0, 1] floats give the same representation (and 0-255 floats now too).
    model = keras.models.load_model(os.path.join(DATA, "simclr_release_0_1_0.keras"))
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    h = keras.ops.convert_to_numpy(model(images))
    for x in (images.astype("float32") / 255.0, images.astype("float32")):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), h, rtol=1e-4, atol=1e-5)


# -- the private Keras hooks of simclr_tf/_keras_compat.py: each test fails when
# Keras changes the hook, naming it.


def test_no_keras_src_import_outside_the_compat_module():
    root = os.path.dirname(os.path.abspath(simclr_tf.__file__))
    offenders = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".py") and path != os.path.abspath(_keras_compat.__file__):
                with open(path, encoding="utf-8") as f:
                    if "keras.src" in f.read():
                        offenders.append(os.path.relpath(path, root))
    assert not offenders, offenders


def test_scale_loss_for_distribution_divides_by_the_replicas(mirrored_strategy):
    assert float(_keras_compat.scale_loss_for_distribution(tf.constant(3.0))) == 3.0

    def replica_fn():
        return _keras_compat.scale_loss_for_distribution(tf.constant(3.0, tf.float32))

    per_replica = mirrored_strategy.run(replica_fn)
    values = [float(v) for v in mirrored_strategy.experimental_local_results(per_replica)]
    assert values == [1.5, 1.5]


def test_keras_sums_gradients_across_replicas(mirrored_strategy):
    # Why the loss is scaled: `apply_gradients` under a strategy sums the
    # replicas' gradients (SUM), it does not average them.
    with mirrored_strategy.scope():
        variable = keras.Variable(0.0)
        optimizer = keras.optimizers.SGD(1.0)
        optimizer.build([variable])

    @tf.function
    def step():
        def replica_fn():
            optimizer.apply_gradients([(tf.constant(1.0), variable)])
        mirrored_strategy.run(replica_fn)

    step()
    assert float(variable.numpy()) == -2.0


def test_flatten_layers_walks_attributes_lists_and_sequentials():
    assert "include_self" in inspect.signature(keras.layers.Layer._flatten_layers).parameters
    inner = keras.layers.Dense(2, name="inner")
    listed = keras.layers.Dense(2, name="listed")

    class Holder(keras.layers.Layer):
        def __init__(self):
            super().__init__(name="holder")
            self.seq = keras.Sequential([inner])
            self.parts = [listed]

    holder = Holder()
    names = [layer.name for layer in _keras_compat.flatten_layers(holder)]
    assert names[0] == "holder" and {"inner", "listed"} <= set(names), names


def test_tracked_seed_generators_lists_a_layers_generators():
    layer = simclr_tf.augmentation.RandomFlip(seed=3)
    assert _keras_compat.tracked_seed_generators(layer) == [layer.seed_generator]
    assert _keras_compat.tracked_seed_generators(object()) == []


def test_seed_state_name_is_the_name_keras_gives_seed_generator_states():
    layer = simclr_tf.augmentation.RandomFlip(seed=3)
    model = keras.Sequential([keras.Input((4, 4, 3)), layer])
    names = [v.name for v in model.variables]
    assert names.count(_keras_compat.SEED_STATE_NAME) == 1, names
    assert keras.random.SeedGenerator(0).state.name == _keras_compat.SEED_STATE_NAME


def test_in_multi_worker_mode_exists_and_is_false_on_one_worker(mirrored_strategy):
    from tensorflow.python.distribute import collective_all_reduce_strategy as collective

    # The multi-worker strategy's extended class must still have the method
    # Keras and we call; a local strategy answers False.
    assert callable(collective.CollectiveAllReduceExtended._in_multi_worker_mode)
    assert _keras_compat.in_multi_worker_mode(mirrored_strategy) is False


def _tiny_data():
    x = np.arange(8 * 3, dtype="float32").reshape(8, 3) / 24.0
    return x, x[:, :1]


def test_set_initial_epoch_makes_fit_resume_and_none_clears_it():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = _tiny_data()
    _keras_compat.set_initial_epoch(model, 2)
    assert len(model.fit(x, y, epochs=3, verbose=0).history["loss"]) == 1
    _keras_compat.set_initial_epoch(model, None)
    assert len(model.fit(x, y, epochs=3, verbose=0).history["loss"]) == 3


def test_skip_symbolic_build_replaces_the_build_keras_runs_before_steps():
    assert list(inspect.signature(keras.Model._maybe_symbolic_build).parameters) == [
        "self", "iterator", "data_batch"]
    calls = []

    class Recorder(_keras_compat.SkipSymbolicBuild, keras.Model):
        def _before_first_step(self):
            calls.append(True)

    inputs = keras.Input((3,))
    model = Recorder(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    x, y = _tiny_data()
    model.fit(x, y, epochs=1, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.train_on_batch(x, y)
    model.test_on_batch(x, y)
    assert len(calls) == 4, calls


def test_optimizer_hooks_lars_relies_on():
    # simclr_tf/optimizers.py (LARS) calls `_var_key` and `_use_weight_decay`
    # and overrides `_apply_weight_decay` to keep decay inside its update.
    variable = keras.Variable(np.ones(2, "float32"), name="kernel")
    optimizer = keras.optimizers.SGD(0.1, weight_decay=0.5)
    optimizer.exclude_from_weight_decay(var_names=["kernel"])
    optimizer.build([variable])
    assert optimizer._var_key(variable) == optimizer._var_key(variable)
    assert optimizer._use_weight_decay(variable) is False
    calls = []

    class Recorder(keras.optimizers.SGD):
        def _apply_weight_decay(self, variables):
            calls.append(len(variables))

    Recorder(0.1, weight_decay=0.5).apply_gradients([(np.zeros(2, "float32"), variable)])
    assert calls == [1]
