"""Features: the one place that runs a model over images.

`embed` is the loop every protocol uses (linear probe and evaluation, kNN
and its callback, prediction of a fine-tuned classifier): batches of images
through a function traced once, in inference mode, with labels carried
along. `extract_features` and `labelled_features` are its public forms for
unlabelled and labelled data; `tsne_2d` turns features into a picture.
"""

import numpy as np
import tensorflow as tf

from simclr_tf import validation
from simclr_tf.evaluation.inputs import (
    _as_dataset,
    _check_labels,
    _default_preprocess,
    _image_array,
    _is_array_like,
    _is_dataset,
    _split_batch,
    _unwrap,
)


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


def embedder(model, preprocess=None):
    """`images -> float32 model(preprocess(images), training=False)`, traced once.

    Build it once per model and pass it to `embed` for every split (or every
    epoch, as `KNNMonitor` does) so that no split pays a second trace.
    """

    def run(x):
        if preprocess is not None:
            x = preprocess(x)
        return tf.cast(model(x, training=False), tf.float32)

    return _batch_function(run)


def embed(embed_fn, data, *, name="images", batch_size=256, labelled=None):
    """Runs `embed_fn` (from `embedder`) over every batch of `data`.

    Args:
        embed_fn: a traced function from `embedder`.
        data: a `tf.data.Dataset` of image batches or `(images, labels)`
            batches; or arrays: an `(images, labels)` pair when `labelled`
            is True, an array of images otherwise.
        name: the argument's name in error messages.
        batch_size: batch size for array input.
        labelled: True requires labels; None returns them when the data
            carries them.

    Returns:
        `features` (N, D) float32, or `(features, labels)` with (N,) int32
        labels when the data carries labels.
    """
    if not _is_dataset(data):
        if labelled:
            data = _as_dataset(name, data, batch_size)
        else:
            data = tf.data.Dataset.from_tensor_slices(_image_array(name, data)).batch(batch_size)
    feats, labels = [], []
    for batch in data:
        batch, y = _split_batch(batch)
        if y is not None:
            labels.append(np.asarray(y))
        feats.append(embed_fn(batch).numpy())
    if not feats:
        raise ValueError(f"`{name}` is empty: no batches to embed.")
    features = np.concatenate(feats)
    if labels:
        # (B, 1) batches (as keras.datasets gives labels) become (N,): left as
        # (N, 1), top-k would broadcast against every other example's label.
        return features, _check_labels("labels", np.concatenate(labels), len(features)).astype(np.int32)
    if labelled:
        raise ValueError(
            f"`{name}` must hold labels: (images, labels) arrays or a dataset of (images, labels) "
            "batches; it yields images only."
        )
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

    Example:

    >>> import simclr_tf
    >>> enc = simclr_tf.resnet(18, 0.125, (16, 16, 3), small_images=True)
    >>> extract_features(enc, np.zeros((5, 16, 16, 3), np.uint8)).shape
    (5, 64)
    """
    batch_size = validation.check_int("batch_size", batch_size, minimum=1)
    if isinstance(images, (tuple, dict)) or not _is_dataset(images) and not _is_array_like(images):
        raise ValueError(
            "`images` must be an array of images or a tf.data.Dataset of image or (images, labels) "
            f"batches; for labelled arrays use `labelled_features`. Received: images of type "
            f"{type(images).__name__}"
        )
    if preprocess is None:
        preprocess = _default_preprocess(model)
    return embed(embedder(model, preprocess), images, batch_size=batch_size)


def labelled_features(model, *splits, batch_size=256, preprocess=None, names=None):
    """Features and labels of labelled splits, in inference mode.

    All splits share one traced function, so embedding a second split costs
    no second trace.

    Args:
        model: a Keras encoder or a `SimCLR` model; without `preprocess`,
            images get the same evaluation transform as in `linear_eval`.
        *splits: each `(images, labels)` arrays or a dataset of such batches.
        batch_size: batch size for arrays.
        preprocess: images -> encoder input.
        names: the splits' names in error messages (default `data` for one
            split, `splits[i]` for several).

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
    if names is None:
        names = ["data"] if len(splits) == 1 else [f"splits[{i}]" for i in range(len(splits))]
    encoder, preprocess, _ = _unwrap(model, preprocess)
    batch_size = validation.check_int("batch_size", batch_size, minimum=1)
    embed_fn = embedder(encoder, preprocess)
    return [
        embed(embed_fn, data, name=name, batch_size=batch_size, labelled=True)
        for name, data in zip(names, splits)
    ]


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
    features = validation.check_features("features", features)
    if len(features) < 3:
        raise ValueError(f"t-SNE needs at least 3 rows. Received: features.shape={features.shape}")
    perplexity = validation.check_number("perplexity", perplexity, minimum=0, strict=True)
    tsne = TSNE(2, perplexity=min(perplexity, (len(features) - 1) / 3), init="pca", random_state=seed)
    return tsne.fit_transform(features).astype(np.float32)
