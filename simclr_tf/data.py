"""Input pipelines for SimCLR: batched `tf.data` datasets of uint8 images.

Every loader here returns a `tf.data.Dataset` with the same contract, which
the model and the entry points rely on:

- elements are uint8 image batches of shape `(batch, height, width, 3)`, or
  `(images, labels)` tuples with int32 labels of shape `(batch,)`;
- grayscale data is stored with one channel and turned into three inside the
  pipeline's (parallel) map;
- images are not normalised: the model's augmenter converts uint8 to float;
- the pipeline is optionally shuffled (seeded), repeated and batched (with or
  without the remainder), mapped with `num_parallel_calls=AUTOTUNE` and
  prefetched with `AUTOTUNE`.

Training pipelines should use `repeat=True` with `steps_per_epoch` in
`model.fit`: re-iterating a dataset with a large shuffle buffer at every
epoch boundary was measured to stall for 20-45 s.

Sources:

- `from_arrays`: NumPy arrays already in memory.
- `from_folder`: a folder of JPEG/PNG/BMP/GIF files, optionally in one
  sub-folder per class.
- `from_tfds`: any TensorFlow Datasets builder.
- `load_fashion_mnist`: the Debian `dataset-fashion-mnist` IDX files.
- `load_embedded`: a class-balanced 12,000-image Fashion-MNIST subset shipped
  inside the package, so that examples and tests run offline.
- `load`: one dispatcher over all of them, keyed by a name string.

Determinism: with a `seed`, shuffling is reproducible, and the parallel maps
keep element order (tf.data's default `deterministic=True`). With
`seed=None` the shuffle order differs from run to run.
"""

import gzip
import os
import pathlib
import warnings

