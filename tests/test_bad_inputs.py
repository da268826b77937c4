"""The bad-input catalogue (docs/ERRORS.md): every row, and property-based
tests that the augmentation layer and the loss fail only with the documented
errors. Row ids here match the `#` column of the table."""

import os
import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simclr_tf
from experiments import common
from simclr_tf import data
from simclr_tf.losses import nt_xent

SIZE = 8
GOOD = np.random.default_rng(0).integers(0, 256, (4, SIZE, SIZE, 3), dtype=np.uint8)


def image_batch(dtype="uint8", value=None, shape=(2, SIZE, SIZE, 3)):
    if value is None:
        return np.zeros(shape, dtype)
    return np.full(shape, value, dtype)


# -- images: augmentation layer (eager) and array loader ------------------------

IMAGE_ROWS = {
    # id: (images, message pattern)
    "A1 rank 2": (np.zeros((SIZE, SIZE), "uint8"), r"must have rank 4 .* Received: images.shape=\(8, 8\)"),
    "A2 rank 5": (np.zeros((1, 2, SIZE, SIZE, 3), "uint8"), r"must have rank 4 .* Received: images.shape=\(1, 2, 8, 8, 3\)"),
    "A3 2 channels": (np.zeros((2, SIZE, SIZE, 2), "uint8"), r"1 or 3 channels .* Received: images.shape=\(2, 8, 8, 2\)"),
    "A4 4 channels": (np.zeros((2, SIZE, SIZE, 4), "uint8"), r"1 or 3 channels .* Received: images.shape=\(2, 8, 8, 4\)"),
    "A5 string dtype": (np.full((2, SIZE, SIZE, 3), "a"), r"Received: images.dtype=string"),
    "A6 bool dtype": (np.zeros((2, SIZE, SIZE, 3), bool), r"Received: images.dtype=bool"),
    "A7 NaN pixels": (image_batch("float32", np.nan), r"contains NaN or Inf .* Received: images.dtype=float32"),
    "A8 Inf pixels": (image_batch("float32", np.inf), r"contains NaN or Inf"),
    "A9 float fitting neither scale": (image_batch("float32", 1.5), r"must lie in \[0, 1\] or on the 0-255 scale.* min=1.5, max=1.5"),
    "A10 float below 0": (image_batch("float32", -0.5), r"must lie in \[0, 1\] or on the 0-255 scale.* min=-0.5"),
    "A11 integer above 255": (image_batch("int32", 300), r"Integer `images` must lie in \[0, 255\].* max=300"),
    "A12 zero height": (np.zeros((2, 0, SIZE, 3), "uint8"), r"height and width >= 1. Received: images.shape=\(2, 0, 8, 3\)"),
}


@pytest.fixture(scope="module")
def augmenter():
    return simclr_tf.SimCLRAugmentation(SIZE, seed=0)


@pytest.mark.parametrize("row", sorted(IMAGE_ROWS))
def test_augmenter_rejects(augmenter, row):
    images, pattern = IMAGE_ROWS[row]
    with pytest.raises(ValueError, match=pattern):
        augmenter(images, training=True)


def test_augmenter_traced_value_checks(augmenter):
    """A14: in traced calls floating input outside the value-range rule (NaN
    included) raises in-graph, in either mode; integer input is not
    value-checked."""
    out = tf.function(lambda x: augmenter(x, training=False))(image_batch("int32", 300))
    assert out.shape == (2, SIZE, SIZE, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Floating `images` must lie in \[0, 1\] or on"):
        tf.function(lambda x: augmenter(x, training=False))(image_batch("float32", np.nan))
    for training in (False, True):
        fn = tf.function(lambda x, training=training: augmenter(x, training=training))
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"sim_clr_augmentation\w*: Floating `images`"):
            fn(image_batch("float32", 300.0))
    ds = tf.data.Dataset.from_tensors(image_batch("float32", -0.5)).map(lambda x: augmenter(x))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must lie in \[0, 1\] or on the 0-255 scale"):
        next(iter(ds))
    with pytest.raises(ValueError, match="1 or 3 channels"):  # static checks still run
        tf.function(lambda x: augmenter(x))(np.zeros((2, SIZE, SIZE, 4), "float32"))


