"""Encoders to evaluate: `load_encoder` (a `.keras` file or a run folder) and
`grid_encoder` (the last feature map pooled to a grid of cells, instead of h).
"""

import keras

from simclr_tf import validation


def load_encoder(path):
    """Loads an encoder for evaluation from a `.keras` file or a run folder.

    Args:
        path: a `.keras` file holding an encoder or a `SimCLR` model, or an
            `experiments.pretrain --output_dir`, from which `simclr.keras`
            (the whole model, so its augmenter's evaluation transform and
            projection head come along) or else `encoder.keras` is loaded.

    Returns:
        The loaded Keras model (uncompiled).

    Raises:
        ValueError: naming `path` when it is neither.
    """
    import os

    # Registers the package's serialisable classes (model, head, augmentation).
    import simclr_tf  # noqa: F401
    import simclr_tf.augmentation  # noqa: F401

    path = os.fspath(path)
    if os.path.isdir(path):
        for name in ("simclr.keras", "encoder.keras"):
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                path = candidate
                break
        else:
            raise ValueError(
                "`path` is a folder without simclr.keras or encoder.keras (a pretrain "
                f"--output_dir holds them). Received: path={path!r}"
            )
    elif not (path.endswith(".keras") and os.path.isfile(path)):
        raise ValueError(
            "`path` must be an existing .keras file or a pretrain output folder. "
            f"Received: path={path!r}"
        )
    return keras.saving.load_model(path, compile=False)


def grid_encoder(encoder, grid=2):
    """The encoder's last feature map average-pooled to `grid` x `grid` cells.

    A ResNet's h is the global average of its last feature map (`grid=1`).
    `grid=2` keeps four cell averages instead of one: at 28 px with the
    stride-2 stem, ResNet-10's map is 2 x 2 x 256, so the features are the
    whole map flattened (1,024-d). A linear classifier on such spatially
    pooled maps is the linear protocol of the earlier self-supervised
    benchmarks (Goyal et al. 2019, "Scaling and benchmarking self-supervised
    visual representation learning"), not SimCLR's, which probes h. h is a
    linear function of these features, so every probe of h is also a probe
    of the grid (on held-out images the wider probe can still do worse).
    Report it beside the probe on h, not in its place.

    Cells follow adaptive average pooling: cell `i` of a side of length `n`
    covers `floor(i * n / grid)` to `ceil((i + 1) * n / grid)`, so cells
    overlap when `grid` does not divide `n`. Features are ordered (cell row,
    cell column, channel), as the map's own flattening.

    Args:
        encoder: a functional Keras encoder whose last layer is a
            `GlobalAveragePooling2D` (every `simclr_tf.resnet`), or a
            `SimCLR` model (its encoder).
        grid: cells per side, an integer >= 1, at most the map's side.

    Returns:
        A `keras.Model` sharing the encoder's layers and weights, from its
        input to `(batch, grid * grid * channels)` features.

    Raises:
        ValueError: naming `encoder` when it has no global average pool to
            take the map from or the map's size is not static, or `grid`
            when it is not an integer in [1, map side].

    Example:

    >>> import simclr_tf
    >>> enc = simclr_tf.resnet(10, 0.25, (28, 28, 3), small_images=True, stem_stride=2)
    >>> grid_encoder(enc, 2).output_shape
    (None, 512)
    """
    from simclr_tf.model import SimCLR

    if isinstance(encoder, SimCLR):
        encoder = encoder.encoder
    last = encoder.layers[-1] if isinstance(encoder, keras.Model) and encoder.layers else None
    if not isinstance(last, keras.layers.GlobalAveragePooling2D) or getattr(last, "keepdims", False):
        raise ValueError(
            "`encoder` must be a functional Keras model ending in a GlobalAveragePooling2D layer "
            "(as simclr_tf.resnet builds), or a SimCLR model. Received: "
            f"encoder of type {type(encoder).__name__}"
            + (f" ending in {type(last).__name__}" if last is not None else "")
        )
    if getattr(last, "data_format", "channels_last") != "channels_last":
        raise ValueError(
            "`encoder` must pool a channels_last feature map. Received: an encoder whose "
            f"GlobalAveragePooling2D has data_format={last.data_format!r}"
        )
    try:
        feature_map = last.input
    except (AttributeError, ValueError) as err:
        raise ValueError(f"`encoder` must be a functional Keras model (its layers called once). {err}") from None
    height, width = feature_map.shape[1:3]
    if height is None or width is None:
        raise ValueError(
            "`encoder` must have a last feature map of static height and width; build it with a "
            f"fixed input size. Received: feature map shape {tuple(feature_map.shape)}"
        )
    side = min(height, width)
    grid = validation.check_int("grid", grid, minimum=1)
    if grid > side:
        raise ValueError(
            f"`grid` must be at most the last feature map's side ({height} x {width}). Received: grid={grid}"
        )

    def bounds(n):
        return [(i * n // grid, -(-(i + 1) * n // grid)) for i in range(grid)]

    cells = [
        keras.ops.mean(feature_map[:, r0:r1, c0:c1, :], axis=(1, 2))
        for r0, r1 in bounds(height)
        for c0, c1 in bounds(width)
    ]
    features = cells[0] if grid == 1 else keras.ops.concatenate(cells, axis=-1)
    # `inputs` (not `input`) also works for a Sequential; one input is passed
    # bare so that calling the model on a tensor matches its structure.
    inputs = encoder.inputs
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, features, name=f"{encoder.name}_grid{grid}")
