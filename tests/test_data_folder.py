"""Tests for simclr_tf.data.from_folder on generated folders of real photos (tests/photo_folder.py)."""

import json
import warnings

import numpy as np
import pytest
import tensorflow as tf

from simclr_tf import data
from simclr_tf.data import folder as folder_lib
from tests.photo_folder import make_photo_folder, photo_folder  # noqa: F401  (fixture)

pytest.importorskip("PIL")
pytest.importorskip("skimage")


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _collect(ds):
    batches = list(ds.as_numpy_iterator())
    if isinstance(batches[0], tuple):
        return tuple(np.concatenate(parts) for parts in zip(*batches))
    return np.concatenate(batches)


def test_decode_matches_pil_for_every_format(photo_folder):  # noqa: F811
    for path, expected in photo_folder.expected.items():
        image = folder_lib.decode_image(tf.io.read_file(path)).numpy()
        assert image.shape == expected.shape and image.dtype == np.uint8, path
        diff = np.abs(image.astype(int) - expected.astype(int))
        if path.lower().endswith((".jpg", ".jpeg")):
            # libjpeg builds differ in IDCT and chroma upsampling.
            assert diff.mean() < 3 and diff.max() <= 24, (path, diff.mean(), diff.max())
        else:  # PNG (16-bit: high byte vs rounding, within one level), BMP, GIF, RGBA
            assert diff.max() <= 1, (path, diff.max())


def test_labelled_folder_pixels_labels_and_unreadable_files(photo_folder):  # noqa: F811
    with pytest.warns(UserWarning, match=r"Skipping 1 of 46 image files under .*photos.*truncated\.jpg"):
        ds = data.from_folder(photo_folder.root, image_size=(24, 20), batch_size=8)
    assert ds.class_names == photo_folder.class_names
    assert ds.element_spec[0].shape.as_list() == [None, 24, 20, 3]
    assert int(ds.cardinality()) == 6  # 46 listed files, unreadable ones included: epochs keep their length
    x, y = _collect(ds)
    assert x.shape == (46, 24, 20, 3) and x.dtype == np.uint8 and y.dtype == np.int32
    files = ds.files  # the listing order, which an unshuffled pass follows
    for i, path in enumerate(files):
        if path in photo_folder.expected:
            assert y[i] == photo_folder.class_names.index(path.split("/")[-2 if "nested" not in path else -3])
            expected = folder_lib.resize(tf.constant(photo_folder.expected[path]), (24, 20)).numpy()
            diff = np.abs(x[i].astype(int) - expected)
            if path.lower().endswith((".jpg", ".jpeg")):
                # libjpeg's decoder (and its scaled decoding of large JPEGs)
                # differs from PIL's at sharp edges, not on average.
                assert diff.mean() <= 3 and diff.max() <= 48, (path, diff.mean(), diff.max())
            else:
                assert diff.max() <= 1, path
        else:  # its slot holds the next readable file
            following = files[i + 1] if files[i + 1] in photo_folder.expected else files[i + 2]
            assert np.array_equal(x[i], x[files.index(following)])
    assert sorted(ds.unreadable.files) == sorted(photo_folder.unreadable)
    assert ds.unreadable.count == 2 and ds.unreadable.skips == 2
    assert "Skipping 2 of 46" in ds.unreadable.report() and "not_an_image.jpg" in ds.unreadable.report()
    assert ds.unreadable.reason(photo_folder.unreadable[1])


def test_on_error_raise_names_the_file(tmp_path):
    pf = make_photo_folder(tmp_path, labelled=False, per_source=6)
    with pytest.raises((ValueError, tf.errors.OpError), match=r"Cannot decode image file '.*\.jpg'"):
        ds = data.from_folder(pf.root, image_size=16, on_error="raise", batch_size=4)
        for _ in ds:
            pass


def test_labels_auto_on_both_layouts_and_recursion(tmp_path):
    flat = make_photo_folder(tmp_path / "flat", labelled=False, per_source=4, unreadable=False)
    ds = data.from_folder(flat.root, image_size=16, batch_size=32)
    assert ds.class_names is None and ds.element_spec.shape.as_list() == [None, 16, 16, 3]
    assert sorted(ds.files) == flat.readable  # nested/ sub-folders included
    assert any("/nested/" in f for f in ds.files)
    labelled = make_photo_folder(tmp_path / "classes", per_source=4, unreadable=False)
    ds = data.from_folder(labelled.root, image_size=16, batch_size=32)
    assert ds.class_names == ["astronaut", "chelsea", "coffee", "rocket"]
    assert np.bincount(_collect(ds)[1]).tolist() == [4, 4, 4, 4]
    assert data.from_folder(labelled.root, image_size=16, labels=None).class_names is None
    with pytest.raises(ValueError, match=r"no sub-folders"):
        data.from_folder(flat.root / "nested", labels="inferred")


def test_default_image_size_for_mixed_and_uniform_folders(tmp_path):
    pf = make_photo_folder(tmp_path / "mixed", labelled=False, per_source=5, unreadable=False)
    ds = data.from_folder(pf.root, batch_size=4, drop_remainder=True)
    side = ds.image_size[0]
    assert ds.image_size == (side, side) and 24 <= side <= 96
    assert ds.element_spec.shape.as_list() == [4, side, side, 3]
    uniform = tmp_path / "uniform"
    uniform.mkdir()
    for i in range(3):
        (uniform / f"{i}.png").write_bytes(tf.io.encode_png(tf.zeros((5, 7, 3), tf.uint8)).numpy())
    assert data.from_folder(uniform).image_size == (5, 7)