def test_augmenter_accepts_the_edges(augmenter):
    assert augmenter(np.zeros((0, SIZE, SIZE, 3), "uint8")).shape == (0, SIZE, SIZE, 3)  # A13
    assert augmenter(np.zeros((2, 1, 1, 1), "uint8")).shape == (2, SIZE, SIZE, 3)
    assert augmenter(image_batch("float32", 1.0005)).shape == (2, SIZE, SIZE, 3)  # rounding slack


LOADER_ROWS = {
    "D1 rank 2": (np.zeros((SIZE, SIZE), "uint8"), r"must have shape \(N, H, W\).* Received: images.shape=\(8, 8\)"),
    "D2 rank 5": (np.zeros((1, 2, SIZE, SIZE, 3), "uint8"), r"Received: images.shape=\(1, 2, 8, 8, 3\)"),
    "D3 2 channels": (np.zeros((2, SIZE, SIZE, 2), "uint8"), r"1 or 3 channels .* Received: images.shape=\(2, 8, 8, 2\)"),
    "D4 4 channels": (np.zeros((2, SIZE, SIZE, 4), "uint8"), r"1 or 3 channels"),
    "D5 string dtype": (np.full((2, SIZE, SIZE, 3), "a"), r"Received: images.dtype=<U1"),
    "D6 bool dtype": (np.zeros((2, SIZE, SIZE, 3), bool), r"Received: images.dtype=bool"),
    "D7 NaN pixels": (image_batch("float32", np.nan), r"contains NaN or Inf"),
    "D8 Inf pixels": (image_batch("float64", -np.inf), r"contains NaN or Inf"),
    "D9 float above 1": (image_batch("float32", 2.0), r"must lie in \[0, 1\]. Received: images with min=2.0, max=2.0"),
    "D10 integer above 255": (image_batch("int64", 256), r"must lie in \[0, 255\].* max=256"),
    "D11 empty": (np.zeros((0, SIZE, SIZE, 3), "uint8"), r"`images` is empty"),
    "D12 labels only": (np.arange(10), r"Received: images.shape=\(10,\)"),
}


@pytest.mark.parametrize("row", sorted(LOADER_ROWS))
def test_from_arrays_rejects(row):
    images, pattern = LOADER_ROWS[row]
    with pytest.raises(ValueError, match=pattern):
        data.from_arrays(images, batch_size=2)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"labels": np.arange(3)}, r"one label per image \(4\). Received: len\(labels\)=3"),  # D13
    ({"labels": np.zeros(4, "float32")}, r"must be a 1-D integer array. Received: labels with shape \(4,\) and dtype float32"),  # D14
    ({"batch_size": 0}, r"Received: batch_size=0"),  # D15
])
def test_from_arrays_rejects_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        data.from_arrays(GOOD, **kwargs)


# -- folders, names, paths -----------------------------------------------------------


@pytest.fixture
def folder(tmp_path):
    import PIL.Image

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(2):
            PIL.Image.fromarray(GOOD[i]).save(tmp_path / name / f"{i}.png")
    (tmp_path / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "b" / "notes.txt").write_text("ignored: not an image extension")
    return tmp_path


def test_folder_with_corrupt_file_skips_with_counted_warning(folder):  # F1
    with pytest.warns(UserWarning, match=r"Skipping 1 of 5 image files .*broken.jpg"):
        ds = data.from_folder(folder, batch_size=8)
    images, labels = next(iter(ds))
    # The broken file's slot holds the next readable file (b/0.png): epochs keep their length.
    assert images.shape == (5, SIZE, SIZE, 3) and labels.numpy().tolist() == [0, 0, 1, 1, 1]
    assert ds.unreadable.files == [str(folder / "a" / "broken.jpg")]


def test_folder_with_corrupt_file_raises_naming_it_on_request(folder):  # F2
    with pytest.raises(ValueError, match=r"Cannot decode image file '.*broken.jpg'"):
        data.from_folder(folder, on_error="raise")


