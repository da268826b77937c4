"""Weighted cosine kNN: `knn_classify`, `knn_accuracy` and the `KNNMonitor` callback.

InstDisc / SimCLR-style votes exp(sim / t) over the k most cosine-similar
training rows; deterministic, and cheap enough to run at every epoch of
pretraining.
"""

import keras
import numpy as np
import tensorflow as tf

from simclr_tf import validation
from simclr_tf.evaluation.features import embed, embedder
from simclr_tf.evaluation.inputs import _as_dataset, _check_labels, _check_num_classes


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
    xtr = validation.check_features("train_features", train_features)
    xte = validation.check_features("test_features", test_features)
    ytr = _check_labels("train_labels", train_labels, len(xtr))
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(
            "`test_features` must have the width of `train_features` "
            f"({xtr.shape[1]}). Received: test_features.shape={xte.shape}"
        )
    k = min(validation.check_int("k", k, minimum=1), len(xtr))
    temperature = validation.check_number("temperature", temperature, minimum=0, strict=True)
    num_classes = _check_num_classes(num_classes, ytr)
    batch_size = validation.check_int("batch_size", batch_size, minimum=1)

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
        self.k = validation.check_int("k", k, minimum=1)
        self.temperature = validation.check_number("temperature", temperature, minimum=0, strict=True)
        self.every_n_epochs = validation.check_int("every_n_epochs", every_n_epochs, minimum=1)
        self.batch_size = validation.check_int("batch_size", batch_size, minimum=1)
        if num_classes is not None:
            num_classes = validation.check_int("num_classes", num_classes, minimum=2)
        self.num_classes = num_classes
        if preprocess is not None and not callable(preprocess):
            raise ValueError(f"`preprocess` must be callable or None. Received: preprocess={preprocess!r}")
        self.preprocess = preprocess
        if not isinstance(name, str) or not name:
            raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
        self.name = name
        # Arrays are checked and batched once, not at every evaluation.
        self.train_data = _as_dataset("train_data", train_data, self.batch_size)
        self.test_data = _as_dataset("test_data", test_data, self.batch_size)
        self._embed = None
        self._embed_model = None

    def evaluate(self, model=None):
        """kNN top-1 of `model` (default: the model being fitted) now."""
        model = model if model is not None else self.model
        if self._embed is None or self._embed_model is not model:
            # One traced function per model, reused every epoch.
            self._embed = embedder(model, self.preprocess)
            self._embed_model = model
        xtr, ytr = embed(self._embed, self.train_data, name="train_data", labelled=True)
        xte, yte = embed(self._embed, self.test_data, name="test_data", labelled=True)
        return knn_accuracy(
            xtr, ytr, xte, yte, k=self.k, temperature=self.temperature,
            num_classes=self.num_classes,
        )

    def on_epoch_end(self, epoch, logs=None):
        last = self.params.get("epochs") if self.params else None
        if (epoch + 1) % self.every_n_epochs and (last is None or epoch + 1 != last):
            return
        accuracy = self.evaluate()
        if logs is not None:
            logs[self.name] = accuracy

