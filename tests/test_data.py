"""Tests for simclr_tf.data: arrays, TFDS (mocked), Fashion-MNIST files and `load`; folders are in test_data_folder.py."""

import gzip
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from simclr_tf import data

HAS_DEBIAN_FMNIST = os.path.isfile(os.path.join(data.FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz"))


def _collect(ds):
    """Concatenates a finite dataset of images or (images, labels) into NumPy."""
    batches = list(ds.as_numpy_iterator())
    if isinstance(batches[0], tuple):
        return tuple(np.concatenate(parts) for parts in zip(*batches))
    return np.concatenate(batches)


def _assert_parallel_and_prefetched(ds):
    """Checks the pipeline ends in a prefetch and maps only in parallel."""
    names = []
    while ds is not None:
        names.append(type(ds).__name__)
        ds = getattr(ds, "_input_dataset", None)
    assert names[0] == "_PrefetchDataset", names
    assert "_ParallelMapDataset" in names and "_MapDataset" not in names, names
    return names


# --------------------------------------------------------------------------
# from_arrays


def test_from_arrays_grayscale_becomes_three_identical_channels():
    images = np.arange(5 * 4 * 3, dtype=np.uint8).reshape(5, 4, 3)
    ds = data.from_arrays(images, batch_size=2)
    assert ds.element_spec.shape.as_list() == [None, 4, 3, 3]
    assert ds.element_spec.dtype == tf.uint8
    out = _collect(ds)
    np.testing.assert_array_equal(out, np.repeat(images[..., None], 3, axis=-1))
    assert [b.shape[0] for b in ds.as_numpy_iterator()] == [2, 2, 1]


def test_from_arrays_rgb_with_labels_and_drop_remainder():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 4, 4, 3), dtype=np.uint8)
    labels = np.arange(7, dtype=np.int64)
    ds = data.from_arrays(images, labels, batch_size=3, drop_remainder=True)
    assert ds.element_spec[0].shape.as_list() == [3, 4, 4, 3]
    assert ds.element_spec[1].dtype == tf.int32
    x, y = _collect(ds)
    np.testing.assert_array_equal(x, images[:6])
    np.testing.assert_array_equal(y, np.arange(6))
    assert y.dtype == np.int32


def test_from_arrays_float_images_are_scaled_to_uint8_not_normalised():
    images = np.array([0.0, 0.5, 1.0, 1 / 255, 0.998], np.float32).reshape(1, 1, 5, 1)
    x = _collect(data.from_arrays(images))
    assert x.dtype == np.uint8
    np.testing.assert_array_equal(x[0, 0, :, 0], [0, 128, 255, 1, 254])


def test_from_arrays_shuffle_is_seeded_permutation_and_reshuffles_each_epoch():
    images = np.arange(20, dtype=np.uint8).reshape(20, 1, 1)
    labels = np.arange(20)

    def order(seed):
        ds = data.from_arrays(images, labels, batch_size=20, shuffle=True, seed=seed)
        return [y.tolist() for _, y in ds.repeat(2).as_numpy_iterator()]

    first, second = order(3)
    assert sorted(first) == list(range(20)) and first != list(range(20))
    assert first != second  # a new permutation every epoch
    assert order(3) == [first, second]
    assert order(4)[0] != first


