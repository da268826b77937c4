"""Runs one cell: a short pretraining (or supervised training) and its
linear evaluation, returning a dict of numbers.

Linear evaluation is the command line's one probe (`simclr_tf_cli.probes`,
with the config's `probe` settings; Adam where they name no solver) on frozen
features of the evaluation transform (no augmentation), on the first
`probe.train_examples` / `probe.test_examples` images of each split (all of
it when None). Supervised cells report the test top-1 of the trained
classifier on the same test images (`top1`) and the linear probe of their
frozen h (`top1_h`). With `probe.grid` set, every cell but raw pixels also
reports the same probe on the last feature map pooled to that grid
(`top1_grid`, `evaluation.grid_encoder`).
"""

import time

import keras
import numpy as np
import tensorflow as tf

import simclr_tf
from experiments.ablations import operators
from simclr_tf import callbacks as callbacks_lib
from simclr_tf import data, evaluation
from simclr_tf_cli import builders, files, probes, report


class OneBranchSimCLR(simclr_tf.SimCLR):
    """SimCLR whose first view is the untransformed (resized) image.

    The paper's composition study (section 3, figure 5) applies the studied
    transforms to one branch only and leaves the other as the identity, so a
    deterministic operator (Sobel) still gives a non-trivial task.
    """

    def make_views(self, images):
        return self.augmenter(images, training=False), self.augmenter(images, training=True)


def build_encoder(config, zero_init_residual=True):
    """The config's ResNet (`encoder.depth`), or a small conv net.

    `encoder = {"arch": "convnet", "filters": [8, 16]}` gives stride-2 3x3
    convolutions with BN and ReLU, then global average pooling: it traces in
    a fraction of a ResNet's time, which is what smoke runs and tests want.
    """
    enc = config["encoder"]
    if enc.get("arch", "resnet") == "resnet":
        return builders.build_encoder(config, zero_init_residual=zero_init_residual)
    if enc["arch"] != "convnet":
        raise ValueError(f"`encoder.arch` must be 'resnet' or 'convnet'. Received: {enc['arch']!r}")
    size = config["image_size"]
    layers = [keras.Input((size, size, 3))]
    for filters in enc["filters"]:
        layers += [keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False),
                   keras.layers.BatchNormalization(), keras.layers.ReLU()]
    layers.append(keras.layers.GlobalAveragePooling2D())
    return keras.Sequential(layers, name="convnet")


def build_augmenter(cell):
    config = cell.config
    size, seed = config["image_size"], config["seed"]
    if cell.study == "composition":
        if cell.kind != "simclr":  # a reference cell: the grid's evaluation transform
            return operators.ComposedAugmenter(size, [], name="resize_only")
        pair = (cell.params["first"], cell.params["second"])
        return operators.pair_augmenter(pair, size, config.get("operators"), seed=seed)
    return simclr_tf.SimCLRAugmentation(size, seed=seed, **config["augment"])


def _load(config, split, batch_size, **kwargs):
    return data.load(config["dataset"], split=split, batch_size=batch_size,
                     data_dir=config.get("data_dir"), **kwargs)


def train_dataset(config, with_labels):
    """The repeated training pipeline and its steps per epoch."""
    split = config.get("pretrain_split", "train") if not with_labels else "train"
    ds = _load(config, split, config["batch_size"], with_labels=with_labels, shuffle=True,
               drop_remainder=True, seed=config["seed"])
    steps = files.count_batches(ds)
    if config.get("steps_per_epoch"):
        steps = min(steps, config["steps_per_epoch"])
    return ds.repeat(), steps


def probe_split(config, split):
    limit = config["probe"].get(f"{split}_examples")
    ds = _load(config, split, 500, shuffle=False, drop_remainder=False)
    return ds.unbatch().take(limit).batch(500) if limit else ds


def grid_model(config, encoder):
    """`evaluation.grid_encoder(encoder, probe.grid)`, or None without `probe.grid`.

    Built before training, so a grid the encoder's map cannot hold is
    refused before any time is spent.
    """
    grid = config["probe"].get("grid")
    if grid is None:
        return None
    return evaluation.grid_encoder(encoder, grid)


