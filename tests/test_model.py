import keras
import numpy as np
import pytest
import tensorflow as tf

import simclr_tf
from simclr_tf import data

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
def test_any_keras_model_works_as_encoder():
    encoder = keras.applications.ResNet50(
        weights=None, include_top=False, pooling="avg", input_shape=(32, 32, 3)
    )
    model = simclr_tf.SimCLR(encoder, simclr_tf.ProjectionHead(output_dim=8),
                             simclr_tf.SimCLRAugmentation(32, seed=0))
    model.compile(optimizer="adam")
    x = np.random.randint(0, 255, (4, 40, 40, 3)).astype("uint8")
    logs = model.fit(x, batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0])


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
