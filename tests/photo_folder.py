"""Folders of real photos in every format a user's folder holds, for tests.

`make_photo_folder(root)` cuts scikit-image's bundled photos (astronaut,
coffee, chelsea, rocket) into random crops of mixed sizes and aspect ratios
and saves them with PIL as JPEG, PNG, BMP, GIF, grayscale, RGBA, CMYK JPEG,
16-bit PNG and upper-case extensions, plus a truncated JPEG and a text file
named `.jpg`. It returns a `PhotoFolder` that says what every file should
decode to, so tests compare our pipeline with PIL's decoding.

As a pytest fixture (tests/conftest.py need not change):

    from tests.photo_folder import photo_folder  # noqa: F401  (the fixture)

    def test_x(photo_folder):
        ds = data.from_folder(photo_folder.root, image_size=32)

or call `make_photo_folder(tmp_path, labelled=False, per_source=3, seed=1)`.
"""

import dataclasses
import pathlib

import numpy as np
import pytest

SOURCES = ("astronaut", "coffee", "chelsea", "rocket")

# (suffix, PIL mode, save options) cycled over the crops of each source.
FORMATS = (
    (".jpg", "RGB", {"quality": 95}),
    (".png", "RGB", {}),
    (".bmp", "RGB", {}),
    (".gif", "P", {}),
    (".png", "L", {}),
    (".png", "RGBA", {}),
    (".jpg", "CMYK", {"quality": 95}),
    (".png", "I;16", {}),
    (".JPG", "RGB", {"quality": 95}),
    (".jpeg", "L", {"quality": 95}),
    (".PNG", "RGB", {}),
)
UNREADABLE = ("truncated.jpg", "not_an_image.jpg")


@dataclasses.dataclass
class PhotoFolder:
    """A generated folder: where it is and what each file holds.

    Attributes:
        root: the folder (a pathlib.Path).
        expected: {path: uint8 (H, W, 3) array} for every readable file, as
            PIL decodes it (16-bit PNG scaled by 255/65535, alpha dropped).
        unreadable: paths of the files that cannot be decoded.
        labelled: whether files sit in one sub-folder per source photo.
        class_names: the sub-folder names when labelled, else None.
    """

    root: pathlib.Path
    expected: dict
    unreadable: list
    labelled: bool
    class_names: list = None

    @property
    def readable(self):
        return sorted(self.expected)


def _source(name):
    import skimage.data

    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return image[..., :3]


def _save(image, path, mode, options):
    """Saves an RGB uint8 crop in `mode`; returns what a decoder should give back."""
    import PIL.Image

    pil = PIL.Image.fromarray(image)
    if mode == "I;16":
        gray = np.asarray(pil.convert("L")).astype(np.uint16)
        wide = gray * 257 + (np.arange(gray.size).reshape(gray.shape) % 200).astype(np.uint16)
        PIL.Image.fromarray(wide).save(path)
        eight = np.round(wide / 257.0).clip(0, 255).astype(np.uint8)
        return np.stack([eight] * 3, axis=-1)
    if mode == "RGBA":
        alpha = np.linspace(0, 255, image.shape[1], dtype=np.uint8)[None, :].repeat(image.shape[0], 0)
        PIL.Image.fromarray(np.dstack([image, alpha])).save(path, **options)
        return image
    converted = pil.convert(mode) if mode != "P" else pil.convert("P", palette=PIL.Image.ADAPTIVE)
    converted.save(path, **options)
    with PIL.Image.open(path) as saved:
        return np.asarray(saved.convert("RGB"))


def make_photo_folder(root, *, labelled=True, per_source=None, seed=0, min_side=24, max_side=96,
                      unreadable=True):
    """Writes a folder of photo crops; returns a `PhotoFolder`.

    Args:
        root: folder to fill (created if needed).
        labelled: one sub-folder per source photo (a class), with a nested
            sub-folder in each; else a flat folder with one nested level.
        per_source: crops per source photo; None gives one per format.
        seed: fixes the crops.
        min_side, max_side: range of the crops' sides, sampled per side so
            that sizes and aspect ratios are mixed.
        unreadable: whether to add a truncated JPEG and a text file named
            `.jpg` (in the first class, or at the top when unlabelled).
    """
    import PIL.Image

    root = pathlib.Path(root)
    rng = np.random.default_rng(seed)
    per_source = per_source or len(FORMATS)
    expected, bad = {}, []
    for s, name in enumerate(SOURCES):
        source = _source(name)
        folder = root / name if labelled else root
        for i in range(per_source):
            h, w = (int(v) for v in rng.integers(min_side, max_side + 1, 2))
            y = int(rng.integers(0, source.shape[0] - h + 1))
            x = int(rng.integers(0, source.shape[1] - w + 1))
            suffix, mode, options = FORMATS[(i + s) % len(FORMATS)]
            sub = folder / "nested" if i % 3 == 2 else folder
            sub.mkdir(parents=True, exist_ok=True)
            tag = mode.replace(";", "")
            path = sub / f"{name}_{i:03d}_{tag}{suffix}"
            expected[str(path)] = _save(np.ascontiguousarray(source[y:y + h, x:x + w]), path, mode, options)
    if unreadable:
        folder = root / SOURCES[0] if labelled else root
        full = root / "_full.jpg"
        PIL.Image.fromarray(_source("coffee")[:64, :64]).save(full, quality=90)
        (folder / UNREADABLE[0]).write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        full.unlink()
        (folder / UNREADABLE[1]).write_text("this is a text file with an image's extension\n")
        bad = [str(folder / name) for name in UNREADABLE]
    return PhotoFolder(root, expected, bad, labelled, sorted(SOURCES) if labelled else None)


@pytest.fixture
def photo_folder(tmp_path):
    """A labelled folder of photo crops in every format, with two unreadable files."""
    return make_photo_folder(tmp_path / "photos")
