"""simclr_tf_cli: the `simclr-tf` command, its usage errors, the backbone key
and the one probe that pretrain and linear-eval share; `--set` values and
sections, output folders and stale checkpoints, `--deterministic` spellings
and oneDNN (simclr_tf_launcher)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from absl import flags

import simclr_tf_launcher
from experiments import common
from experiments.ablations import harness, run, studies
from simclr_tf_cli import builders, config as config_lib, files, linear_eval, probes, usage

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


def test_export_command_writes_a_serving_saved_model(tmp_path):
    import tensorflow as tf

    from simclr_tf.atomic import save_keras
    from simclr_tf_cli import export

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
    from simclr_tf_cli import label_efficiency

    config = config_lib.apply_overrides(config_lib.load_config("default"), ["encoder.stage_widths=[8,16,32,64]"])
    save_keras(builders.build_model(config), str(tmp_path / "simclr.keras"))
    values = flags.FlagValues()
    label_efficiency.define_flags(values)
    values(["label-efficiency", f"--encoder={tmp_path}", "--fractions=0.03,1.0", "--seeds=0,1",
            "--arms=learned,random", "--max_train_examples=1000", f"--output_dir={tmp_path / 'le'}"])
    label_efficiency.main([], flag_values=values)
    saved = json.loads((tmp_path / "le" / "label_efficiency.json").read_text())
    cells = {(r["arm"], r["fraction"], r["seed"], r["n_labels"]) for r in saved["rows"]}
    assert cells == {(a, f, s, n) for a in ("learned", "random") for f, n in ((0.03, 30), (1.0, 1000))
                     for s in (0, 1)}
    table = (tmp_path / "le" / "label_efficiency.txt").read_text()
    assert table.startswith("arm") and "top-1 3%" in table and table in capsys.readouterr().out + "\n"
    assert (tmp_path / "le" / "label_efficiency.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, message", [
    (["--epochs=a:b"], "`--epochs` must be an integer or FRACTION:EPOCHS pairs"),
    (["--seeds=x"], "`--seeds` must be a comma-separated list of ints. Received: seeds=x"),
    (["--fractions=0.1,2"], "`--fractions` must be numbers in (0, 1]. Received: fractions=0.1,2"),
])
def test_label_efficiency_refuses_bad_flags_before_writing(args, message, tmp_path, capsys):
    from simclr_tf_cli import label_efficiency

    values = flags.FlagValues()
    label_efficiency.define_flags(values)
    with pytest.raises(SystemExit) as exit_info:
        usage.run(lambda argv: label_efficiency.main(argv, flag_values=values), ["simclr-tf label-efficiency", f"--encoder={tmp_path}", *args,
                                          f"--output_dir={tmp_path / 'le'}"], flag_values=values)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "le").exists()


def test_label_efficiency_usage_error_is_one_line_from_the_command(tmp_path):
    result = _command(["label-efficiency", f"--encoder={tmp_path}", "--seeds=x", f"--output_dir={tmp_path / 'le'}"])
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr
    assert "simclr-tf label-efficiency: error: `--seeds` must be" in lines[0]


# -- inputs: `--set` values ----------------------------------------------------


@pytest.fixture
def default():
    return common.load_config("default")


def test_set_reads_true_false_none_in_any_case(default):
    config = common.apply_overrides(default, [
        "jit_compile=false", "encoder.small_images=FALSE", "sync_batch_norm=True",
        "augment.blur=TRUE", "probe.max_examples=none", "data_dir=None"])
    assert config["jit_compile"] is False and common.resolve_jit(config) is False
    assert config["encoder"]["small_images"] is False and config["sync_batch_norm"] is True
    assert config["augment"]["blur"] is True
    assert config["probe"]["max_examples"] is None and config["data_dir"] is None
    common.check_config(config)
    # Where the config holds a string, "none" is one of its names.
    config = common.apply_overrides(default, ["head.mode=none", "optimizer.scaling=none"])
    assert config["head"]["mode"] == "none" and config["optimizer"]["scaling"] == "none"


@pytest.mark.parametrize("item, match", [
    ("encoder.small_images=yes", r"'encoder.small_images' must be True or False.*encoder.small_images='yes'"),
    ("temperature=0.2x", r"'temperature' must be a number.*temperature='0.2x'"),
    ("probe.max_examples=abc", r"'probe.max_examples' must be a Python literal.*max_examples='abc'"),
    ("augment={blur: True}", r"'augment' must be a dict literal.*augment='\{blur: True\}'"),
])
def test_set_refuses_a_string_where_the_config_holds_no_string(default, item, match):
    with pytest.raises(ValueError, match=match):
        common.apply_overrides(default, [item])


def test_set_keeps_paths_and_names_as_strings(default):
    config = common.apply_overrides(default, ["data_dir=/data/fmnist", "dataset=fashion_mnist"])
    assert config["data_dir"] == "/data/fmnist" and config["dataset"] == "fashion_mnist"
    config = common.apply_overrides(default, ["jit_compile=maybe"])  # "auto" is a string
    with pytest.raises(ValueError, match=r"`jit_compile` must be one of .*jit_compile='maybe'"):
        common.check_config(config)


# -- inputs: `--set section={...}` ---------------------------------------------


def test_set_merges_a_dict_into_its_section(default):
    config = common.apply_overrides(default, ["augment={'blur': True}", "head={'mode': 'linear'}"])
    assert config["augment"] == {**default["augment"], "blur": True}
    assert config["head"] == {**default["head"], "mode": "linear"}
    with pytest.raises(ValueError, match=r"'head.mod' is not in the config"):
        common.apply_overrides(default, ["head={'mod': 'linear'}"])
    with pytest.raises(ValueError, match=r"'augment' is a config section.*augment=None"):
        common.apply_overrides(default, ["augment=None"])


def test_set_study_sections_merge_and_lists_replace():
    config = run.load_config("cpu_fashion_mnist")
    # As in docs/RESULTS.md: complete dicts for the study's sparse overrides.
    encoder = {"stem_stride": 2, "depth": 10, "width_multiplier": None, "stage_widths": [16, 32, 64, 256]}
    merged = common.apply_overrides(config, [
        f"studies.headline.config.encoder={encoder!r}", "studies.headline.baselines=[]",
        "studies.headline.config.optimizer={'warmup_epochs': 1}"])
    headline = merged["studies"]["headline"]
    assert headline["baselines"] == [] and headline["config"]["encoder"] == encoder
    assert headline["config"]["optimizer"] == {"base_learning_rate": 3e-3, "warmup_epochs": 1}
    assert headline["config"]["epochs"] == config["studies"]["headline"]["config"]["epochs"]
    (cell,) = studies.cells_for("headline", merged)
    assert cell.config["encoder"] == {**config["encoder"], **encoder}


# -- inputs: steps and warmup, checked naming the flag or key ------------------


def test_steps_and_warmup_are_checked_naming_the_flag_or_key(default):
    for value in (-1, 0):
        with pytest.raises(ValueError, match=rf"`--steps_per_epoch` must be .*steps_per_epoch={value}"):
            common.check_steps_per_epoch(value, "--steps_per_epoch")
    common.check_steps_per_epoch(None)
    common.check_steps_per_epoch(3)
    config = common.apply_overrides(default, ["optimizer.warmup_epochs=-1"])
    with pytest.raises(ValueError, match=r"`optimizer.warmup_epochs` must be >= 0. .*warmup_epochs=-1"):
        common.check_config(config)
    ablation = common.apply_overrides(run.load_config("smoke"), ["steps_per_epoch=-1"])
    with pytest.raises(ValueError, match=r"`steps_per_epoch` must be .*steps_per_epoch=-1"):
        harness.check_cell_config(ablation)


# -- inputs: output folders and stale checkpoints ------------------------------


def test_output_dir_check_creates_nothing(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ValueError, match=r"`--output_dir` is under .*afile.*, a file\. Received: output_dir="):
        files.check_output_dir(str(afile / "run" / "deeper"))
    with pytest.raises(ValueError, match=r"exists and is not a folder"):
        files.check_output_dir(str(afile))
    files.check_output_dir(str(tmp_path / "new" / "run"))
    assert sorted(os.listdir(tmp_path)) == ["afile"]


def test_fresh_start_moves_only_an_earlier_runs_checkpoints_aside(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name in ("epoch_0006.weights.h5", "epoch_0008.weights.h5", "notes.txt", "epoch_7.keras"):
        (folder / name).write_text(name)
    moved, aside = files.move_stale_checkpoints(str(folder))
    assert moved == ["epoch_0006.weights.h5", "epoch_0008.weights.h5"]
    assert sorted(os.listdir(folder)) == sorted(["epoch_7.keras", "notes.txt", os.path.basename(aside)])
    # Nothing is lost: the files sit in the subfolder, unchanged.
    assert {name: open(os.path.join(aside, name)).read() for name in os.listdir(aside)} == {
        name: name for name in moved}
    assert files.move_stale_checkpoints(str(folder)) == ([], None)
    assert files.move_stale_checkpoints(str(tmp_path / "missing")) == ([], None)


def test_two_fresh_starts_in_one_second_keep_both_sets_beside_each_other(tmp_path, monkeypatch):
    # A dot in a parent folder's name must not end up in the new subfolder's path.
    folder = tmp_path / "run.v2" / "checkpoints"
    folder.mkdir(parents=True)
    monkeypatch.setattr(files.time, "strftime", lambda fmt, t=None: "earlier_run_T")
    asides = []
    for text in ("first", "second"):
        (folder / "epoch_0001.weights.h5").write_text(text)
        asides.append(files.move_stale_checkpoints(str(folder))[1])
    assert asides == [str(folder / "earlier_run_T"), str(folder / "earlier_run_T.1")]
    assert [open(os.path.join(a, "epoch_0001.weights.h5")).read() for a in asides] == ["first", "second"]


# -- inputs: `--deterministic` spellings and oneDNN ----------------------------


SPELLINGS = ["--deterministic", "-deterministic", "--deterministic=TRUE", "--deterministic=t",
             "--deterministic=1", "--deterministic=false", "--deterministic=F", "--deterministic=0",
             "--nodeterministic", "-nodeterministic"]


@pytest.mark.parametrize("args", [[s] for s in SPELLINGS] + [
    [], ["--deterministic", "--nodeterministic"], ["--nodeterministic", "--deterministic=True"],
    ["--", "--deterministic"], ["run_dir", "--deterministic"],
])
def test_determinism_preparse_agrees_with_absl(args):
    values = flags.FlagValues()
    flags.DEFINE_boolean("deterministic", False, "", flag_values=values)
    values(["prog", *args])
    assert bool(simclr_tf_launcher.bool_flag(["prog", *args], "deterministic")) is values.deterministic


def _onednn_after(code, env=None):
    """The lines a fresh process prints after running `code`, then TF_ENABLE_ONEDNN_OPTS."""
    base = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    result = subprocess.run(
        [sys.executable, "-c", code + "\nimport os; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'))"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**base, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()


def test_importing_the_library_leaves_onednn_alone():
    assert _onednn_after("import simclr_tf") == ["None"]
    assert _onednn_after("import simclr_tf", {"TF_ENABLE_ONEDNN_OPTS": "0"}) == ["0"]


def test_entry_points_turn_onednn_on_before_tensorflow_and_off_for_determinism():
    # The entry points' package sets it from the command line as it is
    # imported, before TensorFlow loads (TensorFlow reads it once, then);
    # a value the user set wins.
    code = ("import sys; sys.argv = ['pretrain'{}]\nimport experiments.pretrain\n"
            "from tensorflow.python.util import _pywrap_util_port as port\n"
            "print(port.IsMklEnabled())")
    assert _onednn_after(code.format("")) == ["True", "1"]
    assert _onednn_after(code.format(", '-deterministic'")) == ["False", "0"]
    assert _onednn_after(code.format(""), {"TF_ENABLE_ONEDNN_OPTS": "0"}) == ["False", "0"]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_true_spelling_of_deterministic_turns_onednn_off(spelling, monkeypatch):
    monkeypatch.delitem(sys.modules, "tensorflow")  # as before TensorFlow loads
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    simclr_tf_launcher.set_onednn(["pretrain", spelling])
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == ("0" if spelling in SPELLINGS[:5] else "1")
