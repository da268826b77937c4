"""`from_tfds`: a batched pipeline from any TensorFlow Datasets builder."""

import tensorflow as tf

from simclr_tf.data.pipeline import (
    check_batch_size,
    check_image_size,
    check_shuffle_buffer,
    finish,
    image_and_label_fn,
    to_rgb,
)

# TFDS datasets have no known size up front; arrays and file lists are
# shuffled with a buffer as large as the dataset instead.
TFDS_SHUFFLE_BUFFER = 10_000


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

    batch_size = check_batch_size(batch_size)
    shuffle_buffer = check_shuffle_buffer(shuffle_buffer)
    image_size = check_image_size(image_size)
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

    batch_fn = image_and_label_fn(to_rgb, with_labels) if image_shape[-1] == 1 else None
    return finish(
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