import numpy as np
import tensorflow as tf

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""Fashion-MNIST class names, indexed by label."""

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
EMBEDDED_PATH = pathlib.Path(__file__).resolve().parent / "datasets" / "fashion_mnist_subset.npz"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# TFDS datasets have no known size up front; arrays and file lists are
# shuffled with a buffer as large as the dataset instead.
TFDS_SHUFFLE_BUFFER = 10_000

_AUTOTUNE = tf.data.AUTOTUNE
_FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


# --------------------------------------------------------------------------
# Argument checks


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1. Received: batch_size={batch_size!r}")
    return int(batch_size)


def _check_shuffle_buffer(shuffle_buffer):
    if shuffle_buffer is None:
        return None
    if (
        isinstance(shuffle_buffer, bool)
        or not isinstance(shuffle_buffer, (int, np.integer))
        or shuffle_buffer < 1
    ):
        raise ValueError(
            f"`shuffle_buffer` must be None or an integer >= 1. Received: shuffle_buffer={shuffle_buffer!r}"
        )
    return int(shuffle_buffer)


def _check_image_size(image_size):
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    try:
        height, width = image_size
        ok = all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in (height, width)
        )
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            "`image_size` must be None, an integer >= 1 or a (height, width) pair of them. "
            f"Received: image_size={image_size!r}"
        )
    return int(height), int(width)


def _check_images(images, name="images"):
    """Returns `images` as a uint8 array of shape (N, H, W, C), C in {1, 3}."""
    images = np.asarray(images)
    if images.dtype.kind not in "uif":
        raise ValueError(
            f"`{name}` must hold uint8 or float values in [0, 1]. Received: {name}.dtype={images.dtype}"
        )
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4:
        raise ValueError(
            f"`{name}` must have shape (N, H, W), (N, H, W, 1) or (N, H, W, 3). "
            f"Received: {name}.shape={images.shape}"
        )
    if images.shape[-1] not in (1, 3):
        raise ValueError(
            f"`{name}` must have 1 or 3 channels (grayscale or RGB). Received: {name}.shape={images.shape}"
        )
    if images.size == 0:
        raise ValueError(f"`{name}` is empty. Received: {name}.shape={images.shape}")
    if images.dtype.kind == "f":
        if not np.all(np.isfinite(images)):
            raise ValueError(f"`{name}` contains NaN or Inf values. Received: {name}.dtype={images.dtype}")
        low, high = float(images.min()), float(images.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"Float `{name}` must lie in [0, 1]. Received: {name} with min={low}, max={high}"
            )
        return np.round(images * 255.0).astype(np.uint8)
    if images.dtype != np.uint8:
        low, high = int(images.min()), int(images.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"Integer `{name}` must lie in [0, 255]. Received: {name}.dtype={images.dtype} "
                f"with min={low}, max={high}"
            )
        images = images.astype(np.uint8)
    return images


def _check_labels(labels, num_images, name="labels"):
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"`{name}` must have shape (N,). Received: {name}.shape={labels.shape}")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"`{name}` must hold integers. Received: {name}.dtype={labels.dtype}")
    if len(labels) != num_images:
        raise ValueError(
            f"`{name}` must have one label per image: expected {num_images}. "
            f"Received: len({name})={len(labels)}"
        )
    if labels.size and (labels.min() < np.iinfo(np.int32).min or labels.max() > np.iinfo(np.int32).max):
        raise ValueError(f"`{name}` must fit in int32. Received: min={labels.min()}, max={labels.max()}")
    return labels.astype(np.int32)


def _check_on_error(on_error):
    if on_error not in ("skip", "raise"):
        raise ValueError(f'`on_error` must be "skip" or "raise". Received: on_error={on_error!r}')


# --------------------------------------------------------------------------
# Shared pipeline tail


def _to_rgb(images):
    """Repeats a single channel three times; leaves RGB unchanged."""
    if images.shape[-1] == 1:
        return tf.image.grayscale_to_rgb(images)
    return images


def _finish(
    ds,
    *,
    element_fn,
    batch_fn,
    batch_size,
    shuffle,
    shuffle_buffer,
    repeat,
    drop_remainder,
    seed,
):
    """Shuffle -> repeat -> per-element map -> batch -> batched map -> prefetch.

    `element_fn` does work that must happen per element (decoding, resizing
    to a common size); `batch_fn` does work that vectorises over a batch
    (channel expansion), which is cheaper than per element for small images.
    Either may be None.
    """
    if shuffle:
        # Shuffle before repeat so that every epoch is a full permutation.
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if element_fn is not None:
        ds = ds.map(element_fn, num_parallel_calls=_AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if batch_fn is not None:
        ds = ds.map(batch_fn, num_parallel_calls=_AUTOTUNE)
    return ds.prefetch(_AUTOTUNE)


def _image_and_label_fn(fn, with_labels):
    """Lifts an image function to `(image, label)` elements when needed."""
    if fn is None:
        return None
    if with_labels:
        return lambda image, label: (fn(image), label)
    return fn


# --------------------------------------------------------------------------
# Arrays


def from_arrays(
    images,
    labels=None,
    *,
    batch_size=256,
    shuffle=False,
    repeat=False,
    drop_remainder=False,
    seed=None,
    shuffle_buffer=None,
):
    """Builds a batched pipeline from in-memory NumPy arrays.

    Images are kept as uint8 with their own channel count (one for
    grayscale) and expanded to three channels per batch inside the pipeline.

    Args:
        images: array of shape (N, H, W), (N, H, W, 1) or (N, H, W, 3); uint8
            (or another integer type with values in [0, 255]) or float with
            values in [0, 1], which is scaled by 255 and rounded to uint8.
        labels: optional integer array of shape (N,); cast to int32.
        batch_size: images per batch, >= 1.
        shuffle: whether to shuffle the examples (reshuffled every epoch).
        repeat: whether to repeat forever (use with `steps_per_epoch`).
        drop_remainder: whether to drop the last, smaller batch.
        seed: shuffle seed; None gives a different order every run.
        shuffle_buffer: shuffle buffer size; None means the whole dataset
            (an exact permutation; the buffer holds uint8 images).

    Returns:
        A `tf.data.Dataset` of uint8 `(batch, H, W, 3)` images, or of
        `(images, labels)` tuples with int32 labels when `labels` is given.

    Raises:
        ValueError: if `images` is empty, has the wrong rank, 2 or 4
            channels, a non-numeric or bool dtype, NaN/Inf, or values out of
            range; if `labels` is not one integer per image; if
            `batch_size` or `shuffle_buffer` is not an integer >= 1.

    Example:

    >>> ds = from_arrays(np.zeros((10, 8, 8), np.uint8), np.arange(10), batch_size=4)
    >>> [tuple(x.shape) for x, _ in ds]
    [(4, 8, 8, 3), (4, 8, 8, 3), (2, 8, 8, 3)]
    """
    batch_size = _check_batch_size(batch_size)
    shuffle_buffer = _check_shuffle_buffer(shuffle_buffer)
    images = _check_images(images)
    with_labels = labels is not None
    if with_labels:
        labels = _check_labels(labels, len(images))
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
    else:
        ds = tf.data.Dataset.from_tensor_slices(images)
    batch_fn = _image_and_label_fn(_to_rgb, with_labels) if images.shape[-1] == 1 else None
    return _finish(
        ds,
        element_fn=None,
        batch_fn=batch_fn,
        batch_size=batch_size,
        shuffle=shuffle,
        shuffle_buffer=shuffle_buffer or len(images),
        repeat=repeat,
        drop_remainder=drop_remainder,
        seed=seed,
    )


# --------------------------------------------------------------------------
# Image folders


def _list_image_files(root, labels):
    """Returns (sorted file paths, int labels or None, class names or None)."""
    root = pathlib.Path(root)
    if not root.exists():
        raise ValueError(f"Image folder does not exist. Received: path={str(root)!r}")
    if not root.is_dir():
        raise ValueError(f"`path` must be a folder of images. Received: path={str(root)!r}")

    def walk(folder):
        found, others = [], 0
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if filename.startswith("."):
                    continue
                if filename.lower().endswith(IMAGE_EXTENSIONS):
                    found.append(os.path.join(dirpath, filename))
                else:
                    others += 1
        return found, others

    if labels is None:
        files, others = walk(root)
        file_labels, class_names = None, None
    else:
        class_names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not class_names:
            raise ValueError(
                'With labels="inferred", `path` must hold one sub-folder per class, but it has no '
                f"sub-folders. Pass labels=None for an unlabelled folder. Received: path={str(root)!r}"
            )
        files, file_labels, others = [], [], 0
        for index, class_name in enumerate(class_names):
            class_files, class_others = walk(root / class_name)
            files += class_files
            file_labels += [index] * len(class_files)
            others += class_others
    if not files:
        raise ValueError(
            f"No image files ({', '.join(IMAGE_EXTENSIONS)}) found under path={str(root)!r}"
            + (f" ({others} other files ignored)." if others else ".")
        )
    return files, file_labels, class_names


def _decode(contents, channels=0):
    return tf.io.decode_image(contents, channels=channels, expand_animations=False)


def _scan_images(files):
    """Decodes every file once, in parallel.

    Returns a dict {index: (height, width)} for the files that decode; the
    missing indices are corrupt or not images.
    """

    def probe(index, path):
        shape = tf.shape(_decode(tf.io.read_file(path)))
        return index, shape[:2]

    ds = tf.data.Dataset.from_tensor_slices(files).enumerate()
    ds = ds.map(probe, num_parallel_calls=_AUTOTUNE).ignore_errors().batch(4096)
    sizes = {}
    for indices, shapes in ds.as_numpy_iterator():
        for index, shape in zip(indices.tolist(), shapes.tolist()):
            sizes[index] = tuple(shape)
    return sizes


def _decode_error(path):
    """Returns the decoder's message for a file that failed the scan."""
    try:
        _decode(tf.io.read_file(path))
    except (tf.errors.OpError, ValueError) as err:
        return getattr(err, "message", str(err)).strip().splitlines()[0]
    return "unknown error"


