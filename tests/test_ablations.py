"""Tests for the ablation harness (experiments/ablations).

Cell definitions and figures use stand-ins (no training); one real 2-cell
smoke study (SimCLR and supervised, a few steps each) proves the resume.
`--set` precedence, every cell's config and the output folder are checked
before any cell trains.
"""

import csv
import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import simclr_tf
from simclr_tf import evaluation
from experiments import common
from experiments.ablations import cells, harness, operators, report, run, studies


@pytest.fixture
def smoke():
    return run.load_config("smoke")


# -- study and cell definitions ---------------------------------------------


def test_unknown_study_raises_naming_it(smoke, tmp_path):
    with pytest.raises(ValueError, match="'colour_strength'"):
        studies.cells_for("colour_strength", smoke)
    with pytest.raises(ValueError, match="'bogus'"):
        harness.run_study("bogus", smoke, str(tmp_path), run_cell=lambda cell: {})


def test_unknown_config_and_operator_raise(smoke):
    with pytest.raises(ValueError, match="'nope'"):
        run.load_config("nope")
    smoke["studies"]["composition"]["operators"] = ["crop", "solarize"]
    with pytest.raises(ValueError, match="solarize"):
        studies.cells_for("composition", smoke)
    smoke["studies"]["color"]["strengths"] = [-1]
    with pytest.raises(ValueError, match="-1"):
        studies.cells_for("color", smoke)


def test_composition_cells_are_every_ordered_pair(smoke):
    cells_ = studies.cells_for("composition", smoke)
    grid = [c for c in cells_ if c.kind == "simclr"]
    # The CPU config (which smoke inherits) adds its reference cells last.
    assert [(c.id, c.kind) for c in cells_[49:]] == [("random", "random"), ("pixels", "pixels")]
    ops = operators.OPERATORS
    assert len(ops) == 7 and len(grid) == 49 and cells_[:49] == grid
    assert {(c.params["first"], c.params["second"]) for c in grid} == {(a, b) for a in ops for b in ops}
    for cell in grid:
        first, second = cell.params["first"], cell.params["second"]
        assert cell.id == (first if first == second else f"{first}+{second}")
        assert cell.kind == "simclr" and cell.params["branches"] == "one"
    assert len({c.fingerprint() for c in grid}) == 49


def test_composition_baselines_add_reference_cells(smoke):
    smoke["studies"]["composition"]["operators"] = ["crop", "color"]
    smoke["studies"]["composition"]["baselines"] = []
    assert [c.id for c in studies.cells_for("composition", smoke)] == [
        "crop", "crop+color", "color+crop", "color"]
    smoke["studies"]["composition"]["baselines"] = ["random", "pixels"]
    cells_ = studies.cells_for("composition", smoke)
    assert [(c.id, c.kind) for c in cells_[4:]] == [("random", "random"), ("pixels", "pixels")]
    # Same training config as the grid: the reference is probed like a grid cell.
    assert cells_[4].config == cells_[0].config
    for bad in (["supervised"], "random"):
        smoke["studies"]["composition"]["baselines"] = bad
        with pytest.raises(ValueError, match=r"studies\.composition\.baselines.*" + re.escape(repr(bad))):
            studies.cells_for("composition", smoke)


def test_composition_random_cell_uses_the_grids_evaluation_transform(smoke):
    smoke["studies"]["composition"]["baselines"] = ["random"]
    cell = studies.cells_for("composition", smoke)[-1]
    augmenter = cells.build_augmenter(cell)
    assert isinstance(augmenter, operators.ComposedAugmenter) and augmenter.transforms == []
    grid_cell = studies.cells_for("composition", smoke)[0]
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
    np.testing.assert_array_equal(augmenter(images, training=False),
                                  cells.build_augmenter(grid_cell)(images, training=False))
    result = cells.run_cell(cell)
    assert result["feature_dim_h"] == smoke["encoder"]["filters"][-1]
    assert 0.2 < result["top1"] <= 1.0  # far above chance even untrained


