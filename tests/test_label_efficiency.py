"""Tests for simclr_tf.evaluation.label_efficiency and its label subsets.

Tiny shapes: a ResNet-10 at 1/8 width on 8 x 8 images, a few dozen
examples, one epoch for the trained arms.
"""

import inspect

import keras
import numpy as np
import pytest

import simclr_tf
from simclr_tf import evaluation
from simclr_tf.evaluation import label_efficiency as le


def tiny_encoder():
    keras.utils.set_random_seed(0)
    return simclr_tf.resnet(10, 0.125, (8, 8, 3), small_images=True)


def shaded(n, classes, seed):
    """Images whose brightness says the class: separable, with noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = (rng.random((n, 8, 8, 3)) * 60 + y[:, None, None, None] * (190 // classes)).astype(np.uint8)
    return x, y


# --------------------------------------------------------------------------
# Subsets


def test_nested_subsets_are_exact_class_balanced_and_nested():
    labels = np.repeat(np.arange(4), [200, 100, 37, 5])
    np.random.default_rng(0).shuffle(labels)
    subsets = evaluation.nested_label_subsets(labels, (1.0, 0.01, 0.1), seed=3)
    assert list(subsets) == [0.01, 0.1, 1.0]
    # max(1, floor(f * n + 1/2)) per class: 2, 1 (0.5 -> 1), 0.37 -> 1, 0.05 -> 1.
    assert np.bincount(labels[subsets[0.01]], minlength=4).tolist() == [2, 1, 1, 1]
    assert np.bincount(labels[subsets[0.1]], minlength=4).tolist() == [20, 10, 4, 1]
    assert np.array_equal(subsets[1.0], np.arange(len(labels)))
    assert set(subsets[0.01]) <= set(subsets[0.1]) <= set(subsets[1.0])
    for idx in subsets.values():
        assert np.all(np.diff(idx) > 0)  # sorted, no repeats


def test_subsets_are_deterministic_per_seed_and_differ_across_seeds():
    labels = np.arange(1000) % 10
    a = evaluation.nested_label_subsets(labels, (0.01, 0.1), seed=0)
    b = evaluation.nested_label_subsets(labels, (0.01, 0.1), seed=0)
    c = evaluation.nested_label_subsets(labels, (0.01, 0.1), seed=1)
    for f in (0.01, 0.1):
        np.testing.assert_array_equal(a[f], b[f])
        assert set(a[f]) != set(c[f])
        assert np.array_equal(a[f], evaluation.label_fraction_subset(labels, f, seed=0))


@pytest.mark.parametrize("fractions, message", [
    ((), "fractions=()"),
    ((0.1, 0.1), "fractions=(0.1, 0.1)"),
    ((0.1, 2), "fractions=2"),
    (0.1, "fractions=0.1"),
])
def test_nested_subsets_reject_bad_fractions_naming_them(fractions, message):
    with pytest.raises(ValueError) as err:
        evaluation.nested_label_subsets(np.arange(10) % 2, fractions)
    assert message in str(err.value)


# --------------------------------------------------------------------------
# The protocol


PROBES = ("learned", "random", "pixels")


@pytest.fixture(scope="module")
def probe_rows():
    encoder = tiny_encoder()
    train, test = shaded(60, 3, 0), shaded(12, 3, 1)
    kwargs = dict(fractions=(0.25, 1.0), seeds=(0, 1), arms=PROBES, knn_k=5)
    rows = evaluation.evaluate_label_efficiency(encoder, train, test, **kwargs)
    # The test labels, permuted: nothing but the scores may change.
    poisoned = (test[0], np.random.default_rng(9).permutation(test[1]))
    poisoned_rows = evaluation.evaluate_label_efficiency(encoder, train, poisoned, **kwargs)
    return encoder, train, test, rows, poisoned_rows


def test_rows_are_plain_and_cover_every_arm_fraction_and_seed(probe_rows):
    _, _, _, rows, _ = probe_rows
    assert [(r["seed"], r["fraction"], r["arm"]) for r in rows] == [
        (s, f, a) for s in (0, 1) for f in (0.25, 1.0) for a in PROBES
    ]
    for row in rows:
        assert row["n_labels"] == (15 if row["fraction"] == 0.25 else 60)
        assert 0.0 <= row["top1"] <= 1.0 and 0.0 <= row["knn_top1"] <= 1.0
        assert row["l2"] in evaluation.PROBE_L2_GRID
        assert all(isinstance(v, (str, int, float)) for v in row.values())


def test_no_test_label_reaches_training_or_selection(probe_rows):
    _, _, test, rows, poisoned_rows = probe_rows
    assert "test_labels" not in inspect.signature(le.predict_label_efficiency).parameters
    for row, poisoned in zip(rows, poisoned_rows):
        assert row["l2"] == poisoned["l2"]  # the same choice
    # The same predictions: scored against the poisoned labels they give
    # what the predictions from the true labels' run give against them.
    predicted = le.predict_label_efficiency(
        probe_rows[0], probe_rows[1], test[0], fractions=(0.25, 1.0), seeds=(0, 1), arms=PROBES,
        knn_k=5,
    )
    permuted = np.random.default_rng(9).permutation(test[1])
    for p, row, poisoned in zip(predicted, rows, poisoned_rows):
        assert row["top1"] == float(np.mean(p["predictions"] == test[1]))
        assert poisoned["top1"] == float(np.mean(p["predictions"] == permuted))


def test_each_probe_chooses_l2_on_its_labelled_subset_only(probe_rows):
    encoder, (x, y), _, rows, _ = probe_rows
    features = {
        "learned": evaluation.extract_features(encoder, x, batch_size=64),
        "pixels": x.reshape(len(x), -1).astype(np.float32),
    }
    for row in rows:
        if row["arm"] not in features:
            continue
        idx = evaluation.label_fraction_subset(y, row["fraction"], seed=row["seed"])
        alone = evaluation.fit_logistic_probe(features[row["arm"]][idx], y[idx], 3, seed=row["seed"])
        assert alone["l2"] == row["l2"]


def test_finetune_and_supervised_share_one_code_path_differing_only_in_init(monkeypatch):
    encoder = tiny_encoder()
    train, test = shaded(30, 3, 0), shaded(6, 3, 1)
    inits = []
    real = le._initial_weights

    def same_start(encoder, head, init, seed):
        inits.append(init)
        return real(encoder, head, "scratch", seed)  # one start for both arms

    monkeypatch.setattr(le, "_initial_weights", same_start)
    rows = evaluation.evaluate_label_efficiency(
        encoder, train, test, fractions=(1.0,), seeds=(0,), arms=("finetune", "supervised"),
        epochs=1, learning_rates=(1e-3, 1e-2), batch_size=8, knn_k=3,
    )
    finetune, supervised = rows
    assert set(inits) == {"pretrained", "scratch"}
    assert inits.count("pretrained") == inits.count("scratch")
    for key in ("learning_rate", "epochs", "validation_top1", "top1", "knn_top1", "n_labels"):
        assert finetune[key] == supervised[key], key
    # Chosen on held-out labelled rows: one of the grid's values.
    assert finetune["learning_rate"] in (1e-3, 1e-2) and finetune["epochs"] == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"arms": ("learned", "magic")}, "arms=('learned', 'magic')"),
    ({"seeds": (0, 0)}, "seeds=(0, 0)"),
    ({"seeds": (True,)}, "seeds=True"),
    ({"epochs": 0}, "epochs=0"),
    ({"epochs": {0.5: 2}}, "epochs={0.5: 2}"),
    ({"learning_rates": ()}, "learning_rates=()"),
    ({"learning_rates": (-1.0,)}, "learning_rates=-1.0"),
    ({"knn_k": 0}, "knn_k=0"),
    ({"head_layer": 1}, "head_layer=1"),
])
def test_protocol_rejects_bad_arguments_naming_them(kwargs, message):
    train, test = shaded(12, 2, 0), shaded(4, 2, 1)
    with pytest.raises(ValueError) as err:
        evaluation.predict_label_efficiency(tiny_encoder(), train, test[0], fractions=(1.0,), **kwargs)
    assert message in str(err.value)


def test_check_protocol_normalises_the_choices_and_refuses_a_bad_one_without_data():
    checked = evaluation.label_efficiency.check_protocol(
        fractions=(1.0, 0.01), seeds=(2, 0), arms=("supervised", "learned"),
        epochs={"0.01": 100, 1: 5}, learning_rates=(3e-3, 1e-4))
    assert checked["fractions"] == [0.01, 1.0]
    assert checked["arms"] == ["learned", "supervised"]  # table order
    assert checked["epochs"] == {0.01: 100, 1.0: 5}
    assert checked["seeds"] == [2, 0] and checked["learning_rates"] == [3e-3, 1e-4]
    with pytest.raises(ValueError, match=r"fractions=\(0\.1, 0\.1\)"):
        evaluation.label_efficiency.check_protocol(fractions=(0.1, 0.1), seeds=(0,), arms=("learned",),
                                                   epochs=1, learning_rates=(1e-3,))


# --------------------------------------------------------------------------
# The table


def test_format_gives_mean_and_sample_std_over_seeds_per_arm_and_fraction():
    rows = [
        {"arm": "pixels", "fraction": 1.0, "seed": 0, "top1": 0.84, "knn_top1": 0.80},
        {"arm": "learned", "fraction": 0.01, "seed": 0, "top1": 0.60, "knn_top1": None},
        {"arm": "learned", "fraction": 0.01, "seed": 1, "top1": 0.70, "knn_top1": None},
        {"arm": "learned", "fraction": 0.01, "seed": 2, "top1": 0.80, "knn_top1": None},
        {"arm": "learned", "fraction": 1.0, "seed": 0, "top1": 0.9, "knn_top1": 0.85},
    ]
    summary = evaluation.summarize_label_efficiency(rows)
    mean, std, count = summary[("learned", 0.01)]
    assert (round(mean, 6), round(std, 6), count) == (0.7, 0.1, 3)  # sample std
    lines = evaluation.format_label_efficiency(rows).splitlines()
    assert lines[0].split() == ["arm", "top-1", "1%", "top-1", "100%", "kNN", "1%", "kNN", "100%"]
    assert lines[1].split() == ["learned", "70.0", "±", "10.0", "90.0", "-", "85.0"]  # arms in ARMS order
    assert lines[2].split() == ["pixels", "-", "84.0", "-", "80.0"]