@pytest.mark.parametrize("name, pattern", [
    ("folder:/no/such/dir", r"Image folder does not exist. Received: path='/no/such/dir'"),  # F3
    ("tfds:no_such_dataset_xyz", r"Unknown TFDS dataset name 'no_such_dataset_xyz'"),  # F4
    ("no-such-source:x", r"Unknown dataset 'no-such-source:x'. Accepted: "),  # F5
])
def test_load_rejects_names_and_paths(name, pattern):
    with pytest.raises(ValueError, match=pattern):
        data.load(name, split="train")


def test_folder_without_images(tmp_path):  # F6
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.txt").write_text("x")
    with pytest.raises(ValueError, match=r"No image files .* \(1 other files ignored\)"):
        data.from_folder(tmp_path)


def test_missing_fashion_mnist_files(tmp_path):  # F7
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.load_fashion_mnist("train", path=tmp_path)


def test_folder_of_unreadable_files_only(tmp_path):  # F8
    for i in range(3):
        (tmp_path / f"{i}.jpg").write_bytes(b"not a jpeg")
    with pytest.warns(UserWarning), pytest.raises(
            ValueError, match=r"None of the 3 image files under path='.*' could be decoded, e.g. '.*0\.jpg': "):
        data.from_folder(tmp_path)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"labels": "yes"}, r'`labels` must be "auto", "inferred" or None. Received: labels=\'yes\''),  # F9
    ({"initial_epoch": 2}, r"`initial_epoch` needs repeat=True .* Received: initial_epoch=2, repeat=False"),  # F10
    ({"shard": (2, 2)}, r"`shard` must be .* Received: shard=\(2, 2\)"),  # F11
])
def test_folder_option_values(folder, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        data.from_folder(folder, **kwargs)


def test_folder_refuses_a_shuffle_buffer(folder):  # F12
    with pytest.raises(ValueError, match=r"`shuffle_buffer` does not apply to folders .*shuffle_buffer=8"):
        data.load(f"folder:{folder}", shuffle_buffer=8)


# -- model and loss ------------------------------------------------------------------


def tiny_model(**kwargs):
    encoder = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(4, 3),
                                keras.layers.GlobalAveragePooling2D()])
    kwargs.setdefault("augmenter", simclr_tf.SimCLRAugmentation(SIZE, seed=0))
    return simclr_tf.SimCLR(encoder=encoder, projection_head=simclr_tf.ProjectionHead(output_dim=4),
                            **kwargs)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"temperature": 0}, r"Received: temperature=0"),  # M1
    ({"temperature": -1.0}, r"Received: temperature=-1.0"),
    ({"temperature": "0.5"}, r"Received: temperature='0.5'"),
    ({"num_classes": 1}, r"Received: num_classes=1"),  # M2
    ({"augmenter": None}, r"Received: augmenter=None"),  # M3
    # M3b: SimCLR feeds its augmenter uint8 batches (export), also when our
    # layer sits inside a Sequential.
    ({"augmenter": simclr_tf.SimCLRAugmentation(SIZE, value_range=(0, 1))},
     r"Leave `value_range` unset .* Received: sim_clr_augmentation\w*\.value_range=\(0\.0, 1\.0\)"),
    ({"augmenter": keras.Sequential([simclr_tf.SimCLRAugmentation(SIZE, value_range=(0, 1.5))])},
     r"Leave `value_range` unset .* Received: sim_clr_augmentation\w*\.value_range=\(0\.0, 1\.5\)"),
])
def test_simclr_rejects_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        tiny_model(**kwargs)


