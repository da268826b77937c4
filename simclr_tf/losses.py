"""The NT-Xent contrastive loss (normalised temperature-scaled cross entropy).

For N images seen as two views each, ``z1[i]`` and ``z2[i]`` are a positive
pair; every other of the 2N views is a negative (2N - 2 negatives per anchor).
The loss of anchor i with positive j is

    l(i, j) = -log( exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau) )

and `nt_xent` returns its mean over all 2N anchors, as the paper defines it.
The authors' TF2 code sums the two directions' means instead of averaging
them, so its loss is exactly twice ours (same gradients up to that factor).

Under a `tf.distribute` replica context with more than one replica, the
negatives are the *global* batch: each replica all-gathers every replica's z
(the gather passes gradients back to the replica that produced them) and its
positives sit after the preceding replicas' images in the gathered batch.
The returned value is the sum over the replica's own anchors divided by the
global number of anchors and multiplied by the number of replicas, so its
mean across replicas (what Keras's distributed step takes) is the
global-batch loss, also when replicas hold different numbers of images (an
uneven last batch); with equal shares it is the mean over the replica's own
anchors. The metrics are weighted the same way. (So the gradients are the
global loss's in any Keras step; the *logged* loss is exact for `SimCLR`,
whose tracker averages replicas, while stock `fit` with `NTXentLoss` in
`compile` weights replicas by their batch sizes, which is exact only for
even shares.)

The similarity logits, the softmax and the loss are computed in float32 even
when z arrives in float16 or bfloat16 (mixed precision).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from simclr_tf.validation import is_real

LARGE_NUM = 1e9


def _check_temperature(temperature):
    """Python and NumPy numbers must be > 0; a tensor (a traced value) passes."""
    if is_real(temperature):
        if not temperature > 0:
            raise ValueError(
                f"`temperature` must be > 0. Received: temperature={temperature}"
            )
    elif isinstance(temperature, (bool, np.bool_)) or not hasattr(temperature, "dtype"):
        raise ValueError(
            f"`temperature` must be a number > 0. Received: temperature={temperature!r}"
        )


def _check_pair(z1, z2):
    if len(z1.shape) != 2 or len(z2.shape) != 2:
        raise ValueError(
            "`z1` and `z2` must be rank-2 (batch, dim) projections. "
            f"Received: z1.shape={tuple(z1.shape)}, z2.shape={tuple(z2.shape)}"
        )
    if z1.shape[0] == 0 or z2.shape[0] == 0:
        raise ValueError(
            f"`z1` and `z2` must not be empty. Received: z1.shape={tuple(z1.shape)}, "
            f"z2.shape={tuple(z2.shape)}"
        )
    if z1.shape[0] is not None and z2.shape[0] is not None and z1.shape[0] != z2.shape[0]:
        raise ValueError(
            "`z1` and `z2` must have the same batch size (z2[i] is the positive of z1[i]). "
            f"Received: z1.shape={tuple(z1.shape)}, z2.shape={tuple(z2.shape)}"
        )
    if z1.shape[-1] is not None and z2.shape[-1] is not None:
        if z1.shape[-1] != z2.shape[-1]:
            raise ValueError(
                "`z1` and `z2` must have the same feature size. "
                f"Received: z1.shape={tuple(z1.shape)}, "
                f"z2.shape={tuple(z2.shape)}"
            )


def _gather_global(z1, z2):
    """All-gathers z across replicas; returns (z1_all, z2_all, offset)."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return z1, z2, 0
    z1_all = ctx.all_gather(z1, axis=0)
    z2_all = ctx.all_gather(z2, axis=0)
    # A global batch that does not divide evenly gives replicas different
    # local batches, so the offset is the sum of the preceding replicas'
    # sizes, not replica_id * local_batch.
    sizes = ctx.all_gather(ops.reshape(ops.shape(z1)[0], (1,)), axis=0)
    before = ops.arange(ctx.num_replicas_in_sync) < ctx.replica_id_in_sync_group
    offset = ops.sum(ops.where(before, sizes, ops.zeros_like(sizes)))
    return z1_all, z2_all, offset