def from_folder(
    path,
    *,
    image_size=None,
    labels="inferred",
    on_error="skip",
    batch_size=256,
    shuffle=False,
    repeat=False,
    drop_remainder=False,
    seed=None,
    shuffle_buffer=None,
):
    """Builds a batched pipeline from a folder of JPEG/PNG/BMP/GIF images.

    Files are recognised by extension (case-insensitive; hidden files and
    other extensions are ignored) and decoded by content with
    `tf.io.decode_image` (first frame of a GIF; grayscale and RGBA become
    RGB). Every file is decoded once up front, in parallel, so that corrupt
    files and mixed sizes are reported before training starts; this pass
    costs about one epoch of decoding.

    Args:
        path: the folder. With `labels="inferred"` each immediate sub-folder
            is a class (labels 0, 1, ... in sorted name order, images
            searched recursively inside it) and files directly in `path` are
            ignored; with `labels=None` all images under `path` are used.
        image_size: None, an int or (height, width). When given, images are
            resized (bilinear, antialiased) to it; when None, all images
            must have the same size.
        labels: "inferred" (class sub-folders) or None (images only).
        on_error: "skip" drops files that fail to decode, with one warning
            that counts them and names a few; "raise" raises a ValueError
            naming the first one.
        batch_size, shuffle, repeat, drop_remainder, seed: as in
            `from_arrays`.
        shuffle_buffer: shuffle buffer size; None means all files (the
            buffer holds file names, not images).

    Returns:
        A `tf.data.Dataset` of uint8 `(batch, H, W, 3)` images, or of
        `(images, labels)` tuples with int32 labels. With inferred labels it
        has a `class_names` attribute (list of sub-folder names).

    Raises:
        ValueError: if `path` does not exist or holds no image files; if no
            file decodes; if a file fails to decode and `on_error="raise"`;
            if sizes differ and `image_size` is None; on bad arguments.

    Example:

    >>> ds = from_folder("/data/flowers", image_size=64, batch_size=32)  # doctest: +SKIP
    >>> ds.class_names  # doctest: +SKIP
    ['daisy', 'roses', 'tulips']
    """
    batch_size = _check_batch_size(batch_size)
    shuffle_buffer = _check_shuffle_buffer(shuffle_buffer)
    image_size = _check_image_size(image_size)
    _check_on_error(on_error)
    if labels not in ("inferred", None):
        raise ValueError(f'`labels` must be "inferred" or None. Received: labels={labels!r}')

    files, file_labels, class_names = _list_image_files(path, labels)
    sizes = _scan_images(files)
    bad = [files[i] for i in range(len(files)) if i not in sizes]
    if bad:
        if on_error == "raise":
            raise ValueError(f"Cannot decode image file {bad[0]!r}: {_decode_error(bad[0])}")
        if len(bad) == len(files):
            raise ValueError(
                f"None of the {len(files)} image files under path={str(path)!r} could be decoded."
            )
        named = ", ".join(repr(f) for f in bad[:3]) + (", ..." if len(bad) > 3 else "")
        warnings.warn(
            f"Skipping {len(bad)} of {len(files)} image files under {str(path)!r} that could not be "
            f"decoded: {named}",
            stacklevel=2,
        )
        keep = sorted(sizes)
        files = [files[i] for i in keep]
        if file_labels is not None:
            file_labels = [file_labels[i] for i in keep]

    if image_size is None:
        distinct = sorted(set(sizes.values()))
        if len(distinct) > 1:
            shown = ", ".join(f"{h}x{w}" for h, w in distinct[:5]) + (", ..." if len(distinct) > 5 else "")
            raise ValueError(
                f"Images under {str(path)!r} have {len(distinct)} different sizes ({shown}); "
                "pass image_size=(height, width) to resize them to one size."
            )
        height, width = distinct[0]
    else:
        height, width = image_size

    def load_image(file_path):
        image = _decode(tf.io.read_file(file_path), channels=3)
        if image_size is not None:
            image = tf.image.resize(image, (height, width), antialias=True)
            image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
        image.set_shape((height, width, 3))
        return image

    with_labels = file_labels is not None
    if with_labels:
        ds = tf.data.Dataset.from_tensor_slices((files, np.asarray(file_labels, np.int32)))
    else:
        ds = tf.data.Dataset.from_tensor_slices(files)
    ds = _finish(
        ds,
        element_fn=_image_and_label_fn(load_image, with_labels),
        batch_fn=None,
        batch_size=batch_size,
        shuffle=shuffle,
        shuffle_buffer=shuffle_buffer or len(files),
        repeat=repeat,
        drop_remainder=drop_remainder,
        seed=seed,
    )
    if class_names is not None:
        ds.class_names = class_names
    return ds