def _probe(config, encoder, preprocess, head=None, grid=None):
    """Linear-probe scores of h (and of z = head(h) when `head` is given).

    With `grid` (a `grid_model`), also the probe on the last feature map
    pooled to `probe.grid` x `probe.grid` cells (`top1_grid`, ...): reported
    beside h's, never as the cell's `top1`.
    """
    model = encoder
    if grid is not None:
        # One pass over the images gives both: h, then the grid's cells (the
        # grid model is the encoder's own graph, so this is one forward pass).
        model = keras.Model(grid.inputs[0], keras.ops.concatenate([encoder.outputs[0], grid.outputs[0]], axis=-1))
    (ftr, ytr), (fte, yte) = evaluation.labelled_features(
        model, probe_split(config, "train"), probe_split(config, "test"), preprocess=preprocess)
    dim_h = encoder.output_shape[-1]
    xtr, xte = ftr[:, :dim_h], fte[:, :dim_h]
    # Ablation configs that name no solver were run with Adam: their cells'
    # numbers (and fingerprints) keep it.
    probe = {"solver": "adam", **config["probe"]}
    seed, num_classes = config["seed"], config.get("num_classes")
    scores = probes.probe_features(xtr, ytr, xte, yte, probe, seed, num_classes)
    result = {"top1_h": scores["top1"], "top5_h": scores["top5"], "train_top1_h": scores["train_top1"],
              "feature_dim_h": int(xtr.shape[1])}
    if grid is not None:
        gtr, gte = ftr[:, dim_h:], fte[:, dim_h:]
        scores = probes.probe_features(gtr, ytr, gte, yte, probe, seed, num_classes)
        result.update({"top1_grid": scores["top1"], "top5_grid": scores["top5"],
                       "train_top1_grid": scores["train_top1"], "feature_dim_grid": int(gtr.shape[1])})
    if head is not None:
        def project(x):
            return np.concatenate([np.asarray(head(x[i:i + 4096], training=False))
                                   for i in range(0, len(x), 4096)])
        ztr, zte = project(xtr), project(xte)
        scores = probes.probe_features(ztr, ytr, zte, yte, probe, seed, num_classes)
        result.update({"top1_z": scores["top1"], "top5_z": scores["top5"],
                       "train_top1_z": scores["train_top1"], "feature_dim_z": int(ztr.shape[1])})
    return result


def _fit(model, config, train, steps):
    guard = callbacks_lib.StopOnNonFiniteLoss()
    wall, cpu = time.time(), time.process_time()
    # The pipeline shuffles; `shuffle=False` only silences Keras about it.
    history = model.fit(train, epochs=config["epochs"], steps_per_epoch=steps, callbacks=[guard],
                        shuffle=False, verbose=config.get("verbose", 0))
    out = {f"final_{k}": float(v[-1]) for k, v in history.history.items()}
    out["train_seconds"] = time.time() - wall
    out["train_cpu_seconds"] = time.process_time() - cpu
    out["train_steps"] = steps * len(next(iter(history.history.values()), []))
    if guard.stopped_at is not None:
        out["stopped_at"] = list(map(float, guard.stopped_at))
    return out


def _pretrain(cell):
    """Pretrains the cell's SimCLR model: `(model, grid model or None, result)`.

    `result` holds the training numbers; it has `stopped_at` when the loss
    went non-finite (no representation worth evaluating).
    """
    config = cell.config
    augmenter = build_augmenter(cell)
    train, steps = train_dataset(config, with_labels=False)
    model_class = OneBranchSimCLR if cell.params.get("branches") == "one" else simclr_tf.SimCLR
    encoder = build_encoder(config)
    grid = grid_model(config, encoder)
    # The shared builder (the head honours `sync_batch_norm`); no online
    # probe: the cells pretrain on unlabelled batches.
    model = builders.build_model(config, encoder=encoder, augmenter=augmenter,
                                 model_class=model_class, online_probe=False)
    model.compile(optimizer=builders.build_optimizer(config, steps),
                  jit_compile=builders.resolve_jit(config))
    return model, grid, _fit(model, config, train, steps)


def _simclr(cell):
    model, grid, result = _pretrain(cell)
    if "stopped_at" in result:  # diverged: no representation to probe
        result["top1"] = None
        return result
    preprocess = lambda x: model.augmenter(x, training=False)  # noqa: E731
    head_layer = model.projection_head if cell.params.get("probe_z") else None
    result.update(_probe(cell.config, model.encoder, preprocess, head_layer, grid=grid))
    result["top1"] = result["top1_h"]
    return result


def _label_efficiency(cell):
    """Pretrains, then runs the label-efficiency protocol on the encoder.

    The protocol (`config["label_efficiency"]`) reads every image of the
    train and test splits (`max_train_examples` caps the train pool).
    `result["rows"]` holds every (arm, fraction, label seed) row; the flat
    numbers are `top1_<arm>_<fraction>` (mean over label seeds),
    `top1_<arm>_<fraction>_std`, `knn_top1_<arm>_<fraction>` and
    `margin_<fraction>` (the learned encoder's lead over the best of
    random, pixels and supervised: `simclr_tf_cli.report.margins`). `top1` is the learned encoder's mean at
    the smallest fraction.
    """
    config = cell.config
    model, _, result = _pretrain(cell)
    if "stopped_at" in result:
        result["top1"] = None
        return result
    train = _load(config, "train", 500, shuffle=False, drop_remainder=False)
    test = _load(config, "test", 500, shuffle=False, drop_remainder=False)
    # Epoch keys may be strings (a config read back from JSON): the protocol reads them as floats.
    rows = evaluation.evaluate_label_efficiency(model, train, test, num_classes=config.get("num_classes"),
                                                **config["label_efficiency"])
    result.update(label_efficiency_numbers(rows))
    result["rows"] = rows
    return result