def nt_xent_logits(z1, z2, temperature=0.1):
    """Similarity logits and positive indices behind `nt_xent`.

    Returns:
        `(logits, labels)`: logits of shape (2n, 2N) where n is the local and
        N the global batch; the row of each anchor holds its similarity to
        every global view except itself (masked to a large negative value);
        `labels[i]` is the column of anchor i's positive.
    """
    z1 = ops.normalize(ops.cast(z1, "float32"), axis=-1)
    z2 = ops.normalize(ops.cast(z2, "float32"), axis=-1)
    z1_all, z2_all, offset = _gather_global(z1, z2)
    n = ops.shape(z1)[0]
    n_all = ops.shape(z1_all)[0]
    local_ids = ops.arange(n) + offset
    self_mask = ops.one_hot(local_ids, n_all) * LARGE_NUM

    inv_t = 1.0 / temperature
    logits_aa = ops.matmul(z1, ops.transpose(z1_all)) * inv_t - self_mask
    logits_bb = ops.matmul(z2, ops.transpose(z2_all)) * inv_t - self_mask
    logits_ab = ops.matmul(z1, ops.transpose(z2_all)) * inv_t
    logits_ba = ops.matmul(z2, ops.transpose(z1_all)) * inv_t
    # Columns: [the other view's 2nd half | the same view's half]. For anchor
    # z1[i] the positive z2[i] sits in column local_ids[i] of the first block.
    logits = ops.concatenate(
        [
            ops.concatenate([logits_ab, logits_aa], axis=1),
            ops.concatenate([logits_ba, logits_bb], axis=1),
        ],
        axis=0,
    )
    labels = ops.concatenate([local_ids, local_ids], axis=0)
    return logits, labels


def nt_xent(z1, z2, temperature=0.1, return_metrics=False):
    """NT-Xent loss averaged over all 2N anchors.

    Args:
        z1: (batch, dim) projections of the first views.
        z2: (batch, dim) projections of the second views; `z2[i]` is the
            positive of `z1[i]`.
        temperature: softmax temperature tau > 0 (0.1 in the paper at
            ImageNet scale, 0.5 for CIFAR-10).
        return_metrics: when True also return a dict with
            `contrastive_acc` (fraction of anchors whose positive is the
            arg-max of the 2N - 1 candidates) and `contrastive_entropy`
            (mean entropy of the softmax over candidates).

    Returns:
        A float32 scalar (and the metrics dict when asked).

    Example:

    >>> z = keras.random.normal((4, 8), seed=1)
    >>> float(nt_xent(z, z, temperature=0.5)) > 0
    True

    Reference:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual
        Representations", ICML 2020, eq. (1).
    """
    _check_temperature(temperature)
    _check_pair(z1, z2)
    logits, labels = nt_xent_logits(z1, z2, temperature)
    per_anchor = keras.losses.sparse_categorical_crossentropy(
        labels, logits, from_logits=True
    )
    # The replica's share of the global mean (module docstring); on one
    # device this is the plain mean.
    ctx = tf.distribute.get_replica_context()
    replicas = ctx.num_replicas_in_sync if ctx is not None else 1

    def mean(values):
        if replicas == 1:
            return ops.mean(values)
        return ops.sum(values) * (replicas / ops.cast(ops.shape(logits)[1], "float32"))

    loss = mean(per_anchor)
    if not return_metrics:
        return loss
    hits = ops.equal(ops.argmax(logits, axis=-1), ops.cast(labels, "int64"))
    probs = ops.softmax(logits, axis=-1)
    entropy = -ops.sum(probs * ops.log(ops.maximum(probs, 1e-12)), axis=-1)
    metrics = {
        "contrastive_acc": mean(ops.cast(hits, "float32")),
        "contrastive_entropy": mean(entropy),
    }
    return loss, metrics


@keras.saving.register_keras_serializable(package="simclr_tf")
class NTXentLoss(keras.losses.Loss):
    """Keras loss wrapper of `nt_xent`.

    `y_true` is ignored (pairs are positional); `y_pred` is the two views'
    projections concatenated on the batch axis, `[z1; z2]`, shape (2N, dim).

    Args:
        temperature: softmax temperature tau > 0.

    Example:

    >>> loss = NTXentLoss(temperature=0.5)
    >>> z = keras.random.normal((8, 16), seed=0)
    >>> float(loss(None, z)) > 0
    True
    """

    def __init__(self, temperature=0.1, name="nt_xent", **kwargs):
        kwargs.setdefault("reduction", None)
        super().__init__(name=name, **kwargs)
        _check_temperature(temperature)
        self.temperature = float(temperature)

    def __call__(self, y_true, y_pred, sample_weight=None):
        del y_true, sample_weight
        y_pred = ops.convert_to_tensor(y_pred)
        if len(y_pred.shape) != 2:
            raise ValueError(
                "`y_pred` must be (2N, dim): the two views' projections "
                f"concatenated on the batch axis. Received: shape={tuple(y_pred.shape)}"
            )
        if y_pred.shape[0] is not None and y_pred.shape[0] % 2:
            raise ValueError(
                "`y_pred` must be (2N, dim): the two views' projections concatenated on the "
                f"batch axis, an even number of rows. Received: shape={tuple(y_pred.shape)}"
            )
        z1, z2 = ops.split(y_pred, 2, axis=0)
        return nt_xent(z1, z2, self.temperature)

    def call(self, y_true, y_pred):
        return self(y_true, y_pred)

    def get_config(self):
        return {"name": self.name, "temperature": self.temperature}