# --------------------------------------------------------------------------
# TensorFlow Datasets


def _tfds_builder(name, data_dir):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        # TFDS's message lists every registered dataset; keep it short.
        raise ValueError(
            f"Unknown TFDS dataset name {name!r}. See https://www.tensorflow.org/datasets/catalog "
            "for the available names."
        ) from None


def from_tfds(
    name,
    *,
    split="train",
    image_key="image",
    label_key="label",
    data_dir=None,
    download=True,
    image_size=None,
    batch_size=256,
    shuffle=False,
    repeat=False,
    drop_remainder=False,
    seed=None,
    shuffle_buffer=None,
):
    """Builds a batched pipeline from a TensorFlow Datasets builder.

    Args:
        name: any TFDS builder name, optionally with config and version
            (e.g. "cifar10", "mnist:3.*.*").
        split: TFDS split string, e.g. "train", "test", "train[:10%]".
        image_key: feature holding the image (uint8, 1 or 3 channels).
        label_key: feature holding an integer label, or None for images only.
        data_dir: TFDS data folder; None uses TFDS's default.
        download: whether TFDS may download and prepare the data if it is
            not in `data_dir` yet.
        image_size: None, an int or (height, width); required when the
            dataset's images have no fixed size.
        batch_size, shuffle, repeat, drop_remainder, seed: as in
            `from_arrays`.
        shuffle_buffer: shuffle buffer size; None means
            `TFDS_SHUFFLE_BUFFER` (10,000). Input files are shuffled too.

    Returns:
        A `tf.data.Dataset` of uint8 `(batch, H, W, 3)` images, or of
        `(images, labels)` tuples with int32 labels.

    Raises:
        ValueError: for an unknown dataset name, missing feature keys, an
            image feature that is not uint8 with 1 or 3 channels, variable
            image sizes without `image_size`, data not prepared with
            `download=False`, an unknown split, or bad arguments.
        RuntimeError: if `download=True` and downloading or preparing
            fails (e.g. offline); the TFDS error is chained.

    Example:

    >>> ds = from_tfds("cifar10", split="test", batch_size=128)  # doctest: +SKIP
    >>> ds.element_spec[0].shape  # doctest: +SKIP
    TensorShape([None, 32, 32, 3])
    """
    import tensorflow_datasets as tfds

    batch_size = _check_batch_size(batch_size)
    shuffle_buffer = _check_shuffle_buffer(shuffle_buffer)
    image_size = _check_image_size(image_size)
    builder = _tfds_builder(name, data_dir)

    features = builder.info.features
    keys = sorted(features.keys()) if hasattr(features, "keys") else []
    if image_key not in keys:
        raise ValueError(f"TFDS dataset {name!r} has no feature {image_key!r}. Features: {keys}")
    if label_key is not None and label_key not in keys:
        raise ValueError(
            f"TFDS dataset {name!r} has no feature {label_key!r}; pass label_key=None for images only. "
            f"Features: {keys}"
        )
    image_shape = tuple(features[image_key].shape)
    image_dtype = tf.as_dtype(features[image_key].tf_dtype)
    if len(image_shape) != 3 or image_shape[-1] not in (1, 3) or image_dtype != tf.uint8:
        raise ValueError(
            f"TFDS feature {name}/{image_key} must be uint8 images with 1 or 3 channels. "
            f"Received: shape={image_shape}, dtype={image_dtype.name}"
        )
    if image_size is None and None in image_shape[:2]:
        raise ValueError(
            f"TFDS dataset {name!r} has images of varying size {image_shape}; "
            "pass image_size=(height, width)."
        )

    where = data_dir or "the default TFDS data_dir"
    if download:
        try:
            builder.download_and_prepare()
        except Exception as err:  # Network and archive errors come in many types.
            raise RuntimeError(
                f"Could not download and prepare TFDS dataset {name!r} into {where}: {err}. "
                "Without internet, prepare it on another machine and pass data_dir=..."
            ) from err
    try:
        ds = builder.as_dataset(
            split=split,
            shuffle_files=bool(shuffle),
            read_config=tfds.ReadConfig(shuffle_seed=seed),
        )
    except AssertionError as err:  # TFDS asserts that the data was prepared.
        raise ValueError(
            f"TFDS dataset {name!r} is not prepared in {where}; pass download=True or the data_dir "
            "of a prepared copy."
        ) from err

    with_labels = label_key is not None

    def select(example):
        image = example[image_key]
        if image_size is not None:
            image = tf.image.resize(image, image_size, antialias=True)
            image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
        if with_labels:
            return image, tf.cast(example[label_key], tf.int32)
        return image

    batch_fn = _image_and_label_fn(_to_rgb, with_labels) if image_shape[-1] == 1 else None
    return _finish(
        ds,
        element_fn=select,
        batch_fn=batch_fn,
        batch_size=batch_size,
        shuffle=shuffle,
        shuffle_buffer=shuffle_buffer or TFDS_SHUFFLE_BUFFER,
        repeat=repeat,
        drop_remainder=drop_remainder,
        seed=seed,
    )


