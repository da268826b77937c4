"""Evaluation protocols: features, linear probes and evaluation, kNN, fine-tuning.

- `extract_features` runs a model in inference mode over images.
- `linear_probe` is multinomial logistic regression on frozen, standardised
  features (computed once; no augmentation), solved to convergence by
  L-BFGS with its L2 penalty chosen on a held-out fifth of the training
  split (or Adam for a fixed number of epochs with `solver="adam"`). The
  same probe, with the same selection rule, scores raw pixels, a random
  encoder and a pretrained one, so the comparison is like for like and each
  baseline gets its strongest honest form. The encoder runs with
  BN in inference mode, which is the strong form for every encoder,
  including a randomly initialised one (its BN moving statistics are then
  the identity, so features are not normalised per batch).
- `linear_eval` is the paper's linear evaluation: a frozen encoder and a
  linear classifier on h, trained with crop + flip augmentation
  (`augment=True`) or on cached features (`augment=False`, which is
  `linear_probe`); top-1 and top-5 on the test split.
- `grid_encoder` reads the encoder's last feature map pooled to a grid of
  cells instead of h (the linear protocol of earlier self-supervised
  benchmarks; SimCLR probes h): a model to hand to the functions above.
- `knn_classify` and the `KNNMonitor` callback: weighted cosine kNN
  (InstDisc / SimCLR-style votes exp(sim / t)), cheap enough to run at every
  epoch of pretraining.
- `label_fraction_subset` and `finetune`: semi-supervised fine-tuning of the
  whole encoder on class-balanced label fractions, from h or from a
  projection-head layer (SimCLRv2).
- `load_encoder` (a `.keras` file or a pretrain run folder) and `tsne_2d`
  (scikit-learn, imported when called) serve the entry points
  `experiments/linear_eval.py` and `experiments/finetune.py`.

Deviation from the paper: linear evaluation and fine-tuning default to Adam
rather than Nesterov-momentum SGD / LARS, because at the small scales this
package runs on a CPU Adam is far less sensitive to the learning rate; pass
`optimizer=` to use the paper's choice. Features are standardised with the
training set's mean and variance before the linear layer, which makes one
learning rate fit every encoder.

Determinism: `linear_probe(solver="lbfgs")` is deterministic NumPy;
`linear_probe(solver="adam")`, `linear_eval` and `finetune` call
`keras.utils.set_random_seed(seed)` (a global side effect) so that
classifier initialisation, shuffling and augmentation are reproducible on
one device; `knn_classify` is deterministic.
"""

import fractions
import math

import keras
import numpy as np
import tensorflow as tf

from simclr_tf import validation

# --------------------------------------------------------------------------
# Argument checks


def _check_int(name, value, minimum):
    return validation.check_int(name, value, minimum=minimum)


def _check_positive(name, value):
    return validation.check_number(name, value, minimum=0, strict=True)


def _check_non_negative(name, value):
    return validation.check_number(name, value, minimum=0)


_check_fraction = validation.check_fraction
_check_features = validation.check_features


def _check_labels(name, labels, num_rows=None):
    return validation.check_labels(name, labels, num_rows, per="feature row")


def _check_num_classes(num_classes, *label_arrays):
    seen = int(max(int(labels.max()) for labels in label_arrays)) + 1
    if num_classes is None:
        return seen
    num_classes = _check_int("num_classes", num_classes, 1)
    if seen > num_classes:
        raise ValueError(
            f"`num_classes` must exceed every label; the data holds label {seen - 1}. "
            f"Received: num_classes={num_classes}"
        )
    return num_classes


# --------------------------------------------------------------------------
# Data and transforms


def _is_dataset(value):
    return isinstance(value, tf.data.Dataset)


def _split_batch(batch):
    """`(images, labels or None)` from a tuple, dict or bare-image batch."""
    if isinstance(batch, (tuple, list)):
        return batch[0], (batch[1] if len(batch) > 1 else None)
    if isinstance(batch, dict):
        return batch["image"], batch.get("label")
    return batch, None


def _is_array_like(value):
    return isinstance(value, (np.ndarray, list, tf.Tensor)) or hasattr(value, "__array__")


