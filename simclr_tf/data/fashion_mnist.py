"""Fashion-MNIST: the Debian package's IDX files and the subset embedded in the package."""

import gzip
import pathlib

import numpy as np

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
EMBEDDED_PATH = pathlib.Path(__file__).resolve().parent / "embedded" / "fashion_mnist_subset.npz"

_FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


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
    `simclr_tf/data/embedded/build_fashion_mnist_subset.py` (see the README
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
