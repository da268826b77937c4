"""Tests for simclr_tf.model: `SimCLR` fits, evaluates, saves and probes, and
takes the batch forms, weights, numbers and randomness its users pass."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import simclr_tf
from simclr_tf import data
from tests.distributed_helpers import fixed_images
from tests.distributed_helpers import make_model as identity_model

SIZE = 16


def tiny_encoder(size=SIZE):
    """A few-layer conv net: traces in a fraction of a ResNet's time."""
    return keras.Sequential([
        keras.Input((size, size, 3)),
        keras.layers.Conv2D(8, 3, strides=2, use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.Conv2D(16, 3, use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
    ], name="tiny")


def make_model(num_classes=None, temperature=0.5, seed=0, head=None, size=SIZE, resnet=False):
    encoder = (simclr_tf.resnet(18, 0.125, (size, size, 3), small_images=True)
               if resnet else tiny_encoder(size))
    return simclr_tf.SimCLR(
        encoder=encoder,
        projection_head=head or simclr_tf.ProjectionHead(output_dim=16),
        augmenter=simclr_tf.SimCLRAugmentation(size, seed=seed),
        temperature=temperature,
        num_classes=num_classes,
    )


@pytest.fixture(scope="module")
def fmnist():
    images, labels = data.load_embedded("test")
    return images[:64], labels[:64]


def test_fit_accepts_images_tuples_and_dicts(fmnist):
    images, labels = fmnist
    batches = {
        "images": tf.data.Dataset.from_tensor_slices(images).batch(16),
        "tuple": tf.data.Dataset.from_tensor_slices((images, labels)).batch(16),
        "dict": tf.data.Dataset.from_tensor_slices({"image": images, "label": labels}).batch(16),
    }
    for name, ds in batches.items():
        keras.utils.set_random_seed(0)
        model = make_model()
        model.compile(optimizer="adam")
        history = model.fit(ds, epochs=1, verbose=0)
        assert set(history.history) == {"loss", "contrastive_acc", "contrastive_entropy"}, name
        assert np.isfinite(history.history["loss"][0]), name


def test_loss_falls_on_a_real_subset(fmnist):
    images, _ = fmnist
    keras.utils.set_random_seed(1)
    model = make_model(resnet=True)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    ds = tf.data.Dataset.from_tensor_slices(images).batch(32).repeat()
    history = model.fit(ds, epochs=8, steps_per_epoch=5, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] - 0.2, losses
    assert history.history["contrastive_acc"][-1] > history.history["contrastive_acc"][0]


def test_two_views_are_independent_draws(fmnist):
    model = make_model()
    x = fmnist[0][:8]
    traced = tf.function(lambda images: model.make_views(images))
    for make_views in (model.make_views, traced):  # the hook train_step uses
        views = make_views(x)
        assert isinstance(views, tuple) and len(views) == 2, views
        assert float(tf.reduce_mean(tf.abs(views[0] - views[1]))) > 0.01


def test_evaluate_and_predict(fmnist):
    images, labels = fmnist
    model = make_model(num_classes=10)
    model.compile(optimizer="adam")
    logs = model.evaluate(images, labels, batch_size=16, verbose=0, return_dict=True)
    assert {"loss", "contrastive_acc", "probe_loss", "probe_acc"} <= set(logs)
    h = model.predict(images, batch_size=16, verbose=0)
    assert h.shape == (64, model.encoder.output_shape[-1])
    # predict is the evaluation transform followed by the encoder.
    ref = model.encoder(model.augmenter(images, training=False), training=False)
    np.testing.assert_allclose(h, ref, atol=1e-5)


def test_keras_file_round_trip_reproduces_embeddings(fmnist, tmp_path):
    images, labels = fmnist
    model = make_model(num_classes=10, resnet=True)
    model.compile(optimizer="adam")
    model.fit(images, labels, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "simclr.keras"
    model.save(path)
    restored = keras.saving.load_model(path)  # safe_mode on
    assert isinstance(restored, simclr_tf.SimCLR)
    np.testing.assert_allclose(
        restored.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5
    )
    assert restored.temperature == model.temperature
    assert restored.num_classes == 10
    # The optimiser comes back compiled, with its state, ready to resume.
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) == 4
    restored.fit(images, labels, batch_size=16, epochs=1, verbose=0)


def test_config_round_trip():
    model = make_model(num_classes=3, temperature=0.2)
    clone = simclr_tf.SimCLR.from_config(model.get_config())
    assert clone.temperature == 0.2 and clone.num_classes == 3
    assert clone.projection_head.get_config()["output_dim"] == 16
    assert clone.augmenter.get_config() == model.augmenter.get_config()
    assert len(clone.trainable_weights) == len(model.trainable_weights)


def test_probe_gradients_never_reach_the_encoder(fmnist):
    images, labels = fmnist
    # Training with labels (the online probe learns) must move the encoder
    # exactly as training without them: same seed, a real learning rate.
    trained = {}
    for with_labels in (False, True):
        keras.utils.set_random_seed(3)
        model = make_model(num_classes=10)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        before_probe = [w.numpy().copy() for w in model.probe.trainable_weights]
        initial = [w.numpy().copy() for w in model.encoder.trainable_weights]
        model.fit(images, *([labels] if with_labels else []), batch_size=16, epochs=1, verbose=0,
                  shuffle=False)
        trained[with_labels] = [w.numpy() for w in model.encoder.trainable_weights]
        probe_moved = any(not np.allclose(b, w.numpy())
                          for b, w in zip(before_probe, model.probe.trainable_weights))
        assert probe_moved == with_labels
    assert max(np.abs(a - b).max() for a, b in zip(trained[False], initial)) > 1e-3  # it did learn
    for a, b in zip(trained[False], trained[True]):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # And the probe's loss has no gradient path into the encoder at all.
    with tf.GradientTape() as tape:
        h = model.encoder(model.augmenter(images[:8], training=False), training=False)
        probe_loss, _ = model._probe_loss(h, labels[:8])
    grads = tape.gradient(probe_loss, model.encoder.trainable_variables)
    assert all(g is None or float(tf.reduce_max(tf.abs(g))) == 0.0 for g in grads)


def test_probe_learns_with_its_own_optimizer(fmnist):
    images, labels = fmnist
    model = simclr_tf.SimCLR(tiny_encoder(), simclr_tf.ProjectionHead(output_dim=8),
                             simclr_tf.SimCLRAugmentation(SIZE, seed=0), temperature=0.5,
                             num_classes=10, probe_optimizer=keras.optimizers.Adam(0.05))
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    hist = model.fit(images, labels, batch_size=16, epochs=8, verbose=0)
    assert hist.history["probe_loss"][-1] < hist.history["probe_loss"][0] - 0.1
    assert int(model.probe_optimizer.iterations) == 32


def test_regularisation_losses_are_added():
    encoder = keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Conv2D(4, 3, kernel_regularizer=keras.regularizers.L2(10.0)),
        keras.layers.GlobalAveragePooling2D(),
    ])
    model = simclr_tf.SimCLR(encoder, simclr_tf.ProjectionHead(output_dim=4),
                             simclr_tf.SimCLRAugmentation(SIZE, seed=0), temperature=0.5)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    x = np.random.rand(8, SIZE, SIZE, 3).astype("float32")
    logs = model.fit(x, batch_size=8, epochs=1, verbose=0).history
    # NT-Xent with 8 images at tau=0.5 is at most log(15) + 4 = 6.7.
    assert logs["loss"][0] > 10.0
    # evaluate too, so `val_loss` compares with `loss` (it left them out).
    assert model.evaluate(x, batch_size=8, verbose=0, return_dict=True)["loss"] > 10.0


