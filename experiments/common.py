"""Shared pieces of the entry points: configs, strategies, model building.

Configs are Python modules under `experiments/configs/` whose `get_config()`
returns a nested dict; `--set key.sub=value` overrides any entry (a dict
value is merged into its section; see `apply_overrides`).
"""

import ast
import copy
import importlib
import importlib.util
import os
import re
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


# Words `--set` takes in any case, as in JSON or YAML (`jit_compile=false`).
# "none" stays a string where the config holds one: `head.mode=none`,
# `optimizer.scaling=none` name modes.
_WORDS = {"true": True, "false": False, "none": None}
# Keys that hold None or a string (a path), so a bare word is their value.
STRING_OR_NONE = ("data_dir",)


def _parse(raw, current):
    """(value, parsed): a Python literal or true/false/none, else the string."""
    word = raw.strip().lower()
    if word in ("true", "false") or (word == "none" and not isinstance(current, str)):
        return _WORDS[word], True
    try:
        return ast.literal_eval(raw), True
    except (ValueError, SyntaxError):
        return raw, False


def _wanted(current):
    if isinstance(current, bool):
        return "True or False"
    if isinstance(current, (int, float)):
        return "a number"
    if isinstance(current, dict):
        return "a dict literal (it is merged into the section)"
    if isinstance(current, (list, tuple)):
        return "a list or tuple literal"
    return "a Python literal (None, a number, True/False, a list)"


def _merge_section(node, value, key, free):
    """Merges the dict `value` into the config section `node` (named `key`,
    "" for the top level) in place; a section is only ever merged into.

    Keys it does not give keep their values; a key the section lacks is
    refused unless `free` (the sparse override sections under
    `studies.<study>`, which name only what they change).
    """
    for sub, new in value.items():
        name = f"{key}.{sub}" if key else sub
        if sub not in node and not free:
            raise ValueError(f"`--set` key {name!r} is not in the config (known: {sorted(node)}).")
        if isinstance(node.get(sub), dict):
            if not isinstance(new, dict):
                raise ValueError(
                    f"`--set` key {name!r} is a config section: give a dict to merge into it, "
                    f"or set its keys. Received: {name}={new!r}"
                )
            _merge_section(node[sub], new, name, free)
        else:
            node[sub] = copy.deepcopy(new)


def override_keys(overrides):
    """The dotted keys `--set` items give, a dict value's keys spelled out.

    `["temperature=0.5", "encoder={'depth': 34}"]` -> `["temperature", "encoder.depth"]`.
    """
    keys = []

    def walk(key, value):
        if isinstance(value, dict) and value:
            for sub, new in value.items():
                walk(f"{key}.{sub}", new)
        else:
            keys.append(key)

    for item in overrides or ():
        key, raw = item.split("=", 1) if "=" in item else (item, "")
        walk(key, _parse(raw, None)[0])
    return keys


def apply_overrides(config, overrides):
    """Applies `key.sub=value` strings; values parse as Python literals.

    `true`, `false` and `none` are accepted in any case. A value that is no
    literal stays a string, which is refused where the config holds a bool,
    a number, None (but in `STRING_OR_NONE`), a list or a section. A dict
    given for a section is merged into it: keys it omits keep their values.
    """
    config = copy.deepcopy(config)
    for item in overrides or ():
        if "=" not in item:
            raise ValueError(f"`--set` wants key=value. Received: {item!r}")
        key, raw = item.split("=", 1)
        node = config
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ValueError(f"`--set` key {key!r} does not name a config section.")
            node = node[part]
        if parts[-1] not in node:
            raise ValueError(f"`--set` key {key!r} is not in the config (known: {sorted(node)}).")
        current = node[parts[-1]]
        value, parsed = _parse(raw, current)
        if not parsed and not isinstance(current, str) and key not in STRING_OR_NONE:
            raise ValueError(
                f"`--set` value for {key!r} must be {_wanted(current)}: the config holds "
                f"{current!r}, and {raw!r} does not parse as one. Received: {key}={raw!r}"
            )
        _merge_section(node, {parts[-1]: value}, ".".join(parts[:-1]),
                       free=parts[0] == "studies" and len(parts) >= 2)
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
HEAD_MODES = ("nonlinear", "linear", "none")  # simclr_tf.ProjectionHead's modes
OPTIMIZERS = ("lars", "sgd", "adam", "adamw", "lamb")
SCALINGS = ("linear", "sqrt", "none")


