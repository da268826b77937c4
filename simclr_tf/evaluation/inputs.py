"""Input adapters shared by the evaluation protocols.

Every protocol takes its data in the same forms: `(images, labels)` numpy
arrays (uint8, or float in [0, 1]; any size) or a `tf.data.Dataset` of
`(images, labels)` batches (tuples or `{"image", "label"}` dicts). The
helpers here turn those into datasets, arrays or labels, and give each
encoder its evaluation transform. Argument checks that are not specific to
evaluation live in `simclr_tf.validation`.
"""

import keras
import numpy as np
import tensorflow as tf

from simclr_tf import validation


def _check_labels(name, labels, num_rows=None):
    return validation.check_labels(name, labels, num_rows, per="feature row")


def _check_num_classes(num_classes, *label_arrays):
    seen = int(max(int(labels.max()) for labels in label_arrays)) + 1
    if num_classes is None:
        return seen
    num_classes = validation.check_int("num_classes", num_classes, minimum=1)
    if seen > num_classes:
        raise ValueError(
            f"`num_classes` must exceed every label; the data holds label {seen - 1}. "
            f"Received: num_classes={num_classes}"
        )
    return num_classes


def _is_dataset(value):
    return isinstance(value, tf.data.Dataset)


def _split_batch(batch):
    """`(images, labels or None)` from a tuple, dict or bare-image batch."""
    if isinstance(batch, (tuple, list)):
        return batch[0], (batch[1] if len(batch) > 1 else None)
    if isinstance(batch, dict):
        return batch["image"], batch.get("label")
    return batch, None


def _is_array_like(value):
    return isinstance(value, (np.ndarray, list, tf.Tensor)) or hasattr(value, "__array__")


def _image_array(name, images):
    """`images` as a numpy array of (N, H, W) or (N, H, W, C) images, N >= 1.

    Float images must lie in [0, 1] (uint8 is scaled later): 0-255 floats,
    as `tf.image.resize` returns them, would otherwise be clipped to white.
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4) or len(images) == 0 or images.dtype.kind not in "uif":
        raise ValueError(
            f"`{name}` must be a numeric array of shape (N, H, W) or (N, H, W, C) with N >= 1. "
            f"Received: {name} with shape {images.shape} and dtype {images.dtype}"
        )
    if images.dtype.kind == "f" and images.size:
        low, high = float(np.min(images)), float(np.max(images))
        if not (0.0 <= low and high <= 1.0):
            raise ValueError(
                f"`{name}` float values must lie in [0, 1] (pass uint8 for 0-255 images). "
                f"Received: values in [{low}, {high}]"
            )
    return images


def _labelled_arrays(name, value):
    """Checks an `(images, labels)` pair of arrays; returns them as numpy."""
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise ValueError(
            f"`{name}` must be an (images, labels) pair of arrays or a tf.data.Dataset of "
            f"(images, labels) batches. Received: {name} of type {type(value).__name__}"
        )
    images, labels = _image_array(f"{name}[0]", value[0]), np.asarray(value[1])
    return images, _check_labels(f"{name}[1]", labels, len(images)).astype(np.int32)


def _as_dataset(name, value, batch_size, shuffle=False, seed=None):
    """A batched `(images, labels)` dataset from arrays or a dataset."""
    if _is_dataset(value):
        return value
    images, labels = _labelled_arrays(name, value)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    return (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        if shuffle
        else tf.data.Dataset.from_tensor_slices((images, labels))
    ).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _as_arrays(name, value):
    """`(images, labels)` numpy arrays; a dataset is read into memory."""
    if not _is_dataset(value):
        return _labelled_arrays(name, value)
    images, labels = [], []
    for batch in value:
        x, y = _split_batch(batch)
        if y is None:
            raise ValueError(f"`{name}` must yield (images, labels) batches; it yields images only.")
        images.append(np.asarray(x))
        labels.append(np.asarray(y))
    if not images:
        raise ValueError(f"`{name}` is an empty dataset.")
    return _labelled_arrays(name, (np.concatenate(images), np.concatenate(labels)))


def _labels_of(name, value):
    """The labels of arrays or of a dataset (read once)."""
    if not _is_dataset(value):
        return _labelled_arrays(name, value)[1]
    labels = [_split_batch(batch)[1] for batch in value]
    if not labels or any(y is None for y in labels):
        raise ValueError(f"`{name}` must yield (images, labels) batches.")
    return np.concatenate([np.asarray(y) for y in labels])


def _to_input(images, height, width, channels):
    """uint8 or float [0, 1] images -> float32 [0, 1] at the encoder's input."""
    images = tf.convert_to_tensor(images)
    if images.shape.rank == 3:
        images = images[..., tf.newaxis]
    if images.dtype.is_integer:
        images = tf.cast(images, tf.float32) / 255.0
    else:
        images = tf.cast(images, tf.float32)
    if images.shape[-1] == 1 and channels == 3:
        images = tf.image.grayscale_to_rgb(images)
    elif images.shape[-1] == 3 and channels == 1:
        images = tf.image.rgb_to_grayscale(images)
    if height is not None and (images.shape[1] != height or images.shape[2] != width):
        images = tf.image.resize(images, (height, width), method="bilinear")
    return images


def _unwrap(encoder, preprocess):
    """(Keras encoder, eval transform, SimCLR model or None)."""
    from simclr_tf.model import SimCLR

    if isinstance(encoder, SimCLR):
        model = encoder
        if preprocess is None:
            preprocess = lambda x: model.augmenter(x, training=False)  # noqa: E731
        return model.encoder, preprocess, model
    if not isinstance(encoder, keras.Model):
        raise ValueError(
            "`encoder` must be a Keras model mapping float [0, 1] images to features, or a "
            f"simclr_tf.SimCLR model. Received: encoder of type {type(encoder).__name__}"
        )
    shape = tuple(encoder.input_shape[1:])
    if len(shape) != 3 or None in shape:
        if preprocess is None:
            raise ValueError(
                "`encoder` has no fixed (height, width, channels) input; pass `preprocess`. "
                f"Received: encoder.input_shape={encoder.input_shape}"
            )
    elif preprocess is None:
        height, width, channels = shape
        preprocess = lambda x: _to_input(x, height, width, channels)  # noqa: E731
    return encoder, preprocess, None


def _default_preprocess(model):
    """uint8 -> [0, 1], channels and size matched to a bare encoder's input.

    None for a `SimCLR` model (its call applies its evaluation transform) or
    a layer without a known image input; a dimension the input leaves open
    is left as it is.
    """
    from simclr_tf.model import SimCLR

    if isinstance(model, SimCLR) or not isinstance(model, keras.Model):
        return None
    try:
        shape = tuple(model.input_shape[1:])
    except (AttributeError, ValueError):  # a subclassed model not yet built
        return None
    if len(shape) != 3:
        return None
    height, width, channels = shape
    if height is None or width is None:
        height = width = None
    return lambda x: _to_input(x, height, width, channels)  # noqa: E731


def _num_classes_of(num_classes, train_data, test_data):
    if num_classes is not None:
        num_classes = validation.check_int("num_classes", num_classes, minimum=2)
        if _is_dataset(train_data) or _is_dataset(test_data):
            return num_classes  # not worth a pass over a dataset just to check it
    return _check_num_classes(
        num_classes, _labels_of("train_data", train_data), _labels_of("test_data", test_data)
    )