@pytest.mark.slow
@pytest.mark.slow
def test_mirrored_strategy_fit_with_unbuilt_head(fmnist, mirrored_strategy):
    """The head is built in the constructor, so no variable appears late."""
    images, labels = fmnist
    with mirrored_strategy.scope():
        model = make_model(num_classes=10)
        model.compile(optimizer=simclr_tf.LARS(0.1))
    logs = model.fit(images, labels, batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0]) and "probe_acc" in logs


def test_bad_arguments():
    encoder = simclr_tf.resnet(18, 0.125, (SIZE, SIZE, 3), small_images=True)
    aug = simclr_tf.SimCLRAugmentation(SIZE)
    for bad in (0, -1.0, "0.1"):
        with pytest.raises(ValueError, match="temperature"):
            simclr_tf.SimCLR(encoder, augmenter=aug, temperature=bad)
    with pytest.raises(ValueError, match="augmenter"):
        simclr_tf.SimCLR(encoder, augmenter=None)
    with pytest.raises(ValueError, match="encoder"):
        simclr_tf.SimCLR("resnet", augmenter=aug)
    with pytest.raises(ValueError, match="num_classes"):
        simclr_tf.SimCLR(encoder, augmenter=aug, num_classes=1)
    model = simclr_tf.SimCLR(encoder, augmenter=aug)
    with pytest.raises(ValueError, match="loss"):
        model.compile(optimizer="adam", loss="mse")


