"""`from_folder`: a batched pipeline from a folder of image files, of any size.

Built for folders of millions of files: before training it only lists the
folder (and decodes a handful of files to check that some are readable and
to pick a size); everything else happens in the stream, in parallel.

Why images are resized whole to one square. The augmenter's random resized
crop needs a batch of one size and samples crops as fractions (8% to 100%
of the area, aspect ratio 3/4 to 4/3) of the image it receives. Resizing
the whole image, never a centre crop, keeps every pixel reachable, so the
crops are the paper's crops of the whole photo; only their aspect ratio is
stretched by the photo's own (4:3 and 3:2 photos are within or near the
range the crop jitters over anyway). Padding to a square would instead let
crops land on borders that are not in the photo.
"""

import itertools
import json
import os
import pathlib
import random

import numpy as np
import tensorflow as tf

from simclr_tf.data.pipeline import AUTOTUNE, check_batch_size, check_image_size
from simclr_tf.data.unreadable import UnreadableFiles
from simclr_tf import validation

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
LABEL_MODES = ("auto", "inferred", None)

# Files decoded before the stream starts: enough to choose a size for mixed
# folders and to refuse a folder of unreadable files, few enough to cost
# nothing next to an epoch.
_PROBE_FILES = 16
# A file that fails is replaced by the next readable one in the epoch's
# order, trying at most this many; a longer run of unreadable files raises.
_MAX_TRIES = 64


def list_image_files(root, labels):
    """Lists a folder: (sorted paths, int labels or None, class names or None, other files).

    With `labels="auto"` the folder is labelled when no image lies directly
    in it and at least two first-level sub-folders hold images.
    """
    root = pathlib.Path(root)
    if not root.exists():
        raise ValueError(f"Image folder does not exist. Received: path={str(root)!r}")
    if not root.is_dir():
        raise ValueError(f"`path` must be a folder of images. Received: path={str(root)!r}")

    files, top, others = [], [], 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        relative = pathlib.Path(dirpath).relative_to(root).parts
        for filename in sorted(filenames):
            if filename.startswith("."):
                continue
            if filename.lower().endswith(IMAGE_EXTENSIONS):
                files.append(os.path.join(dirpath, filename))
                top.append(relative[0] if relative else None)
            else:
                others += 1
    if labels == "auto":
        holding = {t for t in top if t is not None}
        labels = "inferred" if files and None not in top and len(holding) >= 2 else None

    class_names = file_labels = None
    if labels == "inferred":
        class_names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not class_names:
            raise ValueError(
                'With labels="inferred", `path` must hold one sub-folder per class, but it has no '
                f"sub-folders. Pass labels=None for an unlabelled folder. Received: path={str(root)!r}"
            )
        index = {name: i for i, name in enumerate(class_names)}
        kept = [(f, index[t]) for f, t in zip(files, top) if t is not None]
        files = [f for f, _ in kept]
        file_labels = [label for _, label in kept]
    if not files:
        raise ValueError(
            f"No image files ({', '.join(IMAGE_EXTENSIONS)}) found under path={str(root)!r}"
            + (f" ({others} other files ignored)." if others else ".")
        )
    return files, file_labels, class_names, others


def decode_image(contents):
    """Any supported file's bytes -> uint8 (height, width, 3).

    `tf.io.decode_image` takes the first frame of a GIF, drops alpha, turns
    grayscale and CMYK JPEG into RGB, and keeps the high byte of 16-bit PNG
    samples (65535 -> 255, within one level of rescaling by 255/65535).
    """
    return tf.io.decode_image(contents, channels=3, expand_animations=False)


