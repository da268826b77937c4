"""A study's CSV (one row per finished cell) and its figure.

Both are written atomically (`simclr_tf.atomic.atomic_path`) so an interrupted
run never leaves a half-written table. matplotlib is imported only when a
figure is drawn.
"""

import csv
import math
import os
import warnings

from simclr_tf.atomic import atomic_path

_FIRST = ("study", "cell", "kind")
_RESULT_ORDER = ("top1", "top1_h", "top1_z", "top1_grid", "top5_h", "top5_z", "top5_grid", "train_top1_h",
                 "train_top1_z", "train_top1_grid",
                 "final_loss", "final_contrastive_acc", "final_accuracy", "train_steps",
                 "train_seconds", "train_cpu_seconds", "wall_seconds", "cpu_seconds")


def rows(records):
    """Flat dicts (parameters and numbers side by side) from cell records."""
    out = []
    for record in records:
        row = {"study": record["study"], "cell": record["cell"], "kind": record["kind"]}
        row.update(record["params"])
        row.update(record["result"])
        row["finished_at"] = record.get("finished_at")
        row["machine"] = record.get("machine")
        out.append(row)
    return out


def columns(records):
    """CSV header: identity, the study's parameters, then numbers."""
    params, results = [], []
    for record in records:
        params += [k for k in record["params"] if k not in params]
        # Lists (a label-efficiency cell's `rows`) stay in the cell's JSON.
        results += [k for k, v in record["result"].items() if k not in results and not isinstance(v, (list, dict))]
    ordered = [k for k in _RESULT_ORDER if k in results]
    rest = sorted(k for k in results if k not in ordered)
    return list(_FIRST) + params + ordered + rest + ["finished_at", "machine"]


def write_csv(path, records):
    header = columns(records)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
            writer.writeheader()
            for row in rows(records):
                writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in header})


def _pyplot():
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError("The ablation figures need matplotlib: `pip install matplotlib`.") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _pct(value):
    return math.nan if value is None else 100.0 * value


def _composition(ax, table):
    """The grid as a heatmap; reference cells (`random`, `pixels`) go in the
    title, and with a random-encoder cell the colours are centred on it
    (green above it, red below), because at small budgets that is the line
    between learning something and learning nothing."""
    import numpy as np
    from matplotlib import colors

    grid_rows = [row for row in table if row.get("kind", "simclr") == "simclr"]
    refs = {row["kind"]: _pct(row.get("top1")) for row in table if row.get("kind") in ("random", "pixels")}
    names = []
    for row in grid_rows:
        for key in ("first", "second"):
            if row[key] not in names:
                names.append(row[key])
    grid = np.full((len(names), len(names) + 1), np.nan)
    for row in grid_rows:
        grid[names.index(row["first"]), names.index(row["second"])] = _pct(row.get("top1"))
    for i in range(len(names)):
        measured = grid[i, :-1][~np.isnan(grid[i, :-1])]
        if measured.size:
            grid[i, -1] = measured.mean()
    finite = grid[~np.isnan(grid)]
    centre = refs.get("random")
    if centre is not None and not math.isnan(centre) and finite.size:
        spread = max(float(np.max(np.abs(finite - centre))), 0.1)
        norm = colors.TwoSlopeNorm(vcenter=centre, vmin=centre - spread, vmax=centre + spread)
        image = ax.imshow(grid, cmap="RdYlGn", norm=norm)
        dark = lambda value: abs(value - centre) > 0.6 * spread  # noqa: E731
    else:
        image = ax.imshow(grid, cmap="Greens")
        middle = (finite.min() + finite.max()) / 2 if finite.size else 0
        dark = lambda value: value > middle  # noqa: E731
    ax.figure.colorbar(image, ax=ax, fraction=0.046, label="linear-probe top-1 (%)")
    ax.set_xticks(range(len(names) + 1), names + ["mean"], rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("2nd transformation")
    ax.set_ylabel("1st transformation")
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=8,
                    color="white" if dark(value) else "black")
    title = "Composition (diagonal: single operator)"
    shown = [f"{label} {refs[kind]:.1f}" for kind, label in (("random", "random encoder"),
                                                            ("pixels", "raw pixels"))
             if kind in refs and not math.isnan(refs[kind])]
    if shown:
        title += "\nsame probe: " + ", ".join(shown)
    ax.set_title(title)