def check_steps_per_epoch(value, key="steps_per_epoch"):
    """None (one pass over the data) or a cap >= 1; `key` names the flag or config key.

    0 is refused rather than read as "no cap": leave it unset (None) for that.
    """
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(
            f"`{key}` must be an integer >= 1, or unset (None) for one pass over the data. "
            f"Received: {key}={value!r}"
        )


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
    opt = config["optimizer"]
    if "warmup_epochs" in opt:
        checks.append(("optimizer.warmup_epochs", opt["warmup_epochs"],
                       lambda v: isinstance(v, (int, float)) and v >= 0, ">= 0"))
    for key, value, ok, want in checks:
        if value is None or isinstance(value, bool) or not ok(value):
            raise ValueError(f"Config `{key}` must be {want}. Received: {key}={value!r}")
    # Strings and flags, refused here rather than when the model or optimizer
    # is built (after the data has loaded, or after earlier ablation cells).
    choices = [
        ("head.mode", config.get("head", {}).get("mode", "nonlinear"), HEAD_MODES),
        ("optimizer.name", opt.get("name"), OPTIMIZERS),
        ("optimizer.scaling", opt.get("scaling", "linear"), SCALINGS),
        ("jit_compile", config.get("jit_compile", "auto"), ("auto", True, False)),
    ]
    for key, value, known in choices:
        name = value.lower() if key == "optimizer.name" and isinstance(value, str) else value
        if isinstance(name, (int, float)) and not isinstance(name, bool) or name not in known:
            raise ValueError(f"Config `{key}` must be one of {known}. Received: {key}={value!r}")
    if "steps_per_epoch" in config:  # the ablation configs' cap
        check_steps_per_epoch(config["steps_per_epoch"])
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


def check_output_dir(path, flag="--output_dir"):
    """Refuses an output folder that cannot be created or written, without creating it.

    The nearest existing folder on the way must be a writable folder (a
    path under a file, or on a read-only file system, is refused).
    """
    path = os.path.abspath(path)
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    name = flag.lstrip("-")
    if not os.path.isdir(existing):
        where = "exists and is not a folder" if existing == path else f"is under {existing!r}, a file"
        raise ValueError(f"`{flag}` {where}. Received: {name}={path!r}")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" ({existing!r}, the nearest existing folder)"
        raise ValueError(f"`{flag}` is not writable{where}. Received: {name}={path!r}")


_CHECKPOINT = re.compile(r"^epoch_\d+\.weights\.h5$")  # simclr_tf.callbacks.AtomicCheckpoint's names


def move_stale_checkpoints(folder):
    """Moves the per-epoch weights `AtomicCheckpoint` wrote in `folder` aside.

    For a fresh start in a folder an earlier run used: its `epoch_NNNN`
    files would sort as newer than the new run's and have those pruned.
    They go to a subfolder `earlier_run_<UTC time>` (nothing is deleted;
    nothing else in `folder` is touched). Returns (names moved, subfolder),
    or ([], None) when there is nothing to move.
    """
    if not os.path.isdir(folder):
        return [], None
    stale = sorted(name for name in os.listdir(folder) if _CHECKPOINT.match(name))
    if not stale:
        return [], None
    aside = os.path.join(folder, time.strftime("earlier_run_%Y%m%dT%H%M%S", time.gmtime()))
    base, suffix = aside, 1
    while os.path.exists(aside):  # a second fresh start within the same second
        aside, suffix = f"{base}.{suffix}", suffix + 1
    os.makedirs(aside)
    for name in stale:
        os.replace(os.path.join(folder, name), os.path.join(aside, name))
    return stale, aside


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
