"""The trainable classifier shared by `linear_eval(augment=True)` and `finetune`.

An encoder (optionally cut into its projection head) and a linear layer,
trained by Keras `fit` on crop + flip views. Linear evaluation freezes the
encoder; fine-tuning trains it; supervised training from scratch is
fine-tuning from a freshly initialised encoder (`label_efficiency`).
"""

import keras
import tensorflow as tf

from simclr_tf.evaluation.features import embed, embedder


def _crop_flip(encoder, seed):
    """The paper's linear-evaluation augmentation: random resized crop + flip.

    One `RandomResizedCrop` with `flip_rate=0.5` (the flip is folded into
    its resampling), from raw uint8 or float images of any size to the
    encoder's input size; float32 RGB in [0, 1].
    """
    from simclr_tf.augmentation import RandomResizedCrop

    height, width = encoder.input_shape[1:3]
    return RandomResizedCrop((height, width), flip_rate=0.5, seed=seed, name="crop_flip")


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


def _fit_classifier(
    classifier, train, example, *, epochs, optimizer, callbacks, verbose, validation_data=None,
):
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
        validation_data=validation_data,
    )
    return {k: [float(v) for v in vs] for k, vs in history.history.items()}


def _predict(classifier, dataset):
    """(logits, labels) of a labelled dataset, one trace for all batches."""
    return embed(embedder(classifier), dataset, name="test_data", labelled=True)