def _image_array(name, images):
    """`images` as a numpy array of (N, H, W) or (N, H, W, C) images, N >= 1.

    Float images must lie in [0, 1] (uint8 is scaled later): 0-255 floats,
    as `tf.image.resize` returns them, would otherwise be clipped to white.
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4) or len(images) == 0 or images.dtype.kind not in "uif":
        raise ValueError(
            f"`{name}` must be a numeric array of shape (N, H, W) or (N, H, W, C) with N >= 1. "
            f"Received: {name} with shape {images.shape} and dtype {images.dtype}"
        )
    if images.dtype.kind == "f" and images.size:
        low, high = float(np.min(images)), float(np.max(images))
        if not (0.0 <= low and high <= 1.0):
            raise ValueError(
                f"`{name}` float values must lie in [0, 1] (pass uint8 for 0-255 images). "
                f"Received: values in [{low}, {high}]"
            )
    return images


def _labelled_arrays(name, value):
    """Checks an `(images, labels)` pair of arrays; returns them as numpy."""
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise ValueError(
            f"`{name}` must be an (images, labels) pair of arrays or a tf.data.Dataset of "
            f"(images, labels) batches. Received: {name} of type {type(value).__name__}"
        )
    images, labels = _image_array(f"{name}[0]", value[0]), np.asarray(value[1])
    return images, _check_labels(f"{name}[1]", labels, len(images)).astype(np.int32)


def _as_dataset(name, value, batch_size, shuffle=False, seed=None):
    """A batched `(images, labels)` dataset from arrays or a dataset."""
    if _is_dataset(value):
        return value
    images, labels = _labelled_arrays(name, value)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    return (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        if shuffle
        else tf.data.Dataset.from_tensor_slices((images, labels))
    ).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _as_arrays(name, value):
    """`(images, labels)` numpy arrays; a dataset is read into memory."""
    if not _is_dataset(value):
        return _labelled_arrays(name, value)
    images, labels = [], []
    for batch in value:
        x, y = _split_batch(batch)
        if y is None:
            raise ValueError(f"`{name}` must yield (images, labels) batches; it yields images only.")
        images.append(np.asarray(x))
        labels.append(np.asarray(y))
    if not images:
        raise ValueError(f"`{name}` is an empty dataset.")
    return _labelled_arrays(name, (np.concatenate(images), np.concatenate(labels)))


def _labels_of(name, value):
    """The labels of arrays or of a dataset (read once)."""
    if not _is_dataset(value):
        return _labelled_arrays(name, value)[1]
    labels = [_split_batch(batch)[1] for batch in value]
    if not labels or any(y is None for y in labels):
        raise ValueError(f"`{name}` must yield (images, labels) batches.")
    return np.concatenate([np.asarray(y) for y in labels])


def _to_input(images, height, width, channels):
    """uint8 or float [0, 1] images -> float32 [0, 1] at the encoder's input."""
    images = tf.convert_to_tensor(images)
    if images.shape.rank == 3:
        images = images[..., tf.newaxis]
    if images.dtype.is_integer:
        images = tf.cast(images, tf.float32) / 255.0
    else:
        images = tf.cast(images, tf.float32)
    if images.shape[-1] == 1 and channels == 3:
        images = tf.image.grayscale_to_rgb(images)
    elif images.shape[-1] == 3 and channels == 1:
        images = tf.image.rgb_to_grayscale(images)
    if height is not None and (images.shape[1] != height or images.shape[2] != width):
        images = tf.image.resize(images, (height, width), method="bilinear")
    return images


def _unwrap(encoder, preprocess):
    """(Keras encoder, eval transform, SimCLR model or None)."""
    from simclr_tf.model import SimCLR

    if isinstance(encoder, SimCLR):
        model = encoder
        if preprocess is None:
            preprocess = lambda x: model.augmenter(x, training=False)  # noqa: E731
        return model.encoder, preprocess, model
    if not isinstance(encoder, keras.Model):
        raise ValueError(
            "`encoder` must be a Keras model mapping float [0, 1] images to features, or a "
            f"simclr_tf.SimCLR model. Received: encoder of type {type(encoder).__name__}"
        )
    shape = tuple(encoder.input_shape[1:])
    if len(shape) != 3 or None in shape:
        if preprocess is None:
            raise ValueError(
                "`encoder` has no fixed (height, width, channels) input; pass `preprocess`. "
                f"Received: encoder.input_shape={encoder.input_shape}"
            )
    elif preprocess is None:
        height, width, channels = shape
        preprocess = lambda x: _to_input(x, height, width, channels)  # noqa: E731
    return encoder, preprocess, None


