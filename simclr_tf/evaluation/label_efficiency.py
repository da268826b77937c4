"""Label efficiency: what pretraining buys at 1%, 10% and 100% of the labels.

The analogue of SimCLR's table 7 for one encoder. For each label fraction
and subset seed, a class-balanced nested subset of the training labels
(`nested_label_subsets`) is given to every arm:

- `learned`: the L-BFGS linear probe (`fit_logistic_probe`) on frozen h of
  the pretrained encoder, BN in inference mode.
- `random`: the same probe on a freshly initialised encoder of the same
  architecture (`keras.models.clone_model`; a fresh init per seed), with
  plain BN init (zero-initialised gammas set to one).
- `pixels`: the same probe on raw pixels, standardised.
- `finetune`: the pretrained encoder (and, with `head_layer=1`, the
  projection head's first layer, as SimCLRv2) fine-tuned with a linear
  layer on crop + flip views.
- `supervised`: the same architecture, freshly initialised, trained on the
  labelled subset only by the same code with the same augmentation as
  `finetune`: the two arms differ only in their initial weights.

Each baseline gets its strongest honest form and the same selection rule as
the pretrained arm, made on the labelled subset only: the probes choose
their L2 penalty on a class-stratified `validation_fraction` of the subset;
`finetune` and `supervised` choose their learning rate from
`learning_rates` and their epoch count (1 to `epochs`) by validation top-1
on the same held-out rows, then retrain on the whole subset. Beside each
arm, weighted cosine kNN (`knn_classify`) of its features with the labelled
subset as the memory bank (h of the trained encoder for the trained arms);
k is fixed, not tuned.

Test labels never reach training or selection: `predict_label_efficiency`
takes test images only and returns predictions; `evaluate_label_efficiency`
scores them afterwards.
"""

import keras
import numpy as np

from simclr_tf import validation
from simclr_tf._keras_compat import flatten_layers
from simclr_tf.evaluation.features import embed, embedder
from simclr_tf.evaluation.finetuning import _head_up_to, _train_classifier
from simclr_tf.evaluation.inputs import _as_arrays, _check_num_classes, _image_array, _unwrap
from simclr_tf.evaluation.knn import knn_classify
from simclr_tf.evaluation.logistic import _stratified_holdout, fit_logistic_probe, logistic_logits
from simclr_tf.evaluation.subsets import check_fractions, label_fraction_subset, nested_label_subsets

# Every arm, in the order tables list them.
ARMS = ("learned", "random", "pixels", "finetune", "supervised")
_PROBED = {"learned", "random", "pixels"}