# --------------------------------------------------------------------------
# Fashion-MNIST


def _read_idx(path, magic, ndim):
    """Parses a gzipped IDX file of unsigned bytes into a NumPy array."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as error:  # not gzip (BadGzipFile is an OSError), or cut short
        raise ValueError(f"IDX file {str(path)!r} is not a complete gzip file: {error}") from None
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"IDX file {str(path)!r} is truncated: {len(data)} bytes.")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(f"IDX file {str(path)!r} has magic number {found:#010x}; expected {magic:#010x}.")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise ValueError(
            f"IDX file {str(path)!r} holds {len(data) - header} bytes of data; its header {shape} "
            f"needs {expected}."
        )
    # A writeable copy: np.frombuffer over bytes is read-only.
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape).copy()


def load_fashion_mnist(split="train", path=FASHION_MNIST_DIR):
    """Loads a Fashion-MNIST split from the Debian package's IDX files.

    Args:
        split: "train" (60,000 images) or "test" (10,000 images).
        path: folder with the four `*-ubyte.gz` files, as installed by
            `apt-get install dataset-fashion-mnist`.

    Returns:
        `(images, labels)`: uint8 array of shape (N, 28, 28, 1) and int32
        array of shape (N,), labels indexing `CLASS_NAMES`.

    Raises:
        FileNotFoundError: if a file is missing (the message says how to
            install the package).
        ValueError: for an unknown split or a malformed file (not gzip,
            wrong magic number, truncated data, image and label counts that
            differ, labels outside the ten classes).

    Example:

    >>> images, labels = load_fashion_mnist("test")  # doctest: +SKIP
    >>> images.shape, labels.dtype  # doctest: +SKIP
    ((10000, 28, 28, 1), dtype('int32'))
    """
    if split not in _FASHION_MNIST_FILES:
        raise ValueError(f'`split` must be "train" or "test". Received: split={split!r}')
    image_file, label_file = (pathlib.Path(path) / f for f in _FASHION_MNIST_FILES[split])
    for file in (image_file, label_file):
        if not file.is_file():
            raise FileNotFoundError(
                f"Fashion-MNIST file not found: {str(file)!r}. Install the Debian package with "
                "`apt-get install dataset-fashion-mnist`, or pass `path` to a folder holding the "
                "gzipped IDX files."
            )
    images = _read_idx(image_file, _IDX_IMAGES_MAGIC, 3)
    labels = _read_idx(label_file, _IDX_LABELS_MAGIC, 1)
    if len(images) != len(labels):
        raise ValueError(
            f"Fashion-MNIST {split!r} has {len(images)} images but {len(labels)} labels under {str(path)!r}."
        )
    if len(labels) and labels.max() >= len(CLASS_NAMES):
        raise ValueError(
            f"Fashion-MNIST labels must lie in [0, {len(CLASS_NAMES) - 1}]; {str(label_file)!r} holds "
            f"label {int(labels.max())}."
        )
    return images[..., np.newaxis], labels.astype(np.int32)


def load_embedded(split="train"):
    """Loads the Fashion-MNIST subset shipped inside the package.

    A class-balanced random subset of the official splits: 10,000 train
    images (1,000 per class) and 2,000 test images (200 per class), built by
    `simclr_tf/datasets/build_fashion_mnist_subset.py` (see the README
    there for attribution and licence).

    Args:
        split: "train" or "test".

    Returns:
        `(images, labels)`: uint8 array of shape (N, 28, 28, 1) and int32
        array of shape (N,), labels indexing `CLASS_NAMES`.

    Raises:
        ValueError: for an unknown split.
        FileNotFoundError: if the package was installed without its data.

    Example:

    >>> images, labels = load_embedded("test")
    >>> images.shape, np.bincount(labels).tolist()
    ((2000, 28, 28, 1), [200, 200, 200, 200, 200, 200, 200, 200, 200, 200])
    """
    if split not in ("train", "test"):
        raise ValueError(f'`split` must be "train" or "test". Received: split={split!r}')
    if not EMBEDDED_PATH.is_file():
        raise FileNotFoundError(f"Embedded dataset missing: {str(EMBEDDED_PATH)!r}; reinstall simclr_tf.")
    with np.load(EMBEDDED_PATH, allow_pickle=False) as npz:
        images = npz[f"{split}_images"]
        labels = npz[f"{split}_labels"]
    if len(labels) and labels.max() >= len(CLASS_NAMES):
        raise ValueError(
            f"Fashion-MNIST labels must lie in [0, {len(CLASS_NAMES) - 1}]; {str(EMBEDDED_PATH)!r} "
            f"holds {split}_labels up to {int(labels.max())}; reinstall simclr_tf."
        )
    return images[..., np.newaxis], labels.astype(np.int32)


# --------------------------------------------------------------------------
# Dispatcher


_ACCEPTED_NAMES = (
    '"embedded", "fashion_mnist", "folder:/path/to/images", "tfds:<name>" '
    '(e.g. "tfds:cifar10") or a bare TFDS name (e.g. "cifar10")'
)


def _folder_for_split(root, split):
    """`root/<split>` if that folder exists; else `root` itself for "train"."""
    candidate = pathlib.Path(root) / split
    if candidate.is_dir():
        return candidate
    if split == "train":
        return pathlib.Path(root)
    raise ValueError(
        f"Folder {str(root)!r} has no {split!r} sub-folder; for split={split!r} point at a folder "
        f"holding one, or use split='train' to read {str(root)!r} itself."
    )


def load(
    name,
    *,
    split="train",
    batch_size=256,
    with_labels=True,
    shuffle=None,
    repeat=False,
    drop_remainder=None,
    seed=None,
    data_dir=None,
    image_size=None,
    shuffle_buffer=None,
):
    """Builds the input pipeline for a dataset named by a string.

    Args:
        name: one of
            - "embedded": the Fashion-MNIST subset shipped in the package;
            - "fashion_mnist": full Fashion-MNIST from the Debian files (in
              `data_dir` if given, else `FASHION_MNIST_DIR`);
            - "folder:/path": an image folder, read with `from_folder`. If
              `/path/<split>` is a folder it is used, else `/path` itself
              for split "train". With labels, classes are sub-folders;
            - "tfds:<name>" or a bare TFDS name such as "cifar10".
        split: "train" or "test" ("train"/"test"/any TFDS split for TFDS).
        batch_size: images per batch, >= 1.
        with_labels: whether elements are `(images, labels)` tuples.
        shuffle: None shuffles training splits (those starting with
            "train") and not others.
        repeat: whether to repeat forever (use with `steps_per_epoch`).
        drop_remainder: None follows `shuffle` (drop for training, keep for
            evaluation).
        seed: shuffle seed.
        data_dir: TFDS data folder, or the Fashion-MNIST IDX folder.
        image_size: resize target for folders and TFDS; None keeps sizes.
        shuffle_buffer: as in the source's loader.

    Returns:
        A batched `tf.data.Dataset` as described in the module docstring.

    Raises:
        ValueError: for an unknown name (the message lists the accepted
            forms) and for everything the underlying loader rejects.
        FileNotFoundError: if Fashion-MNIST files are missing.

    Example:

    >>> ds = load("embedded", split="test", batch_size=500)
    >>> images, labels = next(iter(ds))
    >>> images.shape, images.dtype.name, labels.dtype.name
    (TensorShape([500, 28, 28, 3]), 'uint8', 'int32')
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"`name` must be a non-empty string: {_ACCEPTED_NAMES}. Received: name={name!r}")
    if shuffle is None:
        shuffle = str(split).startswith("train")
    if drop_remainder is None:
        drop_remainder = bool(shuffle)
    pipeline = dict(
        batch_size=batch_size,
        shuffle=shuffle,
        repeat=repeat,
        drop_remainder=drop_remainder,
        seed=seed,
        shuffle_buffer=shuffle_buffer,
    )

    if name in ("embedded", "fashion_mnist"):
        if image_size is not None:
            raise ValueError(
                f"`image_size` is not supported for {name!r} (28x28 images). Received: {image_size!r}"
            )
        if name == "embedded":
            images, labels = load_embedded(split)
        else:
            images, labels = load_fashion_mnist(split, path=data_dir or FASHION_MNIST_DIR)
        return from_arrays(images, labels if with_labels else None, **pipeline)
    if name.startswith("folder:"):
        root = name[len("folder:") :]
        if not root:
            raise ValueError(f'"folder:" needs a path, e.g. "folder:/data/images". Received: name={name!r}')
        return from_folder(
            _folder_for_split(root, split),
            image_size=image_size,
            labels="inferred" if with_labels else None,
            **pipeline,
        )
    prefix, colon, rest = name.partition(":")
    if prefix == "tfds":
        tfds_name = rest
    elif not colon or rest[:1].isdigit():
        # A bare TFDS name, possibly with a version ("mnist:3.*.*").
        tfds_name = name
    else:
        raise ValueError(f"Unknown dataset {name!r}. Accepted: {_ACCEPTED_NAMES}.")
    try:
        return from_tfds(
            tfds_name,
            split=split,
            label_key="label" if with_labels else None,
            data_dir=data_dir,
            image_size=image_size,
            **pipeline,
        )
    except ValueError as err:
        if str(err).startswith("Unknown TFDS dataset name") and not name.startswith("tfds:"):
            raise ValueError(f"Unknown dataset {name!r}. Accepted: {_ACCEPTED_NAMES}.") from None
        raise
