"""simclr_tf_cli.report: the main job's label-efficiency report."""

import keras
import numpy as np
import pytest

import simclr_tf
from simclr_tf_cli import report


def test_settings_fill_defaults_and_none_turns_the_report_off():
    assert report.settings({}) == report.DEFAULTS
    assert report.settings({"report": {"seeds": [4]}})["seeds"] == [4]
    assert report.settings({"report": {"seeds": [4]}})["fractions"] == report.DEFAULTS["fractions"]
    assert report.settings({"report": None}) is None


@pytest.mark.parametrize("section, match", [
    ({"fraction": [0.1]}, r"Config `report` has unknown keys \['fraction'\]"),
    ({"fractions": [1.0]}, r"numbers in \(0, 1\) \(100% is the main probe\). Received: 1.0"),
    ({"supervised_fractions": [0]}, r"numbers in \(0, 1\).*Received: 0"),
    ({"fractions": 0.1}, r"Config `report.fractions` must be a list. Received: report.fractions=0.1"),
    ({"seeds": []}, r"at least one seed"),
    ({"seeds": [-1]}, r"`report.seeds` must be an integer >= 0"),
    ({"learning_rates": [0]}, r"`report.learning_rates` must be"),
    ({"supervised_epochs": 0}, r"`report.supervised_epochs` must be an integer >= 1"),
    ("yes", r"Config `report` must be a dict"),
])
def test_bad_settings_name_the_key_and_value(section, match):
    with pytest.raises(ValueError, match=match):
        report.settings({"report": section})


def _rows(arm, fraction, values):
    return [{"arm": arm, "fraction": fraction, "seed": s, "top1": v, "knn_top1": None}
            for s, v in enumerate(values)]


def test_margin_is_against_the_best_baseline_by_mean_over_seeds():
    rows = (_rows("learned", 0.01, [0.70, 0.72]) + _rows("pixels", 0.01, [0.69, 0.69])
            + _rows("random", 0.01, [0.60, 0.62]) + _rows("supervised", 0.01, [0.74, 0.60])
            + _rows("learned", 1.0, [0.85]) + _rows("pixels", 1.0, [0.86]))
    margin = report.margins(rows)
    # supervised's mean (0.67) is below pixels' (0.69), though one seed is above.
    assert margin[0.01][1] == "pixels" and margin[0.01][0] == pytest.approx(0.02)
    assert margin[1.0][1] == "pixels" and margin[1.0][0] == pytest.approx(-0.01)
    assert "1% +2.0 points (vs pixels), 100% -1.0 points (vs pixels)" in report.format_margins(margin)


def _tiny_model(size=8):
    return simclr_tf.SimCLR(
        encoder=simclr_tf.resnet(10, 0.125, (size, size, 3), small_images=True),
        projection_head=simclr_tf.ProjectionHead(output_dim=8),
        augmenter=simclr_tf.SimCLRAugmentation(size, seed=0),
    )


def test_label_efficiency_rows_cover_each_fraction_and_the_full_probes():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (60, 8, 8, 1), np.uint8)
    y = np.arange(60) % 2
    model = _tiny_model()
    model.build((None, 8, 8, 3))
    settings = report.settings({"report": {
        "fractions": [0.2, 0.5], "seeds": [0, 1], "supervised_fractions": []}})
    full = {arm: {"top1": 0.5, "knn_top1": 0.4} for arm in ("learned", "random", "pixels")}
    rows = report.label_efficiency({"seed": 0, "probe": {"max_iterations": 5}, "num_classes": 2},
                                   model, (x, y), (x[:10], y[:10]), full, settings)
    cells = {(r["arm"], r["fraction"], r["seed"]) for r in rows}
    assert cells == (
        {(arm, f, s) for arm in ("learned", "random", "pixels") for f in (0.2, 0.5) for s in (0, 1)}
        | {(arm, 1.0, 0) for arm in ("learned", "random", "pixels")}
    )
    assert {r["n_labels"] for r in rows if r["fraction"] == 0.2} == {12}
    assert {r["n_labels"] for r in rows if r["fraction"] == 1.0} == {60}
    assert all(0.0 <= r["top1"] <= 1.0 for r in rows)


def test_plot_writes_a_png(tmp_path):
    rows = (_rows("learned", 0.01, [0.70, 0.72]) + _rows("pixels", 0.01, [0.69, 0.7])
            + _rows("learned", 1.0, [0.85]) + _rows("pixels", 1.0, [0.86]))
    path = tmp_path / "report.png"
    report.plot({"loss": [5.0, 4.0, 3.5], "contrastive_acc": [0.1, 0.2, 0.3]}, rows, str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_random_arm_gets_plain_batch_norm_init():
    from simclr_tf.evaluation.label_efficiency import _plain_batch_norm_init

    encoder = simclr_tf.resnet(10, 0.125, (8, 8, 3), small_images=True, zero_init_residual=True)
    gammas = lambda: [layer.gamma.numpy() for layer in encoder.layers  # noqa: E731
                      if isinstance(layer, keras.layers.BatchNormalization)]
    before = gammas()
    assert any(not g.any() for g in before)  # the residual branches start silenced
    _plain_batch_norm_init(encoder)
    after = gammas()
    assert all(g.all() for g in after)
    for old, new in zip(before, after):  # only the all-zero gammas changed
        if old.any():
            np.testing.assert_array_equal(old, new)