def predict_label_efficiency(
    encoder,
    train_data,
    test_images,
    *,
    fractions=(0.01, 0.1, 1.0),
    seeds=(0, 1, 2),
    arms=ARMS,
    num_classes=None,
    preprocess=None,
    head=None,
    head_layer=0,
    validation_fraction=0.2,
    probe_max_iterations=150,
    epochs=30,
    learning_rates=(1e-3,),
    batch_size=64,
    weight_decay=0.0,
    knn_k=20,
    knn_temperature=0.1,
    max_train_examples=None,
):
    """Every arm's test predictions at every label fraction and subset seed.

    The protocol is described in the module docstring. Test labels are not
    an argument: nothing here can train or select on them.

    Args:
        encoder: the pretrained Keras encoder (images in [0, 1] at its input
            size -> h), or a `SimCLR` model (its encoder, its evaluation
            transform and its projection head). Not changed.
        train_data: labelled training images: `(images, labels)` arrays or a
            dataset of such batches (read into memory).
        test_images: (M, H, W[, C]) uint8 or float [0, 1] images.
        fractions: label fractions in (0, 1]; the subsets are nested.
        seeds: label-subset seeds; each also seeds the held-out split, the
            random encoder's and the trained arms' initialisation, shuffling
            and augmentation.
        arms: which of `ARMS` to run.
        num_classes: classes; None infers them from the training labels.
        preprocess: images -> encoder input (default as in `linear_eval`).
        head: the `ProjectionHead` for `head_layer > 0` (default: the
            SimCLR model's).
        head_layer: 0 fine-tunes from h; 1 from the head's first layer
            (SimCLRv2). The `supervised` arm then has the same layer, fresh.
        validation_fraction: share of each class of a labelled subset held
            out to choose L2 (probes) and learning rate and epochs (trained
            arms). A class needs >= 3 labels for one to be held out.
        probe_max_iterations: L-BFGS steps per probe fit.
        epochs: the most epochs a trained arm may choose; an int, or a dict
            from fraction to int (fewer labels take more epochs per step).
        learning_rates: Adam learning rates the trained arms choose from.
        batch_size: batch size of the trained arms (capped at the subset).
        weight_decay: L2 penalty on the trained arms' linear layer.
        knn_k: neighbours of the kNN column (capped at the subset's size);
            None leaves kNN out.
        knn_temperature: kNN vote temperature.
        max_train_examples: caps the training set by a class-balanced draw
            (seed 0) before the fractions are taken: fractions are then of
            that pool. None uses every training image.

    Returns:
        A list of dicts, one per (fraction, seed, arm): `arm`, `fraction`,
        `seed`, `n_labels`, `predictions` ((M,) int32), `knn_predictions`
        ((M,) int32 or None) and the hyper-parameters chosen: `l2` for the
        probes; `learning_rate`, `epochs`, `head_layer` and
        `validation_top1` for the trained arms.

    Raises:
        ValueError: naming the argument on bad fractions, seeds, arms,
            epochs, learning rates or a head layer the head lacks.
    """
    images, labels = _as_arrays("train_data", train_data)
    test_images = _image_array("test_images", test_images)
    checked = check_protocol(fractions=fractions, seeds=seeds, arms=arms, epochs=epochs,
                             learning_rates=learning_rates)
    arms, seeds, learning_rates = checked["arms"], checked["seeds"], checked["learning_rates"]
    fraction_list, epochs_of = checked["fractions"], checked["epochs"]
    batch_size = validation.check_int("batch_size", batch_size, minimum=1)
    knn_k = validation.check_int("knn_k", knn_k, minimum=1, allow_none=True)
    knn_temperature = validation.check_number("knn_temperature", knn_temperature, minimum=0, strict=True)
    validation_fraction = validation.check_fraction("validation_fraction", validation_fraction)
    head_layer = validation.check_int("head_layer", head_layer, minimum=0)
    encoder, preprocess, model = _unwrap(encoder, preprocess)
    if head is None and model is not None:
        head = model.projection_head
    head = _head_up_to(head, head_layer)
    num_classes = _check_num_classes(num_classes, labels)
    if max_train_examples is not None:
        cap = validation.check_int("max_train_examples", max_train_examples, minimum=1)
        if cap < len(labels):
            keep = label_fraction_subset(labels, cap / len(labels), seed=0)
            images, labels = images[keep], labels[keep]

    embed_fn = embedder(encoder, preprocess)
    subsets = {seed: nested_label_subsets(labels, fraction_list, seed=seed) for seed in seeds}
    # Frozen features are computed once, for the rows some subset uses.
    needed = np.unique(np.concatenate([s[fraction_list[-1]] for s in subsets.values()]))
    features = {}
    if "learned" in arms:
        features["learned"] = (_rows_features(embed_fn, images, needed, batch_size),
                               embed(embed_fn, test_images, batch_size=batch_size))
    if "pixels" in arms:
        features["pixels"] = (images.reshape(len(images), -1).astype(np.float32),
                              test_images.reshape(len(test_images), -1).astype(np.float32))

    rows = []
    for seed in seeds:
        if "random" in arms:
            random_encoder, _ = _initial_weights(encoder, None, "scratch", seed)
            _plain_batch_norm_init(random_encoder)
            random_fn = embedder(random_encoder, preprocess)
            features["random"] = (_rows_features(random_fn, images, needed, batch_size),
                                  embed(random_fn, test_images, batch_size=batch_size))
        for fraction in fraction_list:
            idx = subsets[seed][fraction]
            x, y = images[idx], labels[idx]
            base = {"fraction": fraction, "seed": seed, "n_labels": int(len(idx))}
            for arm in arms:
                if arm in _PROBED:
                    train_features, test_features = features[arm]
                    probe = fit_logistic_probe(
                        train_features[idx], y, num_classes, validation_fraction=validation_fraction,
                        max_iterations=probe_max_iterations, seed=seed,
                    )
                    row = {"arm": arm, **base, "l2": probe["l2"],
                           "predictions": logistic_logits(probe, test_features).argmax(1).astype(np.int32)}
                    bank, queries = train_features[idx], test_features
                else:
                    row, trained = _trained_arm(
                        encoder, head, head_layer, "pretrained" if arm == "finetune" else "scratch",
                        x, y, test_images, preprocess=preprocess, num_classes=num_classes, seed=seed,
                        epochs=epochs_of[fraction], learning_rates=learning_rates,
                        batch_size=batch_size, weight_decay=weight_decay,
                        validation_fraction=validation_fraction,
                    )
                    row = {"arm": arm, **base, **row}
                    if knn_k is not None:
                        trained_fn = embedder(trained, preprocess)
                        bank = embed(trained_fn, x, batch_size=batch_size)
                        queries = embed(trained_fn, test_images, batch_size=batch_size)
                row["knn_predictions"] = None if knn_k is None else knn_classify(
                    bank, y, queries, k=min(knn_k, len(idx)), temperature=knn_temperature,
                    num_classes=num_classes,
                )
                rows.append(row)
    return rows


