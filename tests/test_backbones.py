"""Any Keras model as `SimCLR`'s encoder: one returning vectors, one returning
feature maps (SimCLR adds the pooling), `keras.applications` models and a
keras-hub backbone, each pretrained for a step, saved and loaded, exported,
linearly evaluated and fine-tuned through the public functions. Tiny shapes;
no weights are downloaded."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import simclr_tf
from simclr_tf.evaluation import finetune, linear_eval

SIZE = 32


def _images(n=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE + 4, SIZE + 4, 3), dtype=np.uint8)


def _labelled(n=8):
    return _images(n), np.arange(n) % 2


def _simclr(encoder):
    return simclr_tf.SimCLR(encoder, simclr_tf.ProjectionHead(output_dim=8),
                            simclr_tf.SimCLRAugmentation(SIZE, seed=0), temperature=0.5)


def _pretrain_one_step(model):
    model.compile(optimizer="adam")
    history = model.fit(_images(), batch_size=4, epochs=1, steps_per_epoch=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    return model


def _feature_map_encoder(name="maps"):
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, strides=4, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.BatchNormalization()(x), name=name)


def test_an_encoder_returning_vectors_is_used_as_it_is():
    inputs = keras.Input((SIZE, SIZE, 3))
    encoder = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(
        keras.layers.Conv2D(8, 3, strides=4)(inputs)))
    assert _simclr(encoder).encoder is encoder


def test_an_encoder_returning_feature_maps_is_average_pooled():
    backbone = _feature_map_encoder()
    model = _pretrain_one_step(_simclr(backbone))
    assert isinstance(model.encoder, keras.Sequential) and model.encoder.name == "maps_pooled"
    assert model.encoder.layers[0] is backbone  # shared, so the user's backbone is trained
    assert model.encoder.output_shape == (None, 8)
    views = model.augmenter(_images(2), training=False)
    np.testing.assert_allclose(model.encoder(views), np.mean(backbone(views), axis=(1, 2)), atol=1e-6)


@pytest.mark.parametrize("outputs, shown", [
    (lambda x: keras.layers.Reshape((-1, 8))(x), r"\(None, 64, 8\)"),
    (lambda x: [x, x], r"\[\(None, 8, 8, 8\), \(None, 8, 8, 8\)\]"),
])
def test_an_encoder_with_other_outputs_is_refused(outputs, shown):
    inputs = keras.Input((SIZE, SIZE, 3))
    encoder = keras.Model(inputs, outputs(keras.layers.Conv2D(8, 3, strides=4)(inputs)))
    with pytest.raises(ValueError, match=r"feature maps .* Received: encoder.output_shape=" + shown):
        _simclr(encoder)


APPLICATIONS = {
    "ResNet50": lambda: keras.applications.ResNet50(
        weights=None, include_top=False, input_shape=(SIZE, SIZE, 3)),
    "MobileNetV2": lambda: keras.applications.MobileNetV2(
        weights=None, include_top=False, input_shape=(SIZE, SIZE, 3), alpha=0.35),
    "EfficientNetB0": lambda: keras.applications.EfficientNetB0(
        weights=None, include_top=False, input_shape=(SIZE, SIZE, 3)),
}


@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_keras_applications_models_become_simclr_encoders(name):
    # Construction and the forward pass for each; the next test trains one.
    model = _simclr(APPLICATIONS[name]())
    features = model.predict(_images(2), verbose=0)
    assert features.shape == (2, model.encoder.output_shape[-1]) and np.all(np.isfinite(features))


@pytest.mark.slow  # the only proof of the claim: runs in CI
def test_a_keras_applications_encoder_pretrains_saves_exports_and_evaluates(tmp_path):
    model = _pretrain_one_step(_simclr(APPLICATIONS["MobileNetV2"]()))
    images = _images(2)
    expected = model.predict(images, verbose=0)
    path = str(tmp_path / "mobilenet.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, simclr_tf.SimCLR)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, rtol=1e-4, atol=1e-5)
    served = tf.saved_model.load(simclr_tf.export_encoder(model, str(tmp_path / "served")))
    np.testing.assert_allclose(served.signatures["serving_default"](images=tf.constant(images))["features"],
                               expected, rtol=1e-4, atol=1e-5)
    data = _labelled()
    assert 0.0 <= linear_eval(model, data, data, epochs=1, batch_size=4)["top1"] <= 1.0
    assert 0.0 <= finetune(model.encoder, data, data, epochs=1, batch_size=4)["top1"] <= 1.0


@pytest.mark.slow  # the only proof of the claim: runs in CI
def test_a_keras_hub_backbone_pretrains_saves_and_exports(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    # Built from a config: no preset, no download.
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 64],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(SIZE, SIZE, 3))
    model = _pretrain_one_step(_simclr(backbone))
    assert model.encoder.output_shape == (None, 64)
    path = str(tmp_path / "hub.keras")
    model.save(path)
    images = _images(2)
    np.testing.assert_allclose(keras.models.load_model(path).predict(images, verbose=0),
                               model.predict(images, verbose=0), rtol=1e-4, atol=1e-5)
    assert os.path.isdir(simclr_tf.export_encoder(model, str(tmp_path / "served")))
