"""Where the augmentation's time goes: each stage of SimCLRAugmentation alone.

Times, at batch 256, the whole ``SimCLRAugmentation`` (blur on) on uint8
sources, ``RandomResizedCrop(flip_rate=0.5)`` on the same sources, and
``ColorDistortion(1.0)`` and ``RandomGaussianBlur(rate=0.5)`` on float views
of the output size, under ``tf.function`` and XLA, best of 3 calls after a
warm-up (ms per batch). One process, so stages compare side by side.

Run from the repo root::

    python benchmarks/augment_stages.py
"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import simclr_tf  # noqa: E402  (sets TF_ENABLE_ONEDNN_OPTS before TensorFlow loads)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from simclr_tf import augmentation  # noqa: E402

BATCH = 256


def best_ms(fn, x, repeats=3):
    fn(x).numpy()  # warm-up / compile
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x).numpy()
        best = min(best, time.perf_counter() - start)
    return 1000 * best


def main():
    rng = np.random.default_rng(0)
    print("| size | mode | whole layer | crop + flip | colour distortion | blur (p = 0.5) |")
    print("|---|---|---|---|---|---|")
    for out, src in ((96, 96), (224, 256)):
        raw = tf.constant(rng.integers(0, 256, (BATCH, src, src, 3), dtype=np.uint8))
        views = tf.constant(rng.random((BATCH, out, out, 3), dtype=np.float32))
        stages = (
            (simclr_tf.SimCLRAugmentation(out, seed=0, blur=True), raw),
            (augmentation.RandomResizedCrop(out, flip_rate=0.5, seed=0), raw),
            (augmentation.ColorDistortion(1.0, seed=0), views),
            (augmentation.RandomGaussianBlur(sigma_range=(0.1, 2.0), rate=0.5, seed=0), views),
        )
        for mode, jit in (("tf.function", False), ("XLA", True)):
            times = [best_ms(tf.function(lambda x, layer=layer: layer(x, training=True), jit_compile=jit), x)
                     for layer, x in stages]
            print(f"| {out} px from {src} | {mode} | " + " | ".join(f"{t:.0f}" for t in times) + " |", flush=True)


if __name__ == "__main__":
    main()
