"""`SimCLR` on the batch forms, weights, numbers and randomness its users pass:
probe metrics only with labels, dict/tuple batches in `predict` and `call`,
sample and class weights refused, `evaluate` reproducible without consuming
training randomness, short last batches weighted by size (a batch of one
skipped), NumPy numbers accepted as arguments."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import simclr_tf
from tests.distributed_helpers import fixed_images
from tests.distributed_helpers import make_model as identity_model
from tests.test_model import SIZE, make_model


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


# -- Keras and TFDS pipelines fed as they come (the value-range rule of
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
