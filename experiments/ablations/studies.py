"""The studies and their cells.

A study is a list of `Cell`s. Each cell carries everything it needs to run:
its kind (`simclr`, `supervised`, `pixels` or `random`), its parameters
(what the study varies) and its fully resolved training config (the
ablation config, merged with the study's `config` overrides and the cell's
own values). The fingerprint of that config tells a resumed run whether a
finished cell was run with the same settings.

Studies (the paper's figure or table in brackets):

- `composition` (figure 5): every ordered pair (first, second) of the
  operators; the diagonal is a single operator. `baselines` (optional:
  `random`, `pixels`) adds reference cells probed the same way.
- `color` (table 1): colour strength 1/8, 1/4, 1/2, 1 and 1 + blur, each
  for SimCLR (linear probe) and for supervised training of the same encoder
  with the same augmentation.
- `head` (figure 8): projection head none / linear / nonlinear, probed on
  h and on z.
- `batch_epochs` (figure 9): batch size x training epochs.
- `temperature` (table 5): NT-Xent temperature.
- `headline`: the best configuration next to raw pixels, a randomly
  initialised encoder and supervised training of the same encoder.
- `label_efficiency` (table 7): one cell per pretraining seed
  (`pretrain_seeds`); each pretrains the study's config and runs
  `simclr_tf.evaluation.evaluate_label_efficiency` on the encoder with the
  section's `fractions`, label-subset `seeds`, `arms`, `epochs`,
  `learning_rates`, `head_layer` and `max_train_examples`.
"""

import copy
import dataclasses
import hashlib
import json

from experiments.ablations import operators

STUDIES = ("composition", "color", "head", "batch_epochs", "temperature", "headline", "label_efficiency")
KINDS = ("simclr", "supervised", "pixels", "random")