def _lines(ax, table, x_key, series_key, title, xlabel, log_x=False, series_label="{}"):
    """top-1 against `x_key`, one line per value of `series_key`."""
    series = {}
    for row in table:
        series.setdefault(str(row.get(series_key, "SimCLR")), []).append(row)
    labels = []
    for row in table:
        if str(row[x_key]) not in labels:
            labels.append(str(row[x_key]))
    numeric = all(isinstance(r[x_key], (int, float)) for r in table)
    for name, points in series.items():
        if numeric:
            points = sorted(points, key=lambda r: r[x_key])
            xs = [r[x_key] for r in points]
        else:
            xs = [labels.index(str(r[x_key])) for r in points]
        ax.plot(xs, [_pct(r.get("top1")) for r in points], marker="o",
                label=series_label.format(name))
    if not numeric:
        ax.set_xticks(range(len(labels)), labels)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("top-1 (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()


def _bars(ax, table, label_key, value_keys, title, names=None):
    import numpy as np

    labels = [str(row[label_key]) for row in table]
    width = 0.8 / len(value_keys)
    for k, key in enumerate(value_keys):
        values = [_pct(row.get(key)) for row in table]
        xs = np.arange(len(labels)) + (k - (len(value_keys) - 1) / 2) * width
        ax.bar(xs, values, width, label=(names or {}).get(key, key))
        for x, v in zip(xs, values):
            if not math.isnan(v):
                ax.text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("linear-probe top-1 (%)")
    ax.set_title(title)
    ax.legend()


def _headline(ax, table):
    """Every method under the one linear probe of h (the supervised
    classifier's own accuracy is in the CSV's `top1`), and beside it the
    probe of the pooled grid where the cells have one (raw pixels have none).
    """
    keys = ["top1_h"] + (["top1_grid"] if any(row.get("top1_grid") is not None for row in table) else [])
    _bars(ax, table, "method", keys, "Linear probe vs baselines",
          names={"top1_h": "probe on h", "top1_grid": "probe on the pooled grid"})
    values = [_pct(row.get(k)) for row in table for k in keys if row.get(k) is not None]
    if values:  # bars a few points apart are unreadable from 0
        ax.set_ylim(max(0.0, 10 * math.floor(min(values) / 10) - 10), 100)


def _label_efficiency(ax, table):
    """The protocol's bars, every cell's rows together: mean ± std over
    pretraining and label-subset seeds."""
    from simclr_tf_cli import report as cli_report

    cli_report.draw_bars(ax, label_efficiency_rows(table),
                         title="Test top-1 by label fraction\n(mean ± std over pretraining and label seeds)")


def label_efficiency_rows(records):
    """Every (arm, fraction, label seed) row of a label-efficiency study's cells
    (records, or their flat `rows`), each with its cell's `pretrain_seed`."""
    out = []
    for record in records:
        result = record.get("result", record)
        seed = record.get("params", record).get("pretrain_seed")
        out += [{**r, "pretrain_seed": seed} for r in result.get("rows") or ()]
    return out


def plot(study, table, path):
    """Draws the study's figure from its CSV rows into `path` (PNG)."""
    plt = _pyplot()
    size = (7.5, 6.5) if study == "composition" else (6.5, 4.5)
    fig, ax = plt.subplots(figsize=size)
    try:
        if study == "composition":
            _composition(ax, table)
        elif study == "color":
            _lines(ax, table, "strength", "method", "Colour distortion strength",
                   "colour strength")
        elif study == "head":
            _bars(ax, table, "head", ["top1_h", "top1_z"], "Projection head: probe on h and on z")
        elif study == "batch_epochs":
            _lines(ax, table, "epochs", "batch_size", "Batch size x training epochs", "epochs",
                   series_label="batch {}")
        elif study == "temperature":
            _lines(ax, table, "temperature", "method", "NT-Xent temperature", "temperature",
                   log_x=True)
        elif study == "headline":
            _headline(ax, table)
        elif study == "label_efficiency":
            _label_efficiency(ax, table)
        else:
            raise ValueError(f"No figure for study {study!r}.")
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)


def write_report(study, records, study_dir):
    """Writes `<study_dir>/<study>.csv` and `<study_dir>/<study>.png`.

    Without matplotlib (a dev requirement, not a runtime one) the CSV is
    still written and the figure is skipped with a warning.
    """
    if not records:
        return
    write_csv(os.path.join(study_dir, f"{study}.csv"), records)
    try:
        _pyplot()
    except ImportError as err:
        warnings.warn(f"{err} Wrote the CSV, skipped {study}.png.", stacklevel=2)
        return
    plot(study, rows(records), os.path.join(study_dir, f"{study}.png"))