def test_seeded_shuffle_is_deterministic_new_each_epoch_and_resumable(tmp_path):
    root = tmp_path / "numbered"
    root.mkdir()
    for i in range(10):
        image = tf.fill((2, 2, 1), tf.constant(i * 20, tf.uint8))
        (root / f"{i:02d}.png").write_bytes(tf.io.encode_png(image).numpy())

    def epochs(repeat, seed=3, **kwargs):
        ds = data.from_folder(root, batch_size=10, shuffle=True, seed=seed, repeat=repeat, **kwargs)
        if not repeat:
            ds = ds.repeat(3)
        return [(b[:, 0, 0, 0] // 20).tolist() for b in ds.take(3).as_numpy_iterator()]

    first = epochs(repeat=True)
    assert all(sorted(e) == list(range(10)) for e in first)
    assert first[0] != first[1] != first[2] and first[0] != list(range(10))
    assert epochs(repeat=True) == first
    assert epochs(repeat=True, seed=4) != first
    assert epochs(repeat=True, initial_epoch=1)[:2] == first[1:]  # resume without reading epoch 0
    finite = epochs(repeat=False)  # a caller's .repeat() reshuffles too, reproducibly
    assert finite == epochs(repeat=False) and finite[0] != finite[1]
    assert all(sorted(e) == list(range(10)) for e in finite)
    with pytest.raises(ValueError, match=r"initial_epoch.*repeat=True"):
        data.from_folder(root, initial_epoch=2)


def test_shards_are_disjoint_and_cover_every_file(tmp_path, monkeypatch):
    pf = make_photo_folder(tmp_path, labelled=False, per_source=5, unreadable=False)
    shards = [_quiet(data.from_folder, pf.root, image_size=8, shard=(3, i)) for i in range(3)]
    seen = [set(ds.files) for ds in shards]
    assert set.union(*seen) == set(pf.readable) and sum(map(len, seen)) == len(pf.readable)
    assert [sum(len(b) for b in ds) for ds in shards] == [len(s) for s in seen]
    policy = shards[0].options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.OFF  # not sharded a second time
    cluster = {"chief": ["localhost:1"], "worker": ["localhost:2", "localhost:3"]}
    for task, expected in ((("chief", 0), (3, 0)), (("worker", 1), (3, 2)), (("evaluator", 0), (1, 0))):
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": dict(zip(("type", "index"), task))}))
        assert folder_lib.worker_shard() == expected
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    listed = data.from_folder(pf.root, image_size=8, shard=None).files
    assert data.from_folder(pf.root, image_size=8).files == listed[2::3]  # worker 1 is shard 2, after the chief
    monkeypatch.delenv("TF_CONFIG")
    assert data.from_folder(pf.root, image_size=8).files == listed


def test_batches_keep_shape_with_repeat_and_drop_remainder(tmp_path):
    pf = make_photo_folder(tmp_path, labelled=False, per_source=3)
    ds = _quiet(data.from_folder, pf.root, image_size=(12, 10), batch_size=5, shuffle=True, seed=0,
                repeat=True, drop_remainder=True)
    assert ds.element_spec.shape.as_list() == [5, 12, 10, 3]
    assert ds.cardinality() == tf.data.INFINITE_CARDINALITY
    assert [b.shape for b in ds.take(7).as_numpy_iterator()] == [(5, 12, 10, 3)] * 7


def test_report_callback_logs_at_epoch_end(photo_folder, caplog):  # noqa: F811
    ds = _quiet(data.from_folder, photo_folder.root, image_size=8, batch_size=64)
    report = data.UnreadableFilesReport(ds)
    for _ in ds:
        pass
    with caplog.at_level("WARNING", logger="simclr_tf"):
        report.on_epoch_end(0)
        report.on_epoch_end(1)  # nothing new: no second line
        report.on_train_end()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and lines[0].startswith("Epoch 1: Skipping 2 of 46")
    assert lines[1].startswith("End of training: Skipping 2 of 46")
    with pytest.raises(ValueError, match="Received: unreadable=3"):
        data.UnreadableFilesReport(3)


@pytest.mark.parametrize("kwargs, match", [
    ({"labels": "yes"}, r'`labels` must be "auto", "inferred" or None. Received: labels=\'yes\''),
    ({"on_error": "ignore"}, r"Received: on_error='ignore'"),
    ({"image_size": -1}, r"Received: image_size=\(-1, -1\)"),
    ({"shard": (2, 2)}, r"Received: shard=\(2, 2\)"),
    ({"initial_epoch": -1, "repeat": True}, r"Received: initial_epoch=-1"),
    ({"batch_size": 0}, r"Received: batch_size=0"),
])
def test_bad_arguments_name_the_argument(tmp_path, kwargs, match):
    (tmp_path / "a.png").write_bytes(tf.io.encode_png(tf.zeros((2, 2, 3), tf.uint8)).numpy())
    with pytest.raises(ValueError, match=match):
        data.from_folder(tmp_path, **kwargs)


def test_empty_folder_no_images_and_only_unreadable_files(tmp_path):
    with pytest.raises(ValueError, match=r"No image files .*found under path='.*empty'\.$"):
        (tmp_path / "empty").mkdir()
        data.from_folder(tmp_path / "empty")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"No image files .*path='.*text' \(1 other files ignored\)"):
        data.from_folder(tmp_path / "text")
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(20):  # more than the probe decodes up front
        (bad / f"{i}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"None of the 20 image files under path='.*bad' could be decoded"):
        _quiet(data.from_folder, bad)
    with pytest.raises(ValueError, match="does not exist. Received: path='.*nowhere'"):
        data.from_folder(tmp_path / "nowhere")
