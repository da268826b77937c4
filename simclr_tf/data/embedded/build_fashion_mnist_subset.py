"""Builds `fashion_mnist_subset.npz`, the dataset embedded in simclr_tf.

A class-balanced random subset of Fashion-MNIST (Zalando Research, MIT
licence): 1,000 images per class from the official train split and 200 per
class from the official test split, read from the Debian package
`dataset-fashion-mnist`. The subset is fixed by the seed, and the output file
is byte-for-byte reproducible (fixed zip timestamps, sorted keys).

Usage (from the repository root):

    apt-get install dataset-fashion-mnist
    python -m simclr_tf.data.embedded.build_fashion_mnist_subset

Options: `--source DIR` (IDX folder), `--output FILE`, `--seed N`.
"""

import argparse
import hashlib
import pathlib
import zipfile

import numpy as np

from simclr_tf.data import CLASS_NAMES, FASHION_MNIST_DIR, load_fashion_mnist

SEED = 20170825  # Fashion-MNIST's arXiv submission date.
PER_CLASS = {"train": 1000, "test": 200}
OUTPUT = pathlib.Path(__file__).resolve().parent / "fashion_mnist_subset.npz"


def balanced_subset(labels, per_class, rng):
    """Indices of `per_class` random examples of every class, in ascending order."""
    chosen = [
        rng.choice(np.flatnonzero(labels == c), size=per_class, replace=False)
        for c in range(len(CLASS_NAMES))
    ]
    return np.sort(np.concatenate(chosen))


def build(source=FASHION_MNIST_DIR, seed=SEED):
    """Returns the arrays to store: `<split>_images` (N, 28, 28) uint8,
    `<split>_labels` (N,) uint8 and `<split>_indices` (N,) int32 (positions
    in the official split)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, per_class in PER_CLASS.items():
        images, labels = load_fashion_mnist(split, path=source)
        indices = balanced_subset(labels, per_class, rng)
        arrays[f"{split}_images"] = images[indices, :, :, 0]
        arrays[f"{split}_labels"] = labels[indices].astype(np.uint8)
        arrays[f"{split}_indices"] = indices.astype(np.int32)
    return arrays


def save_npz(path, arrays):
    """Writes an .npz like `np.savez_compressed`, but with fixed timestamps."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arrays[key]), allow_pickle=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=FASHION_MNIST_DIR, help="folder with the gzipped IDX files")
    parser.add_argument("--output", default=str(OUTPUT), help="where to write the .npz")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    arrays = build(args.source, args.seed)
    save_npz(args.output, arrays)
    data = pathlib.Path(args.output).read_bytes()
    for key in sorted(arrays):
        print(f"{key}: {arrays[key].shape} {arrays[key].dtype}")
    print(f"wrote {args.output}: {len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