def test_from_arrays_repeat_is_infinite_and_pipeline_is_parallel_and_prefetched():
    images = np.zeros((5, 2, 2), np.uint8)
    ds = data.from_arrays(images, batch_size=2, repeat=True, drop_remainder=True)
    assert ds.cardinality() == tf.data.INFINITE_CARDINALITY
    assert len(list(ds.take(10))) == 10
    assert "_RepeatDataset" in _assert_parallel_and_prefetched(ds)


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((0, 4, 4), np.uint8), "is empty"),
        (np.zeros((4, 4), np.uint8), r"shape \(N, H, W\).*Received: images.shape=\(4, 4\)"),
        (np.zeros((2, 4, 4, 3, 1), np.uint8), "Received: images.shape"),
        (np.zeros((2, 4, 4, 2), np.uint8), r"1 or 3 channels.*\(2, 4, 4, 2\)"),
        (np.zeros((2, 4, 4, 4), np.uint8), r"1 or 3 channels.*\(2, 4, 4, 4\)"),
        (np.full((2, 4, 4), "a"), "images.dtype=<U1"),
        (np.zeros((2, 4, 4), bool), "images.dtype=bool"),
        (np.full((2, 4, 4), np.nan, np.float32), "NaN or Inf"),
        (np.full((2, 4, 4), np.inf, np.float32), "NaN or Inf"),
        (np.full((2, 4, 4), 2.0, np.float32), r"\[0, 1\].*max=2.0"),
        (np.full((2, 4, 4), -0.5), r"\[0, 1\].*min=-0.5"),
        (np.full((2, 4, 4), 256, np.int32), r"\[0, 255\].*max=256"),
    ],
)
def test_from_arrays_rejects_bad_images(images, match):
    with pytest.raises(ValueError, match=match):
        data.from_arrays(images)


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.arange(3), r"one label per image \(4\).*len\(labels\)=3"),
        (np.zeros(4, np.float32), "must be a 1-D integer array"),
        (np.zeros((4, 2), np.int32), r"1-D integer array.*shape \(4, 2\)"),
    ],
)
def test_from_arrays_rejects_bad_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        data.from_arrays(np.zeros((4, 2, 2), np.uint8), labels)


@pytest.mark.parametrize(
    "kwargs", [{"batch_size": 0}, {"batch_size": 2.0}, {"batch_size": True}, {"shuffle_buffer": 0}]
)
def test_from_arrays_rejects_bad_pipeline_arguments(kwargs):
    with pytest.raises(ValueError, match="Received: " + next(iter(kwargs))):
        data.from_arrays(np.zeros((4, 2, 2), np.uint8), **kwargs)


# --------------------------------------------------------------------------
# from_tfds (mocked, offline)


@pytest.mark.parametrize("name, size, channels", [("mnist", 28, 1), ("cifar10", 32, 3)])
def test_from_tfds_mock(name, size, channels):
    with tfds.testing.mock_data(num_examples=10):
        ds = data.from_tfds(name, split="train", batch_size=4, shuffle=True, seed=0)
        _assert_parallel_and_prefetched(ds)
        x, y = _collect(ds)
        images_only = _collect(data.from_tfds(name, label_key=None, batch_size=4, drop_remainder=True))
    assert ds.element_spec[0].shape.as_list() == [None, size, size, 3]
    assert x.shape == (10, size, size, 3) and x.dtype == np.uint8
    assert y.shape == (10,) and y.dtype == np.int32
    if channels == 1:
        np.testing.assert_array_equal(x[..., 0], x[..., 2])
    assert images_only.shape == (8, size, size, 3)


def test_from_tfds_resizes():
    with tfds.testing.mock_data(num_examples=3):
        x, _ = _collect(data.from_tfds("mnist", image_size=8, batch_size=3))
    assert x.shape == (3, 8, 8, 3) and x.dtype == np.uint8


def test_from_tfds_not_prepared_without_download(tmp_path):
    with pytest.raises(ValueError, match=r"'cifar10' is not prepared in .*download=True"):
        data.from_tfds("cifar10", data_dir=str(tmp_path), download=False)


def test_from_tfds_unknown_name_and_keys():
    with pytest.raises(ValueError, match="Unknown TFDS dataset name 'no_such_dataset_xyz'") as info:
        data.from_tfds("no_such_dataset_xyz")
    assert len(str(info.value)) < 300  # not TFDS's list of every dataset
    with tfds.testing.mock_data(num_examples=2):
        with pytest.raises(ValueError, match=r"no feature 'pixels'.*\['image', 'label'\]"):
            data.from_tfds("mnist", image_key="pixels")
        with pytest.raises(ValueError, match="label_key=None"):
            data.from_tfds("mnist", label_key="class")


# --------------------------------------------------------------------------
# Fashion-MNIST IDX files and the embedded subset


