"""`SimCLR`: a `keras.Model` that pretrains an encoder with `fit`.

Each training step draws two independent augmented views of the batch by
calling the augmenter twice, runs encoder f and projection head g on both, and
minimises NT-Xent plus any regularisation losses. Nothing is packed on the
channel axis; two views are two augmenter calls.

Every sub-layer (head, online probe) is built in the constructor and the
optimisers are built on their own variables in `compile`, because Keras 3
under `MirroredStrategy` refuses variables created after `compile` ("optimizer
can only be called for the variables it was originally built with").

`call(images)` applies the augmenter's evaluation transform and the encoder,
so `predict` on raw images returns the representation h (dict batches
`{"image": ..., "label": ...}` and `(images, labels)` tuples are unpacked as
`fit` unpacks them).

Metrics are weighted by the global batch size. A batch of fewer than 2 images
has no negatives, so its NT-Xent is meaningless: it gets weight 0 in the
metrics and, on one device, the training step is skipped (no weight, batch-norm
statistic or optimiser update). `evaluate` draws its views from a fixed
validation state of the augmenter's seed generators and restores their
training state afterwards, so it is reproducible and consumes no training
randomness (validation in `fit` leaves the training trajectory unchanged).

SimCLR's loss has no per-example weights: `sample_weight`, `class_weight`,
`weighted_metrics` and `loss_weights` raise a ValueError.

With `num_classes`, an online linear probe (a Dense layer on
`stop_gradient(h)` of the first view, with its own optimiser) trains
alongside pretraining whenever batches carry integer labels, and reports
`probe_loss` and `probe_acc` (only then: unlabelled batches log no probe keys);
no probe gradient reaches the encoder.
"""

import contextlib
import numbers

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from simclr_tf import _keras_compat
from simclr_tf._keras_compat import scale_loss_for_distribution
from simclr_tf.augmentation._base import BaseAugmentation
from simclr_tf.heads import ProjectionHead
from simclr_tf.losses import nt_xent


# Counter of the augmenter's seed-generator states while `evaluate` draws
# views: far from any count training reaches (one per draw), and within
# uint32, which the augmentation's hash reads.
_VALIDATION_COUNTER = 1 << 30


def _unpack(data):
    """Images and optional labels from the batch forms `fit` may pass."""
    if isinstance(data, (tuple, list)) and len(data) > 2 and any(
        x is not None for x in data[2:]
    ):
        raise ValueError(
            "SimCLR's contrastive loss has no per-example weights, so `sample_weight` and "
            "`class_weight` (which Keras turns into sample weights) are not supported; pass "
            "images or (images, labels). Received: a batch of "
            f"{len(data)} elements (images, labels, sample_weight)"
        )
    if isinstance(data, dict):
        if "image" not in data:
            raise ValueError(
                "A dict batch must have an 'image' key. "
                f"Received keys: {sorted(data)}"
            )
        return data["image"], data.get("label")
    if isinstance(data, (tuple, list)):
        if len(data) == 0:
            raise ValueError("Received an empty batch tuple.")
        if isinstance(data[0], dict):
            images, labels = _unpack(data[0])
            return images, (data[1] if len(data) > 1 else labels)
        return data[0], (data[1] if len(data) > 1 else None)
    return data, None


def _images(data):
    """The images of a batch given as images, a dict or an (images, ...) tuple."""
    if isinstance(data, dict) or (isinstance(data, (tuple, list)) and len(data) > 0):
        if isinstance(data, (tuple, list)):
            data = data[:2]  # `predict` drops labels and weights itself
        return _unpack(data)[0]
    return data


def _global_batch_size(images):
    """The number of images in the global batch, a float32 scalar."""
    n = ops.cast(ops.shape(images)[0] if len(images.shape) == 4 else 1, "float32")
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
        n = ctx.all_reduce(tf.distribute.ReduceOp.SUM, n)
    return n


def _augmenter_parts(augmenter):
    """The augmenter and every layer inside it (itself alone if not a layer)."""
    if isinstance(augmenter, keras.layers.Layer):
        return _keras_compat.flatten_layers(augmenter)
    return [augmenter]


def _seed_generators(augmenter):
    """Every `keras.random.SeedGenerator` reachable from the augmenter (its
    layers' seed generators and any held as attributes), one per state."""
    found, seen = [], set()
    for obj in _augmenter_parts(augmenter):
        candidates = _keras_compat.tracked_seed_generators(obj)
        for value in getattr(obj, "__dict__", {}).values():
            if isinstance(value, (list, tuple)):
                candidates.extend(value)
            else:
                candidates.append(value)
        for generator in candidates:
            if isinstance(generator, keras.random.SeedGenerator) and id(generator.state) not in seen:
                seen.add(id(generator.state))
                found.append(generator)
    return found


