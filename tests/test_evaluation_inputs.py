"""Inputs the evaluation, data, picture and JSON helpers used to mishandle.

Each test reproduces a defect found in a review (2026-11-30): (B, 1) labels
from a dataset inflating top-k, unchecked probe features and arguments,
float images on a 0-255 scale taken as [0, 1], picture arguments and NumPy
values in JSON (the IDX reader's cases are in test_data.py).
"""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import simclr_tf
from simclr_tf import evaluation
from simclr_tf.augmentation import SimCLRAugmentation
from simclr_tf.atomic import write_json
from simclr_tf.visualize import augmentation_grid

SIZE = 16


def tiny_encoder(seed=0):
    keras.utils.set_random_seed(seed)
    return simclr_tf.resnet(18, 0.125, (SIZE, SIZE, 3), small_images=True)


def random_split(n=24, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, SIZE, SIZE, 3), np.uint8), np.arange(n) % classes


# --------------------------------------------------------------------------
# Labels shaped (B, 1)


def test_topk_refuses_column_labels_that_would_broadcast():
    # Every row's top-1 is class 0; one label in four is 0. As (N, 1), the
    # comparison broadcast to (N, N, k) and counted every row as correct.
    logits = np.tile(np.array([[1.0, 0.0, 0.0, 0.0]]), (8, 1))
    labels = np.arange(8) % 4
    assert evaluation._scores(logits, labels)["top1"] == 0.25
    assert evaluation._scores(logits, labels[:, None])["top1"] == 0.25
    with pytest.raises(ValueError, match=r"labels must have shape \(8,\)"):
        evaluation._topk(logits, labels[:, None], 1)


def test_dataset_labels_shaped_b1_come_back_flat():
    images, labels = random_split(6)
    ds = tf.data.Dataset.from_tensor_slices((images, labels[:, None])).batch(4)
    [(features, got)] = evaluation.labelled_features(tiny_encoder(), ds)
    assert got.shape == (6,) and features.shape[0] == 6
    np.testing.assert_array_equal(got, labels)


def test_linear_eval_augmented_scores_the_same_for_b1_and_flat_dataset_labels():
    images, labels = random_split(24)

    def run(y):
        ds = lambda: tf.data.Dataset.from_tensor_slices((images, y)).batch(8)  # noqa: E731
        return evaluation.linear_eval(tiny_encoder(), ds(), ds(), augment=True, epochs=1, seed=0)

    flat, column = run(labels), run(labels[:, None])
    assert column["top1"] == flat["top1"]
    assert column["top5"] == flat["top5"]


# --------------------------------------------------------------------------
# Linear probe arguments


def test_linear_probe_refuses_non_finite_and_mismatched_features():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)).astype(np.float32), np.arange(40) % 2
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="`train_features` contains NaN"):
        evaluation.linear_probe(bad, y, x, y)
    with pytest.raises(ValueError, match=r"same width.*\(40, 5\).*\(40, 4\)"):
        evaluation.linear_probe(x, y, x[:, :4], y)
    # Image-shaped features (raw pixels) are still flattened per example.
    pixels = rng.random((40, 4, 4, 1)).astype(np.float32)
    assert 0.0 <= evaluation.linear_probe(pixels, y, pixels, y)["top1"] <= 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "`epochs` must be an integer >= 1"),
        ({"batch_size": 0}, "`batch_size` must be an integer >= 1"),
        ({"learning_rate": -1.0}, "`learning_rate` must be a finite number > 0"),
        ({"weight_decay": -1e-4}, "`weight_decay` must be a finite number >= 0"),
    ],
)
def test_linear_probe_adam_checks_its_arguments(kwargs, match):
    x, y = np.eye(4, dtype=np.float32), np.arange(4)
    with pytest.raises(ValueError, match=match):
        evaluation.linear_probe(x, y, x, y, solver="adam", **kwargs)


# --------------------------------------------------------------------------
# extract_features and image values