def grid_encoder(encoder, grid=2):
    """The encoder's last feature map average-pooled to `grid` x `grid` cells.

    A ResNet's h is the global average of its last feature map (`grid=1`).
    `grid=2` keeps four cell averages instead of one: at 28 px with the
    stride-2 stem, ResNet-10's map is 2 x 2 x 256, so the features are the
    whole map flattened (1,024-d). A linear classifier on such spatially
    pooled maps is the linear protocol of the earlier self-supervised
    benchmarks (Goyal et al. 2019, "Scaling and benchmarking self-supervised
    visual representation learning"), not SimCLR's, which probes h. h is a
    linear function of these features, so every probe of h is also a probe
    of the grid (on held-out images the wider probe can still do worse).
    Report it beside the probe on h, not in its place.

    Cells follow adaptive average pooling: cell `i` of a side of length `n`
    covers `floor(i * n / grid)` to `ceil((i + 1) * n / grid)`, so cells
    overlap when `grid` does not divide `n`. Features are ordered (cell row,
    cell column, channel), as the map's own flattening.

    Args:
        encoder: a functional Keras encoder whose last layer is a
            `GlobalAveragePooling2D` (every `simclr_tf.resnet`), or a
            `SimCLR` model (its encoder).
        grid: cells per side, an integer >= 1, at most the map's side.

    Returns:
        A `keras.Model` sharing the encoder's layers and weights, from its
        input to `(batch, grid * grid * channels)` features.

    Raises:
        ValueError: naming `encoder` when it has no global average pool to
            take the map from or the map's size is not static, or `grid`
            when it is not an integer in [1, map side].

    Example:

    >>> import simclr_tf
    >>> enc = simclr_tf.resnet(10, 0.25, (28, 28, 3), small_images=True, stem_stride=2)
    >>> grid_encoder(enc, 2).output_shape
    (None, 512)
    """
    from simclr_tf.model import SimCLR

    if isinstance(encoder, SimCLR):
        encoder = encoder.encoder
    last = encoder.layers[-1] if isinstance(encoder, keras.Model) and encoder.layers else None
    if not isinstance(last, keras.layers.GlobalAveragePooling2D) or getattr(last, "keepdims", False):
        raise ValueError(
            "`encoder` must be a functional Keras model ending in a GlobalAveragePooling2D layer "
            "(as simclr_tf.resnet builds), or a SimCLR model. Received: "
            f"encoder of type {type(encoder).__name__}"
            + (f" ending in {type(last).__name__}" if last is not None else "")
        )
    if getattr(last, "data_format", "channels_last") != "channels_last":
        raise ValueError(
            "`encoder` must pool a channels_last feature map. Received: an encoder whose "
            f"GlobalAveragePooling2D has data_format={last.data_format!r}"
        )
    try:
        feature_map = last.input
    except (AttributeError, ValueError) as err:
        raise ValueError(f"`encoder` must be a functional Keras model (its layers called once). {err}") from None
    height, width = feature_map.shape[1:3]
    if height is None or width is None:
        raise ValueError(
            "`encoder` must have a last feature map of static height and width; build it with a "
            f"fixed input size. Received: feature map shape {tuple(feature_map.shape)}"
        )
    side = min(height, width)
    grid = _check_int("grid", grid, 1)
    if grid > side:
        raise ValueError(
            f"`grid` must be at most the last feature map's side ({height} x {width}). Received: grid={grid}"
        )

    def bounds(n):
        return [(i * n // grid, -(-(i + 1) * n // grid)) for i in range(grid)]

    cells = [
        keras.ops.mean(feature_map[:, r0:r1, c0:c1, :], axis=(1, 2))
        for r0, r1 in bounds(height)
        for c0, c1 in bounds(width)
    ]
    features = cells[0] if grid == 1 else keras.ops.concatenate(cells, axis=-1)
    # `inputs` (not `input`) also works for a Sequential; one input is passed
    # bare so that calling the model on a tensor matches its structure.
    inputs = encoder.inputs
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, features, name=f"{encoder.name}_grid{grid}")


def _crop_flip(encoder, seed):
    """The paper's linear-evaluation augmentation: random resized crop + flip.

    One `RandomResizedCrop` with `flip_rate=0.5` (the flip is folded into
    its resampling), from raw uint8 or float images of any size to the
    encoder's input size; float32 RGB in [0, 1].
    """
    from simclr_tf.augmentation import RandomResizedCrop

    height, width = encoder.input_shape[1:3]
    return RandomResizedCrop((height, width), flip_rate=0.5, seed=seed, name="crop_flip")


def load_encoder(path):
    """Loads an encoder for evaluation from a `.keras` file or a run folder.

    Args:
        path: a `.keras` file holding an encoder or a `SimCLR` model, or an
            `experiments.pretrain --output_dir`, from which `simclr.keras`
            (the whole model, so its augmenter's evaluation transform and
            projection head come along) or else `encoder.keras` is loaded.

    Returns:
        The loaded Keras model (uncompiled).

    Raises:
        ValueError: naming `path` when it is neither.
    """
    import os

    # Registers the package's serialisable classes (model, head, augmentation).
    import simclr_tf  # noqa: F401
    import simclr_tf.augmentation  # noqa: F401

    path = os.fspath(path)
    if os.path.isdir(path):
        for name in ("simclr.keras", "encoder.keras"):
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                path = candidate
                break
        else:
            raise ValueError(
                "`path` is a folder without simclr.keras or encoder.keras (a pretrain "
                f"--output_dir holds them). Received: path={path!r}"
            )
    elif not (path.endswith(".keras") and os.path.isfile(path)):
        raise ValueError(
            "`path` must be an existing .keras file or a pretrain output folder. "
            f"Received: path={path!r}"
        )
    return keras.saving.load_model(path, compile=False)


# --------------------------------------------------------------------------
# Features


def _batch_function(fn):
    """`fn` as a tf.function traced once for any batch size.

    Every batch is run through the concrete function of its spec with the
    batch dimension relaxed to None, so a smaller last batch reuses the
    trace instead of costing a second one (seconds for a ResNet on a CPU).
    """
    traced = tf.function(fn)

    def call(x):
        x = tf.convert_to_tensor(x)
        spec = tf.TensorSpec([None] + x.shape.as_list()[1:], x.dtype)
        return traced.get_concrete_function(spec)(x)

    return call


def _embedder(model, preprocess=None):
    def embed(x):
        if preprocess is not None:
            x = preprocess(x)
        return tf.cast(model(x, training=False), tf.float32)

    return _batch_function(embed)


def _embed_batches(embed, images):
    feats, labels = [], []
    for batch in images:
        batch, y = _split_batch(batch)
        if y is not None:
            labels.append(np.asarray(y))
        feats.append(embed(batch).numpy())
    if not feats:
        raise ValueError("`images` is empty: no batches to embed.")
    features = np.concatenate(feats)
    if labels:
        # (B, 1) batches (as keras.datasets gives labels) become (N,): left as
        # (N, 1), top-k would broadcast against every other example's label.
        return features, _check_labels("labels", np.concatenate(labels), len(features)).astype(np.int32)
    return features


def extract_features(model, images, batch_size=256, preprocess=None):
    """Runs `model` in inference mode over `images`.

    Args:
        model: a Keras model (a `SimCLR` model applies its evaluation
            transform itself; for a bare encoder with an image input, uint8
            images are scaled to [0, 1] and channels and size matched to
            its input, as in `linear_eval`, unless `preprocess` is given).
        images: an array of uint8 or float [0, 1] images, or a
            `tf.data.Dataset` of image batches or `(images, labels)` batches.
        batch_size: batch size for array input.
        preprocess: optional callable applied to each batch instead.

    Returns:
        `features` (N, D) float32, or `(features, labels)` when the dataset
        carries labels.
    """
    batch_size = _check_int("batch_size", batch_size, 1)
    if isinstance(images, (tuple, dict)) or not _is_dataset(images) and not _is_array_like(images):
        raise ValueError(
            "`images` must be an array of images or a tf.data.Dataset of image or (images, labels) "
            f"batches; for labelled arrays use `labelled_features`. Received: images of type "
            f"{type(images).__name__}"
        )
    if not _is_dataset(images):
        images = _image_array("images", images)
        images = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    if preprocess is None:
        preprocess = _default_preprocess(model)
    return _embed_batches(_embedder(model, preprocess), images)


def _default_preprocess(model):
    """uint8 -> [0, 1], channels and size matched to a bare encoder's input.

    None for a `SimCLR` model (its call applies its evaluation transform) or
    a layer without a known image input; a dimension the input leaves open
    is left as it is.
    """
    from simclr_tf.model import SimCLR

    if isinstance(model, SimCLR) or not isinstance(model, keras.Model):
        return None
    try:
        shape = tuple(model.input_shape[1:])
    except (AttributeError, ValueError):  # a subclassed model not yet built
        return None
    if len(shape) != 3:
        return None
    height, width, channels = shape
    if height is None or width is None:
        height = width = None
    return lambda x: _to_input(x, height, width, channels)  # noqa: E731


def labelled_features(model, *splits, batch_size=256, preprocess=None):
    """Features and labels of labelled splits, in inference mode.

    All splits share one traced function, so embedding a second split costs
    no second trace.

    Args:
        model: a Keras encoder or a `SimCLR` model; without `preprocess`,
            images get the same evaluation transform as in `linear_eval`.
        *splits: each `(images, labels)` arrays or a dataset of such batches.
        batch_size: batch size for arrays.
        preprocess: images -> encoder input.

    Returns:
        A list with one `(features, labels)` pair per split: (N, D) float32
        and (N,) int32 arrays.

    Example:

    >>> import simclr_tf
    >>> enc = simclr_tf.resnet(18, 0.125, (16, 16, 3), small_images=True)
    >>> x = np.zeros((6, 20, 20, 1), np.uint8)
    >>> [(f.shape, y.shape) for f, y in labelled_features(enc, (x, np.arange(6)))]
    [((6, 64), (6,))]
    """
    names = ["data"] if len(splits) == 1 else [f"splits[{i}]" for i in range(len(splits))]
    return _labelled_features(model, splits, batch_size, preprocess, names)


def _labelled_features(model, splits, batch_size, preprocess, names):
    encoder, preprocess, _ = _unwrap(model, preprocess)
    batch_size = _check_int("batch_size", batch_size, 1)
    embed = _embedder(encoder, preprocess)
    results = []
    for name, data in zip(names, splits):
        result = _embed_batches(embed, _as_dataset(name, data, batch_size))
        if not isinstance(result, tuple):
            raise ValueError(f"`{name}` must hold labels: (images, labels) arrays or batches.")
        results.append(result)
    return results


# --------------------------------------------------------------------------
# Linear probe and linear evaluation


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
    xtr = _check_features("train_features", xtr)
    xte = _check_features("test_features", xte)
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
        epochs = _check_int("epochs", epochs, 1)
        batch_size = _check_int("batch_size", batch_size, 1)
        learning_rate = _check_positive("learning_rate", learning_rate)
        weight_decay = _check_non_negative("weight_decay", weight_decay)
    mean, std = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    num_classes = _check_num_classes(num_classes, ytr, yte)
    if solver == "lbfgs":
        return _lbfgs_probe(xtr, ytr, xte, yte, num_classes, l2, validation_fraction,
                            _check_int("max_iterations", max_iterations, 1), seed)

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


# L2 penalties (on the mean cross-entropy of standardised features) that
# `linear_probe(l2="auto")` chooses from, strongest first.
PROBE_L2_GRID = (1.0, 3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)


def _lbfgs_probe(xtr, ytr, xte, yte, num_classes, l2, validation_fraction, max_iterations, seed):
    result = {}
    if isinstance(l2, str):
        if l2 != "auto":
            raise ValueError(f"`l2` must be 'auto' or a number >= 0. Received: l2={l2!r}")
        validation_fraction = _check_fraction("validation_fraction", validation_fraction)
        fit_rows, val_rows = _stratified_holdout(ytr, validation_fraction, seed)
        if len(val_rows) == 0 or len(fit_rows) == 0:
            raise ValueError(
                "linear_probe(l2='auto') needs training rows on both sides of its validation "
                f"split. Received: {len(ytr)} rows, validation_fraction={validation_fraction}"
            )
        # Strongest penalty first; each fit starts from the previous optimum.
        params, scores = None, {}
        for value in PROBE_L2_GRID:
            params = _fit_logistic(xtr[fit_rows], ytr[fit_rows], num_classes, value,
                                   max_iterations, params)
            scores[value] = _topk(_logits(xtr[val_rows], params), ytr[val_rows], 1)
        best = max(scores.values())
        l2 = next(value for value in PROBE_L2_GRID if scores[value] == best)
        result["validation_top1"] = {f"{k:g}": v for k, v in scores.items()}
    else:
        try:
            value = float(l2)
        except (TypeError, ValueError):
            value = -1.0
        if isinstance(l2, bool) or not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"`l2` must be 'auto' or a finite number >= 0. Received: l2={l2!r}")
        l2 = value
    params = _fit_logistic(xtr, ytr, num_classes, l2, max_iterations)
    test_logits = _logits(xte, params)
    result.update({
        "top1": _topk(test_logits, yte, 1),
        "top5": _topk(test_logits, yte, 5),
        "train_top1": _topk(_logits(xtr, params), ytr, 1),
        "l2": l2,
    })
    return result