def evaluate_label_efficiency(encoder, train_data, test_data, **kwargs):
    """`predict_label_efficiency`, scored on the test labels: plain rows.

    Args:
        encoder, train_data: as in `predict_label_efficiency`.
        test_data: `(images, labels)` arrays or a dataset of such batches;
            the labels are read only to score the predictions.
        **kwargs: the keyword arguments of `predict_label_efficiency`.

    Returns:
        A list of JSON-ready dicts, one per (fraction, seed, arm): `arm`,
        `fraction`, `seed`, `n_labels`, `top1`, `knn_top1` (None without
        kNN) and the chosen hyper-parameters; `format_label_efficiency`
        prints them as a table.

    Example:

    >>> import simclr_tf
    >>> enc = simclr_tf.resnet(10, 0.125, (8, 8, 3), small_images=True)
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.integers(0, 255, (40, 8, 8, 3), np.uint8), np.arange(40) % 2
    >>> rows = evaluate_label_efficiency(enc, (x, y), (x[:8], y[:8]), fractions=(0.5, 1.0),
    ...                                  seeds=(0,), arms=("learned", "pixels"))
    >>> [(r["arm"], r["fraction"], r["n_labels"]) for r in rows]
    [('learned', 0.5, 20), ('pixels', 0.5, 20), ('learned', 1.0, 40), ('pixels', 1.0, 40)]
    """
    test_images, test_labels = _as_arrays("test_data", test_data)
    rows = predict_label_efficiency(encoder, train_data, test_images, **kwargs)
    scored = []
    for row in rows:
        row = dict(row)
        predictions, knn_predictions = row.pop("predictions"), row.pop("knn_predictions")
        row["top1"] = float(np.mean(predictions == test_labels))
        row["knn_top1"] = None if knn_predictions is None else float(np.mean(knn_predictions == test_labels))
        scored.append(row)
    return scored


def summarize_label_efficiency(rows, metric="top1"):
    """Mean and sample std over seeds of `metric`, per (arm, fraction).

    Returns:
        A dict from `(arm, fraction)` to `(mean, std, count)`; std is 0.0
        for a single seed. Rows whose `metric` is None are left out.
    """
    values = {}
    for row in rows:
        if row.get(metric) is not None:
            values.setdefault((row["arm"], row["fraction"]), []).append(float(row[metric]))
    return {
        key: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v))
        for key, v in values.items()
    }


