"""The main job's closing report: what pretraining buys with few labels.

After pretraining, `simclr-tf pretrain` compares the learned encoder with
the baselines a newcomer would reach for, at a few label fractions of the
evaluation training split (`config["report"]`):

- at each fraction in `report.fractions` (default 1% and 10%), for each
  label-subset seed in `report.seeds`: the linear probe on frozen h of the
  learned encoder, of a random encoder, and on raw pixels, with kNN beside
  each (`simclr_tf.evaluation.evaluate_label_efficiency`);
- at the fractions in `report.supervised_fractions`, the same architecture
  trained from scratch on the labelled subset only (crop + flip views,
  learning rate and epochs chosen on held-out labelled rows);
- at 100%, the main job's full-data probes (`probes.probe_representations`),
  one run.

Every choice is made on labelled training rows only; the test labels only
score. The margin is the learned encoder's lead over the best non-pretrained
arm at each fraction. The report prints as a table, goes into
`metrics.json` and is drawn beside the training curves in `report.png`.
"""

import numpy as np

from simclr_tf import evaluation, validation
from simclr_tf.evaluation.inputs import _as_arrays

BASELINES = ("random", "pixels", "supervised")
DEFAULTS = {
    "fractions": [0.01, 0.1],
    "seeds": [0, 1, 2],
    "supervised_fractions": [0.01],
    # The supervised arm: at most this many epochs over the labelled subset,
    # each Adam rate tried; both chosen on held-out labelled rows.
    "supervised_epochs": 100,
    "learning_rates": [3e-3],
}


def settings(config):
    """`config["report"]` over the defaults, checked; None when the report is off."""
    report = config.get("report", {})
    if report is None or report is False:
        return None
    if not isinstance(report, dict):
        raise ValueError(f"Config `report` must be a dict, or None to skip the report. Received: report={report!r}")
    unknown = sorted(set(report) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"Config `report` has unknown keys {unknown}; known: {sorted(DEFAULTS)}. "
                         f"Received: report={report!r}")
    merged = {**DEFAULTS, **report}
    for key in ("fractions", "supervised_fractions", "seeds", "learning_rates"):
        if not isinstance(merged[key], (list, tuple)):
            raise ValueError(f"Config `report.{key}` must be a list. Received: report.{key}={merged[key]!r}")
    for fraction in (*merged["fractions"], *merged["supervised_fractions"]):
        if not validation.is_real(fraction) or not 0 < fraction < 1:
            raise ValueError("Config `report.fractions` and `report.supervised_fractions` must hold "
                             f"numbers in (0, 1) (100% is the main probe). Received: {fraction!r}")
    for seed in merged["seeds"]:
        validation.check_int("report.seeds", seed, minimum=0)
    if not merged["seeds"]:
        raise ValueError("Config `report.seeds` must hold at least one seed. Received: report.seeds=[]")
    for rate in merged["learning_rates"]:
        validation.check_number("report.learning_rates", rate, minimum=0, strict=True)
    validation.check_int("report.supervised_epochs", merged["supervised_epochs"], minimum=1)
    return merged


def label_efficiency(config, model, train, test, full_results, report):
    """Rows of `evaluate_label_efficiency` at the report's fractions, plus the 100% probes.

    `train` and `test` are labelled `(images, labels)` arrays or datasets
    of such batches (read into memory once); `model` is
    the pretrained `SimCLR` model (its encoder and evaluation transform);
    `full_results` the output of `probes.probe_representations` on the
    whole evaluation training split.
    """
    train, test = _as_arrays("train", train), _as_arrays("test", test)
    # A fraction and seed give the same labelled subset in every call
    # (`label_fraction_subset`), so the arms can be run separately.
    rows = []
    if report["fractions"]:
        rows += evaluation.evaluate_label_efficiency(
            model, train, test, fractions=tuple(sorted(report["fractions"])), seeds=tuple(report["seeds"]),
            arms=("learned", "random", "pixels"), num_classes=config.get("num_classes"),
            probe_max_iterations=config["probe"].get("max_iterations", 150),
        )
    if report["supervised_fractions"]:
        rows += evaluation.evaluate_label_efficiency(
            model, train, test, fractions=tuple(sorted(report["supervised_fractions"])),
            seeds=tuple(report["seeds"]), arms=("supervised",), num_classes=config.get("num_classes"),
            epochs=report["supervised_epochs"], learning_rates=tuple(report["learning_rates"]),
        )
    n = len(train[1])
    for arm, result in full_results.items():
        rows.append({"arm": arm, "fraction": 1.0, "seed": config["seed"], "n_labels": n,
                     "top1": result["top1"], "knn_top1": result.get("knn_top1")})
    return rows


