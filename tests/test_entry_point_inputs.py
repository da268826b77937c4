"""The entry points' inputs: `--set` values and sections, ablation cells checked
before any trains, output folders, `--deterministic` spellings and oneDNN,
stale checkpoints and fresh_test's training rows. All cheap: no training."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from absl import flags

import simclr_tf_launcher
from experiments import common, fresh_test
from experiments.ablations import harness, run, studies
from simclr_tf import data
from simclr_tf.cli import files, probes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def default():
    return common.load_config("default")


@pytest.fixture
def smoke():
    return run.load_config("smoke")


def _never(cell):
    raise AssertionError(f"cell {cell.id} ran")


# -- `--set` values ------------------------------------------------------------


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


# -- `--set section={...}` ---------------------------------------------------


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


# -- ablations: `--set` precedence, every cell checked, the output folder -----


def test_top_level_set_that_the_study_config_overrides_is_refused(tmp_path):
    base = run.load_config("cpu_fashion_mnist")  # composition's config sets temperature 0.2
    for items, key in ((["temperature=0.5"], "temperature"),
                       (["encoder={'stem_stride': 1}"], "encoder.stem_stride")):
        config = common.apply_overrides(base, items)
        with pytest.raises(ValueError, match=rf"Set `studies.composition.config.{key}` instead"):
            harness.run_study("composition", config, str(tmp_path), run_cell=_never,
                              set_keys=common.override_keys(items))
    assert not os.listdir(tmp_path)
    # The study's own key, the same value, or a key the study leaves alone pass.
    for items, temperature in ((["studies.composition.config.temperature=0.5", "seed=1"], 0.5),
                               (["temperature=0.2", "seed=1"], 0.2)):
        config = common.apply_overrides(base, items)
        cells = studies.cells_for("composition", config, common.override_keys(items))
        assert cells[0].config["temperature"] == temperature and cells[0].config["seed"] == 1


@pytest.mark.parametrize("section, value, match", [
    ("temperatures", [0.1, 0.5, 0], r"Cell temperature/t0: Config `temperature` must be > 0"),
    ("modes", ["linear", "foo"], r"Cell head/head_foo: Config `head.mode` must be one of"),
])
def test_every_cell_is_checked_before_the_first_runs(smoke, tmp_path, section, value, match):
    study = "temperature" if section == "temperatures" else "head"
    smoke["studies"][study][section] = value
    with pytest.raises(ValueError, match=match):
        harness.run_study(study, smoke, str(tmp_path), run_cell=_never, log=lambda _: None)
    assert not os.listdir(tmp_path)


def test_ablation_output_dir_that_is_a_file_is_refused_before_the_first_cell(smoke, tmp_path):
    smoke["studies"]["temperature"]["temperatures"] = [0.5]
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ValueError, match=r"`--output_dir` must be a folder .*output_dir="):
        harness.run_study("temperature", smoke, str(afile), run_cell=_never, log=lambda _: None)


# -- pretrain ------------------------------------------------------------------


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


def test_output_dir_check_creates_nothing(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ValueError, match=r"`--output_dir` is under .*afile.*, a file\. Received: output_dir="):
        files.check_output_dir(str(afile / "run" / "deeper"))
    with pytest.raises(ValueError, match=r"exists and is not a folder"):
        files.check_output_dir(str(afile))
    files.check_output_dir(str(tmp_path / "new" / "run"))
    assert sorted(os.listdir(tmp_path)) == ["afile"]


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


# -- fresh_test ----------------------------------------------------------------


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
