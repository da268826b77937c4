"""Shared pieces of the entry points: configs, strategies, model building.

Configs are Python modules under `experiments/configs/` whose `get_config()`
returns a nested dict; `--set key.sub=value` overrides any entry.
"""

import ast
import copy
import importlib
import importlib.util
import os
import time
import warnings

from absl import logging

import simclr_tf  # first: it sets TF_ENABLE_ONEDNN_OPTS before TensorFlow loads

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def load_config(name):
    """Loads `experiments/configs/<name>.py` or a path to a config module."""
    if name.endswith(".py") or os.sep in name:
        if not os.path.isfile(name):
            raise ValueError(f"`--config` file not found. Received: config={name!r}")
        spec = importlib.util.spec_from_file_location("simclr_config", name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(f"experiments.configs.{name}")
        except ModuleNotFoundError:
            here = os.path.join(os.path.dirname(__file__), "configs")
            known = sorted(f[:-3] for f in os.listdir(here) if f.endswith(".py") and f[0] != "_")
            raise ValueError(
                f"Unknown `--config`; known: {known} or a path to a .py file. "
                f"Received: config={name!r}"
            ) from None
    return module.get_config()


def apply_overrides(config, overrides):
    """Applies `key.sub=value` strings; values parse as Python literals."""
    config = copy.deepcopy(config)
    for item in overrides or ():
        if "=" not in item:
            raise ValueError(f"`--set` wants key=value. Received: {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        node = config
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ValueError(f"`--set` key {key!r} does not name a config section.")
            node = node[part]
        if parts[-1] not in node:
            raise ValueError(f"`--set` key {key!r} is not in the config (known: {sorted(node)}).")
        node[parts[-1]] = value
    return config


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


def build_encoder(config, zero_init_residual=True):
    enc = config["encoder"]
    size = config["image_size"]
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


def build_model(config):
    head = config["head"]
    return simclr_tf.SimCLR(
        encoder=build_encoder(config),
        projection_head=simclr_tf.ProjectionHead(
            num_layers=head["num_layers"],
            output_dim=head["output_dim"],
            mode=head["mode"],
            sync_batch_norm=config.get("sync_batch_norm", False),
        ),
        augmenter=build_augmenter(config, seed=config["seed"]),
        temperature=config["temperature"],
        num_classes=config.get("num_classes"),
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


DEPTHS = (10, 14, 18, 34, 50, 101, 152)


def check_config(config, replicas=1):
    """Refuses invalid values up front, naming the key and the value.

    `replicas` is the strategy's replica count: the global batch must split
    evenly across replicas.
    """
    checks = [
        ("temperature", config.get("temperature"), lambda v: isinstance(v, (int, float)) and v > 0, "> 0"),
        ("batch_size", config.get("batch_size"), lambda v: isinstance(v, int) and v >= 2, "an integer >= 2 (NT-Xent needs negatives)"),
        ("epochs", config.get("epochs"), lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
        ("image_size", config.get("image_size"), lambda v: isinstance(v, int) and v >= 8, "an integer >= 8"),
        ("optimizer.base_learning_rate", config["optimizer"].get("base_learning_rate"),
         lambda v: isinstance(v, (int, float)) and v > 0, "> 0"),
    ]
    widths = config["encoder"].get("stage_widths")
    multiplier = config["encoder"].get("width_multiplier")
    if multiplier is not None or widths is None:
        checks.append(("encoder.width_multiplier", multiplier,
                       lambda v: isinstance(v, (int, float)) and v > 0, "> 0"))
    if "depth" in config["encoder"]:  # configs with other encoders have none
        checks.append(("encoder.depth", config["encoder"]["depth"], lambda v: v in DEPTHS,
                       f"one of {DEPTHS}"))
    if widths is not None:
        checks.append(("encoder.stage_widths", widths,
                       lambda v: isinstance(v, (list, tuple)) and len(v) == 4 and all(
                           isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in v),
                       "None or 4 positive integers"))
    for key, value, ok, want in checks:
        if value is None or isinstance(value, bool) or not ok(value):
            raise ValueError(f"Config `{key}` must be {want}. Received: {key}={value!r}")
    if widths is not None and multiplier is not None:
        # resnet() lets stage_widths win; in a config that would silently
        # ignore a `--set encoder.width_multiplier=...`.
        raise ValueError(
            "Config `encoder.width_multiplier` and `encoder.stage_widths` are both set; "
            "set the other one to None. Received: "
            f"encoder.width_multiplier={multiplier!r}, encoder.stage_widths={widths!r}"
        )
    enc = config["encoder"]
    pool = enc.get("stem_pool", False)
    if pool is not False and (pool is not True or not enc.get("small_images")
                              or enc.get("stem_stride", 1) != 1):
        raise ValueError(
            "Config `encoder.stem_pool` must be False, or True with encoder.small_images=True "
            "and encoder.stem_stride=1. Received: "
            f"encoder.stem_pool={pool!r}, encoder.small_images={enc.get('small_images')!r}, "
            f"encoder.stem_stride={enc.get('stem_stride', 1)!r}"
        )
    if config["batch_size"] % replicas:
        raise ValueError(
            f"Config `batch_size` must be divisible by the {replicas} replicas. "
            f"Received: batch_size={config['batch_size']}"
        )


def count_batches(dataset):
    """Batches in one pass of a finite dataset (iterates if TF can't tell)."""
    n = int(dataset.cardinality())
    if n == tf.data.INFINITE_CARDINALITY:
        raise ValueError("The training dataset must be finite before `.repeat()`.")
    if n < 0:
        n = sum(1 for _ in dataset)
    if n == 0:
        raise ValueError(
            "The training dataset has no full batch: it is empty or smaller than `batch_size`."
        )
    return n


def single_channel_if_gray(train, test, size):
    """Raw-pixel features keep one channel when the images are gray.

    The pipeline repeats a grayscale channel three times; the copies carry no
    information and would triple the probe's cost and split its weights.
    """
    train, test = (np.reshape(x, (len(x), size, size, -1)) for x in (train, test))
    if train.shape[-1] == 3 and all(np.array_equal(x[..., 0], x[..., c]) for x in (train, test) for c in (1, 2)):
        train, test = train[..., :1], test[..., :1]
    return train.reshape(len(train), -1), test.reshape(len(test), -1)


def probe_representations(config, learned, view, train, test):
    """The main job's linear probes: `learned`, a random encoder, raw pixels.

    `train` and `test` are datasets of (images, labels) batches and `view`
    maps a batch of images to the encoders' input (the evaluation
    transform). The random encoder is the strong form of that baseline
    (plain init: BN gamma 1 in every block, not the zero-gamma residual init
    used for training), rebuilt from `config` after seeding with
    `config["seed"] + 1`, so a run re-probed later (experiments.fresh_test)
    gets the same one. The probe settings are `config["probe"]` (all but
    its row cap `max_examples`). Returns {"learned" | "random" | "pixels":
    the `linear_probe` result}.
    """
    from simclr_tf import evaluation

    probe_args = {k: v for k, v in config["probe"].items() if k != "max_examples"}
    keras.utils.set_random_seed(config["seed"] + 1)
    candidates = {
        "learned": learned,
        "random": build_encoder(config, zero_init_residual=False),
        "pixels": keras.layers.Flatten(),
    }
    results = {}
    for name, encoder in candidates.items():
        start = time.time()
        (xtr, ytr), (xte, yte) = (
            evaluation.extract_features(encoder, split, preprocess=view) for split in (train, test)
        )
        if name == "pixels":
            xtr, xte = single_channel_if_gray(xtr, xte, config["image_size"])
        results[name] = evaluation.linear_probe(xtr, ytr, xte, yte, seed=config["seed"], **probe_args)
        logging.info("probe %s: %s (%.0fs)", name, results[name], time.time() - start)
    return results