def label_efficiency_numbers(rows):
    """The flat numbers of `_label_efficiency` from the protocol's rows."""
    top1 = evaluation.summarize_label_efficiency(rows)
    knn = evaluation.summarize_label_efficiency(rows, "knn_top1")
    out = {}
    for (arm, fraction), (mean, std, _) in sorted(top1.items()):
        out[f"top1_{arm}_{fraction:g}"] = mean
        out[f"top1_{arm}_{fraction:g}_std"] = std
        if (arm, fraction) in knn:
            out[f"knn_top1_{arm}_{fraction:g}"] = knn[(arm, fraction)][0]
    for fraction, (margin, _) in report.margins(rows).items():
        out[f"margin_{fraction:g}"] = margin
    fractions = sorted({fraction for _, fraction in top1})
    out["top1"] = top1[("learned", fractions[0])][0] if ("learned", fractions[0]) in top1 else None
    return out


def supervised_model(image_spec, augmenter, encoder, num_classes):
    """augmenter -> encoder -> linear classifier, taking images of `image_spec`.

    The input keeps the data's dtype: with Keras's default float Input, uint8
    batches would be cast to floats in [0, 255], which the augmenter (inside
    a traced step, where values are not checked) would clip to [0, 1],
    training the classifier on binarised images.
    """
    return keras.Sequential([
        keras.Input(image_spec.shape[1:], dtype=image_spec.dtype.name),
        augmenter,
        encoder,
        keras.layers.Dense(num_classes, name="classifier"),
    ])


def _supervised(cell):
    """The same encoder, trained with labels on the cell's augmentation.

    `top1` is the trained classifier's test accuracy (what the paper's colour
    table reports for supervised models); `top1_h` is the same linear probe
    as every other cell, on the trained encoder's frozen h, so the headline
    can compare all methods under one protocol.
    """
    config = cell.config
    augmenter = build_augmenter(cell)
    train, steps = train_dataset(config, with_labels=True)
    encoder = build_encoder(config)
    grid = grid_model(config, encoder)
    model = supervised_model(train.element_spec[0], augmenter, encoder, config["num_classes"])
    model.compile(optimizer=builders.build_optimizer(config, steps),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=builders.resolve_jit(config))
    result = _fit(model, config, train, steps)
    if "stopped_at" in result:
        result["top1"] = None
        return result
    result["top1"] = _accuracy(model, probe_split(config, "test"))
    result.update(_probe(config, encoder, lambda x: augmenter(x, training=False), grid=grid))
    return result


def _accuracy(model, dataset):
    """Top-1 of a classifier over a labelled dataset (eval transform).

    A plain loop rather than `evaluate`, which warns that a dataset of
    unknown length "ran out of data".
    """
    predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    correct = total = 0
    for images, labels in dataset:
        predicted = np.argmax(predict(images).numpy(), axis=-1)
        correct += int(np.sum(predicted == labels.numpy()))
        total += len(predicted)
    return correct / total


def _frozen(cell):
    """Raw pixels, or a randomly initialised encoder of the same architecture."""
    config = cell.config
    augmenter = build_augmenter(cell)
    size = config["image_size"]
    if cell.kind == "pixels":
        inputs = keras.Input((size, size, 3))
        encoder = keras.Model(inputs, keras.layers.Flatten()(inputs), name="pixels")
    else:
        # Plain init (BN gamma 1 everywhere): the strong form of this baseline.
        encoder = build_encoder(config, zero_init_residual=False)
    # Raw pixels have no feature map to pool: they get the probe on h only.
    grid = grid_model(config, encoder) if cell.kind != "pixels" else None
    result = _probe(config, encoder, lambda x: augmenter(x, training=False), grid=grid)
    result["top1"] = result["top1_h"]
    return result


_RUNNERS = {"simclr": _simclr, "supervised": _supervised, "pixels": _frozen, "random": _frozen,
            "label_efficiency": _label_efficiency}


def run_cell(cell):
    """Runs `cell` from a fixed seed; returns its numbers and timings.

    `top1` is the cell's headline figure: the linear probe on h, or the
    supervised classifier's test accuracy.
    """
    keras.utils.set_random_seed(cell.config["seed"])
    wall, cpu = time.time(), time.process_time()
    result = _RUNNERS[cell.kind](cell)
    result["wall_seconds"] = time.time() - wall
    result["cpu_seconds"] = time.process_time() - cpu
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in result.items()}
