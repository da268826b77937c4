"""Linear probe and linear evaluation of a frozen encoder.

- `linear_probe` is multinomial logistic regression on frozen, standardised
  features (computed once; no augmentation), solved to convergence by
  L-BFGS (`logistic.py`) with its L2 penalty chosen on a held-out fifth of
  the training split (or Adam for a fixed number of epochs with
  `solver="adam"`). The same probe, with the same selection rule, scores
  raw pixels, a random encoder and a pretrained one, so the comparison is
  like for like and each baseline gets its strongest honest form. The
  encoder runs with BN in inference mode, which is the strong form for
  every encoder, including a randomly initialised one (its BN moving
  statistics are then the identity, so features are not normalised per
  batch).
- `linear_eval` is the paper's linear evaluation: a frozen encoder and a
  linear classifier on h, trained with crop + flip augmentation
  (`augment=True`) or on cached features (`augment=False`, which is
  `linear_probe`); top-1 and top-5 on the test split.

Deviation from the paper: the augmented linear evaluation defaults to Adam
rather than Nesterov-momentum SGD / LARS, because at the small scales this
package runs on a CPU Adam is far less sensitive to the learning rate; pass
`optimizer=` to use the paper's choice. Features are standardised with the
training set's mean and variance before the linear layer, which makes one
learning rate fit every encoder.

Determinism: `linear_probe(solver="lbfgs")` is deterministic NumPy;
`linear_probe(solver="adam")` and `linear_eval` call
`keras.utils.set_random_seed(seed)` (a global side effect) so that
classifier initialisation, shuffling and augmentation are reproducible on
one device.
"""

import keras
import numpy as np

from simclr_tf import validation
from simclr_tf.evaluation.classifier import _Classifier, _crop_flip, _fit_classifier
from simclr_tf.evaluation.features import labelled_features
from simclr_tf.evaluation.inputs import (
    _as_dataset,
    _check_labels,
    _check_num_classes,
    _num_classes_of,
    _split_batch,
    _unwrap,
)
from simclr_tf.evaluation.logistic import _lbfgs_probe, _scores, _topk