def test_composition_heatmap_is_centred_on_the_random_encoder():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = [
        {"kind": "simclr", "first": "crop", "second": "crop", "top1": 0.80},
        {"kind": "simclr", "first": "crop", "second": "color", "top1": 0.82},
        {"kind": "simclr", "first": "color", "second": "crop", "top1": 0.78},
        {"kind": "simclr", "first": "color", "second": "color", "top1": 0.70},
        {"kind": "random", "method": "random", "top1": 0.79},
        {"kind": "pixels", "method": "pixels", "top1": 0.835},
    ]
    fig, ax = plt.subplots()
    try:
        report._composition(ax, table)
        image = ax.images[0]
        grid = np.asarray(image.get_array())
        assert grid.shape == (2, 3)  # two operators plus the row mean; no reference rows
        np.testing.assert_allclose(grid[:, :2], [[80, 82], [78, 70]])
        np.testing.assert_allclose(grid[:, 2], [81, 74])
        assert image.norm.vcenter == pytest.approx(79.0)
        assert "random encoder 79.0" in ax.get_title() and "raw pixels 83.5" in ax.get_title()
    finally:
        plt.close(fig)


def test_other_studies_cells(smoke):
    color = studies.cells_for("color", smoke)
    assert [c.id for c in color] == [f"{m}_s{s}" for m in ("simclr", "supervised")
                                     for s in ("0.125", "0.25", "0.5", "1", "1+blur")]
    by_id = {c.id: c for c in color}
    assert by_id["supervised_s1+blur"].kind == "supervised"
    assert by_id["simclr_s1+blur"].config["augment"]["color_strength"] == 1.0
    assert by_id["simclr_s1+blur"].config["augment"]["blur"] is True
    assert by_id["simclr_s0.125"].config["augment"] == {**smoke["augment"], "color_strength": 0.125,
                                                        "blur": False}

    head = studies.cells_for("head", smoke)
    assert [c.config["head"]["mode"] for c in head] == ["none", "linear", "nonlinear"]
    assert all(c.params["probe_z"] for c in head)

    grid = studies.cells_for("batch_epochs", smoke)
    assert [(c.config["batch_size"], c.config["epochs"]) for c in grid] == [
        (16, 1), (16, 2), (32, 1), (32, 2)]
    temps = studies.cells_for("temperature", smoke)
    assert [c.config["temperature"] for c in temps] == [0.05, 0.1, 0.5, 1.0]
    headline = studies.cells_for("headline", smoke)
    assert [c.kind for c in headline] == ["simclr", "pixels", "random", "supervised"]


def test_study_overrides_reach_cells_only_of_that_study(smoke):
    smoke["studies"]["temperature"]["config"] = {"epochs": 7, "probe": {"epochs": 3}}
    cell = studies.cells_for("temperature", smoke)[0]
    assert cell.config["epochs"] == 7 and cell.config["probe"]["epochs"] == 3
    assert cell.config["probe"]["train_examples"] == smoke["probe"]["train_examples"]
    assert "studies" not in cell.config
    assert studies.cells_for("head", smoke)[0].config["epochs"] == smoke["epochs"]


def test_headline_supervised_config_changes_only_the_supervised_cell(smoke):
    before = {c.kind: c.fingerprint() for c in studies.cells_for("headline", smoke)}
    smoke["studies"]["headline"]["supervised_config"] = {"epochs": 9}
    after = {c.kind: c for c in studies.cells_for("headline", smoke)}
    assert after["supervised"].config["epochs"] == 9
    assert after["simclr"].config["epochs"] == smoke["epochs"]
    # Finished SimCLR / pixel / random cells stay valid (same fingerprint).
    for kind in ("simclr", "pixels", "random"):
        assert after[kind].fingerprint() == before[kind]
    assert after["supervised"].fingerprint() != before["supervised"]


