"""Pictures of what the augmentation does: ``augmentation_grid``.

PIL (Pillow) is imported only when a picture is written; install it with
``pip install pillow`` (it is in the ``dev`` extra).

``docs/augmentation_grid.png`` was made with scikit-image's photos::

    python -c "from skimage import data; from simclr_tf.augmentation import SimCLRAugmentation; \
    from simclr_tf.visualize import augmentation_grid; \
    augmentation_grid([data.astronaut(), data.coffee(), data.chelsea()], \
    SimCLRAugmentation(160, seed=0), 'docs/augmentation_grid.png', num_views=6)"
"""

import os

import numpy as np

from simclr_tf.atomic import atomic_path
from simclr_tf.validation import check_int


def _pil():
    try:
        from PIL import Image
    except ImportError as error:  # pragma: no cover - exercised only without Pillow
        raise ImportError(
            "simclr_tf.visualize needs Pillow to write images: pip install pillow "
            "(or pip install 'simclr_tf[dev]')."
        ) from error
    return Image


def _image_ops():
    from PIL import ImageOps

    return ImageOps


def _to_uint8(image):
    """Integer images are read as [0, 255] (as the augmentation layers read
    them), floating ones as [0, 1]."""
    image = np.asarray(image)
    if np.issubdtype(image.dtype, np.integer):
        image = np.clip(image, 0, 255).astype(np.uint8)
    else:
        image = np.clip(np.round(image.astype("float32") * 255.0), 0, 255).astype(np.uint8)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return image


def augmentation_grid(images, augmenter, path, num_views=5, padding=4, background=255):
    """Writes a PNG grid: one row per image, the original then ``num_views`` views.

    Each row calls ``augmenter`` once on ``num_views`` copies of the image, so
    every view is an independent draw. The original is resized (aspect kept,
    letterboxed) to the views' size so the row lines up.

    Args:
        images: a batch ``(B, H, W, C)`` or a list of ``(H, W, C)`` arrays of any
            sizes, uint8 in [0, 255] or float in [0, 1], C = 1 or 3.
        augmenter: a layer or callable mapping a batch to views
            ``(N, S, S, 3)`` in [0, 1], e.g. ``SimCLRAugmentation``.
        path: where to write the PNG.
        num_views: views per image.
        padding: pixels between cells.
        background: grey level of the padding.

    Returns:
        The grid as a uint8 array ``(rows, cols, 3)``.

    Example:
    >>> import numpy as np, tempfile, os
    >>> from simclr_tf.augmentation import SimCLRAugmentation
    >>> path = os.path.join(tempfile.mkdtemp(), "grid.png")
    >>> grid = augmentation_grid(np.zeros((2, 16, 16, 3), "uint8"), SimCLRAugmentation(8, seed=0), path, 3)
    >>> grid.shape
    (28, 52, 3)
    """
    num_views = check_int("num_views", num_views, minimum=1)
    padding = check_int("padding", padding, minimum=0)
    background = check_int("background", background, minimum=0, maximum=255)
    images = [np.asarray(image) for image in images]
    if not images:
        raise ValueError(f"`images` must hold at least one image. Received: images={images}")
    for image in images:
        if image.ndim != 3 or image.shape[-1] not in (1, 3):
            raise ValueError(f"Every image must be (height, width, 1 or 3). Received: image.shape={image.shape}")
    image_module = _pil()
    rows = []
    for image in images:
        views = _to_uint8(augmenter(np.repeat(image[None], num_views, axis=0)))
        size = views.shape[1:3]
        original = image_module.fromarray(_to_uint8(image))
        original = _image_ops().contain(original, (size[1], size[0]), image_module.Resampling.BICUBIC)
        cell = np.full(size + (3,), background, np.uint8)
        thumb = np.asarray(original)
        top, left = (size[0] - thumb.shape[0]) // 2, (size[1] - thumb.shape[1]) // 2
        cell[top:top + thumb.shape[0], left:left + thumb.shape[1]] = thumb
        rows.append([cell] + list(views))
    height, width = rows[0][0].shape[:2]
    cols = num_views + 1
    grid = np.full(
        (padding + len(rows) * (height + padding), padding + cols * (width + padding), 3), background, np.uint8
    )
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            y, x = padding + r * (height + padding), padding + c * (width + padding)
            grid[y:y + height, x:x + width] = cell
    with atomic_path(path) as tmp:
        # The format follows `path`'s extension (PNG when it has none): the
        # temporary name's own suffix is not the user's.
        extension = os.path.splitext(os.fspath(path))[1].lstrip(".").upper()
        image_format = {"JPG": "JPEG", "TIF": "TIFF"}.get(extension, extension) or "PNG"
        image_module.fromarray(grid).save(tmp, format=image_format)
    return grid
