"""experiments.fresh_test: the main job's probes on test images outside the embedded split,
with the run's own training rows."""

import json

import keras
import numpy as np
import pytest

from experiments import common, fresh_test
from simclr_tf import data
from simclr_tf_cli import probes
from tests.test_data import _write_idx


def test_fresh_test_split_drops_exactly_the_embedded_test_images(tmp_path):
    embedded, embedded_labels = data.load_embedded("test")
    rng = np.random.default_rng(0)
    others = rng.integers(0, 256, (7, 28, 28, 1), dtype=np.uint8)
    # Official order: embedded images interleaved with the others.
    images = np.concatenate([embedded[:3], others[:4], embedded[3:5], others[4:]])
    labels = np.concatenate([embedded_labels[:3], np.arange(4), embedded_labels[3:5], np.arange(4, 7)])
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[..., 0], 0x803)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels, 0x801)
    fresh, fresh_labels = fresh_test.fresh_test_split(str(tmp_path))
    np.testing.assert_array_equal(fresh, others)
    np.testing.assert_array_equal(fresh_labels, np.arange(7))


def _tiny_run(folder, encoder=None):
    config = common.apply_overrides(common.load_config("default"), [
        "encoder.stage_widths=[4,8,16,32]", "probe.max_iterations=20", "seed=3"])
    if encoder is None:
        # What the run's random baseline is: plain init, seeded with seed + 1.
        keras.utils.set_random_seed(config["seed"] + 1)
        encoder = common.build_encoder(config, zero_init_residual=False)
    folder.mkdir()
    encoder.save(folder / "encoder.keras")
    (folder / "metrics.json").write_text(json.dumps({"config": config}))
    return folder


def test_probe_run_rebuilds_the_runs_random_encoder_and_probes_all_three(tmp_path):
    train = tuple(a[:200] for a in data.load_embedded("train"))
    test = tuple(a[:100] for a in data.load_embedded("test"))
    # A run whose "learned" encoder is exactly its random baseline: the two
    # probes must agree to the last digit.
    same = fresh_test.probe_run(str(_tiny_run(tmp_path / "same")), train, test)
    assert set(same) == {"learned", "random", "pixels"}
    assert same["learned"] == same["random"]
    for result in same.values():
        assert 0 <= result["top1"] <= 100 and 0 <= result["validation_top1"] <= 100
    assert same["pixels"] != same["random"]
    # The learned probe reads the saved encoder: one with constant features
    # can only predict a single class.
    constant = keras.Sequential([keras.Input((28, 28, 3)), keras.layers.Flatten(),
                                 keras.layers.Dense(8, kernel_initializer="zeros")])
    other = fresh_test.probe_run(str(_tiny_run(tmp_path / "constant", constant)), train, test)
    assert other["random"] == same["random"] and other["pixels"] == same["pixels"]
    majority = np.bincount(test[1]).max()  # percent of 100 images
    assert other["learned"]["top1"] <= majority < other["random"]["top1"]


def test_probe_run_names_a_folder_that_is_not_a_finished_run(tmp_path):
    with pytest.raises(ValueError, match=r"metrics.json is missing\. Received: run_dir="):
        fresh_test.probe_run(str(tmp_path), None, None)


# -- inputs: the run's training rows -------------------------------------------


@pytest.fixture
def default():
    return common.load_config("default")


def test_fresh_test_probes_the_runs_max_examples_training_rows(tmp_path, monkeypatch, default):
    config = common.apply_overrides(default, ["probe.max_examples=50"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    keras.Sequential([keras.Input((28, 28, 3)), keras.layers.Flatten()]).save(run_dir / "encoder.keras")
    (run_dir / "metrics.json").write_text(json.dumps({"config": config}))
    seen = {}

    def fake_probe(config, learned, view, train, test):
        seen["train"] = np.concatenate([np.asarray(y) for _, y in train])
        seen["test"] = sum(int(x.shape[0]) for x, _ in test)
        return {name: {"top1": 0.5} for name in ("learned", "random", "pixels")}

    monkeypatch.setattr(probes, "probe_representations", fake_probe)
    train = tuple(a[:120] for a in data.load_embedded("train"))
    test = tuple(a[:70] for a in data.load_embedded("test"))
    fresh_test.probe_run(str(run_dir), train, test)
    np.testing.assert_array_equal(seen["train"], train[1][:50])  # the first 50 rows, as run_probes
    assert seen["test"] == 70
