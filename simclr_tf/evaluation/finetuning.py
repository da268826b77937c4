"""Fine-tuning the whole encoder with a linear layer on a label fraction.

Semi-supervised fine-tuning as in SimCLR (from h) and SimCLRv2 (from a
projection-head layer), on class-balanced label subsets. Like
`linear_eval`, it defaults to Adam rather than the paper's
Nesterov-momentum SGD / LARS, which is far less sensitive to the learning
rate at the small scales this package runs on a CPU; pass `optimizer=` for
the paper's choice. It calls `keras.utils.set_random_seed(seed)` (a global
side effect) so that initialisation, shuffling and augmentation are
reproducible on one device.
"""

import keras

from simclr_tf import validation
from simclr_tf.evaluation.classifier import _Classifier, _crop_flip, _fit_classifier, _predict
from simclr_tf.evaluation.inputs import (
    _as_arrays,
    _as_dataset,
    _is_dataset,
    _labels_of,
    _num_classes_of,
    _split_batch,
    _unwrap,
)
from simclr_tf.evaluation.logistic import _scores
from simclr_tf.evaluation.subsets import label_fraction_subset


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
    label_fraction = validation.check_fraction("label_fraction", label_fraction)
    epochs = validation.check_int("epochs", epochs, minimum=1)
    batch_size = validation.check_int("batch_size", batch_size, minimum=1)
    learning_rate = validation.check_number("learning_rate", learning_rate, minimum=0, strict=True)
    head_layer = validation.check_int("head_layer", head_layer, minimum=0)
    encoder, preprocess, model = _unwrap(encoder, preprocess)
    if head is None and model is not None:
        head = model.projection_head
    head = _head_up_to(head, head_layer)

    if label_fraction < 1.0:
        images, labels = _as_arrays("train_data", train_data)
        keep = label_fraction_subset(labels, label_fraction, seed=seed)
        train_data = (images[keep], labels[keep])
    num_classes = _num_classes_of(num_classes, train_data, test_data)
    train_examples = len(_labels_of("train_data", train_data))
    if not _is_dataset(train_data):
        batch_size = min(batch_size, train_examples)

    classifier, history = _train_classifier(
        encoder, train_data, preprocess=preprocess, head=head, head_layer=head_layer,
        num_classes=num_classes, augment=augment, epochs=epochs, batch_size=batch_size,
        optimizer=optimizer or keras.optimizers.Adam(learning_rate), weight_decay=weight_decay,
        seed=seed, callbacks=callbacks, verbose=verbose,
    )
    test = _as_dataset("test_data", test_data, batch_size)
    scores = _scores(*_predict(classifier, test))
    scores["history"] = history
    scores.update(
        label_fraction=label_fraction, train_examples=train_examples,
        head_layer=head_layer, num_classes=num_classes, augment=bool(augment), epochs=epochs,
    )
    if return_model:
        return scores, classifier
    return scores


def _train_classifier(
    encoder, train_data, *, preprocess, head, head_layer, num_classes, augment, epochs,
    batch_size, optimizer, weight_decay, seed, callbacks=None, verbose=0, validation_data=None,
):
    """Trains encoder (BN in training mode), head layers and a linear layer.

    The one training path of `finetune` and of the label-efficiency arms
    that train an encoder: fine-tuning a pretrained encoder and supervised
    training from scratch differ only in the encoder's initial weights.

    Returns:
        `(classifier, history)`; with `validation_data` (labelled arrays or
        batches, scored in inference mode after every epoch), the history
        holds `val_acc` per epoch.
    """
    keras.utils.set_random_seed(seed)
    train = _as_dataset("train_data", train_data, batch_size, shuffle=True, seed=seed)
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
    if validation_data is not None:
        validation_data = _as_dataset("validation_data", validation_data, batch_size)
    try:
        history = _fit_classifier(
            classifier, train, _split_batch(next(iter(train)))[0], epochs=epochs,
            optimizer=optimizer, callbacks=callbacks, verbose=verbose,
            validation_data=validation_data,
        )
    finally:
        for layer in unused:
            layer.trainable = True
    return classifier, history


def _head_up_to(head, head_layer):
    """`head` when `head_layer` > 0 names one of its layers, None for h."""
    if head_layer == 0:
        return None
    depth = len(getattr(head, "dense_layers", ()))
    if head is None or head_layer > depth:
        raise ValueError(
            f"`head_layer` must be in [0, {depth}] (the projection head's depth"
            f"{'' if head is not None else '; no head was given'}). "
            f"Received: head_layer={head_layer}"
        )
    return head