def _write_idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def idx_folder(tmp_path):
    """A fake Fashion-MNIST folder: 30 train / 20 test images, classes cycling 0..9."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 20)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), 0x803)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10, 0x801)
    return tmp_path


def test_load_fashion_mnist_parses_idx(idx_folder):
    images, labels = data.load_fashion_mnist("test", path=idx_folder)
    assert images.shape == (20, 28, 28, 1) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.arange(20) % 10)
    assert labels.dtype == np.int32


def test_idx_reader_names_the_file_for_non_gzip_and_truncated_files(idx_folder):
    target = idx_folder / "t10k-images-idx3-ubyte.gz"
    whole = target.read_bytes()
    target.write_bytes(gzip.decompress(whole))  # not gzipped
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz.*not a complete gzip file"):
        data.load_fashion_mnist("test", path=idx_folder)
    target.write_bytes(whole[: len(whole) // 2])  # cut short
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz.*not a complete gzip file"):
        data.load_fashion_mnist("test", path=idx_folder)


def test_idx_reader_refuses_labels_outside_the_ten_classes(idx_folder):
    _write_idx(idx_folder / "t10k-labels-idx1-ubyte.gz", np.array([8, 9, 200] + [0] * 17), 0x801)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\].*label 200"):
        data.load_fashion_mnist("test", path=idx_folder)


def test_loaded_fashion_mnist_arrays_are_writeable(idx_folder):
    images, labels = data.load_fashion_mnist("test", path=idx_folder)
    images[0, 0, 0, 0] = 7  # raised "assignment destination is read-only" before
    labels[0] = 3
    assert images[0, 0, 0, 0] == 7


def test_load_fashion_mnist_rejects_bad_files(idx_folder, tmp_path_factory):
    _write_idx(idx_folder / "t10k-images-idx3-ubyte.gz", np.zeros((20, 28, 28)), 0x801)
    with pytest.raises(ValueError, match="magic number 0x00000801; expected 0x00000803"):
        data.load_fashion_mnist("test", path=idx_folder)
    with gzip.open(idx_folder / "t10k-images-idx3-ubyte.gz", "wb") as f:
        header = b"".join(d.to_bytes(4, "big") for d in (0x803, 20, 28, 28))
        f.write(header + b"\0" * 10)
    with pytest.raises(ValueError, match="needs 15680"):
        data.load_fashion_mnist("test", path=idx_folder)
    _write_idx(idx_folder / "t10k-images-idx3-ubyte.gz", np.zeros((19, 28, 28)), 0x803)
    with pytest.raises(ValueError, match="19 images but 20 labels"):
        data.load_fashion_mnist("test", path=idx_folder)
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.load_fashion_mnist(path=empty)
    with pytest.raises(ValueError, match="split"):
        data.load_fashion_mnist("validation", path=idx_folder)


def test_build_script_is_balanced_and_deterministic(idx_folder, tmp_path, monkeypatch):
    from simclr_tf.data.embedded import build_fashion_mnist_subset as build

    monkeypatch.setattr(build, "PER_CLASS", {"train": 2, "test": 1})
    first = build.build(idx_folder, seed=1)
    assert np.bincount(first["train_labels"]).tolist() == [2] * 10
    assert np.bincount(first["test_labels"]).tolist() == [1] * 10
    images, _ = data.load_fashion_mnist("train", path=idx_folder)
    np.testing.assert_array_equal(first["train_images"], images[first["train_indices"], :, :, 0])
    build.save_npz(tmp_path / "a.npz", first)
    build.save_npz(tmp_path / "b.npz", build.build(idx_folder, seed=1))
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert build.build(idx_folder, seed=2)["train_indices"].tolist() != first["train_indices"].tolist()


@pytest.mark.parametrize("split, per_class", [("train", 1000), ("test", 200)])
def test_load_embedded_is_class_balanced(split, per_class):
    images, labels = data.load_embedded(split)
    assert images.shape == (10 * per_class, 28, 28, 1) and images.dtype == np.uint8
    assert labels.dtype == np.int32
    assert np.bincount(labels).tolist() == [per_class] * 10
    assert 0 < images.mean() < 255


def test_embedded_file_is_pickle_free_and_small():
    with np.load(data.EMBEDDED_PATH, allow_pickle=False) as npz:
        assert all(npz[key].dtype != object for key in npz.files)
    assert data.EMBEDDED_PATH.stat().st_size < 8 * 2**20


@pytest.mark.skipif(not HAS_DEBIAN_FMNIST, reason="needs apt-get install dataset-fashion-mnist")
def test_embedded_matches_debian_files():
    images, labels = data.load_fashion_mnist("test")
    assert images.shape == (10000, 28, 28, 1)
    with np.load(data.EMBEDDED_PATH, allow_pickle=False) as npz:
        indices = npz["test_indices"]
        np.testing.assert_array_equal(npz["test_images"], images[indices, :, :, 0])
        np.testing.assert_array_equal(npz["test_labels"], labels[indices])


# --------------------------------------------------------------------------
# load (dispatcher)


def test_load_embedded_defaults_train_vs_test():
    train = data.load("embedded", batch_size=300)
    assert train.element_spec[0].shape.as_list() == [300, 28, 28, 3]  # drop_remainder for training
    test = data.load("embedded", split="test", batch_size=300, with_labels=False)
    assert test.element_spec.shape.as_list() == [None, 28, 28, 3]
    x = _collect(test)
    expected, _ = data.load_embedded("test")
    np.testing.assert_array_equal(x, np.repeat(expected, 3, axis=-1))  # not shuffled


def test_load_fashion_mnist_from_data_dir(idx_folder):
    x, y = _collect(data.load("fashion_mnist", split="test", data_dir=str(idx_folder), batch_size=8))
    assert x.shape == (20, 28, 28, 3)
    np.testing.assert_array_equal(y, np.arange(20) % 10)


def test_load_folder_uses_split_subfolder_and_auto_labels(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("a", "b"):
            for i in range(n):
                (tmp_path / split / cls).mkdir(parents=True, exist_ok=True)
                image = tf.fill((4, 4, 1), tf.constant(i, tf.uint8))
                (tmp_path / split / cls / f"{i}.png").write_bytes(tf.io.encode_png(image).numpy())
    x, y = _collect(data.load(f"folder:{tmp_path}", split="test", batch_size=8))
    assert x.shape == (4, 4, 4, 3) and y.tolist() == [0, 0, 1, 1]
    ds = data.load(f"folder:{tmp_path / 'train'}", split="train", batch_size=3)
    assert ds.element_spec[0].shape.as_list() == [3, 4, 4, 3]
    flat = data.load(f"folder:{tmp_path / 'train' / 'a'}", batch_size=3)  # one folder: unlabelled
    assert flat.class_names is None and flat.element_spec.shape.as_list() == [3, 4, 4, 3]
    with pytest.raises(ValueError, match="no 'test' sub-folder"):
        data.load(f"folder:{tmp_path / 'train'}", split="test")
    with pytest.raises(ValueError, match=r"`shuffle_buffer` does not apply to folders.*shuffle_buffer=8"):
        data.load(f"folder:{tmp_path}", shuffle_buffer=8)


def test_load_tfds_prefixed_and_bare():
    with tfds.testing.mock_data(num_examples=4):
        x, y = _collect(data.load("tfds:cifar10", split="test", batch_size=2))
        bare = _collect(data.load("mnist", split="test", batch_size=2, with_labels=False))
    assert x.shape == (4, 32, 32, 3) and y.dtype == np.int32
    assert bare.shape == (4, 28, 28, 3)


@pytest.mark.parametrize("name", ["bogus:thing", "no_such_dataset_xyz", "", "folder:"])
def test_load_unknown_name_lists_accepted_forms(name):
    with pytest.raises(ValueError, match="embedded|folder:") as info:
        data.load(name)
    if name != "folder:":
        assert "tfds:" in str(info.value)


def test_load_embedded_names_the_file_when_its_labels_are_out_of_range(tmp_path, monkeypatch):
    # This error path once named an undefined variable (a NameError, not the ValueError).
    from simclr_tf.data import fashion_mnist

    bad = tmp_path / "subset.npz"
    np.savez(bad, train_images=np.zeros((2, 28, 28), np.uint8), train_labels=np.array([0, 10]),
             test_images=np.zeros((2, 28, 28), np.uint8), test_labels=np.array([0, 1]))
    monkeypatch.setattr(fashion_mnist, "EMBEDDED_PATH", bad)
    with pytest.raises(ValueError, match="subset.npz.*train_labels up to 10"):
        data.load_embedded("train")