def format_label_efficiency(rows):
    """A text table: arms by label fraction, top-1 then kNN, in percent.

    Cells are `mean ± std` over the seeds (sample std), or the mean alone
    for one seed; `-` where an arm has no value.

    Example:

    >>> rows = [
    ...     {"arm": "learned", "fraction": 0.01, "seed": 0, "top1": 0.70, "knn_top1": 0.60},
    ...     {"arm": "learned", "fraction": 0.01, "seed": 1, "top1": 0.72, "knn_top1": 0.62},
    ...     {"arm": "pixels", "fraction": 0.01, "seed": 0, "top1": 0.65, "knn_top1": None},
    ... ]
    >>> print(format_label_efficiency(rows))
    arm      top-1 1%    kNN 1%
    learned  71.0 ± 1.4  61.0 ± 1.4
    pixels   65.0        -
    """
    arms = [a for a in ARMS if any(r["arm"] == a for r in rows)]
    arms += sorted({r["arm"] for r in rows} - set(arms))
    fractions = sorted({r["fraction"] for r in rows})
    columns = [("top1", "top-1"), ("knn_top1", "kNN")]
    summaries = {metric: summarize_label_efficiency(rows, metric) for metric, _ in columns}
    table = [["arm"] + [f"{title} {_percent_label(f)}" for _, title in columns for f in fractions]]
    for arm in arms:
        cells = [arm]
        for metric, _ in columns:
            for fraction in fractions:
                stat = summaries[metric].get((arm, fraction))
                if stat is None:
                    cells.append("-")
                else:
                    mean, std, count = stat
                    cells.append(f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if count > 1 else ""))
        table.append(cells)
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table
    )


def _percent_label(fraction):
    return f"{100 * fraction:g}%"


def check_protocol(*, fractions, seeds, arms, epochs, learning_rates):
    """Checks the protocol's choices before any data is read or model trained.

    `predict_label_efficiency` calls it first; a caller that trains before
    evaluating (the ablation harness pretrains) calls it up front, so a bad
    value is refused before the pretraining is spent.

    Returns:
        A dict of the normalised values: `fractions` (sorted floats),
        `seeds`, `arms` (in `ARMS` order), `epochs` (a dict from fraction to
        epochs) and `learning_rates` (floats).

    Raises:
        ValueError: naming the argument and the value received.

    >>> check_protocol(fractions=(0.1, 0.01), seeds=(0,), arms=("pixels", "learned"), epochs=5,
    ...                learning_rates=(1e-3,))["arms"]
    ['learned', 'pixels']
    """
    fraction_list = check_fractions(fractions)
    if isinstance(learning_rates, (str, bytes)) or not hasattr(learning_rates, "__iter__") or not list(
        learning_rates
    ):
        raise ValueError(
            f"`learning_rates` must be a non-empty sequence of numbers > 0. Received: learning_rates={learning_rates!r}"
        )
    return {
        "fractions": fraction_list,
        "seeds": _check_seeds(seeds),
        "arms": _check_arms(arms),
        "epochs": _check_epochs(epochs, fraction_list),
        "learning_rates": [
            validation.check_number("learning_rates", lr, minimum=0, strict=True) for lr in learning_rates
        ],
    }


def _check_arms(arms):
    if isinstance(arms, str) or not hasattr(arms, "__iter__"):
        raise ValueError(f"`arms` must be a sequence of names from {ARMS}. Received: arms={arms!r}")
    arms = list(arms)
    unknown = [a for a in arms if a not in ARMS]
    if not arms or unknown or len(set(arms)) != len(arms):
        raise ValueError(
            f"`arms` must be distinct names from {ARMS}, at least one. Received: arms={tuple(arms)!r}"
        )
    return [a for a in ARMS if a in arms]


def _check_seeds(seeds):
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise ValueError(f"`seeds` must be a sequence of integers >= 0. Received: seeds={seeds!r}")
    values = [validation.check_int("seeds", s, minimum=0) for s in seeds]
    if not values or len(set(values)) != len(values):
        raise ValueError(f"`seeds` must hold distinct integers >= 0, at least one. Received: seeds={seeds!r}")
    return values


def _check_epochs(epochs, fractions):
    if isinstance(epochs, dict):
        missing = [f for f in fractions if f not in {float(k) for k in epochs}]
        if missing:
            raise ValueError(
                f"`epochs` as a dict must give every fraction {fractions}. Received: epochs={epochs!r}"
            )
        by_float = {float(k): v for k, v in epochs.items()}
        return {f: validation.check_int("epochs", by_float[f], minimum=1) for f in fractions}
    epochs = validation.check_int("epochs", epochs, minimum=1)
    return {f: epochs for f in fractions}


