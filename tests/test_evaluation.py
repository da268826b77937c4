"""Tests for simclr_tf.evaluation and the linear_eval / finetune entry points,
and the inputs they (and the picture and JSON helpers) must refuse or accept.

Tiny fixtures: 16x16 images, a ResNet-18 at 1/8 width, a few batches. The kNN
classifier is checked against a NumPy reference and hand-computed votes; the
evaluation protocols against a colour-separable set a random encoder can
already separate (chance is 1/4).
"""

import glob
import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import simclr_tf
from simclr_tf import evaluation
from simclr_tf.augmentation import SimCLRAugmentation
from simclr_tf.atomic import save_keras, write_json
from simclr_tf.visualize import augmentation_grid

SIZE = 16
NUM_CLASSES = 4
PALETTE = np.array([[220, 40, 40], [40, 220, 40], [40, 40, 220], [200, 200, 40]], np.float32)


def tiny_encoder(seed=0):
    keras.utils.set_random_seed(seed)
    return simclr_tf.resnet(18, 0.125, (SIZE, SIZE, 3), small_images=True)


def colour_set(per_class, seed):
    """uint8 (N, 20, 20, 3) images whose class is their mean colour."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(NUM_CLASSES), per_class)
    noise = rng.normal(0, 30, (len(labels), 20, 20, 3))
    images = np.clip(PALETTE[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
    order = rng.permutation(len(labels))
    return images[order], labels[order].astype(np.int32)


@pytest.fixture(scope="module")
def colours():
    return colour_set(16, seed=0), colour_set(8, seed=1)


# --------------------------------------------------------------------------
# kNN


def knn_reference(xtr, ytr, xte, k, temperature, num_classes):
    xtr = xtr / np.linalg.norm(xtr, axis=1, keepdims=True)
    xte = xte / np.linalg.norm(xte, axis=1, keepdims=True)
    preds, votes = [], []
    for row in xte.astype(np.float64) @ xtr.T.astype(np.float64):
        vote = np.zeros(num_classes)
        for i in np.argsort(-row, kind="stable")[: min(k, len(xtr))]:
            vote[ytr[i]] += np.exp(row[i] / temperature)
        preds.append(np.argmax(vote))
        votes.append(vote / vote.sum())
    return np.array(preds), np.array(votes)


@pytest.mark.parametrize("k,temperature", [(1, 0.1), (5, 0.1), (20, 0.5), (200, 0.1), (7, 2.0)])
def test_knn_matches_numpy_reference(k, temperature):
    rng = np.random.default_rng(k)
    centres = rng.normal(size=(3, 8))
    ytr = rng.integers(0, 3, 60)
    xtr = centres[ytr] + rng.normal(scale=0.8, size=(60, 8))
    yte = rng.integers(0, 3, 25)
    xte = centres[yte] + rng.normal(scale=0.8, size=(25, 8))
    preds, votes = evaluation.knn_classify(
        xtr, ytr, xte, k=k, temperature=temperature, num_classes=3, return_scores=True,
        batch_size=7,  # several similarity blocks
    )
    ref_preds, ref_votes = knn_reference(xtr, ytr, xte, k, temperature, 3)
    np.testing.assert_array_equal(preds, ref_preds)
    np.testing.assert_allclose(votes, ref_votes, atol=1e-5)
    assert preds.dtype == np.int32 and votes.shape == (25, 3)


def test_knn_weights_votes_by_exp_similarity():
    # One neighbour of class 1 at cosine 1, two of class 0 at cosine 0.5.
    train = np.array([[1.0, 0.0], [0.5, np.sqrt(0.75)], [0.5, -np.sqrt(0.75)]])
    labels = np.array([1, 0, 0])
    query = np.array([[2.0, 0.0]])  # norm must not matter
    # t = 0.1: class 1 gets e^10 = 22026, class 0 gets 2 e^5 = 297.
    preds, votes = evaluation.knn_classify(train, labels, query, k=3, temperature=0.1,
                                           return_scores=True)
    assert preds.tolist() == [1]
    np.testing.assert_allclose(votes[0], np.array([2 * np.exp(5), np.exp(10)]) / (2 * np.exp(5) + np.exp(10)),
                               rtol=1e-5)
    # t = 10: class 1 gets e^0.1 = 1.105 < 2 e^0.05 = 2.103 for class 0.
    assert evaluation.knn_classify(train, labels, query, k=3, temperature=10.0).tolist() == [0]
    # k = 1 keeps the nearest only.
    assert evaluation.knn_classify(train, labels, query, k=1, temperature=10.0).tolist() == [1]


def test_knn_is_finite_at_tiny_temperature():
    rng = np.random.default_rng(0)
    preds, votes = evaluation.knn_classify(rng.normal(size=(30, 4)), np.arange(30) % 3,
                                           rng.normal(size=(5, 4)), k=10, temperature=1e-4,
                                           return_scores=True)
    assert np.all(np.isfinite(votes))
    np.testing.assert_allclose(votes.sum(1), 1.0, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(k=0), "Received: k=0"),
        (dict(temperature=0.0), "Received: temperature=0.0"),
        (dict(temperature=-1), "Received: temperature=-1"),
        (dict(test_features=np.ones((2, 3))), "test_features.shape=(2, 3)"),
        (dict(train_labels=np.zeros(3, int)), "len(train_labels)=3"),
        (dict(train_labels=np.array([0, 1, -1, 0])), "min(train_labels)=-1"),
        (dict(train_features=np.full((4, 2), np.nan)), "train_features"),
        (dict(num_classes=1), "num_classes=1"),
    ],
)
def test_knn_rejects_bad_input(kwargs, message):
    args = dict(train_features=np.eye(4, 2) + 0.1, train_labels=np.array([0, 1, 1, 0]),
                test_features=np.ones((2, 2)))
    args.update(kwargs)
    with pytest.raises(ValueError) as err:
        evaluation.knn_classify(**args)
    assert message in str(err.value)


def read_scalars(logdir):
    """{tag: [values]} from every TensorBoard event file under `logdir`."""
    values = {}
    for path in glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.HasField("tensor"):
                    values.setdefault(value.tag, []).append(tf.make_ndarray(value.tensor))
    return values


def test_knn_monitor_reports_knn_acc_to_history_and_later_callbacks(colours):
    (xtr, ytr), (xte, yte) = colours
    # A cheap model to fit: the callback only needs model(images) -> features.
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20, 20, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(8)])
    model.compile("adam", "mse")
    monitor = evaluation.KNNMonitor((xtr, ytr), tf.data.Dataset.from_tensor_slices((xte, yte)).batch(8),
                                    k=10, every_n_epochs=2, batch_size=16)
    # A later callback (TensorBoard, here a recorder) sees knn_acc in its logs.
    seen = []
    recorder = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(dict(logs)))
    history = model.fit(xtr, np.zeros((len(xtr), 8)), batch_size=16, epochs=3, verbose=0,
                        callbacks=[monitor, recorder])
    # Evaluated after epoch 2 (every 2nd) and epoch 3 (the last).
    knn = history.history["knn_acc"]
    assert len(knn) == 2 and all(0.0 <= v <= 1.0 for v in knn)
    assert ["knn_acc" in logs for logs in seen] == [False, True, True]
    assert seen[-1]["knn_acc"] == knn[-1]
    # The logged value is the kNN top-1 of the model's outputs at the end.
    (xf, yf), (xq, yq) = evaluation.labelled_features(model, (xtr, ytr), (xte, yte),
                                                      preprocess=lambda x: x)
    assert knn[-1] == evaluation.knn_accuracy(xf, yf, xq, yq, k=10)
    assert knn[-1] > 0.9, knn  # mean colour separates the classes


def test_knn_monitor_embeds_h_of_a_simclr_model(colours):
    (xtr, ytr), (xte, yte) = colours
    model = simclr_tf.SimCLR(
        encoder=tiny_encoder(),
        projection_head=simclr_tf.ProjectionHead(output_dim=8),
        augmenter=SimCLRAugmentation(SIZE, seed=0),
    )
    monitor = evaluation.KNNMonitor((xtr, ytr), (xte, yte), k=10, batch_size=16)
    accuracy = monitor.evaluate(model)
    # model(images) applies the evaluation transform and returns h.
    h = model.encoder(model.augmenter(xte, training=False), training=False).numpy()
    (xf, yf), (xq, yq) = evaluation.labelled_features(model.encoder, (xtr, ytr), (xte, yte),
                                                      preprocess=lambda x: model.augmenter(x, training=False))
    np.testing.assert_allclose(xq, h, atol=1e-4)
    assert accuracy == evaluation.knn_accuracy(xf, yf, xq, yq, k=10)
    assert accuracy > 0.5  # chance is 0.25; a random ResNet's h separates colours


def test_knn_monitor_rejects_bad_arguments(colours):
    (xtr, ytr), _ = colours
    for kwargs, message in [
        (dict(k=0), "k=0"),
        (dict(every_n_epochs=0), "every_n_epochs=0"),
        (dict(temperature=-0.1), "temperature=-0.1"),
    ]:
        with pytest.raises(ValueError, match=message):
            evaluation.KNNMonitor((xtr, ytr), (xtr, ytr), **kwargs)
    with pytest.raises(ValueError, match="train_data"):
        evaluation.KNNMonitor(xtr, (xtr, ytr))
    with pytest.raises(ValueError, match="len"):
        evaluation.KNNMonitor((xtr, ytr[:-1]), (xtr, ytr))


# --------------------------------------------------------------------------
# Linear evaluation


@pytest.mark.parametrize("augment", [False, True])
def test_linear_eval_beats_chance_on_a_separable_set(colours, augment):
    (xtr, ytr), (xte, yte) = colours
    encoder = tiny_encoder()
    before = [w.copy() for w in encoder.get_weights()]
    scores = evaluation.linear_eval(encoder, (xtr, ytr), (xte, yte), augment=augment,
                                    epochs=20 if augment else 10, batch_size=16,
                                    learning_rate=1e-2)
    assert scores["top1"] > 0.75, scores  # chance is 0.25
    assert scores["top5"] == 1.0  # 4 classes: top-5 holds every class
    assert scores["num_classes"] == NUM_CLASSES and scores["augment"] is augment
    # The encoder stays frozen (and trainable again afterwards).
    for a, b in zip(before, encoder.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert encoder.trainable
    if augment:
        assert len(scores["history"]["loss"]) == 20


def test_linear_eval_defaults_to_the_main_jobs_lbfgs_probe(colours):
    (xtr, ytr), (xte, yte) = colours
    encoder = tiny_encoder()
    scores = evaluation.linear_eval(encoder, (xtr, ytr), (xte, yte))
    (ftr, ltr), (fte, lte) = evaluation.labelled_features(encoder, (xtr, ytr), (xte, yte))
    probe = evaluation.linear_probe(ftr, ltr, fte, lte, solver="lbfgs", seed=0)
    assert scores["l2"] == probe["l2"] and scores["top1"] == probe["top1"]
    adam = evaluation.linear_eval(encoder, (xtr, ytr), (xte, yte), solver="adam", epochs=1)
    assert "l2" not in adam
    with pytest.raises(ValueError, match="`solver` must be 'lbfgs' or 'adam'. Received: solver='sgd'"):
        evaluation.linear_eval(encoder, (xtr, ytr), (xte, yte), solver="sgd")


def test_linear_eval_accepts_datasets_and_rejects_bad_arguments(colours):
    (xtr, ytr), (xte, yte) = colours
    encoder = tiny_encoder()
    train = tf.data.Dataset.from_tensor_slices((xtr, ytr)).batch(16)
    test = tf.data.Dataset.from_tensor_slices((xte, yte)).batch(16)
    scores = evaluation.linear_eval(encoder, train, test, epochs=2)
    assert 0.0 <= scores["top1"] <= 1.0
    with pytest.raises(ValueError, match="epochs=0"):
        evaluation.linear_eval(encoder, (xtr, ytr), (xte, yte), epochs=0)
    with pytest.raises(ValueError, match="encoder"):
        evaluation.linear_eval("encoder.keras", (xtr, ytr), (xte, yte))
    with pytest.raises(ValueError, match="train_data"):
        evaluation.linear_eval(encoder, xtr, (xte, yte))


# --------------------------------------------------------------------------
# Label fractions and fine-tuning


@pytest.mark.parametrize(
    "fraction,expected",
    [
        # Rule: max(1, floor(fraction * n + 1/2)) per class of n examples.
        (1.0, [100, 37, 5, 1]),
        (0.5, [50, 19, 3, 1]),  # 18.5 -> 19, 2.5 -> 3, 0.5 -> 1
        (0.1, [10, 4, 1, 1]),  # 3.7 -> 4, 0.5 -> 1, 0.1 -> 1 (at least one)
        (0.01, [1, 1, 1, 1]),
        (0.35, [35, 13, 2, 1]),  # 12.95 -> 13, 1.75 -> 2
    ],
)
def test_label_fraction_subset_is_class_balanced_and_exact(fraction, expected):
    labels = np.repeat(np.arange(4), [100, 37, 5, 1])
    np.random.default_rng(0).shuffle(labels)
    keep = evaluation.label_fraction_subset(labels, fraction, seed=3)
    assert np.bincount(labels[keep], minlength=4).tolist() == expected
    assert len(np.unique(keep)) == len(keep) and np.all(np.diff(keep) > 0)


def test_label_fraction_subset_on_the_embedded_set_and_seeds():
    _, labels = simclr_tf.data.load_embedded("train")
    one = evaluation.label_fraction_subset(labels, 0.01, seed=0)
    ten = evaluation.label_fraction_subset(labels, 0.1, seed=0)
    assert np.bincount(labels[one]).tolist() == [10] * 10
    assert np.bincount(labels[ten]).tolist() == [100] * 10
    assert set(one) <= set(ten)  # nested, as the SimCLR splits
    np.testing.assert_array_equal(one, evaluation.label_fraction_subset(labels, 0.01, seed=0))
    assert set(one) != set(evaluation.label_fraction_subset(labels, 0.01, seed=1))
    # Exact decimal arithmetic: 0.35 of 10 is 4 (3.4999... in floating point).
    assert len(evaluation.label_fraction_subset(np.zeros(10, int), 0.35)) == 4


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, float("nan"), True, "0.1"])
def test_label_fraction_rejects_bad_fractions(bad):
    with pytest.raises(ValueError) as err:
        evaluation.label_fraction_subset(np.arange(10) % 2, bad)
    assert f"fraction={bad!r}" in str(err.value)


def test_finetune_changes_encoder_and_head_weights(colours):
    (xtr, ytr), (xte, yte) = colours
    encoder = tiny_encoder()
    head = simclr_tf.ProjectionHead(output_dim=8)
    head.build(encoder.output_shape)
    enc_before = [w.numpy().copy() for w in encoder.trainable_weights]
    head_before = [w.numpy().copy() for w in head.trainable_weights]
    scores = evaluation.finetune(encoder, (xtr, ytr), (xte, yte), label_fraction=0.5, head=head,
                                 head_layer=1, epochs=1, batch_size=16)
    assert scores["train_examples"] == 32 and scores["label_fraction"] == 0.5
    assert len(scores["history"]["loss"]) == 1 and np.isfinite(scores["history"]["loss"][0])
    assert 0.0 <= scores["top1"] <= scores["top5"] <= 1.0
    changed = [not np.array_equal(a, w.numpy()) for a, w in zip(enc_before, encoder.trainable_weights)]
    assert sum(changed) > len(changed) // 2, "fine-tuning must move the encoder"
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(head_before, head.trainable_weights))


def test_finetune_rejects_bad_arguments(colours):
    (xtr, ytr), (xte, yte) = colours
    encoder = tiny_encoder()
    for fraction in (0, 1.01, -0.5):
        with pytest.raises(ValueError) as err:
            evaluation.finetune(encoder, (xtr, ytr), (xte, yte), label_fraction=fraction)
        assert f"label_fraction={fraction!r}" in str(err.value)
    with pytest.raises(ValueError, match="head_layer=1"):
        evaluation.finetune(encoder, (xtr, ytr), (xte, yte), head_layer=1)  # no head
    head = simclr_tf.ProjectionHead(output_dim=8)
    head.build(encoder.output_shape)
    with pytest.raises(ValueError, match="head_layer=3"):
        evaluation.finetune(encoder, (xtr, ytr), (xte, yte), head=head, head_layer=3)


# --------------------------------------------------------------------------
# Entry points, in process with their own FlagValues


def run_entry_point(module, argv):
    flag_values = flags.FlagValues()
    module.define_flags(flag_values)
    flag_values([module.__name__] + argv)
    return module.main([], flag_values=flag_values)


def test_linear_eval_entry_point_writes_results_picture_and_logs(tmp_path):
    from experiments import linear_eval

    save_keras(tiny_encoder(), str(tmp_path / "encoder.keras"))
    out = tmp_path / "eval"
    run_entry_point(linear_eval, [
        f"--encoder={tmp_path / 'encoder.keras'}", "--dataset=embedded", "--epochs=2",
        "--augment", "--batch_size=32", "--max_train_examples=64", "--max_test_examples=40",
        "--knn_k=10", "--embedding_points=40", f"--output_dir={out}",
    ])
    results = json.loads((out / "results.json").read_text())
    assert {"top1", "top5", "knn_top1", "history"} <= set(results)
    assert results["train_examples"] == 64 and results["test_examples"] == 40
    assert results["augment"] is True and len(results["history"]["loss"]) == 2
    assert (out / "embedding_tsne.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tags = read_scalars(str(out / "tensorboard"))
    for tag in ("linear_eval/top1", "linear_eval/top5", "linear_eval/knn_top1",
                "linear_eval_train/loss", "linear_eval_train/acc", "embedding_tsne"):
        assert tag in tags, sorted(tags)
    assert [f for f in os.listdir(out) if f.startswith(".")] == []  # no temporary files left


def test_linear_eval_keeps_results_without_the_picture_libraries(tmp_path, monkeypatch):
    from experiments import linear_eval

    def missing(*args, **kwargs):
        raise ImportError("The embedding picture needs matplotlib: `pip install matplotlib`.")

    monkeypatch.setattr(linear_eval, "plot_embedding", missing)
    save_keras(tiny_encoder(), str(tmp_path / "encoder.keras"))
    out = tmp_path / "eval"
    run_entry_point(linear_eval, [
        f"--encoder={tmp_path / 'encoder.keras'}", "--dataset=embedded", "--epochs=1",
        "--batch_size=32", "--max_train_examples=64", "--max_test_examples=40", "--knn_k=0",
        "--embedding_points=40", f"--output_dir={out}",
    ])
    results = json.loads((out / "results.json").read_text())
    assert "top1" in results and "embedding_png" not in results
    assert not (out / "embedding_tsne.png").exists()


def test_finetune_entry_point_from_a_pretrain_folder(tmp_path):
    from experiments import finetune

    model = simclr_tf.SimCLR(
        encoder=tiny_encoder(),
        projection_head=simclr_tf.ProjectionHead(output_dim=8),
        augmenter=SimCLRAugmentation(SIZE, seed=0),
    )
    save_keras(model, str(tmp_path / "simclr.keras"))
    out = tmp_path / "ft"
    run_entry_point(finetune, [
        f"--encoder={tmp_path}", "--label_fraction=0.01", "--head_layer=1", "--epochs=1",
        "--batch_size=50", "--max_test_examples=40", f"--output_dir={out}",
    ])
    results = json.loads((out / "results.json").read_text())
    assert results["train_examples"] == 100 and results["head_layer"] == 1  # 10 per class
    assert 0.0 <= results["top1"] <= results["top5"] <= 1.0
    tuned = keras.saving.load_model(out / "encoder.keras")
    moved = [not np.array_equal(a, b) for a, b in zip(model.encoder.get_weights(), tuned.get_weights())]
    assert sum(moved) > len(moved) // 2, "the saved encoder must be the fine-tuned one"
    assert {"finetune/top1", "finetune/top5", "finetune_train/loss"} <= set(read_scalars(str(out / "tensorboard")))
    with pytest.raises(ValueError, match="label_fraction=0.0"):
        run_entry_point(finetune, [f"--encoder={tmp_path}", "--label_fraction=0",
                                   f"--output_dir={out}"])


def test_load_encoder_rejects_bad_paths(tmp_path):
    with pytest.raises(ValueError, match="simclr.keras or encoder.keras"):
        evaluation.load_encoder(str(tmp_path))
    with pytest.raises(ValueError, match="missing.keras"):
        evaluation.load_encoder(str(tmp_path / "missing.keras"))


# --------------------------------------------------------------------------
# Linear probe (L-BFGS logistic regression)


def blobs(n, dim, classes, seed, spread=2.0):
    """Gaussian blobs around fixed centres (the same for every `seed`)."""
    centres = np.random.default_rng(100).normal(0, spread, (classes, dim))
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    return (centres[labels] + rng.normal(0, 1, (n, dim))).astype(np.float32), labels


@pytest.mark.parametrize("l2", [1e-1, 1e-3])
def test_lbfgs_probe_matches_scikit_learn(l2):
    sklearn = pytest.importorskip("sklearn.linear_model")
    x, y = blobs(300, 6, 3, seed=0, spread=1.0)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    weights, bias = evaluation._fit_logistic(x.astype(np.float64), y, 3, l2, max_iterations=500)
    # scikit-learn minimises C * sum(CE) + ||W||^2 / 2, i.e. our mean CE +
    # l2 / 2 ||W||^2 with C = 1 / (l2 * n).
    reference = sklearn.LogisticRegression(C=1 / (l2 * len(x)), tol=1e-10, max_iter=5000).fit(x, y)
    ours = keras.ops.convert_to_numpy(keras.ops.softmax(x @ weights + bias))
    np.testing.assert_allclose(ours, reference.predict_proba(x), atol=2e-4)


def test_lbfgs_probe_picks_l2_without_looking_at_test_labels():
    xtr, ytr = blobs(400, 20, 4, seed=1)
    xte, yte = blobs(200, 20, 4, seed=2)
    scores = evaluation.linear_probe(xtr, ytr, xte, yte)
    assert scores["l2"] in evaluation.PROBE_L2_GRID
    assert set(scores["validation_top1"]) == {f"{v:g}" for v in evaluation.PROBE_L2_GRID}
    assert scores["top1"] > 0.9, scores  # well-separated blobs; chance is 0.25
    # Shuffled test labels change the score but not the choice of penalty.
    shuffled = evaluation.linear_probe(xtr, ytr, xte, np.roll(yte, 1))
    assert shuffled["l2"] == scores["l2"]
    assert shuffled["validation_top1"] == scores["validation_top1"]
    assert shuffled["top1"] < 0.5


def test_lbfgs_probe_penalty_helps_on_noisy_features_and_auto_follows_validation():
    # 100 rows, 150 mostly-noise dimensions: an unpenalised fit memorises the
    # training rows; a penalty generalises better.
    rng = np.random.default_rng(3)
    ytr, yte = np.arange(100) % 2, np.arange(1000) % 2

    def features(y):
        signal = (2 * y - 1)[:, None] * np.ones((1, 5))
        return np.concatenate([signal + rng.normal(0, 1.5, (len(y), 5)),
                               rng.normal(0, 1, (len(y), 145))], 1)

    xtr, xte = features(ytr), features(yte)
    weak = evaluation.linear_probe(xtr, ytr, xte, yte, l2=0.0, max_iterations=300)
    strong = evaluation.linear_probe(xtr, ytr, xte, yte, l2=1.0, max_iterations=300)
    assert weak["train_top1"] == 1.0
    assert strong["top1"] > weak["top1"] + 0.015, (strong, weak)
    auto = evaluation.linear_probe(xtr, ytr, xte, yte, max_iterations=300)
    best = max(auto["validation_top1"].values())
    # The strongest penalty among the best on validation.
    assert auto["l2"] == next(v for v in evaluation.PROBE_L2_GRID
                              if auto["validation_top1"][f"{v:g}"] == best)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"solver": "sgd"}, "`solver` must be 'lbfgs' or 'adam'. Received: solver='sgd'"),
        ({"l2": -1.0}, "`l2` must be 'auto' or a finite number >= 0. Received: l2=-1.0"),
        ({"l2": "big"}, "`l2` must be 'auto' or a number >= 0. Received: l2='big'"),
        ({"validation_fraction": 0.0}, "`validation_fraction` must be a number in (0, 1]"),
        ({"max_iterations": 0}, "`max_iterations`"),
        ({"l2": None}, "Received: l2=None"),
        ({"l2": [0.1]}, "Received: l2=[0.1]"),
        ({"l2": float("nan")}, "Received: l2=nan"),
    ],
)
def test_linear_probe_rejects_bad_arguments(kwargs, message):
    x, y = blobs(40, 3, 2, seed=0)
    with pytest.raises(ValueError) as error:
        evaluation.linear_probe(x, y, x, y, **kwargs)
    assert message in str(error.value)


@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_linear_probe_takes_column_labels(solver):
    # keras.datasets gives labels as (N, 1); they must mean what (N,) does.
    xtr, ytr = blobs(200, 8, 7, seed=4)
    xte, yte = blobs(100, 8, 7, seed=5)
    kwargs = dict(solver=solver, epochs=30, learning_rate=0.1)  # the last two: Adam only
    flat = evaluation.linear_probe(xtr, ytr, xte, yte, **kwargs)
    column = evaluation.linear_probe(xtr, ytr[:, None], xte, yte[:, None], **kwargs)
    assert flat["top1"] > 0.9, flat
    for key in ("top1", "top5", "train_top1"):
        assert column[key] == pytest.approx(flat[key], abs=0.02), (key, column, flat)


@pytest.mark.parametrize(
    "labels, message",
    [
        ("negative", "`train_labels` must be >= 0. Received: min(train_labels)=-1"),
        ("short", "`train_labels` must have one label per feature row (40). Received: len(train_labels)=39"),
        ("float", "`train_labels` must be a 1-D integer array. Received: train_labels with shape (40,) "
                  "and dtype float64"),
    ],
)
def test_linear_probe_rejects_bad_labels(labels, message):
    x, y = blobs(40, 3, 3, seed=0)
    bad = {"negative": np.where(np.arange(40) == 0, -1, y), "short": y[:-1], "float": y.astype(float)}[labels]
    with pytest.raises(ValueError) as error:
        evaluation.linear_probe(x, bad, x, y)
    assert message in str(error.value)


# -- grid_encoder: the last feature map pooled to a grid of cells ------------


def _map_and_pool(input_shape=(6, 6, 3), filters=4, strides=2):
    """A functional encoder: conv (3x3 map from 6 px at stride 2), then a global average pool."""
    inputs = keras.Input(input_shape)
    feature_map = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", name="conv")(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(feature_map), name="tiny")


def test_grid_encoder_on_a_resnet_is_the_flattened_map_and_grid_1_is_h():
    enc = simclr_tf.resnet(10, None, (28, 28, 3), small_images=True, stem_stride=2, stage_widths=[8, 8, 8, 16])
    x = np.random.default_rng(0).random((3, 28, 28, 3)).astype("float32")
    feature_map = keras.Model(enc.input, enc.layers[-1].input)(x).numpy()
    assert feature_map.shape == (3, 2, 2, 16)
    grid = evaluation.grid_encoder(enc, 2)
    assert grid.output_shape == (None, 64)
    np.testing.assert_allclose(grid(x).numpy(), feature_map.reshape(3, -1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(evaluation.grid_encoder(enc, 1)(x).numpy(), enc(x).numpy(), rtol=1e-6, atol=1e-6)
    # The same variables as the encoder, not copies: training one trains the other.
    assert {id(v) for v in grid.weights} == {id(v) for v in enc.weights}


def test_grid_encoder_cells_overlap_as_adaptive_pooling_when_the_grid_does_not_divide_the_map():
    enc = _map_and_pool()
    x = np.random.default_rng(1).random((2, 6, 6, 3)).astype("float32")
    m = keras.Model(enc.input, enc.get_layer("conv").output)(x).numpy()
    assert m.shape == (2, 3, 3, 4)
    # A side of 3 in 2 cells: rows/columns 0-1 and 1-2.
    expected = np.concatenate([m[:, r0:r1, c0:c1].mean((1, 2)) for r0, r1 in ((0, 2), (1, 3))
                               for c0, c1 in ((0, 2), (1, 3))], axis=-1)
    np.testing.assert_allclose(evaluation.grid_encoder(enc, 2)(x).numpy(), expected, rtol=1e-6, atol=1e-6)
    full = evaluation.grid_encoder(enc, 3)(x).numpy()
    np.testing.assert_allclose(full, m.reshape(2, -1), rtol=1e-6, atol=1e-6)


def test_grid_encoder_takes_a_simclr_models_encoder_and_probes_like_h():
    enc = _map_and_pool((8, 8, 3))
    model = simclr_tf.SimCLR(enc, simclr_tf.ProjectionHead(output_dim=4), SimCLRAugmentation(8, seed=0))
    grid = evaluation.grid_encoder(model, 2)
    assert grid.output_shape == (None, 16)
    images = np.random.default_rng(2).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    [(features, labels)] = evaluation.labelled_features(grid, (images, np.arange(5)))
    assert features.shape == (5, 16) and labels.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("grid, message", [
    (0, "`grid` must be an integer >= 1"),
    (True, "`grid` must be an integer >= 1"),
    (2.0, "`grid` must be an integer >= 1"),
    (4, r"`grid` must be at most the last feature map's side \(3 x 3\)"),
])
def test_grid_encoder_refuses_a_bad_grid_naming_it(grid, message):
    with pytest.raises(ValueError, match=message):
        evaluation.grid_encoder(_map_and_pool(), grid)


def test_grid_encoder_refuses_an_encoder_without_a_pooled_map():
    flat = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten()])
    with pytest.raises(ValueError, match="`encoder` must be a functional Keras model ending in a "
                                         "GlobalAveragePooling2D layer.*ending in Flatten"):
        evaluation.grid_encoder(flat, 2)
    with pytest.raises(ValueError, match="`encoder` must be .*Received: encoder of type str"):
        evaluation.grid_encoder("resnet", 2)
    inputs = keras.Input((3, 4, 4))
    first = keras.Model(inputs, keras.layers.GlobalAveragePooling2D(data_format="channels_first")(inputs))
    with pytest.raises(ValueError, match="`encoder` must pool a channels_last feature map.*'channels_first'"):
        evaluation.grid_encoder(first, 2)
    dynamic = _map_and_pool((None, None, 3))
    with pytest.raises(ValueError, match="`encoder` must have a last feature map of static height"):
        evaluation.grid_encoder(dynamic, 2)


# --------------------------------------------------------------------------
# Inputs the evaluation, data, picture and JSON helpers used to mishandle
# ((B, 1) labels, probe features and arguments, 0-255 float images, picture
# arguments, NumPy values in JSON; the IDX reader's cases are in test_data.py).


def random_split(n=24, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, SIZE, SIZE, 3), np.uint8), np.arange(n) % classes


# --------------------------------------------------------------------------
# Inputs: labels shaped (B, 1)


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
# Inputs: Linear probe arguments


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
# Inputs: extract_features and image values


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
# Inputs: augmentation_grid and write_json


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
# Inputs: linear_eval / finetune entry points: refused runs leave nothing behind


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