def margins(rows):
    """{fraction: (learned mean - best baseline mean, best baseline arm)} over seeds."""
    summary = evaluation.summarize_label_efficiency(rows)
    result = {}
    for fraction in sorted({row["fraction"] for row in rows}):
        learned = summary.get(("learned", fraction))
        baselines = {arm: summary[(arm, fraction)][0] for arm in BASELINES if (arm, fraction) in summary}
        if learned is None or not baselines:
            continue
        best = max(baselines, key=baselines.get)
        result[fraction] = (learned[0] - baselines[best], best)
    return result


def format_margins(margin):
    """One line: the learned encoder's lead over the best baseline at each fraction.

    >>> print(format_margins({0.01: (0.031, "pixels"), 1.0: (-0.004, "pixels")}))
    Margin of the learned encoder over the best baseline: 1% +3.1 points (vs pixels), 100% -0.4 points (vs pixels)
    """
    parts = [f"{_percent(f)} {100 * m:+.1f} points (vs {arm})" for f, (m, arm) in sorted(margin.items())]
    return "Margin of the learned encoder over the best baseline: " + ", ".join(parts)


def plot(history, rows, path):
    """Training curves (loss, contrastive accuracy) and label-efficiency bars in one PNG.

    `history` is a Keras history dict (per-epoch `loss`, `contrastive_acc`);
    empty, the picture has the bars only.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    if len(epochs):
        figure, (curves, bars) = plt.subplots(1, 2, figsize=(11, 4))
    else:  # no training history: the bars alone
        figure, bars = plt.subplots(1, 1, figsize=(6, 4))
    if len(epochs):
        curves.plot(epochs, history["loss"], label="NT-Xent loss", color="tab:blue")
        curves.set_xlabel("epoch")
        curves.set_ylabel("loss")
        if "contrastive_acc" in history:
            twin = curves.twinx()
            twin.plot(epochs, history["contrastive_acc"], label="contrastive accuracy", color="tab:orange")
            twin.set_ylabel("contrastive accuracy")
            twin.legend(loc="center right")
        curves.legend(loc="upper right")
        curves.set_title("Pretraining")
    draw_bars(bars, rows)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def draw_bars(ax, rows, title="Test top-1 by label fraction (mean ± std over label-subset seeds)"):
    """Test top-1 bars by label fraction, one colour per arm, on `ax`."""
    summary = evaluation.summarize_label_efficiency(rows)
    fractions = sorted({row["fraction"] for row in rows})
    arms = [arm for arm in evaluation.label_efficiency.ARMS if any(r["arm"] == arm for r in rows)]
    width = 0.8 / max(len(arms), 1)
    for i, arm in enumerate(arms):
        means = [100 * summary.get((arm, f), (np.nan, 0, 0))[0] for f in fractions]
        stds = [100 * summary.get((arm, f), (0, 0, 0))[1] for f in fractions]
        ax.bar(np.arange(len(fractions)) + i * width, means, width, yerr=stds, label=arm, capsize=2)
    ax.set_xticks(np.arange(len(fractions)) + width * (len(arms) - 1) / 2)
    ax.set_xticklabels([f"{_percent(f)} labels" for f in fractions])
    ax.set_ylabel("test top-1 (%)")
    finite = [100 * v[0] for v in summary.values() if np.isfinite(v[0])]
    if finite:
        ax.set_ylim(max(0, min(finite) - 10), min(100, max(finite) + 5))
    ax.set_title(title)
    ax.legend(fontsize="small", ncol=2)


def _percent(fraction):
    return f"{100 * fraction:g}%"
