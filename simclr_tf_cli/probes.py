"""The linear probe of the command line: one protocol for every entry point.

`pretrain`'s final probes, `linear-eval`, the held-out re-probe
(`experiments.fresh_test`) and the ablation harness all call
`probe_features` with a config's `probe` section, so one encoder gets one
number everywhere. The default is the main job's probe: multinomial logistic
regression solved by L-BFGS, its L2 penalty chosen on a held-out fifth of
the training rows (`simclr_tf.evaluation.linear_probe`); `solver="adam"`
keeps the older mini-batch Adam probe as an option.
"""

import time

import keras
import numpy as np
from absl import logging

from simclr_tf import evaluation
from simclr_tf_cli.builders import build_encoder

# Keys of a `probe` section that choose which rows are probed, not how.
_ROW_KEYS = ("max_examples", "train_examples", "test_examples", "grid")
_LBFGS_KEYS = ("l2", "max_iterations", "validation_fraction")
_ADAM_KEYS = ("epochs", "batch_size", "learning_rate", "weight_decay")

KNN_K = 200
KNN_TEMPERATURE = 0.1


def probe_arguments(probe, seed, num_classes=None):
    """`evaluation.linear_probe` keyword arguments from a config's `probe` section.

    `probe["solver"]` is "lbfgs" (the default) or "adam"; each solver takes
    only its own settings from the section, the others are ignored.
    """
    probe = dict(probe or {})
    solver = probe.get("solver", "lbfgs")
    if solver not in ("lbfgs", "adam"):
        raise ValueError(f"Config `probe.solver` must be 'lbfgs' or 'adam'. Received: probe.solver={solver!r}")
    keys = _LBFGS_KEYS if solver == "lbfgs" else _ADAM_KEYS
    kwargs = {key: probe[key] for key in keys if key in probe}
    kwargs.update(solver=solver, seed=seed)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return kwargs


def probe_features(train_features, train_labels, test_features, test_labels, probe, seed,
                   num_classes=None):
    """The linear probe on frozen features: `evaluation.linear_probe` with `probe`'s settings."""
    return evaluation.linear_probe(train_features, train_labels, test_features, test_labels,
                                   **probe_arguments(probe, seed, num_classes))


def single_channel_if_gray(train, test, size):
    """Raw-pixel features keep one channel when the images are gray.

    The pipeline repeats a grayscale channel three times; the copies carry no
    information and would triple the probe's cost and split its weights.
    """
    train, test = (np.reshape(x, (len(x), size, size, -1)) for x in (train, test))
    if train.shape[-1] == 3 and all(np.array_equal(x[..., 0], x[..., c]) for x in (train, test) for c in (1, 2)):
        train, test = train[..., :1], test[..., :1]
    return train.reshape(len(train), -1), test.reshape(len(test), -1)


def probe_representations(config, learned, view, train, test, knn=False):
    """The main job's linear probes: `learned`, a random encoder, raw pixels.

    `train` and `test` are datasets of (images, labels) batches and `view`
    maps a batch of images to the encoders' input (the evaluation
    transform). The random encoder is the strong form of that baseline
    (plain init: BN gamma 1 in every block, not the zero-gamma residual init
    used for training), rebuilt from `config` after seeding with
    `config["seed"] + 1`, so a run re-probed later (experiments.fresh_test)
    gets the same one. The probe settings are `config["probe"]`. With
    `knn`, each result also holds `knn_top1`: weighted cosine kNN
    (k=200, t=0.1) on the same features. Returns {"learned" | "random" |
    "pixels": the `linear_probe` result}.
    """
    keras.utils.set_random_seed(config["seed"] + 1)
    candidates = {
        "learned": learned,
        "random": build_encoder(config, zero_init_residual=False),
        "pixels": keras.layers.Flatten(),
    }
    results = {}
    for name, encoder in candidates.items():
        start = time.time()
        (xtr, ytr), (xte, yte) = (
            evaluation.extract_features(encoder, split, preprocess=view) for split in (train, test)
        )
        if name == "pixels":
            xtr, xte = single_channel_if_gray(xtr, xte, config["image_size"])
        results[name] = probe_features(xtr, ytr, xte, yte, config["probe"], config["seed"])
        if knn:
            results[name]["knn_top1"] = evaluation.knn_accuracy(
                xtr, ytr, xte, yte, k=KNN_K, temperature=KNN_TEMPERATURE)
        logging.info("probe %s: %s (%.0fs)", name, results[name], time.time() - start)
    return results
