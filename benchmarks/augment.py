"""Augmentation throughput: simclr_tf vs keras-cv 0.9.0 vs the authors' per-image recipe.

Run (keras-cv 0.9.0 is in ``requirements-dev.txt``; without it the keras-cv
column is skipped)::

    .venv/bin/python benchmarks/augment.py

It measures images/s at batch 256 for three settings, all in one process so the
ratios are measured side by side on the same (shared, noisy) machine:

* 32 px from 32x32 sources, no blur (CIFAR-10),
* 96 px from 96x96 sources, with blur (STL-10),
* 224 px from 256x256 sources, with blur (ImageNet-sized).

Columns:

* ``ours/tf.function`` and ``ours/XLA``: ``SimCLRAugmentation`` on a uint8 batch.
* ``keras-cv``: keras-cv 0.9.0's closest pipeline (RandomFlip,
  RandomCropAndResize, RandomApply of RandomColorJitter and Grayscale,
  RandomApply of RandomGaussianBlur) in a ``tf.function``.
* ``authors/tf.data``: the paper's recipe with ``tf.image`` ops applied per
  image inside ``tf.data.Dataset.map`` (AUTOTUNE parallelism), as the authors'
  code runs it (their ``data_util.py``, with blur also per image).

Each number is the best of ``--rounds`` x ``--repeats`` timed runs of
``--steps`` batches after a warm-up, to damp the noise of a shared machine;
the columns take turns round by round, so a burst of load does not land on
one column only.
"""

import argparse
import functools
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as the simclr-tf entry points set it

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SETTINGS = ((32, 32, False), (96, 96, True), (224, 256, True))


# The authors' per-image recipe (google-research/simclr, tf2/data_util.py).
def _random_apply(func, p, x):
    return tf.cond(tf.random.uniform([]) < p, lambda: func(x), lambda: x)


def _color_jitter_rand(image, strength):
    brightness, contrast, saturation, hue = 0.8 * strength, 0.8 * strength, 0.8 * strength, 0.2 * strength

    def apply_transform(i, x):
        def brightness_foo():
            factor = tf.random.uniform([], max(1.0 - brightness, 0.0), 1.0 + brightness)
            return x * factor

        def contrast_foo():
            return tf.image.random_contrast(x, lower=1 - contrast, upper=1 + contrast)

        def saturation_foo():
            return tf.image.random_saturation(x, lower=1 - saturation, upper=1 + saturation)

        def hue_foo():
            return tf.image.random_hue(x, max_delta=hue)

        return tf.cond(
            i < 2,
            lambda: tf.cond(i < 1, brightness_foo, contrast_foo),
            lambda: tf.cond(i < 3, saturation_foo, hue_foo),
        )

    perm = tf.random.shuffle(tf.range(4))
    for i in range(4):
        image = tf.clip_by_value(apply_transform(perm[i], image), 0.0, 1.0)
    return image


def _to_grayscale(image):
    return tf.tile(tf.image.rgb_to_grayscale(image), [1, 1, 3])


def _gaussian_blur(image, kernel_size, sigma):
    radius = kernel_size // 2
    kernel_size = radius * 2 + 1
    x = tf.cast(tf.range(-radius, radius + 1), tf.float32)
    blur_filter = tf.exp(-(x**2) / (2.0 * sigma**2))
    blur_filter /= tf.reduce_sum(blur_filter)
    blur_v = tf.tile(tf.reshape(blur_filter, [kernel_size, 1, 1, 1]), [1, 1, 3, 1])
    blur_h = tf.tile(tf.reshape(blur_filter, [1, kernel_size, 1, 1]), [1, 1, 3, 1])
    image = image[None]
    blurred = tf.nn.depthwise_conv2d(image, blur_h, strides=[1, 1, 1, 1], padding="SAME")
    blurred = tf.nn.depthwise_conv2d(blurred, blur_v, strides=[1, 1, 1, 1], padding="SAME")
    return blurred[0]


def _crop_and_resize(image, size):
    bbox = tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4])
    begin, crop_size, _ = tf.image.sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=bbox,
        min_object_covered=0.1,
        aspect_ratio_range=(3.0 / 4, 4.0 / 3.0),
        area_range=(0.08, 1.0),
        max_attempts=100,
        use_image_if_no_bounding_boxes=True,
    )
    oy, ox, _ = tf.unstack(begin)
    h, w, _ = tf.unstack(crop_size)
    image = tf.image.crop_to_bounding_box(image, oy, ox, h, w)
    return tf.image.resize([image], [size, size], method="bicubic")[0]