def test_every_config_defines_every_study():
    for name in ("smoke", "cpu_fashion_mnist", "gpu_cifar10", "gpu_stl10"):
        config = run.load_config(name)
        for study in studies.STUDIES:
            assert studies.cells_for(study, config), (name, study)


# -- the composition augmenter ----------------------------------------------


class _Affine(keras.layers.Layer):
    """Deterministic stand-in operator: x * scale + shift."""

    def __init__(self, scale, shift, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.shift = scale, shift

    def call(self, images, training=True):
        return images * self.scale + self.shift


_STAND_INS = {
    "add": lambda size, params, seed: _Affine(1.0, 0.25),
    "double": lambda size, params, seed: _Affine(2.0, 0.0),
}


def test_pair_applies_first_then_second():
    images = np.full((2, 8, 8, 3), 0.1, "float32")
    add_then_double = operators.pair_augmenter(("add", "double"), 8, factories=_STAND_INS)
    double_then_add = operators.pair_augmenter(("double", "add"), 8, factories=_STAND_INS)
    np.testing.assert_allclose(add_then_double(images), 0.7, atol=1e-5)
    np.testing.assert_allclose(double_then_add(images), 0.45, atol=1e-5)
    # Diagonal: the operator once, not twice.
    np.testing.assert_allclose(operators.pair_augmenter(("add", "add"), 8, factories=_STAND_INS)(images),
                               0.35, atol=1e-5)
    # Evaluation (and the untouched branch): the resized image alone.
    np.testing.assert_allclose(add_then_double(images, training=False), 0.1, atol=1e-5)


def test_pair_augmenter_builds_the_paper_operators(smoke):
    expected = {
        "crop": simclr_tf.RandomResizedCrop, "cutout": simclr_tf.Cutout,
        "color": simclr_tf.ColorDistortion, "sobel": simclr_tf.SobelFilter,
        "noise": simclr_tf.GaussianNoise, "blur": simclr_tf.RandomGaussianBlur,
        "rotate": simclr_tf.RandomRotate90,
    }
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
    for first in operators.OPERATORS:
        augment = operators.pair_augmenter((first, "color"), 16, smoke["operators"], seed=0)
        kinds = [type(layer) for layer in augment.transforms]
        assert kinds == ([expected["color"]] if first == "color" else [expected[first], expected["color"]])
        views = np.asarray(augment(images))
        assert views.shape == (3, 16, 16, 3) and views.min() >= 0 and views.max() <= 1
    reverse = operators.pair_augmenter(("color", "crop"), 16, smoke["operators"])
    assert [type(layer) for layer in reverse.transforms] == [expected["color"], expected["crop"]]
    # The crop operator takes the config's parameters.
    assert reverse.transforms[1].area_range == tuple(smoke["operators"]["crop"]["area_range"])


class _Recorder(keras.layers.Layer):
    """Stand-in augmenter: the resized image; records each call's `training`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = []

    def call(self, images, training=True):
        self.calls.append(bool(training))
        return keras.ops.image.resize(keras.ops.cast(images, "float32") / 255.0, (8, 8))


@pytest.mark.parametrize("one_branch", [True, False])
def test_one_branch_model_transforms_one_view(one_branch):
    encoder = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
                                keras.layers.GlobalAveragePooling2D()])
    recorder = _Recorder()
    model_class = cells.OneBranchSimCLR if one_branch else simclr_tf.SimCLR
    model = model_class(encoder=encoder, projection_head=simclr_tf.ProjectionHead(output_dim=4),
                        augmenter=recorder, temperature=0.5)
    model.compile(optimizer="adam", run_eagerly=True)
    images = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)
    model.fit(images, batch_size=4, epochs=1, verbose=0)
    assert recorder.calls == ([False, True] if one_branch else [True, True]) * 2


# -- report ------------------------------------------------------------------


def _fake_run(cell):
    value = 0.3 + 0.01 * len(cell.id)
    result = {"top1": value, "top1_h": value, "top1_z": value - 0.05, "wall_seconds": 0.0}
    if cell.kind == "label_efficiency":
        result["rows"] = [{"arm": arm, "fraction": f, "seed": 0, "top1": value - 0.1 * k, "knn_top1": None}
                          for k, arm in enumerate(("learned", "pixels")) for f in (0.1, 1.0)]
    return result


def test_every_study_writes_csv_and_png(smoke, tmp_path):
    smoke["studies"]["composition"]["operators"] = ["crop", "color", "sobel"]
    smoke["studies"]["color"]["strengths"] = [0.5, "1+blur"]
    smoke["studies"]["temperature"]["temperatures"] = [0.1, 0.5]
    by_study = {}
    for study in studies.STUDIES:
        records = by_study[study] = harness.run_study(study, smoke, str(tmp_path), run_cell=_fake_run,
                                                      log=lambda _: None)
        with open(tmp_path / study / f"{study}.csv") as f:
            table = list(csv.DictReader(f))
        assert [row["cell"] for row in table] == [r["cell"] for r in records]
        assert float(table[0]["top1"]) == pytest.approx(records[0]["result"]["top1"])
        with open(tmp_path / study / f"{study}.png", "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    header = report.columns(by_study["headline"])
    assert header[:4] == ["study", "cell", "kind", "method"] and header[-2:] == ["finished_at", "machine"]
    # A label-efficiency cell's rows stay in its JSON, out of the CSV.
    assert "rows" not in report.columns(by_study["label_efficiency"])
    assert by_study["label_efficiency"][0]["result"]["rows"]


def test_report_without_matplotlib_keeps_the_csv(smoke, tmp_path, monkeypatch):
    def missing():
        raise ImportError("The ablation figures need matplotlib: `pip install matplotlib`.")

    monkeypatch.setattr(report, "_pyplot", missing)
    smoke["studies"]["temperature"]["temperatures"] = [0.1, 0.5]
    with pytest.warns(UserWarning, match="skipped temperature.png"):
        records = harness.run_study("temperature", smoke, str(tmp_path), run_cell=_fake_run, log=lambda _: None)
    assert len(records) == 2 and (tmp_path / "temperature" / "temperature.csv").exists()
    assert not (tmp_path / "temperature" / "temperature.png").exists()


# -- real cells and resume ---------------------------------------------------


def test_pixels_cell_probes_raw_images(smoke):
    cell = next(c for c in studies.cells_for("headline", smoke) if c.kind == "pixels")
    result = cells.run_cell(cell)
    assert result["feature_dim_h"] == 16 * 16 * 3
    assert 0.5 < result["top1"] <= 1.0  # Fashion-MNIST pixels are far above chance


def test_resume_skips_finished_cells(smoke, tmp_path):
    smoke["studies"]["color"]["strengths"] = [0.5]
    # Crop and flip only: the colour kernels take most of a smoke cell's
    # time to trace, and the augmentation has its own tests.
    smoke["augment"].update(jitter_rate=0.0, grayscale_rate=0.0)
    ran = []

    def counting(cell):
        ran.append(cell.id)
        return cells.run_cell(cell)

    first = harness.run_study("color", smoke, str(tmp_path), run_cell=counting, log=lambda _: None)
    assert ran == ["simclr_s0.5", "supervised_s0.5"]
    folder = tmp_path / "color"
    files = sorted(os.listdir(folder / "cells"))
    assert files == ["simclr_s0.5.json", "supervised_s0.5.json"]
    for record in first:
        result = record["result"]
        assert 0.0 <= result["top1"] <= 1.0 and result["train_steps"] == 2
        assert result["cpu_seconds"] > 0 and record["fingerprint"]
    assert "top1_h" in first[0]["result"] and "final_accuracy" in first[1]["result"]
    # The supervised cell reports its classifier and the common probe of h.
    assert 0.0 <= first[1]["result"]["top1_h"] <= 1.0 and first[1]["result"]["feature_dim_h"] > 0
    with open(folder / "color.csv") as f:
        assert [row["cell"] for row in csv.DictReader(f)] == ["simclr_s0.5", "supervised_s0.5"]
    stamps = {name: os.stat(folder / "cells" / name).st_mtime_ns for name in files}

    second = harness.run_study("color", smoke, str(tmp_path), run_cell=counting, log=lambda _: None)
    assert ran == ["simclr_s0.5", "supervised_s0.5"]  # nothing retrained
    assert [r["result"] for r in second] == [r["result"] for r in first]
    assert {name: os.stat(folder / "cells" / name).st_mtime_ns for name in files} == stamps
    with open(folder / "cells" / "simclr_s0.5.json") as f:
        assert json.load(f)["result"] == first[0]["result"]

    # A finished cell from another config is refused, not mixed in.
    smoke["probe"]["epochs"] += 1
    with pytest.raises(ValueError, match="different config"):
        harness.run_study("color", smoke, str(tmp_path), run_cell=counting, log=lambda _: None)
    assert len(ran) == 2


def test_supervised_model_feeds_uint8_images_to_the_augmenter(smoke):
    # Keras casts inputs to a float Input's dtype: uint8 batches would reach
    # the augmenter as floats in [0, 255] and be clipped to [0, 1] (binarised).
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)).astype("uint8")
    spec = tf.TensorSpec((None, 16, 16, 3), tf.uint8)
    augmenter = simclr_tf.SimCLRAugmentation(16, seed=0, blur=False)
    smoke = dict(smoke, image_size=16)
    encoder = cells.build_encoder(smoke)
    model = cells.supervised_model(spec, augmenter, encoder, 10)
    weights, bias = model.get_layer("classifier").get_weights()
    direct = np.asarray(encoder(augmenter(images, training=False), training=False)) @ weights + bias
    np.testing.assert_allclose(np.asarray(model(images, training=False)), direct, atol=1e-5)
    compiled = tf.function(lambda x: model(x, training=False))
    np.testing.assert_allclose(np.asarray(compiled(tf.constant(images))), direct, atol=1e-5)



def test_headline_cells_probe_the_pooled_grid_beside_h(smoke):
    smoke["studies"]["headline"]["config"] = {"probe": {"grid": 2}}
    smoke["augment"].update(jitter_rate=0.0, grayscale_rate=0.0)
    by_kind = {c.kind: c for c in studies.cells_for("headline", smoke)}
    for kind in ("simclr", "random"):
        result = cells.run_cell(by_kind[kind])
        # The smoke conv net's last map is 4 x 4 x 32: 2 x 2 cells of 32 channels.
        assert result["feature_dim_h"] == 32 and result["feature_dim_grid"] == 4 * 32
        assert 0.0 <= result["top1_grid"] <= 1.0 and result["top1"] == result["top1_h"]
    pixels = cells.run_cell(by_kind["pixels"])
    assert "top1_grid" not in pixels and pixels["top1"] == pixels["top1_h"]
    # The grid rides along in the same pass: h's probe is what it is without it.
    grid_random = cells.run_cell(by_kind["random"])
    smoke["studies"]["headline"]["config"] = {}
    plain = next(c for c in studies.cells_for("headline", smoke) if c.kind == "random")
    assert cells.run_cell(plain)["top1_h"] == grid_random["top1_h"]


@pytest.mark.parametrize("grid", [0, True, "2", 1.5])
def test_a_bad_probe_grid_is_refused_before_any_cell_runs(smoke, tmp_path, grid):
    smoke["studies"]["headline"]["config"] = {"probe": {"grid": grid}}
    with pytest.raises(ValueError, match=r"`probe.grid` must be None or an integer >= 1"):
        harness.run_study("headline", smoke, str(tmp_path), run_cell=lambda cell: pytest.fail("ran"),
                          log=lambda _: None)
    assert not os.listdir(tmp_path)


def test_a_grid_the_encoders_map_cannot_hold_is_refused_before_training(smoke, monkeypatch):
    smoke["studies"]["headline"]["config"] = {"probe": {"grid": 5}}  # the smoke map is 4 x 4
    cell = next(c for c in studies.cells_for("headline", smoke) if c.kind == "simclr")
    monkeypatch.setattr(cells, "_fit", lambda *a, **k: pytest.fail("trained before refusing the grid"))
    with pytest.raises(ValueError, match="`grid` must be at most the last feature map's side"):
        cells.run_cell(cell)


def test_headline_figure_shows_the_probe_of_h_and_of_the_grid_for_every_method():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = [
        {"method": "simclr", "top1": 0.89, "top1_h": 0.89, "top1_grid": 0.905},
        {"method": "pixels", "top1": 0.84, "top1_h": 0.84},
        {"method": "supervised", "top1": 0.95, "top1_h": 0.907, "top1_grid": 0.912},
    ]
    fig, ax = plt.subplots()
    try:
        report._headline(ax, table)
        h, grid = ax.containers
        assert [b.get_height() for b in h] == pytest.approx([89.0, 84.0, 90.7])  # not the classifier's 95
        assert [b.get_height() for b in grid][0::2] == pytest.approx([90.5, 91.2])
        assert np.isnan(grid[1].get_height())  # pixels: no grid
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["probe on h", "probe on the pooled grid"]
        assert ax.get_ylim() == pytest.approx((70.0, 100.0))
    finally:
        plt.close(fig)
    fig, ax = plt.subplots()
    try:
        report._headline(ax, [{"method": m, "top1_h": v} for m, v in (("simclr", 0.5), ("random", 0.3))])
        assert len(ax.containers) == 1 and ax.get_ylim() == pytest.approx((20.0, 100.0))
    finally:
        plt.close(fig)


def test_cells_build_simclr_with_the_shared_builder_and_its_sync_batch_norm(smoke, monkeypatch):
    smoke["sync_batch_norm"] = True
    cell = next(c for c in studies.cells_for("headline", smoke) if c.kind == "simclr")
    built = {}

    def stop(model, *args, **kwargs):  # no training: the cell reports a diverged run
        built["model"] = model
        return {"stopped_at": [0.0, 0.0, float("nan")]}

    monkeypatch.setattr(cells, "_fit", stop)
    assert cells.run_cell(cell)["top1"] is None
    model = built["model"]
    assert model.projection_head.sync_batch_norm is True
    assert model.num_classes is None  # unlabelled pretraining batches: no online probe


# -- inputs: `--set` precedence, every cell checked, the output folder -------


def _never(cell):
    raise AssertionError(f"cell {cell.id} ran")


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


# -- the label-efficiency study ------------------------------------------------


def test_label_efficiency_cells_are_one_pretraining_per_seed_with_the_protocol(smoke):
    section = smoke["studies"]["label_efficiency"]
    section.update({"pretrain_seeds": [0, 4], "arms": ["learned", "supervised"]})
    cells_ = studies.cells_for("label_efficiency", smoke)
    assert [(c.id, c.kind, c.config["seed"]) for c in cells_] == [
        ("seed0", "label_efficiency", 0), ("seed4", "label_efficiency", 4)]
    protocol = cells_[0].config["label_efficiency"]
    assert protocol["arms"] == ["learned", "supervised"] and protocol["fractions"] == section["fractions"]
    assert protocol["head_layer"] == 0  # a default the section left out
    before = cells_[0].fingerprint()
    section["fractions"] = [0.5, 1.0]
    assert studies.cells_for("label_efficiency", smoke)[0].fingerprint() != before


@pytest.mark.parametrize("key, value, match", [
    ("pretrain_seeds", [0, -1], r"pretrain_seeds` must be a non-empty list of integers >= 0"),
    ("pretrain_seeds", [], r"pretrain_seeds` must be a non-empty list.*=\[\]"),
    ("label_seeds", [0], r"unknown keys.*'label_seeds'"),
    ("arms", ["learned", "linear"], r"`arms` must be distinct names"),
    ("fractions", [0.01, 1.5], r"`fractions`.*1\.5"),
    ("learning_rates", [], r"`learning_rates` must be a non-empty sequence"),
    ("head_layer", -1, r"head_layer"),
    ("max_train_examples", 0, r"max_train_examples"),
])
def test_a_bad_label_efficiency_section_is_refused_before_pretraining(smoke, tmp_path, key, value, match):
    smoke["studies"]["label_efficiency"][key] = value
    with pytest.raises(ValueError, match=match):
        harness.run_study("label_efficiency", smoke, str(tmp_path), run_cell=_never, log=lambda _: None)
    assert not os.listdir(tmp_path)


def test_label_efficiency_numbers_are_the_row_means_and_the_margin_over_the_best_baseline():
    rows = [{"arm": arm, "fraction": f, "seed": seed, "top1": top1, "knn_top1": knn}
            for arm, f, seed, top1, knn in [
                ("learned", 0.01, 0, 0.70, 0.60), ("learned", 0.01, 1, 0.74, 0.62),
                ("pixels", 0.01, 0, 0.66, None), ("pixels", 0.01, 1, 0.68, None),
                ("supervised", 0.01, 0, 0.69, 0.5), ("supervised", 0.01, 1, 0.69, 0.5),
                # fine-tuning is pretrained: never a baseline, even when ahead
                ("finetune", 0.01, 0, 0.90, 0.7), ("finetune", 0.01, 1, 0.90, 0.7),
                ("learned", 1.0, 0, 0.85, 0.80), ("pixels", 1.0, 0, 0.86, None)]]
    out = cells.label_efficiency_numbers(rows)
    assert out["top1_learned_0.01"] == pytest.approx(0.72)
    assert out["top1_learned_0.01_std"] == pytest.approx(np.std([0.70, 0.74], ddof=1))
    assert out["knn_top1_learned_0.01"] == pytest.approx(0.61)
    assert "knn_top1_pixels_0.01" not in out
    assert out["margin_0.01"] == pytest.approx(0.72 - 0.69)
    assert out["margin_1"] == pytest.approx(-0.01)
    assert out["top1"] == pytest.approx(0.72)  # the learned encoder at the smallest fraction


def test_label_efficiency_smoke_study_pretrains_and_runs_every_arm(smoke, tmp_path):
    smoke["studies"]["label_efficiency"].update({"epochs": 1, "seeds": [0]})
    records = harness.run_study("label_efficiency", smoke, str(tmp_path), log=lambda _: None)
    result = records[0]["result"]
    rows = result["rows"]
    assert sorted({(r["arm"], r["fraction"]) for r in rows}) == sorted(
        (arm, f) for arm in evaluation.label_efficiency.ARMS for f in (0.2, 1.0))
    # max_train_examples caps the pool (200), then fractions are of that pool.
    assert {r["fraction"]: r["n_labels"] for r in rows} == {0.2: 40, 1.0: 200}
    learned = [r["top1"] for r in rows if r["arm"] == "learned" and r["fraction"] == 0.2]
    assert result["top1_learned_0.2"] == pytest.approx(np.mean(learned), abs=1e-5)
    assert result["train_steps"] == 2
    with open(tmp_path / "label_efficiency" / "label_efficiency.csv") as f:
        table = list(csv.DictReader(f))
    assert "rows" not in table[0] and float(table[0]["top1_pixels_1"]) > 0.5
    with open(tmp_path / "label_efficiency" / "cells" / "seed0.json") as f:
        assert len(json.load(f)["result"]["rows"]) == len(rows)
