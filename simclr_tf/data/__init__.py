"""Input pipelines for SimCLR: batched `tf.data` datasets of uint8 images.

Every loader here returns a `tf.data.Dataset` with the same contract, which
the model and the entry points rely on:

- elements are uint8 image batches of shape `(batch, height, width, 3)`, or
  `(images, labels)` tuples with int32 labels of shape `(batch,)`;
- grayscale data is turned into three channels inside the pipeline;
- images are not normalised: the model's augmenter converts uint8 to float;
- the pipeline is optionally shuffled (seeded), repeated and batched (with or
  without the remainder), mapped with `num_parallel_calls=AUTOTUNE` and
  prefetched with `AUTOTUNE`.

Training pipelines should use `repeat=True` with `steps_per_epoch` in
`model.fit`: re-iterating a dataset with a large shuffle buffer at every
epoch boundary stalls the first steps of each epoch.

Sources, one module each:

- `from_arrays` (`arrays.py`): NumPy arrays already in memory.
- `from_folder` (`folder.py`): a folder of JPEG/PNG/BMP/GIF files of any
  size, optionally in one sub-folder per class; `UnreadableFiles` and
  `UnreadableFilesReport` (`unreadable.py`) count and report files that do
  not decode.
- `from_tfds` (`tfds.py`): any TensorFlow Datasets builder.
- `load_fashion_mnist`, `load_embedded` (`fashion_mnist.py`): the Debian
  `dataset-fashion-mnist` IDX files, and a class-balanced 12,000-image
  subset shipped in `embedded/` so that examples and tests run offline.
- `load` (here): one dispatcher over all of them, keyed by a name string.

Determinism: with a `seed`, shuffling is reproducible, and the parallel maps
keep element order (tf.data's default `deterministic=True`). With
`seed=None` the shuffle order differs from run to run.
"""

import pathlib

from simclr_tf.data.arrays import from_arrays
from simclr_tf.data.fashion_mnist import (
    CLASS_NAMES,
    EMBEDDED_PATH,
    FASHION_MNIST_DIR,
    load_embedded,
    load_fashion_mnist,
)
from simclr_tf.data.folder import IMAGE_EXTENSIONS, from_folder
from simclr_tf.data.tfds import TFDS_SHUFFLE_BUFFER, from_tfds
from simclr_tf.data.unreadable import UnreadableFiles, UnreadableFilesReport

__all__ = [
    "CLASS_NAMES",
    "EMBEDDED_PATH",
    "FASHION_MNIST_DIR",
    "IMAGE_EXTENSIONS",
    "TFDS_SHUFFLE_BUFFER",
    "UnreadableFiles",
    "UnreadableFilesReport",
    "from_arrays",
    "from_folder",
    "from_tfds",
    "load",
    "load_embedded",
    "load_fashion_mnist",
]


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
              for split "train". With labels, `labels="auto"`: classes are
              sub-folders when the layout has them, else the folder is
              unlabelled (`class_names` None, elements are images only);
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
        image_size: resize target for folders and TFDS; None keeps the
            size (for a folder of mixed sizes, see `from_folder`).
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
        shuffle_buffer = pipeline.pop("shuffle_buffer")  # a file order needs no buffer
        if shuffle_buffer is not None:
            raise ValueError(
                "`shuffle_buffer` does not apply to folders (each epoch is an exact permutation of "
                f"the files). Received: shuffle_buffer={shuffle_buffer!r}"
            )
        return from_folder(
            _folder_for_split(root, split),
            image_size=image_size,
            labels="auto" if with_labels else None,
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
