import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import simclr_tf

SIZE = 16

LOAD_SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
path, npy = sys.argv[1], sys.argv[2]
images = np.load(npy)
loaded = tf.saved_model.load(path)
out = {}
res = loaded.signatures["serving_default"](images=tf.constant(images))
out["keys"] = sorted(res)
out["features"] = res["features"].numpy().tolist()
if "projection" in res:
    out["projection"] = res["projection"].numpy().tolist()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def model():
    m = simclr_tf.SimCLR(
        encoder=simclr_tf.resnet(18, 0.125, (SIZE, SIZE, 3), small_images=True),
        projection_head=simclr_tf.ProjectionHead(output_dim=8),
        augmenter=simclr_tf.SimCLRAugmentation(SIZE, seed=0),
        temperature=0.5,
    )
    m.compile(optimizer="adam")
    x = np.random.default_rng(0).integers(0, 255, (16, 20, 20, 3), dtype=np.uint8)
    m.fit(x, batch_size=8, epochs=1, verbose=0)  # move BN statistics off init
    return m


def test_export_round_trip_in_a_fresh_process(model, tmp_path):
    path = simclr_tf.export_encoder(model, str(tmp_path / "export"))
    images = np.random.default_rng(1).integers(0, 255, (3, 23, 19, 3), dtype=np.uint8)
    npy = tmp_path / "images.npy"
    np.save(npy, images)
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, path, str(npy)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["keys"] == ["features", "projection"]
    h = model.predict(images, verbose=0)
    np.testing.assert_allclose(np.array(out["features"]), h, atol=1e-5)
    z = model.projection_head(h, training=False)
    np.testing.assert_allclose(np.array(out["projection"]), z, atol=1e-5)


def test_float_signature_and_bare_encoder(model, tmp_path):
    import tensorflow as tf

    path = simclr_tf.export_encoder(model.encoder, str(tmp_path / "enc"))
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) == {"serving_default", "serving_float"}
    x = np.random.default_rng(2).random((2, SIZE, SIZE, 3)).astype("float32")
    res = loaded.signatures["serving_float"](images=tf.constant(x))
    assert sorted(res) == ["features"]
    np.testing.assert_allclose(res["features"], model.encoder(x, training=False), atol=1e-5)


def test_export_replaces_atomically_and_rejects_bad_input(model, tmp_path):
    target = tmp_path / "export"
    simclr_tf.export_encoder(model, str(target))
    first = sorted(os.listdir(target))
    simclr_tf.export_encoder(model, str(target))
    assert sorted(os.listdir(target)) == first
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []
    with pytest.raises(ValueError, match="model_or_encoder"):
        simclr_tf.export_encoder("not a model", str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()


def test_encoder_keras_file_reloads_and_fine_tunes(model, tmp_path):
    from simclr_tf.atomic import save_keras

    path = tmp_path / "encoder.keras"
    save_keras(model.encoder, path)
    encoder = keras.saving.load_model(path)  # safe_mode=True by default
    assert len(encoder.trainable_weights) == len(model.encoder.trainable_weights)
    classifier = keras.Sequential([encoder, keras.layers.Dense(3)])
    classifier.compile(optimizer="adam",
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(3).random((8, SIZE, SIZE, 3)).astype("float32")
    before = [w.numpy().copy() for w in encoder.trainable_weights]
    classifier.fit(x, np.arange(8) % 3, epochs=1, verbose=0)
    assert any(not np.allclose(b, w.numpy()) for b, w in zip(before, encoder.trainable_weights))