def test_simclr_trains_with_keras_layers_that_have_their_own_value_range():  # M3b
    # Keras's image layers have a `value_range` of their own meaning: not
    # refused. A Sequential augmenter starts with an Input of the data's dtype.
    jitter = keras.layers.RandomBrightness(0.1, value_range=(0, 1), seed=0)
    augmenter = keras.Sequential([keras.Input((SIZE, SIZE, 3), dtype="uint8"),
                                  simclr_tf.SimCLRAugmentation(SIZE, seed=0), jitter])
    assert tiny_model(augmenter=jitter).augmenter is jitter
    model = tiny_model(augmenter=augmenter)
    model.compile(optimizer="sgd")
    history = model.fit(tf.data.Dataset.from_tensor_slices(GOOD).batch(4), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_simclr_rejects_a_static_batch_of_one():  # M4
    model = tiny_model()
    model.compile(optimizer="sgd")
    one = tf.data.Dataset.from_tensor_slices(GOOD[:1]).batch(1, drop_remainder=True)
    with pytest.raises(ValueError, match=r"global batch of at least 2 .* Received: batch_size=1"):
        model.fit(one, epochs=1, verbose=0)


def test_simclr_rejects_a_dataset_of_labels_only():  # M5
    model = tiny_model()
    model.compile(optimizer="sgd")
    labels = tf.data.Dataset.from_tensor_slices(np.arange(8)).batch(4)
    with pytest.raises(ValueError, match=r"must have rank 4 .* Received: images.shape=\(None,\)"):
        model.fit(labels, epochs=1, verbose=0)


def test_empty_dataset():  # M6
    empty = tf.data.Dataset.from_tensor_slices(np.zeros((0, SIZE, SIZE, 3), "uint8")).batch(4)
    # The entry point counts batches first (also for a set smaller than one batch).
    with pytest.raises(ValueError, match="no full batch: it is empty or smaller than `batch_size`"):
        common.count_batches(empty)
    # `SimCLR.fit` itself gets Keras's warning and trains no epoch (a cheap
    # augmenter keeps the trace short).
    model = tiny_model(augmenter=keras.layers.Rescaling(1 / 255))
    model.compile(optimizer="sgd")
    with pytest.warns(UserWarning, match="ran out of data"):
        history = model.fit(empty, epochs=1, verbose=0)
    assert history.history == {}


def test_simclr_rejects_loss_and_unbuilt_encoder():  # M7, M8
    with pytest.raises(ValueError, match=r"do not pass `loss`"):
        tiny_model().compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="must be built"):
        simclr_tf.SimCLR(encoder=keras.Sequential([keras.layers.Dense(4)]),
                         augmenter=simclr_tf.SimCLRAugmentation(SIZE))


def test_simclr_rejects_weights_and_float_probe_labels():  # M10, M11, M12
    images = np.zeros((4, SIZE, SIZE, 3), np.uint8)
    model = tiny_model()
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"no per-example weights.*`sample_weight` and `class_weight`"):
        model.fit(images, np.arange(4), sample_weight=np.ones(4), batch_size=4, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"do not pass `weighted_metrics`"):
        tiny_model().compile(optimizer="sgd", weighted_metrics=["accuracy"])
    probed = tiny_model(num_classes=3)
    probed.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"Probe labels must be integer class indices.*labels.dtype=float32"):
        probed.fit(images, np.zeros(4, np.float32), batch_size=4, epochs=1, verbose=0)


def test_uneven_replica_batches_give_the_single_device_loss(mirrored_strategy):  # M9
    """A global batch of 5 on 2 replicas splits 3 + 2: positives stay paired."""
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(5, 4)).astype("float32"), rng.normal(size=(5, 4)).astype("float32")
    parts = {0: slice(0, 3), 1: slice(3, 5)}

    def local(ctx):
        rows = parts[ctx.replica_id_in_sync_group]
        return z1[rows], z2[rows]

    per = mirrored_strategy.run(lambda pair: nt_xent(pair[0], pair[1], 0.5),
                                args=(mirrored_strategy.experimental_distribute_values_from_function(local),))
    losses = [float(x) for x in mirrored_strategy.experimental_local_results(per)]
    # Each replica's value is its share, weighted by the global anchor count,
    # so the plain mean over replicas (what Keras's distributed step takes)
    # is the single-device loss.
    assert np.mean(losses) == pytest.approx(float(nt_xent(z1, z2, 0.5)), rel=1e-5)


LOSS_ROWS = {
    "L1 temperature 0": ((4, 8), (4, 8), 0.0, r"`temperature` must be > 0. Received: temperature=0.0"),
    "L2 temperature NaN": ((4, 8), (4, 8), float("nan"), r"Received: temperature=nan"),
    "L3 temperature string": ((4, 8), (4, 8), "a", r"must be a number > 0. Received: temperature='a'"),
    "L4 rank 3": ((4, 8, 1), (4, 8, 1), 0.5, r"rank-2 .* Received: z1.shape=\(4, 8, 1\)"),
    "L5 feature sizes differ": ((4, 8), (4, 7), 0.5, r"same feature size"),
    "L6 batch sizes differ": ((4, 8), (3, 8), 0.5, r"same batch size .* z2.shape=\(3, 8\)"),
    "L7 empty": ((0, 8), (0, 8), 0.5, r"must not be empty"),
}


