"""The main job, end to end, in a short mode; its usage errors before any work."""

import json
import os
import subprocess
import sys
import warnings

import keras
import pytest
import tensorflow as tf

import simclr_tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHORT = [
    "--epochs=2", "--steps_per_epoch=2", "--batch_size=32",
    "--set", "probe.max_examples=300", "--set", "probe.max_iterations=20",
    "--set", "report.fractions=[0.2]", "--set", "report.seeds=[0]",
    "--set", "report.supervised_fractions=[0.2]", "--set", "report.supervised_epochs=2",
]


@pytest.mark.slow
def test_main_job_short_mode_writes_every_artefact(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "experiments.pretrain", f"--output_dir={out}", *SHORT],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Linear-probe top-1" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_dataset"] == "embedded"
    for key in ("probe_top1_learned", "probe_top1_random", "probe_top1_pixels", "knn_top1_learned"):
        assert 0.0 <= metrics[key] <= 1.0
    assert len(metrics["history"]["loss"]) == 2
    # The closing report: every arm at 20% of the labels, the full probes at
    # 100%, the margin, the artefacts and the next command.
    cells = {(r["arm"], r["fraction"], r["seed"]) for r in metrics["label_efficiency"]}
    assert cells == ({(a, 0.2, 0) for a in ("learned", "random", "pixels", "supervised")}
                     | {(a, 1.0, 0) for a in ("learned", "random", "pixels")})
    full = {r["arm"]: r["top1"] for r in metrics["label_efficiency"] if r["fraction"] == 1.0}
    assert full == {a: metrics[f"probe_top1_{a}"] for a in ("learned", "random", "pixels")}
    assert set(metrics["label_efficiency_margin"]) == {"0.2", "1.0"}
    assert "Margin of the learned encoder over the best baseline: 20%" in result.stdout
    assert "supervised" in result.stdout and f"Next: simclr-tf linear-eval --encoder={out}" in result.stdout
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "encoder.keras").is_file() and (out / "simclr.keras").is_file()
    assert (out / "saved_model" / "saved_model.pb").is_file()
    assert any(p.name.endswith(".weights.h5") for p in (out / "checkpoints").iterdir())
    assert any((out / "tensorboard").rglob("events.out.tfevents.*"))
    loaded = tf.saved_model.load(str(out / "saved_model"))
    assert "serving_default" in loaded.signatures
    # No temporary or half-written artefact is left behind.
    assert not [p for p in out.rglob(".*tmp*")]


def test_bad_config_value_fails_before_writing(tmp_path):
    out = tmp_path / "bad"
    result = subprocess.run(
        [sys.executable, "-m", "experiments.pretrain", f"--output_dir={out}",
         "--set", "temperature=0"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 2
    assert "error: Config `temperature` must be > 0. Received: temperature=0" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_pixel_baseline_keeps_one_channel_of_gray_images_only():
    import numpy as np

    from simclr_tf_cli.probes import single_channel_if_gray

    rng = np.random.default_rng(0)
    gray = np.repeat(rng.random((5, 4, 4, 1)), 3, axis=-1)
    train, test = single_channel_if_gray(gray.reshape(5, -1), gray[:2].reshape(2, -1), 4)
    assert train.shape == (5, 16) and test.shape == (2, 16)
    np.testing.assert_array_equal(train, gray[..., 0].reshape(5, -1))
    colour = rng.random((5, 4, 4, 3))
    train, test = single_channel_if_gray(colour.reshape(5, -1), gray[:2].reshape(2, -1), 4)
    assert train.shape == (5, 48) and test.shape == (2, 48)  # any colour keeps all three


def test_default_config_builds_the_documented_encoder():
    # README and the config docstring quote this architecture's results:
    # ResNet-10, stage widths 16-32-64-256, 0.83M parameters, 256-d h.
    from simclr_tf_cli import builders, config as config_lib

    config = config_lib.load_config("default")
    config_lib.check_config(config)
    encoder = builders.build_encoder(config)
    assert encoder.name == "resnet10"
    assert encoder.output_shape == (None, 256)
    assert encoder.count_params() == 834_800
    assert encoder.get_layer("stage1_block1_conv1").input.shape[1] == 14  # stem stride 2
    # ... trained with the paper's optimiser and square-root scaling, at twice
    # its base rate: LARS at 0.15 * sqrt(256) = 2.4.
    optimizer = builders.build_optimizer(config, steps_per_epoch=39)
    assert isinstance(optimizer, simclr_tf.LARS) and optimizer.weight_decay == pytest.approx(1e-4)
    schedule = optimizer._learning_rate  # the schedule object (`learning_rate` is its current value)
    assert isinstance(schedule, simclr_tf.WarmupCosine)
    assert float(schedule(39)) == pytest.approx(2.4, rel=1e-4)  # peak, after one epoch of warm-up
    assert float(schedule(10)) < 2.4 * 11 / 39 + 1e-6


def test_weight_decay_that_adam_ignores_is_said_out_loud():
    from simclr_tf_cli import builders, config as config_lib

    config = config_lib.load_config("default")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default itself must not warn
        builders.build_optimizer(config, 10)
    config["optimizer"].update(name="adam", weight_decay=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(builders.build_optimizer(config, 10), keras.optimizers.Adam)
    config["optimizer"]["weight_decay"] = 1e-4
    with pytest.warns(UserWarning, match=r"weight_decay`=0.0001 has no effect.*'adam'"):
        builders.build_optimizer(config, 10)
    config["optimizer"]["name"] = "adamw"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimizer = builders.build_optimizer(config, 10)
    assert optimizer.weight_decay == pytest.approx(1e-4)


# -- inputs: the output folder, checked before loading data --------------------


def test_pretrain_refuses_an_output_dir_under_a_file_before_loading_data(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    result = subprocess.run(
        [sys.executable, "-m", "experiments.pretrain", f"--output_dir={afile}/run", "--probe=false"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 2
    # One line, no traceback.
    assert "experiments.pretrain: error: `--output_dir` is under" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "parameters" not in result.stderr + result.stdout  # no model was built