def test_bad_images_fail_clearly():
    model = make_model()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="channel|Received"):
        model.fit(np.zeros((4, SIZE, SIZE, 2), "float32"), batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="rank|Received"):
        model.fit(np.zeros((4, SIZE, SIZE, 3, 1), "float32"), batch_size=4, verbose=0)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_with_float32_loss(fmnist, policy):
    images, _ = fmnist
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        model = make_model()
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        if policy == "mixed_float16":
            # Keras wraps the optimiser for loss scaling under float16.
            assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        h1, z1 = model.embed(model.augmenter(images[:4], training=True))
        assert h1.dtype.name == policy.split("_")[1]
        logs = model.fit(images, batch_size=16, epochs=2, verbose=0).history
        assert all(np.isfinite(logs["loss"]))
        assert logs["loss"][-1] < logs["loss"][0] + 0.5
        # Variables stay float32: only the computation is in low precision.
        assert all(w.dtype == "float32" for w in model.encoder.trainable_weights)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_whole_train_step_compiles_under_xla(fmnist):
    images, _ = fmnist
    keras.utils.set_random_seed(0)
    model = make_model()
    model.compile(optimizer=simclr_tf.LARS(0.1), jit_compile=True)
    logs = model.fit(images[:32], batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0])
    assert model.jit_compile


# -- inputs: the batch forms, weights, numbers and randomness users pass ------
# Probe metrics only with labels, dict/tuple batches in `predict` and `call`,
# sample and class weights refused, `evaluate` reproducible without consuming
# training randomness, short last batches weighted by size (a batch of one
# skipped), NumPy numbers accepted as arguments.


def _images(n, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, SIZE, SIZE, 3)).astype("float32")


def _labels(n):
    return np.arange(n) % 3


def _states(model):
    # The pipeline's sub-layers share its seed generator.
    return [np.array(model.augmenter.seed_generator.state.numpy())]


def test_probe_metrics_only_when_batches_carry_labels():
    model = make_model(num_classes=3)
    model.compile(optimizer="adam")
    x, y = _images(8), _labels(8)
    history = model.fit(x, batch_size=4, epochs=1, verbose=0).history
    assert set(history) == {"loss", "contrastive_acc", "contrastive_entropy"}, history
    logs = model.evaluate(x, batch_size=4, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "contrastive_acc", "contrastive_entropy"}, logs
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0).history
    assert {"probe_loss", "probe_acc"} <= set(history)
    assert history["probe_loss"][0] > 0


def test_predict_and_call_unpack_dict_and_tuple_batches():
    model = make_model(num_classes=3)
    x, y = _images(8), _labels(8)
    ref = model.predict(x, batch_size=4, verbose=0)
    ds = tf.data.Dataset.from_tensor_slices({"image": x, "label": y}).batch(4)
    np.testing.assert_allclose(model.predict(ds, verbose=0), ref, atol=1e-5)
    pairs = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    np.testing.assert_allclose(model.predict(pairs, verbose=0), ref, atol=1e-5)
    np.testing.assert_allclose(model({"image": x[:4], "label": y[:4]}), ref[:4], atol=1e-5)
    np.testing.assert_allclose(model((x[:4], y[:4])), ref[:4], atol=1e-5)


