"""simclr_tf.cli: the `simclr-tf` command, its usage errors, the backbone key
and the one probe that pretrain and linear-eval share."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from absl import flags

from simclr_tf.cli import builders, config as config_lib, linear_eval, probes, usage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--epochs=1", "--steps_per_epoch=2", "--batch_size=8",
        "--set", "encoder.stage_widths=[4,8,16,32]"]


def _command(args, cwd=ROOT, timeout=300):
    """`simclr-tf ARGS` in a fresh process, through the console script's launcher."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "simclr_tf_launcher", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)


# -- usage errors: one line, exit status 2, no traceback ----------------------


@pytest.mark.parametrize("args, message", [
    (["pretrain", "--epochs=abc"], r"simclr-tf pretrain: error: .*--epochs=abc"),
    (["pretrain", "--set", "temperature=0"], r"simclr-tf pretrain: error: Config `temperature` must be > 0"),
    (["pretrain", "--dataset=folder:/no/such/dir"], r"simclr-tf pretrain: error: .*/no/such/dir"),
    (["pretrain", "--set", "encoder.backbone=resnet50"], r"did you mean 'ResNet50'"),
    (["train"], r"simclr-tf: error: unknown command 'train'; known: pretrain, linear-eval"),
])
def test_usage_errors_print_one_line_and_exit_2(args, message, tmp_path):
    import re

    result = _command([*args, f"--output_dir={tmp_path / 'out'}"])
    assert result.returncode == 2, result.stderr[-2000:]
    # TensorFlow's own start-up log lines may come first; ours is one line.
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and re.search(message, lines[0]), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_command_lists_its_subcommands():
    result = _command(["--help"])
    assert result.returncode == 0
    for name in ("pretrain", "linear-eval", "finetune", "export"):
        assert name in result.stdout


def test_errors_outside_the_checks_keep_their_traceback():
    def fails_in_training(argv):
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        usage.run(fails_in_training, ["prog"], flag_values=flags.FlagValues())


def test_a_returned_value_is_not_an_exit_status():
    # absl's app.run hands main's return value to sys.exit: linear-eval's
    # results dict there would mean exit status 1 after a successful run.
    with pytest.raises(SystemExit) as stop:
        usage.run(lambda argv: {"top1": 0.9}, ["prog"], flag_values=flags.FlagValues())
    assert stop.value.code in (None, 0)


def test_checked_errors_exit_2_with_the_message(capsys):
    def refuses(argv):
        with usage.checks():
            raise ValueError("`--x` must be >= 1.\nReceived: x=0")

    with pytest.raises(SystemExit) as stop:
        usage.run(refuses, ["prog"], flag_values=flags.FlagValues())
    assert stop.value.code == 2
    assert capsys.readouterr().err == "prog: error: `--x` must be >= 1. Received: x=0\n"


# -- configs -------------------------------------------------------------------


def test_configs_load_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = config_lib.load_config("default")
    assert config["encoder"]["backbone"] == "resnet"
    assert "default" in config_lib.known_configs()
    with pytest.raises(ValueError, match=r"Unknown `--config`; known: \['default'.*config='nope'"):
        config_lib.load_config("nope")


# -- backbone ------------------------------------------------------------------


def test_backbone_key_builds_an_untrained_pooled_keras_application():
    config = config_lib.apply_overrides(config_lib.load_config("default"), [
        "encoder.backbone=MobileNetV2", "image_size=32"])
    config_lib.check_config(config)
    encoder = builders.build_encoder(config)
    assert encoder.output_shape == (None, 1280)
    model = builders.build_model(config)
    views = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), np.uint8)
    assert model.predict(views, verbose=0).shape == (4, 1280)


def test_efficientnet_gets_its_0_255_input_back():
    # EfficientNet B0-B7 rescale by 1/255 inside; our views are in [0, 1].
    config = config_lib.apply_overrides(config_lib.load_config("default"), [
        "encoder.backbone=EfficientNetB0", "image_size=32"])
    encoder = builders.build_encoder(config)
    assert isinstance(encoder.layers[1], keras.layers.Rescaling) and encoder.layers[1].scale == 255.0


def test_unknown_backbone_is_refused_with_the_known_names():
    config = config_lib.apply_overrides(config_lib.load_config("default"), ["encoder.backbone=resnet50"])
    with pytest.raises(ValueError, match=r"did you mean 'ResNet50'\?.*Received: encoder.backbone='resnet50'"):
        config_lib.check_config(config)


# -- one probe -----------------------------------------------------------------


def test_probe_arguments_take_each_solvers_own_settings():
    probe = {"solver": "lbfgs", "l2": "auto", "max_iterations": 20, "max_examples": 5, "epochs": 3}
    assert probes.probe_arguments(probe, 1) == {"solver": "lbfgs", "l2": "auto", "max_iterations": 20,
                                                "seed": 1}
    assert probes.probe_arguments({"epochs": 3, "solver": "adam"}, 0, 10) == {
        "solver": "adam", "epochs": 3, "seed": 0, "num_classes": 10}
    assert probes.probe_arguments({}, 0)["solver"] == "lbfgs"  # the main job's probe by default
    with pytest.raises(ValueError, match=r"Received: probe.solver='sgd'"):
        probes.probe_arguments({"solver": "sgd"}, 0)


