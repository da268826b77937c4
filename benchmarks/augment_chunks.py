"""Would cutting the batch into chunks make SimCLRAugmentation fast enough at 96 and 224 px?

Issue #3 asks for one vectorised pass over the batch (no loop over images or
chunks of them) and for 3x keras-cv at 96 px and 2x the authors' per-image
`tf.data` recipe. One hypothesis for missing those targets was cache
locality: a per-image pipeline keeps one image (110 KB at 96 px) in cache,
while a pass over 256 images streams 28 MB per float tensor. This measures
the whole layer applied to chunks of 16, 32 or 64 images (a Python loop over
the chunks inside one `tf.function`, so XLA compiles each chunk's graph),
side by side with `benchmarks/augment.py`'s columns (its `measure`: two
interleaved rounds, best of two timed runs each). It is a measurement, not
an option of the layer.

Run from the repo root, with keras-cv installed for its column::

    python benchmarks/augment_chunks.py 96:96 224:256
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as the simclr-tf entry points set it
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import augment  # noqa: E402
from simclr_tf.augmentation import SimCLRAugmentation  # noqa: E402

BATCH = 256


def chunked(size, blur, images, chunk, jit):
    layer = SimCLRAugmentation(size, blur=blur, seed=0)

    def views(x):
        return tf.concat([layer(x[i:i + chunk], training=True) for i in range(0, BATCH, chunk)], 0)

    fn = tf.function(views, jit_compile=jit)
    return lambda: fn(images).numpy()


def main(settings):
    for size, source in settings:
        blur = size > 32
        # The same batch as augment.runners makes for its columns.
        images = tf.constant(np.random.default_rng(0).integers(0, 256, (BATCH, source, source, 3), dtype=np.uint8))
        extra = {f"ours/XLA chunk{chunk}": chunked(size, blur, images, chunk, True) for chunk in (16, 32, 64)}
        extra["ours/tf.function chunk32"] = chunked(size, blur, images, 32, False)
        rates = augment.measure(size, source, blur, BATCH, steps=2 if size > 96 else 4, repeats=2, rounds=2,
                                extra=extra)
        keras_cv, authors = rates.get("keras-cv"), rates["authors/tf.data"]
        for name, rate in rates.items():
            if rate is None:
                continue
            versus = f"vs keras-cv {rate / keras_cv:4.2f}x  " if keras_cv else ""
            print(f"{size} px from {source}: {name:26s} {rate:7.0f} images/s  "
                  f"{versus}vs authors {rate / authors:4.2f}x", flush=True)


if __name__ == "__main__":
    main([tuple(int(v) for v in arg.split(":")) for arg in (sys.argv[1:] or ["96:96", "224:256"])])