def test_sample_and_class_weights_are_refused():
    model = make_model(num_classes=3)
    model.compile(optimizer="adam")
    x, y = _images(8), _labels(8)
    with pytest.raises(ValueError, match="sample_weight.*class_weight.*Received: a batch of 3"):
        model.fit(x, y, sample_weight=np.ones(8), batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="class_weight"):
        model.fit(x, y, class_weight={0: 1.0, 1: 1.0, 2: 1.0}, batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="sample_weight"):
        model.evaluate(x, y, sample_weight=np.ones(8), batch_size=4, verbose=0)
    for arg, value in (("weighted_metrics", ["mae"]), ("loss_weights", [1.0])):
        with pytest.raises(ValueError, match=f"Received: {arg}="):
            model.compile(optimizer="adam", **{arg: value})


def test_float_probe_labels_are_refused():
    model = make_model(num_classes=3)
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"integer class indices.*labels.dtype=float32"):
        model.fit(_images(8), _labels(8).astype("float32"), batch_size=4, verbose=0)


def test_evaluate_is_reproducible_and_leaves_training_randomness_alone():
    x = _images(8)
    model = make_model()
    model.compile(optimizer="adam")
    before = _states(model)
    first = model.evaluate(x, batch_size=4, verbose=0, return_dict=True)
    assert model.evaluate(x, batch_size=4, verbose=0, return_dict=True) == first
    for a, b in zip(before, _states(model)):
        np.testing.assert_array_equal(a, b)

    def train(validation):
        keras.utils.set_random_seed(0)
        model = make_model()
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        model.fit(x, batch_size=8, epochs=2, verbose=0, shuffle=False,
                  validation_data=(x,) if validation else None)
        return model.get_weights()

    for a, b in zip(train(False), train(True)):
        np.testing.assert_array_equal(a, b)


def test_evaluate_is_reproducible_under_mirrored_strategy(mirrored_strategy):
    with mirrored_strategy.scope():
        model = make_model()
        model.compile(optimizer="adam")
    x = _images(8)
    before = _states(model)
    first = model.evaluate(x, batch_size=8, verbose=0, return_dict=True)
    assert model.evaluate(x, batch_size=8, verbose=0, return_dict=True) == first
    for a, b in zip(before, _states(model)):
        np.testing.assert_array_equal(a, b)


def _fit(x, batch_size, optimizer):
    keras.utils.set_random_seed(0)
    model = make_model()
    model.compile(optimizer=optimizer)
    logs = model.fit(x, batch_size=batch_size, epochs=1, verbose=0, shuffle=False).history
    return model, logs


def test_a_last_batch_of_one_is_skipped():
    x = _images(9)
    full, full_logs = _fit(x[:8], 4, keras.optimizers.Adam(1e-2))
    short, short_logs = _fit(x, 4, keras.optimizers.Adam(1e-2))
    # The ninth image changes nothing: no metric weight, no step.
    for key, value in full_logs.items():
        assert short_logs[key] == pytest.approx(value, rel=1e-6), key
    assert int(short.optimizer.iterations) == 2
    for a, b in zip(full.get_weights(), short.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(short.evaluate(x, batch_size=4, verbose=0),
                               full.evaluate(x[:8], batch_size=4, verbose=0), rtol=1e-5)


def test_metrics_are_weighted_by_batch_size(mirrored_strategy):
    # A deterministic augmenter and a zero learning rate: each batch's loss
    # can be computed directly. Batches of 4, 4 and 2 (1 + 1 on two replicas).
    x = fixed_images(10)
    keras.utils.set_random_seed(0)
    model = identity_model()
    batch_losses = []
    for start in (0, 4, 8):
        _, z = model.embed(model.augmenter(x[start:start + 4]), training=True)
        batch_losses.append(float(simclr_tf.nt_xent(z, z, model.temperature)))
    expected = (4 * batch_losses[0] + 4 * batch_losses[1] + 2 * batch_losses[2]) / 10
    assert abs(expected - np.mean(batch_losses)) > 1e-3  # weighting matters here
    for strategy in (tf.distribute.get_strategy(), mirrored_strategy):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = identity_model()
            model.compile(optimizer=keras.optimizers.SGD(0.0))
        loss = model.fit(x, batch_size=4, epochs=1, verbose=0, shuffle=False).history["loss"][0]
        assert loss == pytest.approx(expected, rel=1e-4), strategy


def test_numpy_numbers_are_accepted():
    encoder = simclr_tf.resnet(np.int64(10), np.float32(0.125), (SIZE, SIZE, 3),
                               small_images=True, stem_stride=np.int64(2))
    assert encoder.output_shape == (None, 64)
    head = simclr_tf.ProjectionHead(num_layers=np.int64(2), hidden_dim=np.int32(8),
                                    output_dim=np.int64(4))
    json.dumps(head.get_config())  # plain ints
    model = simclr_tf.SimCLR(encoder, head, simclr_tf.SimCLRAugmentation(SIZE, seed=0),
                             temperature=np.float32(0.5), num_classes=np.int64(3))
    assert model.num_classes == 3 and type(model.num_classes) is int
    json.dumps(model.get_config()["num_classes"])
    h = model.encoder(np.zeros((2, SIZE, SIZE, 3), "float32"))
    assert head.hidden_output(h, np.int64(1)).shape == (2, 8)
    # Bools are not numbers here, and the message shows the type.
    with pytest.raises(ValueError, match=r"num_classes=True \(type bool\)"):
        simclr_tf.SimCLR(encoder, augmenter=simclr_tf.SimCLRAugmentation(SIZE), num_classes=True)
    with pytest.raises(ValueError, match="width_multiplier"):
        simclr_tf.resnet(10, True, (SIZE, SIZE, 3))
    with pytest.raises(ValueError, match="num_layers"):
        simclr_tf.ProjectionHead(num_layers=True)


# -- inputs: Keras and TFDS pipelines fed as they come (the value-range rule of
# simclr_tf.augmentation: uint8, 0-255 floats and [0, 1] floats).


def _fit_steps(ds, num_classes=None, steps=2):
    keras.utils.set_random_seed(0)
    model = make_model(num_classes=num_classes)
    model.compile(optimizer="adam")
    history = model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0).history
    assert np.isfinite(history["loss"][0]), history
    return history


