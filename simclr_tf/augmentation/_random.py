"""Counter-based random numbers that are bit-identical eagerly, in graphs and under XLA.

Why not ``keras.random.uniform`` directly: on the TensorFlow backend it calls
``tf.random.stateless_uniform``, whose XLA lowering produces different numbers
from the TensorFlow kernel for the same seed, so a seeded augmentation would
give one view eagerly and another under ``jit_compile=True``. The state still
lives in a ``keras.random.SeedGenerator`` (one per layer, created in
``__init__``; each draw advances it, so successive calls get fresh numbers),
but the bits come from an integer hash of (seed, element index) written with
``keras.ops`` (``lowbias32``, C. Wellons' 32-bit avalanche hash), which every
backend and XLA evaluate identically.
"""

import math

import keras
from keras import ops

_GOLDEN = 0x9E3779B9


def _hash(x):
    x = ops.bitwise_xor(x, ops.right_shift(x, 16))
    x = x * ops.cast(0x7FEB352D, "uint32")
    x = ops.bitwise_xor(x, ops.right_shift(x, 15))
    x = x * ops.cast(0x846CA68B, "uint32")
    return ops.bitwise_xor(x, ops.right_shift(x, 16))


def _replica_id():
    """This replica's index in its `tf.distribute` sync group, or None.

    None outside a multi-replica step (and on other backends), so a single
    device draws exactly what it always drew.
    """
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context.replica_id_in_sync_group


def _bits(seed_generator, shape):
    seed = ops.cast(seed_generator.next(), "uint32")
    count = 1
    for dim in shape:
        count = count * dim
    index = ops.reshape(ops.cast(ops.arange(count), "uint32"), shape)
    key0 = _hash(seed[0] + ops.cast(_GOLDEN, "uint32"))
    key1 = _hash(seed[1] ^ ops.cast(0x85EBCA6B, "uint32"))
    replica = _replica_id()
    if replica is not None:
        # Every replica reads the same generator state; without this, image
        # i of every replica's batch would get the same crop, flip, jitter
        # and blur.
        key1 = _hash(key1 + ops.cast(replica, "uint32") * ops.cast(0x632BE5AB, "uint32") + ops.cast(1, "uint32"))
    return _hash(_hash(index + key0) ^ key1)


def _materialize(x):
    # A tiny matrix product that XLA keeps as a separate kernel. Without it XLA
    # fuses the integer hash of per-image parameters into every consumer loop,
    # recomputing it for every pixel (measured: colour jitter 13x slower).
    flat = ops.reshape(x, (-1, 1))
    flat = ops.matmul(ops.concatenate([flat, ops.zeros_like(flat)], axis=1), ops.convert_to_tensor([[1.0], [0.0]]))
    return ops.reshape(flat, ops.shape(x))


def uniform(seed_generator, shape, minval=0.0, maxval=1.0):
    """Uniform float32 in ``[minval, maxval)``; ``shape`` may hold dynamic dims.

    Meant for per-image parameters (small tensors): the result is materialised
    once rather than recomputed inside the loops that broadcast it.
    """
    unit = ops.cast(ops.right_shift(_bits(seed_generator, shape), 8), "float32") * (1.0 / (1 << 24))
    return _materialize(minval + unit * (maxval - minval))


def normal(seed_generator, shape):
    """Standard normal float32 (Box-Muller)."""
    u1 = (ops.cast(ops.right_shift(_bits(seed_generator, shape), 8), "float32") + 0.5) * (1.0 / (1 << 24))
    u2 = ops.cast(ops.right_shift(_bits(seed_generator, shape), 8), "float32") * (1.0 / (1 << 24))
    return ops.sqrt(-2.0 * ops.log(u1)) * ops.cos((2.0 * math.pi) * u2)