def linear_probe(
    train_features,
    train_labels,
    test_features,
    test_labels,
    solver="lbfgs",
    l2="auto",
    validation_fraction=0.2,
    max_iterations=150,
    epochs=100,
    batch_size=512,
    learning_rate=1e-3,
    weight_decay=1e-4,
    seed=0,
    num_classes=None,
):
    """Trains a linear softmax classifier on frozen features.

    Features are standardised with the training set's mean and std. Two
    solvers:

    - `solver="lbfgs"` (default): multinomial logistic regression solved to
      convergence (full-batch L-BFGS in NumPy, at most `max_iterations`
      steps per fit) with the penalty `l2 / 2 * ||W||^2` added to the mean
      cross-entropy. With `l2="auto"`
      the penalty is chosen from `PROBE_L2_GRID` by top-1 on a
      class-stratified `validation_fraction` of the training rows (never
      the test rows), then the classifier is refit on all training rows.
      This is the strongest honest form of a linear probe for any feature
      set: no epoch count to under- or over-train (raw pixels overfit a
      fixed 100-epoch Adam probe by ~2 points), and each feature set gets
      its own regularisation by the same rule.
    - `solver="adam"`: Adam on mini-batches for `epochs` passes with a
      `weight_decay` L2 penalty (Keras), the older protocol.

    Args:
        num_classes: classes of the classifier; None infers them from the
            largest label.

    Returns:
        dict with `top1`, `top5` (fractions in [0, 1]) and `train_top1`;
        the L-BFGS solver adds `l2` (the penalty used) and, with
        `l2="auto"`, `validation_top1` (per grid value).
    """
    xtr, xte = np.asarray(train_features), np.asarray(test_features)
    if xtr.ndim > 2:  # image-shaped features (raw pixels): one row per example
        xtr = xtr.reshape(len(xtr), -1)
    if xte.ndim > 2:
        xte = xte.reshape(len(xte), -1)
    xtr = validation.check_features("train_features", xtr)
    xte = validation.check_features("test_features", xte)
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(
            "`train_features` and `test_features` must have the same width. "
            f"Received: train_features.shape={xtr.shape}, test_features.shape={xte.shape}"
        )
    ytr = _check_labels("train_labels", train_labels, len(xtr)).astype(np.int32)
    yte = _check_labels("test_labels", test_labels, len(xte)).astype(np.int32)
    if solver not in ("lbfgs", "adam"):
        raise ValueError(f"`solver` must be 'lbfgs' or 'adam'. Received: solver={solver!r}")
    if solver == "adam":
        epochs = validation.check_int("epochs", epochs, minimum=1)
        batch_size = validation.check_int("batch_size", batch_size, minimum=1)
        learning_rate = validation.check_number("learning_rate", learning_rate, minimum=0, strict=True)
        weight_decay = validation.check_number("weight_decay", weight_decay, minimum=0)
    mean, std = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    num_classes = _check_num_classes(num_classes, ytr, yte)
    if solver == "lbfgs":
        return _lbfgs_probe(xtr, ytr, xte, yte, num_classes, l2, validation_fraction,
                            validation.check_int("max_iterations", max_iterations, minimum=1), seed)

    keras.utils.set_random_seed(seed)
    classifier = keras.Sequential(
        [
            keras.Input((xtr.shape[1],)),
            keras.layers.Dense(
                num_classes, kernel_regularizer=keras.regularizers.L2(weight_decay)
            ),
        ]
    )
    classifier.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    classifier.fit(xtr, ytr, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True)
    test_logits = classifier.predict(xte, batch_size=4096, verbose=0)
    return {
        "top1": _topk(test_logits, yte, 1),
        "top5": _topk(test_logits, yte, 5),
        "train_top1": _topk(classifier.predict(xtr, batch_size=4096, verbose=0), ytr, 1),
    }


