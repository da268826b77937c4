"""SavedModel export of a pretrained encoder for serving.

`export_encoder` writes a TensorFlow SavedModel with two signatures:

- `serving_default`: `images`, uint8 (batch, height, width, 3) of any size.
  For a `SimCLR` model the images go through the augmenter's evaluation
  transform (exactly what `model.predict` does); for a bare encoder they are
  scaled to [0, 1] and resized (bilinear) to the encoder's input size.
  Outputs: `features` (h, float32) and, when a projection head exists,
  `projection` (z = g(h), float32).
- `serving_float`: `images`, float32 in [0, 1] at the encoder's input size,
  no resizing; same outputs.

The directory is written under a temporary name and renamed, so a crash never
leaves a half-written SavedModel under `path`. Inspect it with
`saved_model_cli show --dir PATH --all`; TF Serving's REST API takes
`{"signature_name": "serving_default", "instances": [<H x W x 3 uint8 list>]}`.
"""

import keras
import tensorflow as tf

from simclr_tf.atomic import atomic_path
from simclr_tf.model import SimCLR


def _parts(model_or_encoder):
    if isinstance(model_or_encoder, SimCLR):
        m = model_or_encoder
        head = m.projection_head
        if getattr(head, "mode", None) == "none":
            head = None
        return m.encoder, head, m.augmenter
    if isinstance(model_or_encoder, keras.Model):
        return model_or_encoder, None, None
    raise ValueError(
        "`model_or_encoder` must be a simclr_tf.SimCLR model or a Keras "
        f"encoder model. Received: {type(model_or_encoder).__name__}"
    )


def export_encoder(model_or_encoder, path):
    """Exports the encoder (and projection head) as a serving SavedModel.

    Args:
        model_or_encoder: a `SimCLR` model, or any Keras model mapping float
            [0, 1] images to features.
        path: output directory; replaced atomically if it exists.

    Returns:
        `path`.

    Example:

    >>> import simclr_tf, tempfile, tensorflow as tf
    >>> enc = simclr_tf.resnet(18, 0.125, (16, 16, 3), small_images=True)
    >>> out = simclr_tf.export_encoder(enc, tempfile.mkdtemp() + "/enc")
    >>> loaded = tf.saved_model.load(out)
    >>> loaded.signatures["serving_default"](
    ...     images=tf.zeros((1, 20, 24, 3), tf.uint8))["features"].shape
    TensorShape([1, 64])
    """
    encoder, head, augmenter = _parts(model_or_encoder)
    in_shape = tuple(encoder.input_shape[1:])
    if len(in_shape) != 3 or in_shape[0] is None or in_shape[1] is None:
        raise ValueError(
            "The encoder needs a fixed input size to export. "
            f"Received: encoder.input_shape={encoder.input_shape}"
        )
    height, width, channels = in_shape

    def outputs(views):
        h = encoder(views, training=False)
        result = {"features": tf.cast(h, tf.float32)}
        if head is not None:
            result["projection"] = tf.cast(head(h, training=False), tf.float32)
        return result

    def from_uint8(images):
        if augmenter is not None:
            views = augmenter(images, training=False)
        else:
            views = tf.image.resize(tf.cast(images, tf.float32) / 255.0, (height, width))
        if channels == 1:
            views = tf.image.rgb_to_grayscale(views)
        return outputs(views)

    archive = keras.export.ExportArchive()
    archive.track(encoder)
    if head is not None:
        archive.track(head)
    if augmenter is not None:
        archive.track(augmenter)
    archive.add_endpoint(
        "serving_default",
        from_uint8,
        input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8, name="images")],
    )
    archive.add_endpoint(
        "serving_float",
        outputs,
        input_signature=[
            tf.TensorSpec((None, height, width, channels), tf.float32, name="images")
        ],
    )
    with atomic_path(path, directory=True) as tmp:
        archive.write_out(tmp, verbose=False)
    return path