def _stratified_holdout(labels, fraction, seed):
    """Row indices (fit, validation): `fraction` of each class, seeded."""
    rng = np.random.default_rng(seed)
    fit, val = [], []
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        n = int(round(fraction * len(rows)))
        val.append(rows[:n])
        fit.append(rows[n:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(val))


def _logits(x, params):
    weights, bias = params
    return x @ weights + bias


def _fit_logistic(x, y, num_classes, l2, max_iterations, init=None, memory=10, tol=1e-6):
    """Penalised multinomial logistic regression by L-BFGS; returns (W, b).

    Stops when the largest gradient entry is below `tol`, the loss stops
    falling (relative change < 1e-10) or after `max_iterations` steps.
    """
    n, d = x.shape
    onehot = np.zeros((n, num_classes), x.dtype)
    onehot[np.arange(n), y] = 1.0

    def objective(theta):
        weights, bias = theta[: d * num_classes].reshape(d, num_classes), theta[d * num_classes:]
        logits = x @ weights + bias
        logits -= logits.max(1, keepdims=True)
        log_norm = np.log(np.exp(logits).sum(1, keepdims=True))
        log_probs = logits - log_norm
        loss = -np.mean(np.sum(onehot * log_probs, 1)) + 0.5 * l2 * np.sum(weights * weights)
        delta = (np.exp(log_probs) - onehot) / n
        grad = np.concatenate([(x.T @ delta + l2 * weights).ravel(), delta.sum(0)])
        return loss, grad

    theta = (np.zeros(d * num_classes + num_classes, x.dtype) if init is None
             else np.concatenate([init[0].ravel(), init[1]]).astype(x.dtype))
    loss, grad = objective(theta)
    history = []
    for _ in range(max_iterations):
        if np.max(np.abs(grad)) < tol:
            break
        # Two-loop recursion for the quasi-Newton direction.
        q = grad.copy()
        alphas = []
        for s, t, rho in reversed(history):
            a = rho * (s @ q)
            alphas.append(a)
            q -= a * t
        if history:
            s, t, _ = history[-1]
            q *= (s @ t) / (t @ t)
        else:
            q /= max(1.0, np.linalg.norm(grad))
        for (s, t, rho), a in zip(history, reversed(alphas)):
            q += s * (a - rho * (t @ q))
        direction = -q
        slope = grad @ direction
        if slope >= 0:  # not a descent direction: restart from the gradient
            history, direction, slope = [], -grad, -(grad @ grad)
        step = 1.0
        for _ in range(30):  # backtracking (Armijo)
            new_theta = theta + step * direction
            new_loss, new_grad = objective(new_theta)
            if new_loss <= loss + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            break
        s, t = new_theta - theta, new_grad - grad
        if s @ t > 1e-12:
            history.append((s, t, 1.0 / (s @ t)))
            history = history[-memory:]
        converged = loss - new_loss < 1e-10 * max(1.0, abs(loss))
        theta, loss, grad = new_theta, new_loss, new_grad
        if converged:
            break
    return theta[: d * num_classes].reshape(d, num_classes), theta[d * num_classes:]


def _topk(logits, labels, k):
    labels = np.asarray(labels)
    if labels.shape != (len(logits),):  # guards the broadcast below: (N, 1) labels would match any row
        raise ValueError(f"labels must have shape ({len(logits)},). Received: labels.shape={labels.shape}")
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


class _Classifier(keras.Model):
    """Encoder (optionally cut into the projection head) + linear layer.

    In training, views come from `augment` (a layer called with
    `training=True`) when given; otherwise, and in evaluation and
    prediction, from `eval_transform`. With `train_encoder=False` the
    encoder always runs in inference mode (frozen BN statistics). With
    `feature_stats=(mean, variance)` the features are standardised by those
    fixed statistics (a BatchNormalization's moving averages would still be
    far from the data after the few hundred steps of a small linear eval).
    """

    def __init__(
        self,
        encoder,
        num_classes,
        eval_transform,
        augment=None,
        head=None,
        head_layer=0,
        train_encoder=True,
        feature_stats=None,
        weight_decay=0.0,
        name="classifier",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.encoder = encoder
        self.head = head
        self.head_layer = head_layer
        self.train_encoder = train_encoder
        self.eval_transform = eval_transform
        self.augment = augment
        self.channels = encoder.input_shape[-1]
        self.standardize = None
        if feature_stats is not None:
            mean, variance = feature_stats
            self.standardize = keras.layers.Normalization(mean=mean, variance=variance)
            self.standardize.build((None, len(mean)))  # now, not inside a traced step
        regularizer = keras.regularizers.L2(weight_decay) if weight_decay else None
        self.linear = keras.layers.Dense(
            num_classes, kernel_regularizer=regularizer, name="linear"
        )

    def call(self, images, training=False):
        if training and self.augment is not None:
            views = self.augment(images, training=True)
            if self.channels == 1:
                views = tf.image.rgb_to_grayscale(views)
        else:
            views = self.eval_transform(images)
        h = self.encoder(views, training=bool(training) and self.train_encoder)
        if self.head is not None and self.head_layer > 0:
            h = self.head.hidden_output(h, self.head_layer, training=training)
        return self.classify(h)

    def classify(self, h):
        """Logits from features h (after the encoder and head)."""
        h = tf.cast(h, tf.float32)
        if self.standardize is not None:
            h = self.standardize(h)
        return self.linear(h)


def _fit_classifier(classifier, train, example, *, epochs, optimizer, callbacks, verbose):
    """Compiles and fits; returns the History dict. `example`: an image batch."""
    # Build every variable (layers, then optimiser slots) before `fit`: a
    # variable created while `fit` traces its step makes tf.function trace
    # the whole encoder's backward pass twice (measured: 21 s -> 10 s for a
    # one-step fine-tune of the test ResNet-18 on 2 CPU cores).
    classifier(example, training=False)
    classifier.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")],
    )
    if not classifier.optimizer.built:
        classifier.optimizer.build(classifier.trainable_variables)
    history = classifier.fit(
        train,
        epochs=epochs,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the pipeline shuffles
    )
    return {k: [float(v) for v in vs] for k, vs in history.history.items()}


def _predict(classifier, dataset):
    """(logits, labels) of a labelled dataset, one trace for all batches."""
    predict = _batch_function(lambda x: classifier(x, training=False))
    logits, labels = [], []
    for batch in dataset:
        x, y = _split_batch(batch)
        logits.append(predict(x).numpy())
        labels.append(np.asarray(y))
    logits = np.concatenate(logits)
    return logits, _check_labels("test_data labels", np.concatenate(labels), len(logits))


def _scores(logits, labels):
    labels = _check_labels("labels", labels, len(logits))
    return {"top1": _topk(logits, labels, 1), "top5": _topk(logits, labels, 5)}


def _num_classes_of(num_classes, train_data, test_data):
    if num_classes is not None:
        num_classes = _check_int("num_classes", num_classes, 2)
        if _is_dataset(train_data) or _is_dataset(test_data):
            return num_classes  # not worth a pass over a dataset just to check it
    return _check_num_classes(
        num_classes, _labels_of("train_data", train_data), _labels_of("test_data", test_data)
    )


def linear_eval(
    encoder,
    train_data,
    test_data,
    *,
    augment=False,
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
    `linear_probe` trains on the cached, standardised features (fast). With
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
        augment: train on crop + flip views instead of cached features.
        epochs: passes over `train_data`.
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
    >>> scores = linear_eval(enc, (x, y), (x, y), epochs=2)
    >>> sorted(scores)
    ['augment', 'epochs', 'num_classes', 'top1', 'top5', 'train_top1']
    """
    epochs = _check_int("epochs", epochs, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    learning_rate = _check_positive("learning_rate", learning_rate)
    encoder, preprocess, _ = _unwrap(encoder, preprocess)

    if not augment:
        (xtr, ytr), (xte, yte) = _labelled_features(
            encoder, (train_data, test_data), batch_size, preprocess, ("train_data", "test_data")
        )
        num_classes = _check_num_classes(num_classes, ytr, yte)
        scores = linear_probe(
            xtr, ytr, xte, yte, solver="adam", epochs=epochs, batch_size=batch_size,
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
        (xtr, _), (xte, yte) = _labelled_features(
            encoder, (train, test_data), batch_size, preprocess, ("train_data", "test_data")
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


def tsne_2d(features, seed=0, perplexity=30.0):
    """2-D t-SNE of `features` (rows) with scikit-learn, for pictures.

    The perplexity is capped at (N - 1) / 3 so small sets work. t-SNE's
    layout depends on the seed and, across scikit-learn versions, on its
    implementation; use it to look at, not to measure.

    Returns:
        (N, 2) float32 coordinates.

    Raises:
        ImportError: with the install command, without scikit-learn.
        ValueError: for fewer than 3 rows or non-finite features.
    """
    try:
        from sklearn.manifold import TSNE
    except ImportError as err:
        raise ImportError(
            "The t-SNE picture needs scikit-learn: `pip install scikit-learn` "
            "(or `pip install -r requirements-dev.txt`)."
        ) from err
    features = _check_features("features", features)
    if len(features) < 3:
        raise ValueError(f"t-SNE needs at least 3 rows. Received: features.shape={features.shape}")
    perplexity = min(_check_positive("perplexity", perplexity), (len(features) - 1) / 3)
    tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(features).astype(np.float32)


# --------------------------------------------------------------------------
# kNN


def knn_classify(
    train_features,
    train_labels,
    test_features,
    k=200,
    temperature=0.1,
    num_classes=None,
    return_scores=False,
    batch_size=1024,
):
    """Weighted cosine k-nearest-neighbour classification.

    Features are l2-normalised; each test row takes its `k` most
    cosine-similar training rows, and each neighbour votes for its label
    with weight exp(sim / temperature) (Wu et al.'s InstDisc weighting, the
    kNN monitor of SimCLR/MoCo code bases). The prediction is the class with
    the largest total vote; ties go to the smaller class index, and equally
    similar neighbours to the smaller training index.

    Args:
        train_features: (N, D) array.
        train_labels: (N,) integer array, values in [0, num_classes).
        test_features: (M, D) array.
        k: neighbours per query; capped at N.
        temperature: t > 0 of the vote weights.
        num_classes: None infers it from the largest training label.
        return_scores: also return the votes, normalised to sum to 1 per row
            (a shift-invariant form, computed stably for small t).
        batch_size: test rows per similarity block (bounds memory at
            batch_size x N).

    Returns:
        (M,) int32 predicted labels; with `return_scores`, also the (M,
        num_classes) float32 normalised votes.

    Raises:
        ValueError: naming the argument, on non-2-D or non-finite
            features, mismatched dimensions or lengths, negative or
            out-of-range labels, `k` < 1 or `temperature` <= 0.

    Example:

    >>> train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> knn_classify(train, np.array([0, 0, 1]), np.array([[1.0, 0.2]]), k=2)
    array([0], dtype=int32)
    """
    xtr = _check_features("train_features", train_features)
    xte = _check_features("test_features", test_features)
    ytr = _check_labels("train_labels", train_labels, len(xtr))
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(
            "`test_features` must have the width of `train_features` "
            f"({xtr.shape[1]}). Received: test_features.shape={xte.shape}"
        )
    k = min(_check_int("k", k, 1), len(xtr))
    temperature = _check_positive("temperature", temperature)
    num_classes = _check_num_classes(num_classes, ytr)
    batch_size = _check_int("batch_size", batch_size, 1)

    bank = tf.math.l2_normalize(tf.constant(xtr), axis=1)
    bank_labels = tf.constant(ytr, tf.int32)
    preds, votes = [], []
    for start in range(0, len(xte), batch_size):
        query = tf.math.l2_normalize(tf.constant(xte[start : start + batch_size]), axis=1)
        sim = tf.matmul(query, bank, transpose_b=True)
        top_sim, top_idx = tf.math.top_k(sim, k=k, sorted=True)
        # Subtracting the row maximum rescales a row's votes uniformly,
        # which keeps the arg-max and the normalised votes, and exp finite.
        weights = tf.exp((top_sim - top_sim[:, :1]) / temperature)
        onehot = tf.one_hot(tf.gather(bank_labels, top_idx), num_classes)
        vote = tf.reduce_sum(onehot * weights[..., tf.newaxis], axis=1)
        preds.append(tf.argmax(vote, axis=1, output_type=tf.int32).numpy())
        votes.append((vote / tf.reduce_sum(vote, axis=1, keepdims=True)).numpy())
    preds = np.concatenate(preds)
    if return_scores:
        return preds, np.concatenate(votes)
    return preds


def knn_accuracy(
    train_features, train_labels, test_features, test_labels, k=200, temperature=0.1,
    num_classes=None,
):
    """Top-1 accuracy of `knn_classify` on labelled test features."""
    yte = _check_labels("test_labels", test_labels, len(np.asarray(test_features)))
    preds = knn_classify(
        train_features, train_labels, test_features, k=k, temperature=temperature,
        num_classes=num_classes,
    )
    return float(np.mean(preds == yte))


class KNNMonitor(keras.callbacks.Callback):
    """Reports weighted cosine kNN top-1 of the model's features as `knn_acc`.

    At the end of every `every_n_epochs`-th epoch (and of the last one) the
    model embeds `train_data` and `test_data` in inference mode
    (`model(preprocess(images), training=False)`; for a `SimCLR` model this
    is the evaluation transform and the encoder, giving h), classifies every
    test embedding with `knn_classify` against the train embeddings, and
    writes the top-1 accuracy into the epoch logs under `name`. Keras calls
    callbacks in list order and adds `History` last, so the value is in
    `fit(...).history`; put the monitor before a `TensorBoard` callback for it
    to be written there too. Epochs that skip the evaluation carry no
    `knn_acc` entry, so with `every_n_epochs > 1` the History list is shorter
    than the number of epochs.

    Args:
        train_data: the labelled memory bank: `(images, labels)` numpy
            arrays, or a `tf.data.Dataset` of `(images, labels)` batches.
        test_data: the labelled queries, in the same forms.
        k: neighbours per query (200 in the InstDisc / SimCLR monitors).
        temperature: vote temperature t (0.1).
        every_n_epochs: evaluate every this many epochs.
        num_classes: None infers it from the largest label.
        batch_size: batch size when embedding numpy arrays.
        preprocess: optional callable applied to image batches before the
            model (a bare encoder needs float [0, 1] images at its size).
        name: the log key.

    Example:

    >>> import simclr_tf
    >>> enc = simclr_tf.resnet(18, 0.125, (16, 16, 3), small_images=True)
    >>> x = np.random.default_rng(0).random((32, 16, 16, 3), np.float32)
    >>> y = np.arange(32) % 4
    >>> clf = keras.Sequential([enc, keras.layers.Dense(4)])
    >>> clf.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> monitor = KNNMonitor((x, y), (x, y), k=5)
    >>> history = clf.fit(x, y, epochs=1, verbose=0, callbacks=[monitor])
    >>> sorted(history.history)
    ['knn_acc', 'loss']

    Reference:
        Wu et al., "Unsupervised Feature Learning via Non-Parametric
        Instance Discrimination", CVPR 2018 (the weighted kNN classifier).
    """

    def __init__(
        self,
        train_data,
        test_data,
        k=200,
        temperature=0.1,
        every_n_epochs=1,
        num_classes=None,
        batch_size=256,
        preprocess=None,
        name="knn_acc",
    ):
        super().__init__()
        self.k = _check_int("k", k, 1)
        self.temperature = _check_positive("temperature", temperature)
        self.every_n_epochs = _check_int("every_n_epochs", every_n_epochs, 1)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        if num_classes is not None:
            num_classes = _check_int("num_classes", num_classes, 2)
        self.num_classes = num_classes
        if preprocess is not None and not callable(preprocess):
            raise ValueError(f"`preprocess` must be callable or None. Received: preprocess={preprocess!r}")
        self.preprocess = preprocess
        if not isinstance(name, str) or not name:
            raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
        self.name = name
        self.train_data = self._prepare("train_data", train_data)
        self.test_data = self._prepare("test_data", test_data)
        self._embed = None
        self._embed_model = None

    def _prepare(self, name, value):
        if _is_dataset(value):
            return value
        images, labels = _labelled_arrays(name, value)
        if images.ndim == 3:
            images = images[..., np.newaxis]
        return tf.data.Dataset.from_tensor_slices((images, labels)).batch(self.batch_size)

    def evaluate(self, model=None):
        """kNN top-1 of `model` (default: the model being fitted) now."""
        model = model if model is not None else self.model
        if self._embed is None or self._embed_model is not model:
            # One traced function per model, reused every epoch.
            self._embed = _embedder(model, self.preprocess)
            self._embed_model = model
        xtr, ytr = self._embed_labelled(self.train_data, "train_data")
        xte, yte = self._embed_labelled(self.test_data, "test_data")
        return knn_accuracy(
            xtr, ytr, xte, yte, k=self.k, temperature=self.temperature,
            num_classes=self.num_classes,
        )

    def _embed_labelled(self, dataset, name):
        result = _embed_batches(self._embed, dataset)
        if not isinstance(result, tuple):
            raise ValueError(f"`{name}` must yield (images, labels) batches; it yields images only.")
        return result

    def on_epoch_end(self, epoch, logs=None):
        last = self.params.get("epochs") if self.params else None
        if (epoch + 1) % self.every_n_epochs and (last is None or epoch + 1 != last):
            return
        accuracy = self.evaluate()
        if logs is not None:
            logs[self.name] = accuracy


# --------------------------------------------------------------------------
# Label fractions and fine-tuning


def label_fraction_subset(labels, fraction, seed=0):
    """Indices of a class-balanced subset holding `fraction` of each class.

    The rule: a class with n examples contributes
    max(1, floor(fraction * n + 1/2)) of them (round half up, at least one),
    computed exactly on the decimal value of `fraction` (so 0.35 of 10 is 4,
    not 3 from floating point). Within each class the examples are the first
    ones of a seeded random permutation; the permutation does not depend on
    `fraction`, so with one seed a smaller fraction's subset is contained in
    a larger one's (1% inside 10%), as in the SimCLR label splits.

    Args:
        labels: (N,) integer labels, >= 0.
        fraction: a number in (0, 1]; 1.0 returns every index.
        seed: permutation seed.

    Returns:
        Sorted int64 indices into `labels`.

    Raises:
        ValueError: naming the argument, for a fraction outside (0, 1]
            (0, negative, > 1, NaN, bool), or non-integer or negative labels.

    Example:

    >>> labels = np.repeat(np.arange(3), 100)
    >>> np.bincount(labels[label_fraction_subset(labels, 0.05)]).tolist()
    [5, 5, 5]
    """
    fraction = _check_fraction("fraction", fraction)
    labels = _check_labels("labels", labels)
    exact = fractions.Fraction(repr(fraction))
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        count = max(1, math.floor(exact * len(members) + fractions.Fraction(1, 2)))
        chosen.append(rng.permutation(members)[: min(count, len(members))])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def finetune(
    encoder,
    train_data,
    test_data,
    *,
    label_fraction=1.0,
    head=None,
    head_layer=0,
    augment=True,
    epochs=30,
    batch_size=256,
    learning_rate=1e-3,
    weight_decay=0.0,
    optimizer=None,
    num_classes=None,
    preprocess=None,
    seed=0,
    callbacks=None,
    verbose=0,
    return_model=False,
):
    """Fine-tunes the whole encoder with a linear layer on a label fraction.

    The training set is cut to the class-balanced `label_fraction_subset`
    (when the fraction is below 1, a `tf.data` input is first read into
    memory). A linear layer on h, or on the output of projection-head layer
    `head_layer` (SimCLRv2 fine-tunes from the first, `head_layer=1`), is
    trained together with the encoder (BN in training mode) and those head
    layers; the encoder and head are changed in place. Training views are
    random resized crops + flips when `augment`, else the evaluation
    transform.

    Args:
        encoder: a Keras encoder, or a `SimCLR` model (its encoder, its
            evaluation transform and, by default, its projection head).
        train_data, test_data: `(images, labels)` arrays or datasets of
            `(images, labels)` batches, as in `linear_eval`.
        label_fraction: fraction of each class's training labels, in (0, 1].
        head: a `ProjectionHead` to cut into for `head_layer > 0`.
        head_layer: 0 for h, i for the output of the head's i-th layer.
        augment: crop + flip the training views.
        epochs: passes over the labelled subset.
        batch_size: examples per step (capped at the subset's size).
        learning_rate: Adam's learning rate (when `optimizer` is None).
        weight_decay: L2 penalty on the linear weights.
        optimizer: a Keras optimizer; default Adam.
        num_classes: None infers it from the largest label.
        preprocess: the evaluation transform, as in `linear_eval`.
        seed: seeds the subset, initialisation, shuffling, augmentation.
        callbacks: Keras callbacks for `fit`.
        verbose: `fit` verbosity.
        return_model: also return the trained classifier (a Keras model
            from images to logits).

    Returns:
        dict with `top1`, `top5`, `history`, `label_fraction`,
        `train_examples`, `head_layer`, `num_classes`; with `return_model`,
        `(that dict, classifier)`.

    Raises:
        ValueError: naming the argument, for a `label_fraction` outside
            (0, 1], a `head_layer` beyond the head's depth or without a
            head, and the checks of `linear_eval`.
    """
    label_fraction = _check_fraction("label_fraction", label_fraction)
    epochs = _check_int("epochs", epochs, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    learning_rate = _check_positive("learning_rate", learning_rate)
    head_layer = _check_int("head_layer", head_layer, 0)
    encoder, preprocess, model = _unwrap(encoder, preprocess)
    if head is None and model is not None:
        head = model.projection_head
    if head_layer > 0:
        depth = len(getattr(head, "dense_layers", ()))
        if head is None or head_layer > depth:
            raise ValueError(
                f"`head_layer` must be in [0, {depth}] (the projection head's depth"
                f"{'' if head is not None else '; no head was given'}). "
                f"Received: head_layer={head_layer}"
            )
    else:
        head = None

    if label_fraction < 1.0:
        images, labels = _as_arrays("train_data", train_data)
        keep = label_fraction_subset(labels, label_fraction, seed=seed)
        train_data = (images[keep], labels[keep])
    num_classes = _num_classes_of(num_classes, train_data, test_data)
    train_examples = len(_labels_of("train_data", train_data))
    if not _is_dataset(train_data):
        batch_size = min(batch_size, train_examples)

    keras.utils.set_random_seed(seed)
    train = _as_dataset("train_data", train_data, batch_size, shuffle=True, seed=seed)
    test = _as_dataset("test_data", test_data, batch_size)
    classifier = _Classifier(
        encoder, num_classes, eval_transform=preprocess,
        augment=_crop_flip(encoder, seed) if augment else None,
        head=head, head_layer=head_layer, train_encoder=True, weight_decay=weight_decay,
        name="finetune",
    )
    # The head's layers above `head_layer` take no part: freeze them while
    # training so that the optimiser does not track them.
    unused = []
    if head is not None:
        unused = [
            layer
            for i in range(head_layer, len(head.dense_layers))
            for layer in (head.dense_layers[i], head.norm_layers[i])
            if layer.trainable
        ]
    for layer in unused:
        layer.trainable = False
    try:
        history = _fit_classifier(
            classifier, train, _split_batch(next(iter(test)))[0], epochs=epochs,
            optimizer=optimizer or keras.optimizers.Adam(learning_rate),
            callbacks=callbacks, verbose=verbose,
        )
    finally:
        for layer in unused:
            layer.trainable = True
    scores = _scores(*_predict(classifier, test))
    scores["history"] = history
    scores.update(
        label_fraction=label_fraction, train_examples=train_examples,
        head_layer=head_layer, num_classes=num_classes, augment=bool(augment), epochs=epochs,
    )
    if return_model:
        return scores, classifier
    return scores