def _rows_features(embed_fn, images, rows, batch_size):
    """Features of `images[rows]` in a full-size array (other rows are NaN)."""
    feats = embed(embed_fn, images[rows], batch_size=batch_size)
    full = np.full((len(images), feats.shape[1]), np.nan, np.float32)
    full[rows] = feats
    return full


def _plain_batch_norm_init(model):
    """Sets every all-zero BN gamma of a freshly initialised `model` to one.

    Zero-gamma residual init (`resnet(zero_init_residual=True)`) helps a
    network that is about to be trained, but frozen it silences every
    residual branch: on the main job's ResNet-10 the 1%-label probe of such
    a random encoder scored about 30% against about 60% with plain init
    (docs/RESULTS.md, "Label efficiency"). The random-encoder baseline gets
    the stronger form.
    """
    for layer in flatten_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization) and layer.scale:
            if not np.any(keras.ops.convert_to_numpy(layer.gamma)):
                layer.gamma.assign(keras.ops.ones_like(layer.gamma))


def _initial_weights(encoder, head, init, seed):
    """A copy of `encoder` (and `head`) with pretrained or fresh weights.

    `init="scratch"` is the same architecture with a fresh initialisation
    (seeded), `"pretrained"` the given weights; the originals are not
    touched, so every run starts from the same point.
    """
    keras.utils.set_random_seed(seed)
    copy = keras.models.clone_model(encoder)
    head_copy = None
    if head is not None:
        head_copy = head.__class__.from_config(head.get_config())
        head_copy.build(encoder.output_shape)
    if init == "pretrained":
        copy.set_weights(encoder.get_weights())
        if head is not None:
            head_copy.set_weights(head.get_weights())
    return copy, head_copy


def _trained_arm(
    encoder, head, head_layer, init, x, y, test_images, *, preprocess, num_classes, seed, epochs,
    learning_rates, batch_size, weight_decay, validation_fraction,
):
    """Chooses learning rate and epochs on held-out labelled rows, retrains on all.

    Returns `(row, trained encoder)`: the row holds the test predictions
    and the choice. `finetune` and `supervised` both come here; only
    `init` differs.
    """
    fit_rows, val_rows = _stratified_holdout(y, validation_fraction, seed)
    if len(fit_rows) == 0 or len(val_rows) == 0:
        raise ValueError(
            "Choosing the learning rate and epochs needs labelled rows on both sides of the "
            f"held-out split. Received: {len(y)} labels, validation_fraction={validation_fraction}"
        )
    batch = min(batch_size, len(fit_rows))
    best = None
    for learning_rate in learning_rates:
        start, start_head = _initial_weights(encoder, head, init, seed)
        _, history = _train_classifier(
            start, (x[fit_rows], y[fit_rows]), preprocess=preprocess, head=start_head,
            head_layer=head_layer, num_classes=num_classes, augment=True, epochs=epochs,
            batch_size=batch, optimizer=keras.optimizers.Adam(learning_rate),
            weight_decay=weight_decay, seed=seed, validation_data=(x[val_rows], y[val_rows]),
        )
        for epoch, accuracy in enumerate(history["val_acc"], start=1):
            # Strictly better only: ties keep the earlier learning rate and epoch.
            if best is None or accuracy > best[0] + 1e-12:
                best = (accuracy, learning_rate, epoch)
    accuracy, learning_rate, chosen_epochs = best
    final, final_head = _initial_weights(encoder, head, init, seed)
    classifier, _ = _train_classifier(
        final, (x, y), preprocess=preprocess, head=final_head, head_layer=head_layer,
        num_classes=num_classes, augment=True, epochs=chosen_epochs,
        batch_size=min(batch_size, len(y)), optimizer=keras.optimizers.Adam(learning_rate),
        weight_decay=weight_decay, seed=seed,
    )
    logits = embed(embedder(classifier), test_images, batch_size=batch_size)
    row = {
        "learning_rate": learning_rate, "epochs": chosen_epochs, "head_layer": head_layer,
        "validation_top1": float(accuracy), "predictions": logits.argmax(1).astype(np.int32),
    }
    return row, final

