"""Evaluation protocols: features, linear probes, kNN.

The linear probe here is multinomial logistic regression on frozen,
standardised features (computed once; no augmentation), trained with Adam and
a small L2 penalty. The same probe scores raw pixels, a random encoder and a
pretrained one, so the comparison is like for like. The encoder runs
with BN in inference mode, which is the strong form for every encoder,
including a randomly initialised one (its BN moving statistics are then the
identity, so features are not normalised per batch).
"""

import numpy as np
import keras
import tensorflow as tf


def extract_features(model, images, batch_size=256, preprocess=None):
    """Runs `model` in inference mode over `images`.

    Args:
        model: a Keras model (a `SimCLR` model applies its evaluation
            transform itself; a bare encoder wants float [0, 1] images at its
            input size, or pass `preprocess`).
        images: a numpy array or a `tf.data.Dataset` of image batches or
            `(images, labels)` batches.
        batch_size: batch size for numpy input.
        preprocess: optional callable applied to each batch first.

    Returns:
        `features` (N, D) float32, or `(features, labels)` when the dataset
        carries labels.
    """
    if isinstance(images, np.ndarray):
        images = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    feats, labels = [], []

    @tf.function(reduce_retracing=True)
    def embed(x):
        if preprocess is not None:
            x = preprocess(x)
        return tf.cast(model(x, training=False), tf.float32)

    for batch in images:
        if isinstance(batch, (tuple, list)):
            batch, y = batch[0], batch[1]
            labels.append(np.asarray(y))
        elif isinstance(batch, dict):
            if "label" in batch:
                labels.append(np.asarray(batch["label"]))
            batch = batch["image"]
        feats.append(embed(batch).numpy())
    if not feats:
        raise ValueError("`images` is empty: no batches to embed.")
    features = np.concatenate(feats)
    if labels:
        return features, np.concatenate(labels).astype(np.int32)
    return features


def linear_probe(
    train_features,
    train_labels,
    test_features,
    test_labels,
    epochs=100,
    batch_size=512,
    learning_rate=1e-3,
    weight_decay=1e-4,
    seed=0,
):
    """Trains a linear softmax classifier on frozen features.

    Features are standardised with the training set's mean and std. Adam
    with an L2 penalty, `epochs` passes, then top-1 / top-5 on the test set.

    Returns:
        dict with `top1`, `top5` (fractions in [0, 1]) and `train_top1`.
    """
    xtr = np.asarray(train_features, np.float32).reshape(len(train_features), -1)
    xte = np.asarray(test_features, np.float32).reshape(len(test_features), -1)
    ytr = np.asarray(train_labels).astype(np.int32)
    yte = np.asarray(test_labels).astype(np.int32)
    if len(xtr) == 0 or len(xte) == 0:
        raise ValueError(
            "linear_probe needs non-empty train and test features. "
            f"Received: {len(xtr)} train, {len(xte)} test rows"
        )
    mean, std = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    num_classes = int(max(ytr.max(), yte.max())) + 1

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


def _topk(logits, labels, k):
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))