def linear_eval(
    encoder,
    train_data,
    test_data,
    *,
    augment=False,
    solver="lbfgs",
    epochs=90,
    batch_size=256,
    learning_rate=1e-3,
    weight_decay=1e-4,
    optimizer=None,
    num_classes=None,
    preprocess=None,
    seed=0,
    callbacks=None,
    verbose=0,
):
    """Linear evaluation of a frozen encoder: top-1 / top-5 on `test_data`.

    With `augment=False` the encoder embeds each split once and
    `linear_probe` trains on the cached, standardised features (fast): by
    default the main job's L-BFGS probe, its L2 chosen on held-out training
    rows, so `linear_eval`, `simclr-tf linear-eval` and the main job give one
    number for one encoder. With
    `augment=True` every training batch is a fresh random resized crop +
    horizontal flip (the paper's protocol), the frozen encoder runs in
    inference mode on it, and h is standardised with the mean and variance
    of the training set's evaluation-transform features (one extra pass)
    before the linear layer.

    Args:
        encoder: a Keras model from float [0, 1] images (its input size) to
            h, or a `SimCLR` model (its encoder, with its augmenter's
            evaluation transform). The encoder's weights are not changed.
        train_data, test_data: `(images, labels)` numpy arrays (uint8, or
            float in [0, 1]; any size, resized to the encoder's input) or
            `tf.data.Dataset`s of `(images, labels)` batches.
        augment: train on crop + flip views (by Adam) instead of cached features.
        solver: "lbfgs" or "adam", the cached-feature probe's solver
            (`linear_probe`); `epochs`, `learning_rate` and `weight_decay`
            apply to "adam" and `augment=True`.
        epochs: passes over `train_data` (Adam).
        batch_size: batch size for array inputs and the feature classifier.
        learning_rate: Adam's learning rate (when `optimizer` is None).
        weight_decay: L2 penalty on the linear weights.
        optimizer: a Keras optimizer for `augment=True`; default Adam.
        num_classes: classes; None infers them from the largest label.
        preprocess: images -> encoder input for evaluation (and, for
            `augment=False`, training); default: scale uint8 to [0, 1],
            match channels and resize bilinearly (or the SimCLR model's
            evaluation transform).
        seed: seeds classifier initialisation, shuffling and augmentation.
        callbacks: Keras callbacks for the augmented training's `fit`.
        verbose: `fit` verbosity for `augment=True`.

    Returns:
        dict with `top1`, `top5` (fractions of `test_data`), `train_top1`
        (feature path) or `history` (per-epoch `loss`/`acc`, augmented path),
        and `augment`, `epochs`, `num_classes`.

    Raises:
        ValueError: on a non-Keras encoder, malformed data, or non-positive
            `epochs`, `batch_size` or `learning_rate`.

    Example:

    >>> import simclr_tf
    >>> enc = simclr_tf.resnet(18, 0.125, (16, 16, 3), small_images=True)
    >>> x = np.random.default_rng(0).integers(0, 255, (32, 16, 16, 3), np.uint8)
    >>> y = np.arange(32) % 2
    >>> scores = linear_eval(enc, (x, y), (x, y))
    >>> sorted(scores)
    ['augment', 'epochs', 'l2', 'num_classes', 'top1', 'top5', 'train_top1', 'validation_top1']
    """
    epochs = validation.check_int("epochs", epochs, minimum=1)
    batch_size = validation.check_int("batch_size", batch_size, minimum=1)
    learning_rate = validation.check_number("learning_rate", learning_rate, minimum=0, strict=True)
    if solver not in ("lbfgs", "adam"):
        raise ValueError(f"`solver` must be 'lbfgs' or 'adam'. Received: solver={solver!r}")
    encoder, preprocess, _ = _unwrap(encoder, preprocess)

    if not augment:
        (xtr, ytr), (xte, yte) = labelled_features(
            encoder, train_data, test_data, batch_size=batch_size, preprocess=preprocess,
            names=("train_data", "test_data"),
        )
        num_classes = _check_num_classes(num_classes, ytr, yte)
        scores = linear_probe(
            xtr, ytr, xte, yte, solver=solver, epochs=epochs, batch_size=batch_size,
            learning_rate=learning_rate, weight_decay=weight_decay, seed=seed,
            num_classes=num_classes,
        )
    else:
        keras.utils.set_random_seed(seed)
        num_classes = _num_classes_of(num_classes, train_data, test_data)
        train = _as_dataset("train_data", train_data, batch_size, shuffle=True, seed=seed)
        # The encoder is frozen, so test features are computed once up front.
        # h is standardised with the training set's statistics under the
        # evaluation transform, as `linear_probe` does.
        (xtr, _), (xte, yte) = labelled_features(
            encoder, train, test_data, batch_size=batch_size, preprocess=preprocess,
            names=("train_data", "test_data"),
        )
        stats = (xtr.mean(0), xtr.var(0) + 1e-6)
        was_trainable = encoder.trainable
        encoder.trainable = False
        try:
            classifier = _Classifier(
                encoder, num_classes, eval_transform=preprocess,
                augment=_crop_flip(encoder, seed), train_encoder=False,
                feature_stats=stats, weight_decay=weight_decay, name="linear_eval",
            )
            example = _split_batch(next(iter(train)))[0]
            history = _fit_classifier(
                classifier, train, example, epochs=epochs,
                optimizer=optimizer or keras.optimizers.Adam(learning_rate),
                callbacks=callbacks, verbose=verbose,
            )
        finally:
            encoder.trainable = was_trainable
        scores = _scores(classifier.classify(xte).numpy(), yte)
        scores["history"] = history
    scores.update(augment=bool(augment), epochs=epochs, num_classes=num_classes)
    return scores