def authors_view(image, size, blur, strength=1.0):
    """One SimCLR view of one uint8 image, as the authors' tf.data code makes it."""
    image = tf.image.convert_image_dtype(image, tf.float32)
    image = _crop_and_resize(image, size)
    image = tf.image.random_flip_left_right(image)
    image = _random_apply(functools.partial(_color_jitter_rand, strength=strength), 0.8, image)
    image = _random_apply(_to_grayscale, 0.2, image)
    if blur:
        sigma = tf.random.uniform([], 0.1, 2.0)
        image = _random_apply(lambda x: _gaussian_blur(x, size // 10, sigma), 0.5, image)
    image = tf.reshape(image, [size, size, 3])
    return tf.clip_by_value(image, 0.0, 1.0)


def keras_cv_pipeline(size, blur, strength=1.0):
    """keras-cv 0.9.0's closest equivalent of the recipe (raises ImportError without it)."""
    import keras
    import keras_cv

    layers = [
        keras_cv.layers.RandomFlip("horizontal"),
        keras_cv.layers.RandomCropAndResize(
            target_size=(size, size), crop_area_factor=(0.08, 1.0), aspect_ratio_factor=(3 / 4, 4 / 3)
        ),
        keras_cv.layers.RandomApply(
            keras_cv.layers.RandomColorJitter(
                value_range=(0, 1),
                brightness_factor=0.8 * strength,
                contrast_factor=0.8 * strength,
                saturation_factor=(0.5 - 0.4 * strength, 0.5 + 0.4 * strength),
                hue_factor=0.2 * strength,
            ),
            rate=0.8,
        ),
        keras_cv.layers.RandomApply(keras_cv.layers.Grayscale(output_channels=3), rate=0.2),
    ]
    if blur:
        kernel = 2 * ((size // 10) // 2) + 1
        layers.append(
            keras_cv.layers.RandomApply(keras_cv.layers.RandomGaussianBlur(kernel, factor=(0.1, 2.0)), rate=0.5)
        )
    return keras.Sequential(layers)


def _time_rate(run_batch, batch, steps):
    start = time.perf_counter()
    for _ in range(steps):
        run_batch()
    return batch * steps / (time.perf_counter() - start)


def runners(size, source, blur, batch):
    """Name -> a callable producing one batch, for each column (None: keras-cv missing)."""
    from simclr_tf.augmentation import SimCLRAugmentation

    images = tf.constant(np.random.default_rng(0).integers(0, 256, (batch, source, source, 3), dtype=np.uint8))
    out = {}
    for name, jit in (("ours/tf.function", False), ("ours/XLA", True)):
        layer = SimCLRAugmentation(size, blur=blur, seed=0)
        fn = tf.function(lambda x, layer=layer: layer(x, training=True), jit_compile=jit)
        out[name] = lambda fn=fn: fn(images).numpy()
    try:
        pipeline = keras_cv_pipeline(size, blur)
        floats = tf.cast(images, tf.float32) / 255.0
        fn = tf.function(lambda x: pipeline(x, training=True))
        out["keras-cv"] = lambda: fn(floats).numpy()
    except ImportError:
        out["keras-cv"] = None
    dataset = (
        tf.data.Dataset.from_tensors(images)
        .unbatch()
        .repeat()
        .map(functools.partial(authors_view, size=size, blur=blur), num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch)
        .prefetch(2)
    )
    out["authors/tf.data"] = _Pipeline(dataset)
    return out


class _Pipeline:
    """A tf.data column: a fresh iterator per round, warmed past its buffers.

    Each round starts a new iterator and pulls 4 batches untimed (the prefetch
    buffer of 2 and the batch in flight), so no timed run starts with batches
    produced before its clock started, or while another column was timed; the
    previous round's iterator is dropped, so its threads do not run during
    the other columns' turns.
    """

    def __init__(self, dataset, warmup=4):
        self.dataset, self.warmup, self.iterator = dataset, warmup, None

    def start_round(self):
        self.iterator = iter(self.dataset)
        for _ in range(self.warmup):
            next(self.iterator)

    def end_round(self):
        self.iterator = None

    def __call__(self):
        return next(self.iterator).numpy()


def measure(size, source, blur, batch, steps, repeats, rounds=1, extra=None):
    """Best images/s of each column over ``rounds`` x ``repeats`` timed runs.

    The columns take turns round by round (ours, ours, keras-cv, authors,
    ours, ...), so a burst of load on the shared machine hits all of them
    rather than one column's whole measurement. keras-cv runs half the steps
    (it is the slowest).
    """
    columns = runners(size, source, blur, batch)
    columns.update(extra or {})  # name -> callable making one batch, after the usual columns
    for entry in columns.values():
        if entry is not None and not isinstance(entry, _Pipeline):
            entry()  # tracing / compilation
    rates = {name: (None if entry is None else 0.0) for name, entry in columns.items()}
    for _ in range(rounds):
        for name, entry in columns.items():
            if entry is None:
                continue
            n = max(1, steps // 2) if name == "keras-cv" else steps
            if isinstance(entry, _Pipeline):
                entry.start_round()
            for _ in range(repeats):
                rates[name] = max(rates[name], _time_rate(entry, batch, n))
            if isinstance(entry, _Pipeline):
                entry.end_round()
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4, help="batches per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is kept")
    parser.add_argument("--sizes", type=int, nargs="*", default=[s for s, _, _ in SETTINGS])
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds in which the columns take turns; each column keeps its best run")
    args = parser.parse_args()
    columns = ("ours/tf.function", "ours/XLA", "keras-cv", "authors/tf.data")
    print(f"batch {args.batch}; images/s (best of {args.rounds} rounds x {args.repeats} runs x {args.steps} batches, "
          "columns interleaved); ratio = ours/XLA / column")
    print("| setting | " + " | ".join(columns) + " | ours/XLA vs keras-cv | ours/XLA vs authors | "
          "ours/tf.function vs keras-cv | ours/tf.function vs authors |")
    print("|" + "---|" * (len(columns) + 5))
    for size, source, blur in SETTINGS:
        if size not in args.sizes:
            continue
        rates = measure(size, source, blur, args.batch, args.steps, args.repeats, args.rounds)
        cells = [f"{rates[c]:,.0f}" if rates[c] else "n/a" for c in columns]

        def ratio(a, b):
            return f"{rates[a] / rates[b]:.1f}x" if rates[b] else "n/a"

        setting = f"{size} px from {source} px, {'blur' if blur else 'no blur'}"
        print(f"| {setting} | " + " | ".join(cells) + f" | {ratio('ours/XLA', 'keras-cv')} | "
              f"{ratio('ours/XLA', 'authors/tf.data')} | {ratio('ours/tf.function', 'keras-cv')} | "
              f"{ratio('ours/tf.function', 'authors/tf.data')} |", flush=True)


if __name__ == "__main__":
    main()