def _multi_worker():
    if not tf.distribute.has_strategy():
        return False
    strategy = tf.distribute.get_strategy()
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        _keras_compat.in_multi_worker_mode(strategy)
    )


def _pooled(encoder):
    """The encoder when it returns vectors (batch, dim); when it returns
    feature maps (batch, height, width, channels), as `keras.applications`
    models without `pooling` and keras-hub backbones do, a
    `keras.Sequential` of it and global average pooling (serialisable; the
    backbone's weights are shared, not copied)."""
    if not encoder.built:
        raise ValueError(
            "`encoder` must be built (a functional model, or call it once "
            f"on a batch first). Received an unbuilt encoder: {encoder.name}"
        )
    shape = encoder.output_shape
    shape = tuple(shape) if isinstance(shape, (tuple, list)) and all(
        d is None or isinstance(d, int) for d in shape) else shape
    if isinstance(shape, tuple) and len(shape) == 2 and shape[-1] is not None:
        return encoder
    if not (isinstance(shape, tuple) and len(shape) == 4 and shape[-1] is not None):
        raise ValueError(
            "`encoder` must output one tensor: pooled features (batch, dim), or feature maps "
            "(batch, height, width, channels), which SimCLR average-pools. Received: "
            f"encoder.output_shape={shape}"
        )
    return keras.Sequential(
        [keras.Input(tuple(encoder.input_shape[1:])), encoder,
         keras.layers.GlobalAveragePooling2D(name="pool")],
        name=f"{encoder.name}_pooled",
    )