def decode_to_size(contents, size):
    """Bytes -> uint8 RGB of at least `size` where the file allows, decoded cheaply.

    A JPEG is decoded at 1/2, 1/4 or 1/8 scale in the DCT domain (libjpeg's
    scaled decoding, an area average) when that still covers `size`: a
    photo far larger than the views costs a fraction of a full decode, and
    the result is as free of aliasing as a full decode followed by an area
    resize. Other formats, and JPEGs too small to scale, go through
    `decode_image`.
    """
    is_jpeg = tf.equal(tf.strings.substr(contents, 0, 3), b"\xff\xd8\xff")

    def scaled_jpeg():
        shape = tf.image.extract_jpeg_shape(contents)
        fits = [tf.logical_and(shape[0] // r >= size[0], shape[1] // r >= size[1]) for r in (2, 4, 8)]
        index = tf.reduce_sum(tf.cast(tf.stack(fits), tf.int32))  # fits are nested: r=8 implies r=4, 2
        return tf.switch_case(index, [
            lambda r=r: tf.image.decode_jpeg(contents, channels=3, ratio=r) for r in (1, 2, 4, 8)])

    image = tf.cond(is_jpeg, scaled_jpeg, lambda: decode_image(contents))
    image.set_shape((None, None, 3))
    return image


def resize(image, size):
    """Resizes a whole uint8 image to `size`, rounding back to uint8.

    When no side shrinks by more than 2x (enlarging included), plain
    bilinear: its two-tap kernel still reaches every source pixel, so none
    is skipped (no aliasing), and it is the cheapest filter. Shrinking further averages each output
    pixel's area of the source (a box filter: antialiased, and several
    times faster than antialiased bilinear; docs/BENCHMARKS.md, "Input
    pipeline"). Any other case (one side shrunk more than 2x, the other
    enlarged) is antialiased bilinear. `decode_to_size` brings most large
    JPEGs within the factor of 2 already.
    """

    def resized():
        shape = tf.shape(image)[:2]
        within_2x = tf.reduce_all(shape <= 2 * tf.constant(size))
        shrink = tf.reduce_all(shape >= tf.constant(size))
        out = tf.cond(
            within_2x,
            lambda: tf.image.resize(image, size),
            lambda: tf.cond(shrink, lambda: tf.image.resize(image, size, method="area"),
                            lambda: tf.image.resize(image, size, antialias=True)),
        )
        return tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)

    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], size))
    out = tf.cond(same, lambda: image, resized)
    out.set_shape((*size, 3))
    return out


def looks_complete(contents):
    """Whether encoded bytes start and end as a whole JPEG, PNG, GIF or BMP file.

    A cheap screen, not a validation: files that fail it (not an image,
    truncated, or with bytes after the end marker) take the guarded decode.
    """
    length = tf.strings.length(contents)

    def head(k):
        return tf.strings.substr(contents, 0, k)

    def tail(k):
        return tf.strings.substr(contents, tf.maximum(length - k, 0), k)

    jpeg = tf.logical_and(tf.equal(head(3), b"\xff\xd8\xff"), tf.equal(tail(2), b"\xff\xd9"))
    png = tf.logical_and(tf.equal(head(8), b"\x89PNG\r\n\x1a\n"), tf.equal(tail(8), b"IEND\xaeB`\x82"))
    gif = tf.logical_and(tf.equal(head(4), b"GIF8"), tf.equal(tail(1), b";"))
    bmp_size = tf.strings.substr(tf.strings.join([contents, b"\0\0\0\0\0\0"]), 2, 4)
    bmp = tf.logical_and(
        tf.equal(head(2), b"BM"), tf.equal(tf.io.decode_raw(bmp_size, tf.int32, little_endian=True)[0], length)
    )
    return tf.reduce_any(tf.stack([jpeg, png, gif, bmp]))


