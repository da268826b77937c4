"""Every private Keras (and `tf.distribute`) hook simclr_tf relies on, in one place.

Each hook says why public API does not serve, and `tests/test_compat.py` has a
test per hook that fails when Keras changes it, so an upgrade breaks there
first, with the hook's name, instead of deep inside `fit`. No other module
of simclr_tf imports `keras.src` or touches a private Keras attribute.

Hooks used elsewhere and tested there too (`simclr_tf/optimizers.py`, LARS):
`Optimizer._var_key`, `Optimizer._use_weight_decay` and the override of
`Optimizer._apply_weight_decay`.
"""

import keras
import tensorflow as tf

# The name Keras gives the state variable of every `keras.random.SeedGenerator`.
# `save_weights` does not write these states, so `ResumableBackup` saves them
# itself and finds them among `model.variables` by this name (no public API
# lists a model's seed generators).
SEED_STATE_NAME = "seed_generator_state"


def scale_loss_for_distribution(loss):
    """`loss / num_replicas_in_sync` under a `tf.distribute` strategy.

    Keras sums gradients across replicas in `apply_gradients`, so a per-replica
    mean loss must be divided by the number of replicas to give the gradient
    of the global mean. This is what `keras.src.losses.loss.
    scale_loss_for_distribution` does, written with public API only.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1:
        loss = keras.ops.multiply(loss, keras.ops.cast(1.0 / replicas, loss.dtype))
    return loss


def flatten_layers(layer):
    """The layer and every layer nested in it, at any depth, each once.

    `Layer._flatten_layers` is how Keras itself walks sub-layers held as
    attributes (also inside lists); public API offers only `Model.layers`,
    which is one level deep and absent on plain layers.
    """
    return list(layer._flatten_layers(include_self=True, recursive=True))  # noqa: SLF001


def tracked_seed_generators(layer):
    """The `keras.random.SeedGenerator`s Keras tracks on `layer` itself
    (`Layer._seed_generators`), an empty list when it tracks none."""
    return list(getattr(layer, "_seed_generators", None) or [])


def in_multi_worker_mode(strategy):
    """Whether `strategy` spans several workers (not just several devices).

    `MultiWorkerMirroredStrategy` on one worker behaves like a local strategy;
    Keras 3 tells the two apart with this same private `tf.distribute` call
    before it reduces step outputs across workers, and so must we to work
    around that reduction (`SimCLR._step_outputs`).
    """
    return strategy.extended._in_multi_worker_mode()  # noqa: SLF001


def set_initial_epoch(model, epoch):
    """Makes the next `model.fit` start at `epoch`, or clears it (None).

    `Model._initial_epoch` is the hook Keras's own `BackupAndRestore` sets on
    resume: `fit` reads it (over its `initial_epoch` argument) and never
    clears it, so a callback that sets it must reset it at the end of
    training, or a later `fit` would skip that many epochs.
    """
    model._initial_epoch = epoch  # noqa: SLF001


class SkipSymbolicBuild:
    """Mixin for a `keras.Model` that builds every layer in its constructor.

    Keras 3's TensorFlow trainer calls `_maybe_symbolic_build` at the start of
    `fit`, `evaluate`, `predict`, `train_on_batch` and `test_on_batch`, to
    build unbuilt layers and metrics from one data batch. Under
    `MultiWorkerMirroredStrategy` that reads the batch through a cross-worker
    MEAN all-reduce, which fails on uint8 images ("Value for attr 'T' of uint8
    is not in the list of allowed values"). A model with nothing left to build
    skips it; `_before_first_step` runs there instead (no public hook runs at
    that point).
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        self._before_first_step()

    def _before_first_step(self):
        """What the model still needs before its first step; nothing here."""