@pytest.mark.parametrize("row", sorted(LOSS_ROWS))
def test_loss_rejects(row):
    s1, s2, temperature, pattern = LOSS_ROWS[row]
    with pytest.raises(ValueError, match=pattern):
        nt_xent(np.ones(s1, "float32"), np.ones(s2, "float32"), temperature)


# -- configuration and the entry point ----------------------------------------------


def config_with(**changes):
    config = common.load_config("default")
    for key, value in changes.items():
        node = config
        *parents, leaf = key.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return config


@pytest.mark.parametrize("changes, pattern", [
    ({"temperature": 0}, r"Config `temperature` must be > 0. Received: temperature=0"),  # C1
    ({"temperature": -0.1}, r"Received: temperature=-0.1"),
    ({"optimizer__base_learning_rate": -1e-3},
     r"`optimizer.base_learning_rate` must be > 0. Received: optimizer.base_learning_rate=-0.001"),  # C2
    ({"encoder__width_multiplier": 0}, r"Received: encoder.width_multiplier=0"),  # C3
    ({"encoder__stage_widths": [16, 32, 64]}, r"Received: encoder.stage_widths=\[16, 32, 64\]"),  # C9
    ({"encoder__stage_widths": [16, 32, 64, -1]}, r"4 positive integers"),
    ({"encoder__width_multiplier": 0.5}, r"both set; set the other one to None"),  # C10
    ({"encoder__stage_widths": None}, r"Received: encoder.width_multiplier=None"),
    ({"encoder__depth": 20}, r"`encoder.depth` must be one of \(10, 14, 18, 34, 50, 101, 152\). Received: encoder.depth=20"),  # C4
    ({"batch_size": 1}, r"NT-Xent needs negatives\). Received: batch_size=1"),  # C5
    ({"epochs": 0}, r"Received: epochs=0"),  # C6
    ({"image_size": 4}, r"Received: image_size=4"),
    ({"temperature": True}, r"Received: temperature=True"),
    ({"encoder__stem_pool": True}, r"`encoder.stem_pool` must be False, or True with "
     r"encoder.small_images=True and encoder.stem_stride=1. Received: encoder.stem_pool=True, "
     r"encoder.small_images=True, encoder.stem_stride=2"),  # C11
    ({"encoder__stem_pool": 1}, r"Received: encoder.stem_pool=1,"),
])
def test_check_config_rejects(changes, pattern):
    with pytest.raises(ValueError, match=pattern):
        common.check_config(config_with(**changes))


def test_check_config_rejects_batch_not_divisible_by_replicas():  # C7
    with pytest.raises(ValueError, match=r"divisible by the 3 replicas. Received: batch_size=256"):
        common.check_config(config_with(), replicas=3)


def test_library_rejects_depth_and_width():  # C8
    with pytest.raises(ValueError, match=r"Received: depth=20"):
        simclr_tf.resnet(20, input_shape=(SIZE, SIZE, 3))
    with pytest.raises(ValueError, match=r"Received: width_multiplier=0"):
        simclr_tf.resnet(18, width_multiplier=0, input_shape=(SIZE, SIZE, 3))


