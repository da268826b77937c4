"""Builders of the command line: strategy, encoder, augmenter, model, optimizer.

Every entry point and the ablation harness build from a config through these,
so a config key (`sync_batch_norm`, `encoder.backbone`, ...) means the same
everywhere. Only entry points create a `tf.distribute` strategy.
"""

import warnings

import keras
import tensorflow as tf

import simclr_tf
from simclr_tf_cli.config import check_backbone

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name, tpu_address=""):
    """Only entry points create strategies; library code stays agnostic."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"`--strategy` must be one of {STRATEGIES}. Received: strategy={name!r}")


def on_accelerator():
    return bool(tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"))


def _keras_backbone(name, input_shape):
    """A `keras.applications` architecture, untrained, ending in global average pooling.

    Our views are float images in [0, 1]. Builders that take
    `include_preprocessing` get False (theirs expects 0-255); EfficientNet
    B0-B7 always rescale by 1/255 and normalise inside, so they get their
    0-255 input back from a Rescaling(255) in front.
    """
    import inspect

    check_backbone(name)
    builder = getattr(keras.applications, name)
    kwargs = dict(include_top=False, weights=None, input_shape=input_shape, pooling="avg")
    if "include_preprocessing" in inspect.signature(builder).parameters:
        kwargs["include_preprocessing"] = False
    base = builder(**kwargs)
    if not name.startswith("EfficientNetB"):
        return base
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, base(keras.layers.Rescaling(255.0)(inputs)), name=base.name)


def build_encoder(config, zero_init_residual=True):
    """The config's encoder: `simclr_tf.resnet`, or `encoder.backbone` from `keras.applications`."""
    enc = config["encoder"]
    size = config["image_size"]
    backbone = enc.get("backbone", "resnet")
    if backbone != "resnet":
        return _keras_backbone(backbone, (size, size, 3))
    return simclr_tf.resnet(
        enc["depth"],
        # None when the config gives stage_widths instead (check_config);
        # with neither, resnet() refuses the None.
        width_multiplier=enc.get("width_multiplier"),
        input_shape=(size, size, 3),
        small_images=enc["small_images"],
        stem_stride=enc.get("stem_stride", 1),
        stem_pool=enc.get("stem_pool", False),
        stage_widths=enc.get("stage_widths"),
        sync_batch_norm=config.get("sync_batch_norm", False),
        zero_init_residual=zero_init_residual,
    )


def build_augmenter(config, seed=None):
    return simclr_tf.SimCLRAugmentation(config["image_size"], seed=seed, **config["augment"])


def build_model(config, *, encoder=None, augmenter=None, model_class=None, online_probe=True):
    """`SimCLR` (or `model_class`) from `config`; `encoder` / `augmenter` replace the config's.

    `online_probe=False` leaves out the online probe that `num_classes`
    adds (for training data without labels).
    """
    head = config["head"]
    return (model_class or simclr_tf.SimCLR)(
        encoder=encoder if encoder is not None else build_encoder(config),
        projection_head=simclr_tf.ProjectionHead(
            num_layers=head["num_layers"],
            output_dim=head["output_dim"],
            mode=head["mode"],
            sync_batch_norm=config.get("sync_batch_norm", False),
        ),
        augmenter=augmenter if augmenter is not None else build_augmenter(config, seed=config["seed"]),
        temperature=config["temperature"],
        num_classes=config.get("num_classes") if online_probe else None,
    )


def build_optimizer(config, steps_per_epoch):
    opt = config["optimizer"]
    total = max(1, steps_per_epoch * config["epochs"])
    warmup = min(total, int(round(opt.get("warmup_epochs", 0) * steps_per_epoch)))
    scaling = opt.get("scaling", "linear")
    if scaling == "none":
        peak, batch_size, scaling = opt["base_learning_rate"], 256, "linear"
    else:
        peak, batch_size = opt["base_learning_rate"], config["batch_size"]
    lr = simclr_tf.WarmupCosine(peak, batch_size, total, warmup, scaling=scaling)
    name = opt["name"].lower()
    wd = opt.get("weight_decay", 0.0)
    if name == "lars":
        return simclr_tf.LARS(lr, momentum=opt.get("momentum", 0.9), weight_decay=wd)
    if name == "sgd":
        return keras.optimizers.SGD(lr, momentum=opt.get("momentum", 0.9), nesterov=True)
    if name == "adam":
        if wd:
            # Warned, not refused: the CPU ablation config's finished cells
            # were run with this (ignored) value in their fingerprints.
            warnings.warn(
                f"`optimizer.weight_decay`={wd!r} has no effect with optimizer.name='adam' "
                "(plain Adam has no weight decay); use 'adamw' or 'lars' to apply it.",
                stacklevel=2,
            )
        return keras.optimizers.Adam(lr)
    if name == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=wd)
    if name == "lamb":
        return keras.optimizers.Lamb(lr)
    raise ValueError(
        "`optimizer.name` must be one of lars, sgd, adam, adamw, lamb. "
        f"Received: optimizer.name={opt['name']!r}"
    )


def resolve_jit(config):
    jit = config.get("jit_compile", "auto")
    if jit == "auto":
        return on_accelerator()
    return bool(jit)