@dataclasses.dataclass
class Cell:
    """One measurement of a study.

    Attributes:
        study: the study's name.
        id: unique within the study; also the name of its result file.
        kind: `simclr`, `supervised`, `pixels`, `random` or
            `label_efficiency` (a pretraining and the whole protocol).
        params: what the study varies, as written to the CSV.
        config: the resolved training config of this cell.
    """

    study: str
    id: str
    kind: str
    params: dict
    config: dict

    def fingerprint(self):
        blob = json.dumps({"kind": self.kind, "params": self.params, "config": self.config},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def merge(base, overrides):
    """A deep copy of `base` with the nested dict `overrides` merged in."""
    out = copy.deepcopy(base)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _label(value):
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _study_config(study, config):
    section = config.get("studies", {}).get(study)
    if section is None:
        raise ValueError(
            f"The config has no `studies.{study}` section. "
            f"Received sections: {sorted(config.get('studies', {}))}"
        )
    base = {k: v for k, v in config.items() if k != "studies"}
    return section, merge(base, section.get("config"))


def _composition(section, base):
    names = list(section.get("operators", operators.OPERATORS))
    unknown = [n for n in names if n not in operators.FACTORIES]
    if unknown:
        raise ValueError(
            f"`studies.composition.operators` has unknown operators; known: "
            f"{list(operators.OPERATORS)}. Received: {unknown}"
        )
    branches = section.get("branches", "one")
    if branches not in ("one", "both"):
        raise ValueError(
            f"`studies.composition.branches` must be 'one' or 'both'. Received: branches={branches!r}"
        )
    cells = []
    for first in names:
        for second in names:
            cell_id = first if first == second else f"{first}+{second}"
            params = {"first": first, "second": second, "branches": branches}
            cells.append(Cell("composition", cell_id, "simclr", params, base))
    # Reference cells with the grid's encoder and probe: a grid cell is only
    # worth reading against what the same probe gets from an untrained
    # encoder (and from raw pixels).
    baselines = section.get("baselines", ())
    if isinstance(baselines, str) or any(kind not in ("pixels", "random") for kind in baselines):
        raise ValueError(
            "`studies.composition.baselines` must be a list drawn from ['pixels', 'random']. "
            f"Received: {baselines!r}"
        )
    for kind in baselines:
        cells.append(Cell("composition", kind, kind, {"method": kind}, base))
    return cells


def _parse_strength(value):
    """`0.5` -> (0.5, False); `"1+blur"` -> (1.0, True)."""
    if isinstance(value, str) and value.endswith("+blur"):
        return float(value[: -len("+blur")]), True
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(
            "`studies.color.strengths` entries must be numbers >= 0 or 'S+blur'. "
            f"Received: {value!r}"
        )
    return float(value), False


def _color(section, base):
    cells = []
    methods = ["simclr"] + (["supervised"] if section.get("supervised", True) else [])
    for method in methods:
        for value in section.get("strengths", (0.125, 0.25, 0.5, 1.0, "1+blur")):
            strength, blur = _parse_strength(value)
            config = merge(base, {"augment": {"color_strength": strength, "blur": blur}})
            label = _label(value)
            params = {"method": method, "strength": label}
            cells.append(Cell("color", f"{method}_s{label}", method, params, config))
    return cells


def _head(section, base):
    cells = []
    for mode in section.get("modes", ("none", "linear", "nonlinear")):
        config = merge(base, {"head": {"mode": mode}})
        cells.append(Cell("head", f"head_{mode}", "simclr", {"head": mode, "probe_z": True}, config))
    return cells


def _batch_epochs(section, base):
    cells = []
    for batch_size in section["batch_sizes"]:
        for epochs in section["epochs"]:
            config = merge(base, {"batch_size": batch_size, "epochs": epochs})
            params = {"batch_size": batch_size, "epochs": epochs}
            cells.append(Cell("batch_epochs", f"b{batch_size}_e{epochs}", "simclr", params, config))
    return cells


def _temperature(section, base):
    cells = []
    for tau in section.get("temperatures", (0.05, 0.1, 0.5, 1.0)):
        config = merge(base, {"temperature": tau})
        cells.append(Cell("temperature", f"t{_label(tau)}", "simclr", {"temperature": tau}, config))
    return cells


def _headline(section, base):
    cells = [Cell("headline", "simclr", "simclr", {"method": "simclr"}, base)]
    for kind in section.get("baselines", ("pixels", "random", "supervised")):
        if kind not in KINDS[1:]:
            raise ValueError(
                f"`studies.headline.baselines` entries must be in {list(KINDS[1:])}. Received: {kind!r}"
            )
        # `supervised_config` (optional) overrides the supervised baseline's
        # budget alone, e.g. a briefly trained supervised encoder.
        config = merge(base, section.get("supervised_config")) if kind == "supervised" else base
        cells.append(Cell("headline", kind, kind, {"method": kind}, config))
    return cells


# The protocol's settings a `label_efficiency` section may give, and their
# defaults (the paper's table 7 fractions, three label-subset seeds).
LABEL_EFFICIENCY_DEFAULTS = {
    "fractions": [0.01, 0.1, 1.0],
    "seeds": [0, 1, 2],
    "arms": ["learned", "random", "pixels", "finetune", "supervised"],
    "epochs": 30,
    "learning_rates": [3e-3],
    "head_layer": 0,
    "max_train_examples": None,
}


def _label_efficiency(section, base):
    """One cell per pretraining seed; the protocol rides in the cell's config
    (`config["label_efficiency"]`), so changing it changes the fingerprint."""
    unknown = sorted(set(section) - set(LABEL_EFFICIENCY_DEFAULTS) - {"config", "pretrain_seeds"})
    if unknown:
        raise ValueError(
            f"`studies.label_efficiency` has unknown keys; known: "
            f"{sorted(LABEL_EFFICIENCY_DEFAULTS) + ['config', 'pretrain_seeds']}. Received: {unknown}"
        )
    seeds = section.get("pretrain_seeds", [base["seed"]])
    if (isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__") or not list(seeds)
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
        raise ValueError(
            "`studies.label_efficiency.pretrain_seeds` must be a non-empty list of integers >= 0. "
            f"Received: pretrain_seeds={seeds!r}"
        )
    protocol = {key: section.get(key, default) for key, default in LABEL_EFFICIENCY_DEFAULTS.items()}
    return [Cell("label_efficiency", f"seed{seed}", "label_efficiency", {"pretrain_seed": seed},
                 merge(base, {"seed": seed, "label_efficiency": protocol}))
            for seed in seeds]


_BUILDERS = {
    "composition": _composition,
    "color": _color,
    "head": _head,
    "batch_epochs": _batch_epochs,
    "temperature": _temperature,
    "headline": _headline,
    "label_efficiency": _label_efficiency,
}


def _lookup(tree, key):
    """(True, value) when the nested dict `tree` sets the dotted `key` (or a
    value in place of one of its sections), else (False, None)."""
    node = tree
    for part in key.split("."):
        if not isinstance(node, dict):
            return True, node
        if part not in node:
            return False, None
        node = node[part]
    return True, node


def check_set_keys(study, config, set_keys):
    """Refuses a top-level `--set` key that the study's `config` section overrides.

    `set_keys` are the dotted keys given by `--set` (`common.override_keys`);
    those under `studies.` are the study's own and pass. A key the study's
    `config` sets to another value would be silently dropped from every cell.
    """
    overrides = (config.get("studies", {}).get(study) or {}).get("config") or {}
    for key in set_keys:
        if key.split(".")[0] == "studies":
            continue
        found, theirs = _lookup(overrides, key)
        if found and theirs != _lookup(config, key)[1]:
            raise ValueError(
                f"`--set {key}` has no effect on the {study} study: its own config sets "
                f"studies.{study}.config.{key}={theirs!r}. Set `studies.{study}.config.{key}` "
                f"instead. Received: {key}={_lookup(config, key)[1]!r}"
            )


def cells_for(study, config, set_keys=()):
    """The cells of `study` under the ablation `config`, in run order.

    `set_keys`: the dotted keys given by `--set`, checked by `check_set_keys`.

    Raises:
        ValueError: naming an unknown study, a study the config lacks, or a
            `--set` key the study's own config overrides.
    """
    if study not in _BUILDERS:
        raise ValueError(f"Unknown study; known: {list(STUDIES)}. Received: study={study!r}")
    check_set_keys(study, config, set_keys)
    section, base = _study_config(study, config)
    cells = _BUILDERS[study](section, base)
    ids = [c.id for c in cells]
    if len(set(ids)) != len(ids):
        raise ValueError(f"Study {study!r} has repeated cells: {ids}")
    return cells
