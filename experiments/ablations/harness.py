"""Runs a study resumably.

Every finished cell is written at once, atomically, to
`<output_dir>/<study>/cells/<cell id>.json` (its parameters, config
fingerprint, numbers, date and machine), and the study's CSV is rewritten
from all finished cells; the figure is drawn when the run ends (a resumed
run redraws it with every cell). A re-run reads the finished cells and
runs only the others; a finished cell whose fingerprint differs from the
current config's is refused rather than mixed into the table.
"""

import datetime
import json
import os
import platform

from experiments.ablations import report, studies
from simclr_tf.atomic import write_json


def machine():
    """A short description of where the cell ran."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    devices = f", {len(gpus)} GPU" if gpus else ""
    return f"{platform.machine()} {os.cpu_count()}-core CPU{devices}, TF {tf.__version__}"


def cell_path(output_dir, cell):
    return os.path.join(output_dir, cell.study, "cells", f"{cell.id}.json")


def _finished(path, cell):
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        record = json.load(f)
    if record.get("fingerprint") != cell.fingerprint():
        raise ValueError(
            f"{path} holds cell {cell.id!r} run with a different config "
            f"(fingerprint {record.get('fingerprint')} != {cell.fingerprint()}). "
            "Use a new --output_dir, or delete that file to rerun the cell."
        )
    return record


def check_cell_config(config):
    """`simclr_tf_cli.config.check_config` on an ablation config (or one cell's).

    The smoke runs' conv net has no width multiplier or depth to check.
    """
    from simclr_tf_cli.config import check_config

    grid = config.get("probe", {}).get("grid")
    if grid is not None and (isinstance(grid, bool) or not isinstance(grid, int) or grid < 1):
        raise ValueError(f"Config `probe.grid` must be None or an integer >= 1. Received: probe.grid={grid!r}")
    protocol = config.get("label_efficiency")
    if protocol is not None:  # a label_efficiency cell: its protocol, before it pretrains
        from simclr_tf import evaluation, validation

        evaluation.label_efficiency.check_protocol(**{k: protocol[k] for k in (
            "fractions", "seeds", "arms", "epochs", "learning_rates")})
        validation.check_int("head_layer", protocol["head_layer"], minimum=0)
        validation.check_int("max_train_examples", protocol["max_train_examples"], minimum=1, allow_none=True)
    arch = config["encoder"].get("arch", "resnet")
    if arch not in ("resnet", "convnet"):
        raise ValueError(f"Config `encoder.arch` must be 'resnet' or 'convnet'. Received: encoder.arch={arch!r}")
    check_config(config if arch == "resnet" else {**config, "encoder": {"width_multiplier": 1}})


def check_cells(cells):
    """Checks every cell's config before the first one trains."""
    for cell in cells:
        try:
            check_cell_config(cell.config)
        except ValueError as err:
            raise ValueError(f"Cell {cell.study}/{cell.id}: {err}") from None


def _cells_folder(output_dir, study):
    """Creates `<output_dir>/<study>/cells`, or names `--output_dir` if it cannot."""
    folder = os.path.join(output_dir, study, "cells")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise ValueError(
            f"`--output_dir` must be a folder this process can write; creating {folder!r} failed: "
            f"{err.strerror or err}. Received: output_dir={output_dir!r}"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(
            f"`--output_dir` must be a folder this process can write; {folder!r} is not writable. "
            f"Received: output_dir={output_dir!r}"
        )


def run_study(study, config, output_dir, run_cell=None, log=print, set_keys=()):
    """Runs the unfinished cells of `study`; returns every cell's record.

    Every cell's config, every finished cell's fingerprint and the output
    folder are checked before the first cell runs.

    Args:
        study: a name in `studies.STUDIES`.
        config: the ablation config dict.
        output_dir: root folder; the study writes under `<output_dir>/<study>`.
        run_cell: `cell -> dict of numbers`; defaults to `cells.run_cell`.
        log: called with one progress line per cell.
        set_keys: the dotted keys given by `--set` (`config.override_keys`);
            one the study's own `config` overrides is refused.

    Returns:
        The list of records (dicts), one per cell in study order.
    """
    cells = studies.cells_for(study, config, set_keys)
    check_cells(cells)
    finished = [_finished(cell_path(output_dir, cell), cell) for cell in cells]
    _cells_folder(output_dir, study)
    if run_cell is None:
        from experiments.ablations.cells import run_cell
    study_dir = os.path.join(output_dir, study)
    records = []
    for i, (cell, record) in enumerate(zip(cells, finished), 1):
        path = cell_path(output_dir, cell)
        if record is not None:
            top1 = record["result"].get("top1")
            log(f"[{i}/{len(cells)}] {study}/{cell.id}: finished earlier, top1={top1}")
            records.append(record)
            continue
        log(f"[{i}/{len(cells)}] {study}/{cell.id}: running")
        result = run_cell(cell)
        record = {
            "study": study,
            "cell": cell.id,
            "kind": cell.kind,
            "params": cell.params,
            "fingerprint": cell.fingerprint(),
            "result": result,
            "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(),
            "config": cell.config,
        }
        write_json(path, record)
        records.append(record)
        log(f"[{i}/{len(cells)}] {study}/{cell.id}: top1={result.get('top1')} "
            f"({result.get('wall_seconds', 0):.0f}s)")
        report.write_csv(os.path.join(study_dir, f"{study}.csv"), records)
    report.write_report(study, records, study_dir)
    return records