PRETRAIN_ROWS = {
    "P1 temperature 0": (["--set", "temperature=0"], r"Received: temperature=0"),
    "P1 negative learning rate": (["--set", "optimizer.base_learning_rate=-1"],
                                  r"Received: optimizer.base_learning_rate=-1"),
    "P1 width 0": (["--set", "encoder.width_multiplier=0"], r"Received: encoder.width_multiplier=0"),
    "P1 depth 20": (["--set", "encoder.depth=20"], r"Received: encoder.depth=20"),
    "P1 batch size 1": (["--batch_size=1"], r"Received: batch_size=1"),
    "P2 unknown --set key": (["--set", "no_such_key=1"], r"`--set` key 'no_such_key' is not in the config"),
    "P2 --set without value": (["--set", "temperature"], r"`--set` wants key=value. Received: 'temperature'"),
    "P3 unknown config": (["--config=no_such_config"], r"Unknown `--config`.* Received: config='no_such_config'"),
    "P4 missing folder": (["--dataset=folder:/no/such/dir"],
                          r"Image folder does not exist. Received: path='/no/such/dir'"),
    "P5 unknown TFDS name": (["--dataset=tfds:no_such_dataset_xyz"],
                             r"Unknown TFDS dataset name 'no_such_dataset_xyz'"),
    "P6 negative backup interval": (["--backup_every_steps=-1"], r"Received: backup_every_steps=-1"),
    "P7 output path is a file": (["--output_dir={file}"], r"`--output_dir` exists and is not a folder"),
    "P8 word for a bool key": (["--set", "encoder.small_images=yes"],
                               r"`--set` value for 'encoder.small_images' must be True or False.*"
                               r"Received: encoder.small_images='yes'"),
    "P9 output path under a file": (["--output_dir={file}/run"], r"`--output_dir` is under '.*a_file', a file"),
    "P10 zero steps per epoch": (["--steps_per_epoch=0"],
                                 r"`--steps_per_epoch` must be an integer >= 1, or unset.*Received: "
                                 r"--steps_per_epoch=0"),
    "P11 unknown backbone": (["--set", "encoder.backbone=resnet50"],
                             r"did you mean 'ResNet50'\?.*Received: encoder.backbone='resnet50'"),
    "P12 unlabelled eval dataset": (["--probe", "--eval_dataset=folder:/no/such/dir"],
                                    r"`--eval_dataset` must name a labelled dataset.*"
                                    r"Received: eval_dataset='folder:/no/such/dir'"),
    "P13 report at 100%": (["--probe", "--set", "report.fractions=[1.0]"],
                           r"Config `report.fractions` and `report.supervised_fractions` must hold numbers in "
                           r"\(0, 1\) \(100% is the main probe\). Received: 1.0"),
}

# Runs every row through pretrain.main in one fresh process: the entry points
# define absl flags with the same names, so they cannot share a test process.
DRIVER = """
import json, os, sys
from absl import flags
from experiments import pretrain
rows = json.loads(sys.argv[1])
results = {}
for name, (args, out) in rows.items():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["pretrain", "--output_dir=" + out, "--noprobe", *args])
    try:
        pretrain.main([])
        results[name] = ["no error", ""]
    except Exception as err:
        results[name] = [type(err).__name__, str(err)]
print("RESULTS" + json.dumps(results))
"""


@pytest.fixture(scope="module")
def pretrain_results(tmp_path_factory):
    import json
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("pretrain_rows")
    file = root / "a_file"
    file.write_text("keep me")
    rows = {}
    for i, (name, (args, _)) in enumerate(PRETRAIN_ROWS.items()):
        args = [a.format(file=file) for a in args]
        out = str(file) if "{file}" in "".join(PRETRAIN_ROWS[name][0]) else str(root / f"out{i}")
        rows[name] = (args, out)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(rows)], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULTS")]
    assert line, proc.stdout[-2000:] + proc.stderr[-3000:]
    results = json.loads(line[0][len("RESULTS"):])
    return {name: (*results[name], rows[name][1]) for name in rows}, file


@pytest.mark.parametrize("row", sorted(PRETRAIN_ROWS))
def test_pretrain_refuses_before_writing_anything(pretrain_results, row):
    results, file = pretrain_results
    kind, message, out = results[row]
    assert kind == "ValueError", (kind, message)
    assert re.search(PRETRAIN_ROWS[row][1], message), message
    if out == str(file):
        assert file.read_text() == "keep me"
    else:
        assert not os.path.exists(out)  # the output folder is untouched


# -- property-based: only the documented errors ------------------------------------

