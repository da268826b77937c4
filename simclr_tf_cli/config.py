"""Configs of the command line: loading, `--set` overrides and checks.

A config is a Python module whose `get_config()` returns a nested dict (the
shipped ones live in `simclr_tf_cli/configs/`, so the installed command finds
them from any folder); `--set key.sub=value` overrides any entry (a dict value
is merged into its section; see `apply_overrides`). `check_config` refuses
bad values up front, naming the key and the value received.
"""

import ast
import copy
import importlib
import importlib.util
import os

from simclr_tf_cli import configs as _configs

CONFIG_DIR = os.path.dirname(os.path.abspath(_configs.__file__))


def known_configs():
    """Names `load_config` takes besides a path: the modules in `CONFIG_DIR`."""
    return sorted(f[:-3] for f in os.listdir(CONFIG_DIR) if f.endswith(".py") and f[0] != "_")


def load_config(name):
    """`get_config()` of `simclr_tf_cli/configs/<name>.py`, or of a path to a .py module."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"`--config` must be a config name or a path to a .py file. Received: config={name!r}")
    if name.endswith(".py") or os.sep in name:
        if not os.path.isfile(name):
            raise ValueError(f"`--config` file not found. Received: config={name!r}")
        spec = importlib.util.spec_from_file_location("simclr_config", name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    elif name in known_configs():
        module = importlib.import_module(f"simclr_tf_cli.configs.{name}")
    else:
        raise ValueError(
            f"Unknown `--config`; known: {known_configs()} or a path to a .py file. "
            f"Received: config={name!r}"
        )
    if not callable(getattr(module, "get_config", None)):
        raise ValueError(f"`--config` module has no get_config() function. Received: config={name!r}")
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


DEPTHS = (10, 14, 18, 34, 50, 101, 152)
HEAD_MODES = ("nonlinear", "linear", "none")  # simclr_tf.ProjectionHead's modes
OPTIMIZERS = ("lars", "sgd", "adam", "adamw", "lamb")
SCALINGS = ("linear", "sqrt", "none")


def keras_backbones():
    """The `keras.applications` architectures `encoder.backbone` can name."""
    import keras

    return sorted(name for name in dir(keras.applications)
                  if name[:1].isupper() and callable(getattr(keras.applications, name)))


def check_backbone(name):
    """Refuses an `encoder.backbone` that is neither "resnet" nor a `keras.applications` name."""
    if name == "resnet":
        return
    known = keras_backbones()
    if name in known:
        return
    near = [k for k in known if isinstance(name, str) and k.lower() == name.lower()]
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise ValueError(
        f"Config `encoder.backbone` must be 'resnet' (simclr_tf.resnet) or a keras.applications "
        f"architecture, spelled as Keras does{hint}: {', '.join(known)}. "
        f"Received: encoder.backbone={name!r}"
    )


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
    enc = config["encoder"]
    backbone = enc.get("backbone", "resnet")
    check_backbone(backbone)
    resnet = backbone == "resnet"
    checks = [
        ("temperature", config.get("temperature"), lambda v: isinstance(v, (int, float)) and v > 0, "> 0"),
        ("batch_size", config.get("batch_size"), lambda v: isinstance(v, int) and v >= 2, "an integer >= 2 (NT-Xent needs negatives)"),
        ("epochs", config.get("epochs"), lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
        ("image_size", config.get("image_size"), lambda v: isinstance(v, int) and v >= 8, "an integer >= 8"),
        ("optimizer.base_learning_rate", config["optimizer"].get("base_learning_rate"),
         lambda v: isinstance(v, (int, float)) and v > 0, "> 0"),
    ]
    widths = enc.get("stage_widths")
    multiplier = enc.get("width_multiplier")
    if resnet and (multiplier is not None or widths is None):
        checks.append(("encoder.width_multiplier", multiplier,
                       lambda v: isinstance(v, (int, float)) and v > 0, "> 0"))
    if resnet and "depth" in enc:  # configs with other encoders have none
        checks.append(("encoder.depth", enc["depth"], lambda v: v in DEPTHS, f"one of {DEPTHS}"))
    if resnet and widths is not None:
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
    if resnet and widths is not None and multiplier is not None:
        # resnet() lets stage_widths win; in a config that would silently
        # ignore a `--set encoder.width_multiplier=...`.
        raise ValueError(
            "Config `encoder.width_multiplier` and `encoder.stage_widths` are both set; "
            "set the other one to None. Received: "
            f"encoder.width_multiplier={multiplier!r}, encoder.stage_widths={widths!r}"
        )
    pool = enc.get("stem_pool", False)
    if resnet and pool is not False and (pool is not True or not enc.get("small_images")
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
