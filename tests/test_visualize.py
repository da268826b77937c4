"""Tests for simclr_tf.visualize."""

import numpy as np
import pytest

from simclr_tf.augmentation import SimCLRAugmentation
from simclr_tf.visualize import augmentation_grid


def test_augmentation_grid_writes_png(tmp_path):
    from PIL import Image

    images = [
        np.random.default_rng(0).integers(0, 256, (20, 30, 3)).astype("uint8"),
        np.random.default_rng(1).random((12, 12, 1)).astype("float32"),
    ]
    path = tmp_path / "grid.png"
    grid = augmentation_grid(images, SimCLRAugmentation(8, seed=0), str(path), num_views=3, padding=2)
    assert grid.shape == (2 + 2 * 10, 2 + 4 * 10, 3) and grid.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(Image.open(path)), grid)
    # Views of one image differ from each other.
    first, second = grid[2:10, 12:20], grid[2:10, 22:30]
    assert np.abs(first.astype(int) - second).max() > 0


def test_augmentation_grid_original_cell_keeps_the_image(tmp_path):
    # Integer originals of any dtype are read as [0, 255], and a small original
    # is enlarged to the views' size.
    image = np.random.default_rng(2).integers(0, 256, (10, 10, 3))  # int64
    grid = augmentation_grid([image], SimCLRAugmentation(40, seed=0), str(tmp_path / "g.png"), num_views=1,
                             padding=0)
    cell = grid[:40, :40].astype(float)
    assert abs(cell.mean() - image.mean()) < 5, (cell.mean(), image.mean())  # not washed out to white
    block = cell[:4, :4].mean((0, 1))  # the top-left source pixel, enlarged 4x
    np.testing.assert_allclose(block, image[0, 0], atol=40)


def test_augmentation_grid_format_follows_the_extension(tmp_path):
    images = [np.zeros((12, 12, 3), "uint8")]
    augmentation_grid(images, SimCLRAugmentation(8, seed=0), str(tmp_path / "g.jpg"), num_views=1)
    assert (tmp_path / "g.jpg").read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.jpg"]


def test_augmentation_grid_with_skimage_photos(tmp_path):
    data = pytest.importorskip("skimage.data")
    images = [data.astronaut()[::8, ::8], data.chelsea()[::8, ::8]]
    grid = augmentation_grid(images, SimCLRAugmentation(16, seed=0), str(tmp_path / "g.png"), num_views=2)
    assert grid.shape[:2] == (4 + 2 * 20, 4 + 3 * 20)


@pytest.mark.parametrize(
    "images, views, match",
    [([np.zeros((4, 4))], 2, "image.shape"), ([], 2, "at least one"), ([np.zeros((4, 4, 3))], 0, "num_views=0")],
)
def test_augmentation_grid_rejects_bad_arguments(tmp_path, images, views, match):
    with pytest.raises(ValueError, match=match):
        augmentation_grid(images, SimCLRAugmentation(8), str(tmp_path / "x.png"), num_views=views)