@pytest.mark.slow
def test_linear_eval_reports_the_main_jobs_number_for_one_encoder(tmp_path):
    from simclr_tf import data
    from simclr_tf.atomic import save_keras

    config = config_lib.apply_overrides(config_lib.load_config("default"), [
        "encoder.stage_widths=[4,8,16,32]", "probe.max_iterations=20"])
    keras.utils.set_random_seed(0)
    model = builders.build_model(config)
    save_keras(model, str(tmp_path / "simclr.keras"))
    view = lambda x: model.augmenter(x, training=False)  # noqa: E731
    splits = [data.load("embedded", split=s, batch_size=500, shuffle=False, drop_remainder=False)
              for s in ("train", "test")]
    main_job = probes.probe_representations(config, model.encoder, view, *splits)["learned"]

    values = flags.FlagValues()
    linear_eval.define_flags(values)
    values(["linear-eval", f"--encoder={tmp_path}", "--max_iterations=20", "--knn_k=0",
            "--embedding_points=0", f"--output_dir={tmp_path / 'eval'}"])
    results = linear_eval.main([], flag_values=values)
    assert results["solver"] == "lbfgs"
    assert results["top1"] == main_job["top1"] and results["l2"] == main_job["l2"]
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["top1"] == results["top1"]


# -- folders from the command line ---------------------------------------------


def _photos(folder, count, seed):
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        size = (int(rng.integers(20, 60)), int(rng.integers(20, 60)))
        pixels = rng.integers(0, 255, (*size, 3), np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{i}.{'png' if i % 2 else 'jpg'}")


@pytest.mark.slow
def test_pretrain_on_a_flat_folder_of_mixed_sizes_needs_no_other_flag(tmp_path):
    _photos(tmp_path / "photos" / "deeper", 12, 0)
    _photos(tmp_path / "photos", 12, 1)
    out = tmp_path / "run"
    result = _command(["pretrain", f"--dataset=folder:{tmp_path / 'photos'}", *TINY,
                       f"--output_dir={out}"], cwd=str(tmp_path), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    skipped = [line for line in result.stdout.splitlines() if line.startswith("Skipped the linear probe")]
    assert len(skipped) == 1 and "--eval_dataset" in skipped[0]
    assert (out / "encoder.keras").is_file() and (out / "saved_model" / "saved_model.pb").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert "probe_top1_learned" not in metrics


@pytest.mark.slow
def test_pretrain_probes_on_a_labelled_eval_dataset(tmp_path):
    for seed, (split, label) in enumerate([(s, c) for s in ("train", "test") for c in ("a", "b")]):
        _photos(tmp_path / "labelled" / split / label, 8 if split == "train" else 4, 10 + seed)
    _photos(tmp_path / "photos", 16, 3)
    out = tmp_path / "run"
    result = _command(["pretrain", f"--dataset=folder:{tmp_path / 'photos'}",
                       f"--eval_dataset=folder:{tmp_path / 'labelled'}", *TINY,
                       "--set", "probe.max_iterations=5", f"--output_dir={out}"],
                      cwd=str(tmp_path), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_dataset"] == f"folder:{tmp_path / 'labelled'}"
    for key in ("probe_top1_learned", "knn_top1_learned", "probe_top1_pixels"):
        assert 0.0 <= metrics[key] <= 1.0



def test_export_command_writes_a_serving_saved_model(tmp_path):
    import tensorflow as tf

    from simclr_tf.atomic import save_keras
    from simclr_tf.cli import export

    config = config_lib.apply_overrides(config_lib.load_config("default"), ["encoder.stage_widths=[4,8,16,32]"])
    save_keras(builders.build_model(config), str(tmp_path / "simclr.keras"))
    values = flags.FlagValues()
    export.define_flags(values)
    values(["export", f"--encoder={tmp_path}", f"--output_dir={tmp_path / 'serving'}"])
    export.main([], flag_values=values)
    served = tf.saved_model.load(str(tmp_path / "serving")).signatures["serving_default"]
    outputs = served(images=tf.zeros((2, 40, 30, 3), tf.uint8))
    assert outputs["features"].shape == (2, 32) and outputs["projection"].shape == (2, 64)


def test_label_efficiency_command_writes_the_table_rows_and_picture(tmp_path, capsys):
    from simclr_tf.atomic import save_keras
    from simclr_tf.cli import label_efficiency

    config = config_lib.apply_overrides(config_lib.load_config("default"), ["encoder.stage_widths=[8,16,32,64]"])
    save_keras(builders.build_model(config), str(tmp_path / "simclr.keras"))
    values = flags.FlagValues()
    label_efficiency.define_flags(values)
    values(["label-efficiency", f"--encoder={tmp_path}", "--fractions=0.01,1.0", "--seeds=0,1",
            "--arms=learned,pixels", "--max_train_examples=3000", f"--output_dir={tmp_path / 'le'}"])
    label_efficiency.main([], flag_values=values)
    saved = json.loads((tmp_path / "le" / "label_efficiency.json").read_text())
    cells = {(r["arm"], r["fraction"], r["seed"], r["n_labels"]) for r in saved["rows"]}
    assert cells == {(a, f, s, n) for a in ("learned", "pixels") for f, n in ((0.01, 30), (1.0, 3000))
                     for s in (0, 1)}
    table = (tmp_path / "le" / "label_efficiency.txt").read_text()
    assert table.startswith("arm") and "top-1 1%" in table and table in capsys.readouterr().out + "\n"
    assert (tmp_path / "le" / "label_efficiency.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, message", [
    (["--epochs=a:b"], "`--epochs` must be an integer or FRACTION:EPOCHS pairs"),
    (["--seeds=x"], "`--seeds` must be a comma-separated list of ints. Received: seeds=x"),
    (["--fractions=0.1,2"], "`--fractions` must be numbers in (0, 1]. Received: fractions=0.1,2"),
])
def test_label_efficiency_usage_errors_are_one_line(args, message, tmp_path):
    result = _command(["label-efficiency", f"--encoder={tmp_path}", *args, f"--output_dir={tmp_path / 'le'}"])
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "le").exists()