@keras.saving.register_keras_serializable(package="simclr_tf")
class SimCLR(_keras_compat.SkipSymbolicBuild, keras.Model):
    """SimCLR contrastive pretraining as a self-training Keras model.

    Args:
        encoder: any built Keras model from float [0, 1] images (the
            augmenter's output size) to features h (batch, dim), e.g.
            `simclr_tf.resnet(...)`, or to feature maps (batch, height,
            width, channels), e.g. `keras.applications.ResNet50(
            weights=None, include_top=False, input_shape=(S, S, 3))` or a
            keras-hub backbone: then `model.encoder` is a `keras.Sequential`
            of it and `GlobalAveragePooling2D`. A `keras.applications`
            model gets [0, 1] images, not its `preprocess_input` scale: no
            matter when pretraining from scratch; for its pretrained weights
            put its preprocessing in front of it.
        projection_head: a layer mapping h to z; defaults to
            `ProjectionHead()` (2-layer non-linear, 128-d output).
        augmenter: a layer called as `augmenter(images, training=...)` that
            returns float32 [0, 1] views of shape (B, S, S, 3), e.g.
            `simclr_tf.SimCLRAugmentation(S)`. It gets the batches as they
            come: uint8 (TFDS, `simclr_tf.data`), float32 on the 0-255
            scale (`keras.utils.image_dataset_from_directory`) or float in
            [0, 1], read by the rule of `simclr_tf.augmentation`; our layers
            built with a `value_range` other than (0, 255) are refused, since
            export feeds uint8.
        temperature: NT-Xent temperature tau > 0.
        num_classes: when set, an online linear probe with this many classes
            trains on `stop_gradient(h)` whenever batches carry labels.
        probe_optimizer: the probe's optimiser (default Adam, 1e-3).

    Example:

    >>> import simclr_tf
    >>> model = simclr_tf.SimCLR(
    ...     encoder=simclr_tf.resnet(18, width_multiplier=0.125,
    ...                              input_shape=(16, 16, 3), small_images=True),
    ...     projection_head=simclr_tf.ProjectionHead(output_dim=16),
    ...     augmenter=simclr_tf.SimCLRAugmentation(16, seed=0),
    ...     temperature=0.5)
    >>> model.compile(optimizer="adam")
    >>> images = keras.random.uniform((8, 20, 20, 3), seed=0)
    >>> history = model.fit(images, batch_size=4, epochs=1, verbose=0)
    >>> sorted(history.history)
    ['contrastive_acc', 'contrastive_entropy', 'loss']

    Reference:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual
        Representations", ICML 2020.
    """

    def __init__(
        self,
        encoder,
        projection_head=None,
        augmenter=None,
        temperature=0.1,
        num_classes=None,
        probe_optimizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(encoder, keras.layers.Layer):
            raise ValueError(
                "`encoder` must be a Keras model or layer. "
                f"Received: encoder={encoder!r}"
            )
        if augmenter is None or not callable(augmenter):
            raise ValueError(
                "`augmenter` must be a callable layer such as "
                f"simclr_tf.SimCLRAugmentation. Received: augmenter={augmenter!r}"
            )
        # Training, evaluation, `call` and the exported uint8 endpoint all hand
        # the augmenter the batches as they come, uint8 included, so our
        # layers must read uint8 as [0, 255]: the default rule or (0, 255).
        # Only our layers, also inside a Sequential: Keras's image layers
        # have a `value_range` of their own meaning.
        declared = [layer for layer in _augmenter_parts(augmenter)
                    if isinstance(layer, BaseAugmentation)
                    and layer.value_range not in (None, (0.0, 255.0))]
        if declared:
            raise ValueError(
                "`augmenter` must read uint8 images as [0, 255]: SimCLR feeds it the batches as they come, "
                "in training, evaluation and export (uint8). Leave `value_range` unset (uint8, 0-255 floats "
                "and [0, 1] floats are all read correctly) or pass (0, 255), and convert other scales in "
                f"your input pipeline. Received: {declared[0].name}.value_range={declared[0].value_range}"
            )
        if (isinstance(temperature, (bool, np.bool_)) or not isinstance(temperature, numbers.Real)
                or not temperature > 0):
            raise ValueError(
                f"`temperature` must be a number > 0. Received: temperature={temperature!r}"
            )
        temperature = float(temperature)
        if num_classes is not None and (
            isinstance(num_classes, (bool, np.bool_))
            or not isinstance(num_classes, numbers.Integral)
            or num_classes < 2
        ):
            raise ValueError(
                "`num_classes` must be an integer >= 2 or None. "
                f"Received: num_classes={num_classes!r} (type {type(num_classes).__name__})"
            )
        num_classes = None if num_classes is None else int(num_classes)
        self.encoder = _pooled(encoder)
        self.projection_head = projection_head if projection_head is not None else ProjectionHead()
        self.augmenter = augmenter
        self.temperature = float(temperature)
        self.num_classes = num_classes

        feature_shape = tuple(self.encoder.output_shape)
        if not self.projection_head.built:
            self.projection_head.build(feature_shape)

        self.probe = None
        self.probe_optimizer = None
        if num_classes is not None:
            self.probe = keras.layers.Dense(num_classes, name="probe")
            self.probe.build(feature_shape)
            self.probe_optimizer = keras.optimizers.get(
                probe_optimizer or keras.optimizers.Adam(1e-3)
            )
            self.probe_optimizer.build(self.probe.trainable_variables)

        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.acc_tracker = keras.metrics.Mean(name="contrastive_acc")
        self.entropy_tracker = keras.metrics.Mean(name="contrastive_entropy")
        self.probe_loss_tracker = keras.metrics.Mean(name="probe_loss")
        self.probe_acc_tracker = keras.metrics.SparseCategoricalAccuracy(name="probe_acc")
        self.built = True

    # -- Keras plumbing -------------------------------------------------

    @property
    def metrics(self):
        trackers = [self.loss_tracker, self.acc_tracker, self.entropy_tracker]
        if self.probe is not None:
            trackers += [self.probe_loss_tracker, self.probe_acc_tracker]
        return trackers

    @property
    def contrastive_variables(self):
        """Trainable variables of encoder and head (what the optimiser moves)."""
        return self.encoder.trainable_variables + self.projection_head.trainable_variables

    def compile(self, optimizer="adam", **kwargs):
        for arg in ("loss", "metrics"):
            if kwargs.get(arg) is not None:
                raise ValueError(
                    f"SimCLR computes its own loss and metrics; do not pass `{arg}`. "
                    f"Received: {arg}={kwargs[arg]!r}"
                )
        for arg in ("weighted_metrics", "loss_weights"):
            if kwargs.get(arg) is not None:
                raise ValueError(
                    "SimCLR's contrastive loss has no per-example or per-output weights; "
                    f"do not pass `{arg}`. Received: {arg}={kwargs[arg]!r}"
                )
        super().compile(optimizer=optimizer, **kwargs)
        # Built now, on the contrastive variables only, so no variable is
        # created later inside a distributed step.
        if not self.optimizer.built:
            self.optimizer.build(self.contrastive_variables)

    def compile_from_config(self, config):
        # `.keras` loading calls this; our compile takes only the optimiser
        # and Keras's own options (no loss or metrics to restore).
        config = dict(config or {})
        optimizer = config.get("optimizer")
        if optimizer is None:
            return
        if isinstance(optimizer, dict):
            optimizer = keras.optimizers.deserialize(optimizer)
        options = {k: config[k] for k in ("run_eagerly", "steps_per_execution", "jit_compile")
                   if k in config}
        self.compile(optimizer=optimizer, **options)

    def _before_first_step(self):
        # Every layer is built in the constructor and the optimiser in
        # `compile`, so Keras's symbolic build is skipped (`SkipSymbolicBuild`
        # says why); an optimiser whose variables were reset is rebuilt here.
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.contrastive_variables)

    def call(self, images, training=False):
        images = _images(images)
        views = self.augmenter(images, training=False)
        return self.encoder(views, training=training)

    def embed(self, images, training=False):
        """Returns (h, z) for already-preprocessed float views."""
        h = self.encoder(images, training=training)
        return h, self.projection_head(h, training=training)

    # -- steps ----------------------------------------------------------

    def _check_batch(self, images):
        # One image has no negatives: NT-Xent is 0 with zero gradient, so
        # training would silently learn nothing. Checked when the batch size
        # is static (on one device `train_step` skips a dynamic last batch of
        # 1; a replica left with no images fails, docs/ERRORS.md).
        ctx = tf.distribute.get_replica_context()
        replicas = ctx.num_replicas_in_sync if ctx is not None else 1
        # A rank-3 input is one image (the augmenter batches it).
        batch = images.shape[0] if len(images.shape) == 4 else 1 if len(images.shape) == 3 else None
        if batch is not None and batch * replicas < 2:
            raise ValueError(
                "SimCLR needs a global batch of at least 2 images (NT-Xent takes its negatives "
                f"from the other images of the batch). Received: batch_size={batch * replicas}"
            )

    def make_views(self, images):
        """The two views of a batch: `augmenter(images, training=True)` twice,
        two independent draws. A documented hook: override it to make views
        differently (the ablation harness's one-branch SimCLR leaves the first
        view untransformed). Used by `train_step` and `test_step`."""
        return self.augmenter(images, training=True), self.augmenter(images, training=True)

    def _contrastive_step(self, images, training):
        self._check_batch(images)
        view1, view2 = self.make_views(images)
        h1, z1 = self.embed(view1, training=training)
        _, z2 = self.embed(view2, training=training)
        loss, stats = nt_xent(z1, z2, self.temperature, return_metrics=True)
        return loss, stats, h1

    def _probe_labels(self, labels):
        """The labels the probe trains on, or None (no probe, no labels).
        Checked at trace time: the probe needs integer class indices."""
        if self.probe is None or labels is None:
            return None
        dtype = keras.backend.standardize_dtype(labels.dtype)
        if not dtype.startswith(("int", "uint")):
            raise ValueError(
                "Probe labels must be integer class indices in [0, num_classes). "
                f"Received: labels.dtype={dtype}"
            )
        return labels

    def _probe_loss(self, h, labels):
        logits = ops.cast(self.probe(ops.stop_gradient(h)), "float32")
        loss = ops.mean(
            keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        )
        return loss, logits

    def _update_metrics(self, loss, stats, weight, probe=None):
        """`weight`: the global batch size, or 0 for a batch of fewer than
        2 images. The probe's loss is weighted by the replica's own batch
        (its mean over those images), its accuracy counts images."""
        self.loss_tracker.update_state(loss, sample_weight=weight)
        self.acc_tracker.update_state(stats["contrastive_acc"], sample_weight=weight)
        self.entropy_tracker.update_state(stats["contrastive_entropy"], sample_weight=weight)
        if probe is not None:
            probe_loss, labels, logits = probe
            self.probe_loss_tracker.update_state(
                probe_loss, sample_weight=ops.cast(ops.shape(logits)[0], "float32")
            )
            self.probe_acc_tracker.update_state(labels, logits)
        return self._logs(with_probe=probe is not None)

    def _logs(self, with_probe):
        # Probe keys only when a probe update ran (batches carry labels, known
        # at trace time): 0.0 for a probe that never ran reads as 0% accuracy.
        trackers = [self.loss_tracker, self.acc_tracker, self.entropy_tracker]
        if with_probe:
            trackers += [self.probe_loss_tracker, self.probe_acc_tracker]
        return {m.name: m.result() for m in trackers}

    @staticmethod
    def _step_outputs(logs):
        if _multi_worker():
            # Keras 3 reduces step outputs across workers with
            # strategy.reduce(MEAN, v, axis=0), which fails on scalars
            # ("Invalid reduction dimension 0 for input with 0 dimensions",
            # tensorflow/tensorflow#72388). A length-1 axis reduces to the
            # same scalar.
            logs = {k: ops.reshape(v, (1,)) for k, v in logs.items()}
        return logs

    @staticmethod
    def _batch_weight(images):
        n = _global_batch_size(images)
        return ops.where(n >= 2.0, n, ops.zeros_like(n))

    def _train_step(self, images, labels):
        variables = self.contrastive_variables
        with tf.GradientTape() as tape:
            loss, stats, h1 = self._contrastive_step(images, training=True)
            total = loss
            if self.losses:
                total = total + ops.cast(ops.sum(self.losses), "float32")
            # Gradients are summed across replicas: scale by 1 / replicas.
            scaled = self.optimizer.scale_loss(scale_loss_for_distribution(total))
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(grads, variables))

        probe = None
        if labels is not None:
            with tf.GradientTape() as probe_tape:
                probe_loss, logits = self._probe_loss(h1, labels)
                scaled_probe = scale_loss_for_distribution(probe_loss)
            probe_vars = self.probe.trainable_variables
            probe_grads = probe_tape.gradient(scaled_probe, probe_vars)
            self.probe_optimizer.apply_gradients(zip(probe_grads, probe_vars))
            probe = (probe_loss, labels, logits)
        return self._update_metrics(total, stats, self._batch_weight(images), probe)

    def train_step(self, data):
        images, labels = _unpack(data)
        labels = self._probe_labels(labels)
        static_batch = images.shape[0] if len(images.shape) == 4 else 1
        if static_batch is None and not tf.distribute.has_strategy():
            # A dynamic batch (a short last batch) of one image has no
            # negatives: skip the whole step, so it moves no weight, no BN
            # statistic and no optimiser state (Adam's moments, LARS's
            # decay), and adds nothing to the metrics. Under a strategy a
            # global batch of 1 leaves a replica without images, which fails
            # (docs/ERRORS.md); there it only gets metric weight 0.
            logs = tf.cond(
                ops.shape(images)[0] >= 2,
                lambda: self._train_step(images, labels),
                lambda: self._logs(with_probe=labels is not None),
            )
        else:
            logs = self._train_step(images, labels)
        return self._step_outputs(logs)

    def test_step(self, data):
        images, labels = _unpack(data)
        labels = self._probe_labels(labels)
        loss, stats, _ = self._contrastive_step(images, training=False)
        if self.losses:  # as in train_step, so `val_loss` compares with `loss`
            loss = loss + ops.cast(ops.sum(self.losses), "float32")
        probe = None
        if labels is not None:
            h = self.encoder(self.augmenter(images, training=False), training=False)
            probe_loss, logits = self._probe_loss(h, labels)
            probe = (probe_loss, labels, logits)
        return self._step_outputs(
            self._update_metrics(loss, stats, self._batch_weight(images), probe)
        )

    # -- evaluation randomness -----------------------------------------

    @contextlib.contextmanager
    def _validation_randomness(self):
        """Evaluation draws its views from a fixed state of every seed
        generator of the augmenter, (seed, 2**30) onwards, then puts back the
        training state: repeated `evaluate` calls see the same views, and
        validation inside `fit` consumes none of the training draws."""
        generators = _seed_generators(self.augmenter)
        saved = [np.array(keras.ops.convert_to_numpy(g.state.value)) for g in generators]
        try:
            for generator, state in zip(generators, saved):
                generator.state.assign(
                    np.array([state[0], _VALIDATION_COUNTER], dtype=state.dtype)
                )
            yield
        finally:
            for generator, state in zip(generators, saved):
                generator.state.assign(state)

    def evaluate(self, *args, **kwargs):
        with self._validation_randomness():
            return super().evaluate(*args, **kwargs)

    def test_on_batch(self, *args, **kwargs):
        with self._validation_randomness():
            return super().test_on_batch(*args, **kwargs)

    # -- serialisation --------------------------------------------------

    def get_config(self):
        config = {
            "name": self.name,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "projection_head": keras.saving.serialize_keras_object(self.projection_head),
            "augmenter": keras.saving.serialize_keras_object(self.augmenter),
            "temperature": self.temperature,
            "num_classes": self.num_classes,
        }
        if self.probe_optimizer is not None:
            config["probe_optimizer"] = keras.saving.serialize_keras_object(
                self.probe_optimizer
            )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "projection_head", "augmenter", "probe_optimizer"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