def worker_shard():
    """(workers, this worker's index) from TF_CONFIG, as MultiWorkerMirroredStrategy reads it."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    cluster, task = config.get("cluster", {}), config.get("task", {})
    chiefs, workers = len(cluster.get("chief", [])), len(cluster.get("worker", []))
    if chiefs + workers < 2 or task.get("type") not in ("chief", "worker"):
        return 1, 0
    index = int(task.get("index", 0))
    return chiefs + workers, index if task["type"] == "chief" else chiefs + index


def _check_shard(shard):
    if shard == "auto":
        return worker_shard()
    if shard is None:
        return 1, 0
    try:
        count, index = shard
        ok = validation.is_int(count) and validation.is_int(index) and 0 <= index < count
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            '`shard` must be "auto", None or a (num_shards, index) pair with 0 <= index < num_shards. '
            f"Received: shard={shard!r}"
        )
    return int(count), int(index)


def _probe(files, unreadable):
    """Decodes a few files spread over the list: their sizes, and proof that some file decodes."""
    picks = sorted(set(np.linspace(0, len(files) - 1, min(len(files), _PROBE_FILES)).astype(int).tolist()))
    rest = (i for i in range(len(files)) if i not in set(picks))
    sizes = []
    for i in itertools.chain(picks, rest):
        if sizes and i not in picks:
            break  # a folder whose probed files all fail is searched until one decodes
        try:
            image = decode_image(tf.io.read_file(files[i]))
            sizes.append(tuple(int(v) for v in image.shape[:2]))
        except (tf.errors.OpError, ValueError) as err:
            unreadable.record(files[i], err)  # raises with on_error="raise"
    return sizes


def default_image_size(sizes):
    """The common size of the probed images, else a square of their median shorter side."""
    if len(set(sizes)) == 1:
        return sizes[0]
    side = int(np.median([min(h, w) for h, w in sizes]))
    return side, side


def from_folder(
    path,
    *,
    image_size=None,
    labels="auto",
    on_error="skip",
    batch_size=256,
    shuffle=False,
    repeat=False,
    drop_remainder=False,
    seed=None,
    initial_epoch=0,
    shard="auto",
):
    """Builds a batched pipeline from a folder of JPEG/PNG/BMP/GIF images.

    Files are found by extension (case-insensitive, recursively; hidden
    files and other extensions are ignored) and decoded in the stream, in
    parallel, by content (`decode_image`: grayscale, RGBA, CMYK JPEG,
    16-bit PNG and GIF all become 8-bit RGB; large JPEGs are decoded at
    reduced scale, `decode_to_size`). Only a few files are decoded
    before the stream starts (to choose a size and check that some decode).

    A file that cannot be decoded is replaced in the stream by the next
    readable file of the epoch's order, so every epoch keeps its number of
    batches (and workers stay in step); it is counted and named in the
    dataset's `unreadable` attribute (an `UnreadableFiles`), with a warning
    the first time. `UnreadableFilesReport` logs the count at each epoch end.
    Files are screened by their first and last bytes (`looks_complete`);
    only those that fail the screen pay for the guarded decode. With
    `repeat=True`, a file that passes the screen yet is corrupt inside is
    dropped from the endless stream without being counted.

    Every image is resized whole (no crop) to one `image_size`; see the
    module docstring for why this is faithful to the random resized crop.

    Args:
        path: the folder.
        image_size: None, an int or (height, width). None uses the common
            size of the few probed images, or when they differ a square of
            their median shorter side.
        labels: "auto" (the default), "inferred" or None. "inferred": each
            first-level sub-folder is a class (labels 0, 1, ... in sorted
            name order, images searched recursively inside it; files
            directly in `path` are ignored). None: all images, no labels.
            "auto": "inferred" when no image lies directly in `path` and
            at least two sub-folders hold images, else None.
        on_error: "skip" (replace unreadable files, as above) or "raise"
            (stop at the first one, naming it).
        batch_size: images per batch, >= 1.
        shuffle: whether to shuffle; each epoch is a new permutation.
        repeat: whether to repeat forever (use with `steps_per_epoch`).
        drop_remainder: whether to drop the last, smaller batch of an epoch.
        seed: shuffle seed. With a seed the order of every epoch is fixed;
            None draws one.
        initial_epoch: with `repeat=True`, the epoch the stream starts at:
            resuming at epoch k gives exactly the batches a run that was
            never stopped would read next, without reading epochs 0..k-1.
        shard: "auto" reads each worker's share of the files when TF_CONFIG
            describes a multi-worker cluster (as MultiWorkerMirroredStrategy
            uses), None reads all files, or (num_shards, index) reads every
            num_shards-th file from `index`. When sharded here, tf.distribute's
            own auto-sharding is turned off for this dataset.

    Returns:
        A `tf.data.Dataset` of uint8 `(batch, H, W, 3)` images, or of
        `(images, labels)` tuples with int32 labels, with attributes
        `class_names` (None when unlabelled), `image_size`, `files` (this
        shard's files) and `unreadable`.

    Raises:
        ValueError: if `path` does not exist or holds no image files; if
            none of its files decodes; if a file fails to decode and
            `on_error="raise"` (while iterating, as a `tf.errors.OpError`
            naming the file, when the file is not among the probed ones);
            on bad arguments.

    Example:

    >>> import tempfile, PIL.Image
    >>> root = tempfile.mkdtemp()
    >>> PIL.Image.new("RGB", (40, 30)).save(f"{root}/a.jpg")
    >>> PIL.Image.new("L", (20, 20)).save(f"{root}/b.PNG")
    >>> ds = from_folder(root, image_size=16, batch_size=2)
    >>> next(iter(ds)).shape, ds.class_names
    (TensorShape([2, 16, 16, 3]), None)
    """
    path = str(path)
    batch_size = check_batch_size(batch_size)
    image_size = check_image_size(image_size)
    initial_epoch = validation.check_int("initial_epoch", initial_epoch, minimum=0)
    if on_error not in ("skip", "raise"):
        raise ValueError(f'`on_error` must be "skip" or "raise". Received: on_error={on_error!r}')
    if labels not in LABEL_MODES:
        raise ValueError(f'`labels` must be "auto", "inferred" or None. Received: labels={labels!r}')
    if initial_epoch and not repeat:
        raise ValueError(
            "`initial_epoch` needs repeat=True (a finite dataset is one pass). "
            f"Received: initial_epoch={initial_epoch}, repeat={repeat!r}"
        )
    count, index = _check_shard(shard)

    files, file_labels, class_names, _ = list_image_files(path, labels)
    unreadable = UnreadableFiles(path, len(files), on_error)
    sizes = _probe(files, unreadable)
    if not sizes:
        raise ValueError(
            f"None of the {len(files)} image files under path={path!r} could be decoded, e.g. "
            f"{files[0]!r}: {unreadable.reason(files[0])}"
        )
    size = image_size or default_image_size(sizes)
    files, file_labels = files[index::count], file_labels and file_labels[index::count]
    if not files:
        raise ValueError(f"Shard {index} of {count} of path={path!r} holds no files. Received: shard={shard!r}")
    if shuffle and seed is None:
        seed = random.SystemRandom().randrange(2**31)

    ds = _stream(files, file_labels, size, unreadable, shuffle, repeat, seed, initial_epoch)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(AUTOTUNE)
    if count > 1 or shard not in ("auto", None):
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        ds = ds.with_options(options)
    ds.class_names, ds.image_size, ds.files, ds.unreadable = class_names, size, files, unreadable
    return ds


def _stream(files, file_labels, size, unreadable, shuffle, repeat, seed, initial_epoch):
    """The unbatched stream of (image[, label]), one element per file and epoch."""
    n = len(files)
    files_t = tf.constant(files)
    labels_t = tf.constant(file_labels, tf.int32) if file_labels is not None else None
    tries = min(n, _MAX_TRIES)

    if repeat:
        # One counter over all epochs: epoch k starts at element k * n, so a
        # resumed stream starts there without reading what came before.
        ds = tf.data.Dataset.counter(start=initial_epoch * n).map(lambda g: (g // n, g % n))
    elif shuffle:
        # One key per pass, new at every re-iteration (a `.repeat()` by the
        # caller reshuffles) and fixed by the seed.
        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
        ds = keys.flat_map(lambda key: tf.data.Dataset.range(n).map(lambda p: (key, p)))
    else:
        ds = tf.data.Dataset.range(n).map(lambda p: (tf.constant(0, tf.int64), p))

    seed_t = tf.constant(seed or 0, tf.int64)

    def file_index(epoch, positions):
        if not shuffle:
            return positions
        key = tf.stack([seed_t, epoch])
        return tf.random.experimental.index_shuffle(positions, seed=key, max_index=n - 1)

    def load(i):
        return resize(decode_to_size(tf.io.read_file(files_t[i]), size), size), i

    fallback = tf.data.Dataset.from_tensors((tf.zeros((*size, 3), tf.uint8), tf.constant(-1, tf.int64)))

    def safe(epoch, position):
        candidates = file_index(epoch, (position + tf.range(tries, dtype=tf.int64)) % n)
        # Errors cannot be caught inside a graph; a small dataset with
        # ignore_errors can, and stops at the first candidate that decodes.
        found = tf.data.Dataset.from_tensor_slices(candidates).map(load).ignore_errors().take(1)
        image, used = found.concatenate(fallback).take(1).get_single_element()
        used = tf.cond(
            tf.equal(used, candidates[0]),
            lambda: used,
            lambda: tf.py_function(
                lambda own, got: unreadable.skipped(files[int(own)], int(got), tries),
                [candidates[0], used],
                tf.int64,
            ),
        )
        used.set_shape(())
        return image, used

    def element(epoch, position):
        own = file_index(epoch, position)
        contents = tf.io.read_file(files_t[own])
        # The guarded decode costs a nested dataset per file; files whose
        # signature and end look whole take the direct decode.
        image, used = tf.cond(
            looks_complete(contents),
            lambda: (resize(decode_to_size(contents, size), size), own),
            lambda: safe(epoch, position),
        )
        if labels_t is None:
            return image
        return image, tf.gather(labels_t, used)

    ds = ds.map(element, num_parallel_calls=AUTOTUNE)
    if repeat:
        # A file that looks whole but is corrupt inside raises in the direct
        # decode; an endless stream can drop it (uncounted) without changing
        # its length.
        return ds.ignore_errors().apply(tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY))
    return ds.apply(tf.data.experimental.assert_cardinality(n))