def test_extract_features_checks_batch_size_and_input_type():
    images, labels = random_split(5)
    encoder = tiny_encoder()
    with pytest.raises(ValueError, match="`batch_size` must be an integer >= 1. Received: batch_size=0"):
        evaluation.extract_features(encoder, images, batch_size=0)
    with pytest.raises(ValueError, match="`images` must be an array.*labelled_features.*tuple"):
        evaluation.extract_features(encoder, (images, labels))
    # A list of images is an array of images.
    features = evaluation.extract_features(encoder, list(images), batch_size=2)
    assert features.shape[0] == 5


def test_float_images_on_a_0_255_scale_are_refused():
    images, labels = random_split(6)
    scaled = images.astype(np.float32)  # 0-255 floats, as tf.image.resize returns them
    encoder = tiny_encoder()
    with pytest.raises(ValueError, match=r"`images` float values must lie in \[0, 1\].*uint8"):
        evaluation.extract_features(encoder, scaled)
    with pytest.raises(ValueError, match=r"`train_data\[0\]` float values must lie in \[0, 1\]"):
        evaluation.linear_eval(encoder, (scaled, labels), (images, labels), epochs=1)
    # The same images scaled to [0, 1] are accepted and embed like the uint8 ones.
    np.testing.assert_allclose(
        evaluation.extract_features(encoder, scaled / 255.0),
        evaluation.extract_features(encoder, images),
        atol=1e-5,
    )


# --------------------------------------------------------------------------
# augmentation_grid and write_json


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"padding": -2}, r"`padding` must be an integer >= 0. Received: padding=-2"),
        ({"padding": 2.5}, r"`padding` must be an integer >= 0. Received: padding=2.5"),
        ({"background": 300}, r"`background` must be an integer >= 0 and <= 255. Received: background=300"),
        ({"num_views": 0}, r"`num_views` must be an integer >= 1. Received: num_views=0"),
    ],
)
def test_augmentation_grid_checks_its_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        augmentation_grid(np.zeros((1, 8, 8, 3), np.uint8), SimCLRAugmentation(8, seed=0),
                          tmp_path / "grid.png", **kwargs)
    assert not list(tmp_path.iterdir())


def test_augmentation_grid_takes_numpy_integers_and_a_path_without_extension(tmp_path):
    path = tmp_path / "grid"
    grid = augmentation_grid(np.zeros((1, 8, 8, 3), np.uint8), SimCLRAugmentation(8, seed=0), path,
                             num_views=np.int64(2), padding=np.int32(1))
    assert grid.shape == (10, 28, 3)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_json_takes_numpy_values_and_writes_strict_json(tmp_path):
    path = tmp_path / "r.json"
    write_json(path, {"top1": np.float32(0.5), "n": np.int64(3), "curve": np.arange(3), "loss": [1.0, math.nan]})
    text = path.read_text()
    assert "NaN" not in text
    assert json.loads(text) == {"top1": 0.5, "n": 3, "curve": [0, 1, 2], "loss": [1.0, None]}


# --------------------------------------------------------------------------
# linear_eval / finetune entry points: refused runs leave nothing behind


def _run_entry_point(module, argv):
    from absl import flags

    flag_values = flags.FlagValues()
    module.define_flags(flag_values)
    flag_values([module.__name__] + argv)
    return module.main([], flag_values=flag_values)


@pytest.mark.parametrize("name", ["linear_eval", "finetune"])
def test_refused_evaluation_runs_create_no_output_folder(tmp_path, name):
    import importlib

    from simclr_tf.atomic import save_keras

    module = importlib.import_module(f"experiments.{name}")
    save_keras(tiny_encoder(), str(tmp_path / "encoder.keras"))
    common = [f"--encoder={tmp_path / 'encoder.keras'}", "--dataset=embedded", "--max_test_examples=20"]
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="`epochs` must be an integer >= 1. Received: epochs=0"):
        _run_entry_point(module, common + ["--epochs=0", f"--output_dir={out}"])
    assert not out.exists()  # was left behind, empty, before
    file = tmp_path / "a_file"
    file.write_text("keep")
    with pytest.raises(ValueError, match=r"`--output_dir` is under .*a_file', a file"):
        _run_entry_point(module, common + [f"--output_dir={file}/run"])
    with pytest.raises(ValueError, match="`--output_dir` exists and is not a folder"):
        _run_entry_point(module, common + [f"--output_dir={file}"])
    assert file.read_text() == "keep"
