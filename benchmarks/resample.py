"""Crop-and-resize: dense interpolation matrices vs the block-banded form.

Times ``simclr_tf.augmentation.crop.crop_resize`` at batch 256 (uint8 input,
bicubic, antialias, per-image boxes and flips) with ``block_size=0`` (dense)
and with blocks of 16, 32 and 48 rows, under ``tf.function`` and XLA, all in
one process and interleaved round-robin (dense, s=16, s=32, s=48, dense, ...)
so background load hits them alike; each gets one warm-up (compile) and REPS
timed calls. Reported: best wall time and best process CPU time per variant,
with the dense/banded ratio. Only ratios mean anything on a shared machine.

Run from the repo root::

    python benchmarks/resample.py [threads] [blocks...]

threads: TF intra-op threads (0 = TensorFlow's default).
"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as `import simclr_tf` sets it
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 0
BLOCKS = [int(v) for v in sys.argv[2:]] or [16, 32, 48]
if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)

import keras  # noqa: E402

from simclr_tf.augmentation import crop as crop_lib  # noqa: E402

BATCH = 256
REPS = 3


def row(name, args, make, variants=None):
    variants = variants or [0] + BLOCKS
    for mode in ("tf.function", "xla"):
        fns = {bs: tf.function(make(bs), jit_compile=mode == "xla") for bs in variants}
        wall = {bs: float("inf") for bs in variants}
        cpu = dict(wall)
        for bs in variants:
            fns[bs](*args).numpy()  # warm-up / compile
        for _ in range(REPS):
            for bs in variants:
                t, c = time.perf_counter(), time.process_time()
                fns[bs](*args).numpy()
                wall[bs] = min(wall[bs], time.perf_counter() - t)
                cpu[bs] = min(cpu[bs], time.process_time() - c)
        for label, res in (("wall", wall), ("cpu", cpu)):
            cells = " ".join(f"s={bs}: {1000 * res[bs]:7.1f} ({res[0] / res[bs]:.2f}x)" for bs in variants[1:])
            print(f"{name:24s} {mode:11s} {label:4s} dense {1000 * res[0]:7.1f} | {cells}", flush=True)


rng = np.random.default_rng(0)
gen = keras.random.SeedGenerator(0)
for side, out in [(32, 32), (96, 96), (256, 224)]:
    images = tf.constant(rng.integers(0, 256, (BATCH, side, side, 3)).astype("uint8"))
    boxes = tuple(tf.constant(np.asarray(b)) for b in crop_lib.sample_boxes(gen, BATCH, side, side))
    flip = tf.constant(rng.random(BATCH) < 0.5)
    make = lambda bs, out=out: (lambda x, y0, x0, h, w, f: crop_lib.crop_resize(
        x, (y0, x0, h, w), (out, out), "bicubic", True, f, block_size=bs))
    row(f"crop u8 {side}->{out}", (images, *boxes, flip), make)