def _png_folder(root, classes):
    rng = np.random.default_rng(0)
    for index in range(8):
        folder = root / classes[index % len(classes)] if classes else root
        folder.mkdir(parents=True, exist_ok=True)
        shape = (int(rng.integers(18, 30)), int(rng.integers(18, 30)), 3)
        png = tf.io.encode_png(rng.integers(0, 256, shape, dtype=np.uint8))
        (folder / f"{index}.png").write_bytes(png.numpy())
    return str(root)


def test_fit_takes_image_dataset_from_directory_batches(tmp_path):
    flat = _png_folder(tmp_path / "flat", classes=None)
    ds = keras.utils.image_dataset_from_directory(flat, labels=None, image_size=(20, 20), batch_size=4)
    assert ds.element_spec.dtype == tf.float32  # on the 0-255 scale
    assert set(_fit_steps(ds)) == {"loss", "contrastive_acc", "contrastive_entropy"}
    labelled = keras.utils.image_dataset_from_directory(
        _png_folder(tmp_path / "classes", classes=["a", "b"]), image_size=(20, 20), batch_size=4, seed=0)
    assert {"probe_loss", "probe_acc"} <= set(_fit_steps(labelled, num_classes=2))


def test_fit_takes_tfds_dict_and_supervised_batches():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=8):
        as_dict = tfds.load("mnist", split="train").batch(4)
        supervised = tfds.load("mnist", split="train", as_supervised=True).batch(4)
    assert as_dict.element_spec["image"].dtype == tf.uint8
    assert {"probe_loss", "probe_acc"} <= set(_fit_steps(as_dict, num_classes=10))
    assert {"probe_loss", "probe_acc"} <= set(_fit_steps(supervised, num_classes=10))


def test_uint8_0_255_and_unit_float_batches_train_alike():
    images = np.random.default_rng(0).integers(0, 256, (8, SIZE, SIZE, 3), dtype=np.uint8)
    losses = [_fit_steps(tf.data.Dataset.from_tensor_slices(x).batch(4))["loss"][0]
              for x in (images, images.astype("float32"), images.astype("float32") / 255.0)]
    np.testing.assert_allclose(losses, losses[0], rtol=1e-4)


def test_fit_refuses_float_batches_outside_the_rule():
    # [0, 1] images that resampling pushed above 1 fit neither scale.
    images = np.full((8, SIZE, SIZE, 3), 1.5, "float32")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must lie in \[0, 1\] or on the 0-255 scale"):
        _fit_steps(tf.data.Dataset.from_tensor_slices(images).batch(4))
