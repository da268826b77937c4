"""Ablation entry point: flags -> config -> resumable study -> CSV and PNG.

Runs every unfinished cell of one study (a short pretraining plus linear
evaluation each), saving each cell's result as soon as it finishes; a re-run
with the same flags skips finished cells. Results land in
`<output_dir>/<study>/`: `cells/*.json`, `<study>.csv` and `<study>.png`.

    python -m experiments.ablations.run --study=composition --config=smoke
    python -m experiments.ablations.run --study=color --config=cpu_fashion_mnist \\
        --output_dir=runs/ablations
    python -m experiments.ablations.run --study=temperature --config=gpu_cifar10 \\
        --set "studies.temperature.temperatures=[0.1, 0.5]"

Studies: composition, color, head, batch_epochs, temperature, headline, label_efficiency.
Configs: experiments/ablations/configs/{smoke, cpu_fashion_mnist, gpu_cifar10,
gpu_stl10}.py, or a path to a .py file with `get_config()`.
"""

import os

from absl import app, flags

from experiments import common
from experiments.ablations import report, studies

FLAGS = flags.FLAGS
flags.DEFINE_enum("study", None, studies.STUDIES, "The study to run.")
flags.DEFINE_string("config", "smoke", "Config module in experiments/ablations/configs, or a .py path.")
flags.DEFINE_string("output_dir", "runs/ablations", "Results root; each study writes <output_dir>/<study>/.")
flags.DEFINE_multi_string("set", [], "Config override key.sub=value (repeatable).")
flags.mark_flag_as_required("study")

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def load_config(name):
    """Loads `experiments/ablations/configs/<name>.py` or a path to a module."""
    if name.endswith(".py") or os.sep in name:
        return common.load_config(name)
    path = os.path.join(CONFIG_DIR, f"{name}.py")
    if not os.path.isfile(path):
        known = sorted(f[:-3] for f in os.listdir(CONFIG_DIR) if f.endswith(".py") and f[0] != "_")
        raise ValueError(
            f"Unknown ablation `--config`; known: {known} or a path to a .py file. "
            f"Received: config={name!r}"
        )
    return common.load_config(path)


def main(argv):
    del argv
    from experiments.ablations import harness

    config = common.apply_overrides(load_config(FLAGS.config), FLAGS.set)
    harness.check_cell_config(config)
    out = os.path.abspath(FLAGS.output_dir)
    # run_study checks every cell and the output folder before the first
    # cell trains, and refuses a --set key the study's own config overrides.
    records = harness.run_study(FLAGS.study, config, out, set_keys=common.override_keys(FLAGS.set))
    print(f"\n{FLAGS.study}: {len(records)} cells")
    for record in records:
        result = record["result"]
        top1 = result.get("top1")
        extra = f"  (z: {100 * result['top1_z']:.2f})" if "top1_z" in result else ""
        if result.get("top1_grid") is not None:
            extra += f"  (grid: {100 * result['top1_grid']:.2f})"
        shown = "diverged" if top1 is None else f"{100 * top1:.2f}"
        print(f"  {record['cell']:<20} top-1 {shown}{extra}  {result['wall_seconds']:.0f}s")
    if FLAGS.study == "label_efficiency":
        from simclr_tf import evaluation
        from simclr_tf_cli import report as cli_report

        rows = report.label_efficiency_rows(records)
        if rows:
            print("\nTest top-1 and kNN top-1 (%), mean ± std over pretraining and label-subset seeds:")
            print(evaluation.format_label_efficiency(rows))
            print(cli_report.format_margins(cli_report.margins(rows)))
    print(f"Wrote {os.path.join(out, FLAGS.study)}")


if __name__ == "__main__":
    app.run(main)