# Every ValueError the augmentation layer may raise for an input, as in docs/ERRORS.md.
AUGMENTER_ERRORS = re.compile(
    r"must have rank 4|must have 1 or 3 channels|must have height and width >= 1|"
    r"must be an integer image in \[0, 255\] or a floating image|contains NaN or Inf|"
    r"must lie in \[0, 1\]|must lie in \[0, 255\]"
)
DTYPES = ["uint8", "uint16", "int8", "int32", "int64", "float16", "float32", "float64", "bool"]


@st.composite
def image_arrays(draw):
    rank = draw(st.integers(1, 5))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=rank, max_size=rank)))
    dtype = draw(st.sampled_from(DTYPES))
    kind = draw(st.sampled_from(["in range", "any", "special"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.startswith("float"):
        values = rng.uniform(0, 1, shape) if kind == "in range" else rng.normal(0, 3, shape)
        if kind == "special" and values.size:
            values.flat[draw(st.integers(0, values.size - 1))] = draw(
                st.sampled_from([np.nan, np.inf, -np.inf]))
        return values.astype(dtype)
    info = np.iinfo(dtype)
    low, high = (0, 255) if kind == "in range" else (max(info.min, -300), min(info.max, 300))
    return rng.integers(low, high + 1, shape).astype(dtype)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images=image_arrays(), training=st.booleans())
def test_augmenter_only_fails_with_documented_errors(augmenter, images, training):
    try:
        out = augmenter(images, training=training)
    except ValueError as err:
        assert AUGMENTER_ERRORS.search(str(err)), str(err)
        return
    out = np.asarray(out)
    if not out.size:
        assert out.shape == (0, SIZE, SIZE, 3)
        return
    expected = (SIZE, SIZE, 3) if images.ndim == 3 else (images.shape[0], SIZE, SIZE, 3)
    assert out.shape == expected and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and out.min() >= 0.0 and out.max() <= 1.0


LOSS_ERRORS = re.compile(
    r"`temperature` must be|must be rank-2|same feature size|same batch size|must not be empty"
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape1=st.lists(st.integers(0, 5), min_size=1, max_size=3),
    shape2=st.lists(st.integers(0, 5), min_size=1, max_size=3),
    same_shape=st.booleans(),
    dtype=st.sampled_from(["float16", "float32", "float64"]),
    temperature=st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                          st.integers(-2, 2), st.sampled_from([None, "0.1", True])),
    special=st.sampled_from([None, np.nan, np.inf]),
    seed=st.integers(0, 2**16),
)
def test_loss_only_fails_with_documented_errors(shape1, shape2, same_shape, dtype, temperature,
                                                special, seed):
    rng = np.random.default_rng(seed)
    z1 = rng.normal(size=shape1).astype(dtype)
    z2 = rng.normal(size=shape1 if same_shape else shape2).astype(dtype)
    if special is not None and z1.size:
        z1.flat[0] = special
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss = float(nt_xent(z1, z2, temperature))
    except ValueError as err:
        assert LOSS_ERRORS.search(str(err)), str(err)
        return
    # Documented: finite inputs and temperature give a finite loss >= 0
    # (0 for a batch of one); NaN/Inf inputs or temperature Inf propagate.
    if special is None and 1e-30 < float(temperature) < np.inf:
        assert np.isfinite(loss) and loss >= -1e-6


def test_build_encoder_refuses_a_config_with_neither_width():
    # Ablation cells merge overrides after the base config was checked.
    config = config_with(encoder__stage_widths=None)
    with pytest.raises(ValueError, match=r"Received: width_multiplier=None"):
        common.build_encoder(config)


def test_check_config_accepts_stem_pool_with_a_stride_one_stem():  # C11's valid form
    config = config_with(encoder__stem_pool=True, encoder__stem_stride=1)
    common.check_config(config)
    encoder = common.build_encoder(config)
    assert encoder.get_layer("stem_pool").output.shape[1] == config["image_size"] // 2


def test_library_rejects_stem_pool_without_a_stride_one_small_stem():  # C11, library half
    with pytest.raises(ValueError, match=r"needs the small-image stem at stride 1.*"
                                         r"Received: small_images=True, stem_stride=2"):
        simclr_tf.resnet(10, 0.125, (SIZE, SIZE, 3), small_images=True, stem_stride=2,
                         stem_pool=True)
