"""`simclr-tf pretrain`: flags -> config -> strategy -> data -> fit -> export -> probes.

With no flags it pretrains a small ResNet-10 on the Fashion-MNIST subset
shipped in the package (about 5 minutes on a 2-core CPU), then writes into
`--output_dir`: `backup/` (the resumable training state), `checkpoints/` (the
newest per-epoch weights), TensorBoard logs, the encoder and the whole model as
`.keras`, a SavedModel of the encoder and `metrics.json` with the linear-probe
and kNN top-1 of the learned encoder, a randomly initialised encoder of the
same architecture, and raw pixels; then the label-efficiency report
(`simclr_tf_cli.report`: the same arms at 1% and 10% of the labels and the
network trained from scratch, printed as a table with the margin, in
`metrics.json` and drawn in `report.png`). Every artefact is written under a temporary
name and renamed, and nothing is written before the config, data and model are
checked, so a bad input leaves `--output_dir` untouched.

Your own images: `--dataset=folder:PATH` reads a folder (class sub-folders or
a flat folder, searched recursively) without labels. The probes need labelled
evaluation data: the dataset's own labelled `train`/`test` splits (a folder
with `train/` and `test/` sub-folders of classes), or `--eval_dataset`; without
it they are skipped with one line saying so.

Fault tolerance: re-running the same command with the same `--output_dir`
resumes from the newest backup (weights, optimizer state and step, augmenter
random state, epoch counter); the data stream skips the batches the finished
epochs consumed, so a resumed run sees the batches an uninterrupted one would.
A finished run's backup is kept, so re-running it only redoes the exports.
A fresh start (no backup in `--output_dir`) moves an earlier run's
`checkpoints/epoch_*` files into `checkpoints/earlier_run_<time>/` first:
left in place they would count as newer than the new run's.

    simclr-tf pretrain
    simclr-tf pretrain --config=default --epochs=2 --output_dir=/tmp/run
    simclr-tf pretrain --set temperature=0.2 --set encoder.depth=34
    simclr-tf pretrain --dataset=folder:/data/photos --set image_size=64 \\
        --eval_dataset=folder:/data/labelled
"""

import json
import os
import shutil
import time

from absl import flags, logging

from simclr_tf_cli import builders, config as config_lib, files, probes, report, usage

# What this entry point writes at the top of --output_dir (besides backup/,
# checkpoints/ and tensorboard/).
ARTEFACTS = ("encoder.keras", "simclr.keras", "saved_model", "metrics.json", "report.png")


def define_flags(flag_values=flags.FLAGS):
    fv = dict(flag_values=flag_values)
    flags.DEFINE_string("config", "default", "Config name (simclr_tf_cli/configs) or a .py path.", **fv)
    flags.DEFINE_string("output_dir", "runs/pretrain", "Where checkpoints, logs and results go.", **fv)
    flags.DEFINE_string("dataset", None, "Overrides config dataset (embedded, fashion_mnist, "
                        "folder:PATH, tfds:NAME).", **fv)
    flags.DEFINE_string("eval_dataset", None, "Labelled dataset for the final linear probe and kNN "
                        "(its train and test splits); default: the training dataset's, when labelled.", **fv)
    flags.DEFINE_integer("epochs", None, "Overrides config epochs.", **fv)
    flags.DEFINE_integer("batch_size", None, "Overrides config global batch size.", **fv)
    flags.DEFINE_integer("steps_per_epoch", None, "Caps steps per epoch (short runs).", **fv)
    flags.DEFINE_multi_string("set", [], "Config override key.sub=value (repeatable).", **fv)
    flags.DEFINE_enum("strategy", "default", builders.STRATEGIES, "tf.distribute strategy.", **fv)
    flags.DEFINE_string("tpu", "", "TPU address for --strategy=tpu.", **fv)
    flags.DEFINE_boolean("probe", True, "Run the final linear probes and baselines.", **fv)
    flags.DEFINE_integer("backup_every_steps", 0, "Also back up every N steps (0: every epoch only).", **fv)
    flags.DEFINE_boolean("deterministic", False, "Bit-reproducible runs: oneDNN off "
                         "(TF_ENABLE_ONEDNN_OPTS=0, about 2x slower on AVX2 CPUs) and "
                         "tf.config.experimental.enable_op_determinism().", **fv)


def _load(name, config, split, **kwargs):
    """`data.load` with the config's data folder and source image size."""
    from simclr_tf import data

    return data.load(name, split=split, data_dir=config.get("data_dir"),
                     image_size=config.get("source_image_size"), **kwargs)


def evaluation_splits(config, eval_dataset):
    """`(train, test)` labelled datasets for the final probes, or `(None, reason)`.

    A named `eval_dataset` that cannot be read is an error; the training
    dataset without labelled train and test splits only skips the probes.
    """
    name = eval_dataset or config["dataset"]
    limit = config["probe"].get("max_examples")

    def split(which):
        ds = _load(name, config, which, batch_size=500, with_labels=True, shuffle=False,
                   drop_remainder=False)
        if not isinstance(ds.element_spec, tuple):  # a folder without class sub-folders
            raise ValueError(f"its {which!r} split has no labels (no class sub-folders).")
        return ds.unbatch().take(limit).batch(500) if limit else ds

    try:
        return split("train"), split("test")
    except ValueError as err:
        if eval_dataset:
            raise ValueError(f"`--eval_dataset` must name a labelled dataset with train and test "
                             f"splits: {err} Received: eval_dataset={eval_dataset!r}") from None
        return None, (f"no labelled train/test splits in {name!r} ({' '.join(str(err).split())}); "
                      "name one with --eval_dataset")


def main(argv, flag_values=flags.FLAGS):
    del argv
    import keras
    import tensorflow as tf

    import simclr_tf
    from simclr_tf import callbacks as callbacks_lib
    from simclr_tf import data
    from simclr_tf.atomic import save_keras, write_json

    f = flag_values
    with usage.checks():
        config = config_lib.load_config(f.config)
        for key in ("dataset", "epochs", "batch_size"):
            if getattr(f, key) is not None:
                config[key] = getattr(f, key)
        config = config_lib.apply_overrides(config, f.set)
        config_lib.check_config(config)
        report_settings = report.settings(config) if f.probe else None
        if f.backup_every_steps < 0:
            raise ValueError(
                f"`--backup_every_steps` must be >= 0. Received: backup_every_steps={f.backup_every_steps}"
            )
        config_lib.check_steps_per_epoch(f.steps_per_epoch, "--steps_per_epoch")
        if f.deterministic and os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0":
            # TensorFlow read the variable at import, before the flags were
            # parsed (e.g. the flag came from a --flagfile).
            raise ValueError(
                "`--deterministic` needs oneDNN off, which TensorFlow reads when it loads: pass "
                "--deterministic on the command line, or set TF_ENABLE_ONEDNN_OPTS=0. Received: "
                f"deterministic=True, TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')!r}"
            )
        out = os.path.abspath(f.output_dir)
        files.check_output_dir(out)  # without creating it: a bad input leaves nothing behind
        keras.utils.set_random_seed(config["seed"])
        if f.deterministic:
            tf.config.experimental.enable_op_determinism()

        strategy = builders.make_strategy(f.strategy, f.tpu)
        config_lib.check_config(config, replicas=strategy.num_replicas_in_sync)  # now that replicas are known
        # A folder is read without labels: pretraining needs none, and a flat
        # folder has none. The online probe learns from labelled batches only.
        with_labels = not config["dataset"].startswith("folder:")
        train = _load(config["dataset"], config, "train", batch_size=config["batch_size"],
                      with_labels=with_labels, shuffle=True, drop_remainder=True, seed=config["seed"])
        unreadable = getattr(train, "unreadable", None)  # a folder's
        steps = files.count_batches(train)
        if f.steps_per_epoch is not None:
            steps = min(steps, f.steps_per_epoch)
        train = train.repeat()
        evaluation = evaluation_splits(config, f.eval_dataset) if f.probe else (None, "--noprobe")

        with strategy.scope():
            model = builders.build_model(config)
            model.compile(optimizer=builders.build_optimizer(config, steps),
                          jit_compile=builders.resolve_jit(config))
    logging.info("Encoder %s: %d parameters", model.encoder.name, model.encoder.count_params())

    # Non-chief workers of a multi-worker job run every save (they may read
    # distributed variables) into a scratch folder inside --output_dir that
    # is deleted at exit.
    chief = callbacks_lib.is_chief(strategy)
    write_dir = out if chief else callbacks_lib.worker_scratch(out, strategy)
    run_info = {"config": {k: v for k, v in config.items() if k != "probe"}, "steps_per_epoch": steps}
    backup = callbacks_lib.ResumableBackup(
        os.path.join(out, "backup"), save_freq=f.backup_every_steps or "epoch", keep=2,
        run_info=run_info,
    )
    if chief:
        callbacks_lib.remove_temporaries(out, ARTEFACTS)
    resumed = backup.restore(model)
    if resumed is None and chief:
        # A fresh start: an earlier run's per-epoch weights (its backup was
        # deleted to start over) would sort as newer than this run's and
        # have them pruned at once.
        stale, aside = files.move_stale_checkpoints(os.path.join(out, "checkpoints"))
        if stale:
            print(f"Starting afresh: moved {len(stale)} checkpoint(s) of an earlier run "
                  f"({', '.join(stale)}) to {aside}.")
    initial_epoch = resumed["epoch"] if resumed else 0
    if initial_epoch:
        # The stream is shuffle(seed) -> repeat, so skipping the consumed
        # batches gives exactly the batches an uninterrupted run would see.
        train = train.skip(initial_epoch * steps)
        print(f"Resuming from {resumed['path']}: {initial_epoch} of {config['epochs']} epochs done, "
              f"optimizer step {resumed['step']}.")
    guard = callbacks_lib.StopOnNonFiniteLoss()
    callbacks = [
        guard,
        # Counts and names the files of a folder that could not be decoded.
        *([data.UnreadableFilesReport(unreadable)] if unreadable is not None else []),
        backup,
        callbacks_lib.AtomicCheckpoint(os.path.join(out, "checkpoints"), keep=3),
        keras.callbacks.TensorBoard(os.path.join(write_dir, "tensorboard")),
    ]
    start = time.time()
    try:
        model.fit(train, epochs=config["epochs"], steps_per_epoch=steps,
                  callbacks=callbacks, verbose=1)
        train_seconds = time.time() - start
        if guard.stopped_at is not None:
            epoch, batch, loss = guard.stopped_at
            raise SystemExit(
                f"Training stopped: loss {loss} at epoch {epoch}, batch {batch}. "
                f"The last good state is kept in {out}/backup (resumable) and {out}/checkpoints."
            )
        save_keras(model.encoder, os.path.join(write_dir, "encoder.keras"))
        save_keras(model, os.path.join(write_dir, "simclr.keras"))
        simclr_tf.export_encoder(model, os.path.join(write_dir, "saved_model"))
    finally:
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)
    if not chief:
        return

    metrics = {
        "config": config,
        "train_seconds": round(train_seconds, 1),
        "resumed_from_epoch": initial_epoch,
        "history": backup.history,
    }
    train_eval, test_eval = evaluation
    if train_eval is None:
        if f.probe:
            print(f"Skipped the linear probe and kNN: {test_eval}.")
    else:
        metrics["eval_dataset"] = f.eval_dataset or config["dataset"]
        scores = run_probes(config, model, train_eval, test_eval)
        metrics.update(scores)
        print(
            "\nLinear-probe top-1 on the test split: "
            f"learned {metrics['probe_top1_learned']:.4f}, "
            f"random encoder {metrics['probe_top1_random']:.4f}, "
            f"raw pixels {metrics['probe_top1_pixels']:.4f}; "
            f"kNN top-1 of the learned encoder {metrics['knn_top1_learned']:.4f}"
        )
        if report_settings is not None:
            metrics.update(label_efficiency_report(config, model, train_eval, test_eval, scores,
                                                   report_settings, backup.history, out))
    write_json(os.path.join(out, "metrics.json"), metrics)
    print(json.dumps({k: v for k, v in metrics.items() if k.startswith(("probe", "knn"))}, indent=2))
    if "label_efficiency" in metrics:
        print("\n" + metrics["label_efficiency_table"])
        print(report.format_margins({float(k): tuple(v) for k, v in metrics["label_efficiency_margin"].items()}))
    written = [name for name in ARTEFACTS if os.path.exists(os.path.join(out, name))]
    print(f"\nWrote {out}: {', '.join(written)}; TensorBoard logs in {os.path.join(out, 'tensorboard')}")
    print(f"Next: simclr-tf linear-eval --encoder={out}   (or finetune --encoder={out} --label_fraction=0.1, "
          f"export --encoder={out})")


def label_efficiency_report(config, model, train, test, scores, settings, history, out):
    """The label-efficiency rows, margin and table for metrics.json, and report.png.

    A labelled evaluation set too small for the report's fractions (fewer
    labels than classes at 1%) skips the report with one line.
    """
    from simclr_tf import evaluation
    from simclr_tf.atomic import atomic_path

    full = {name: {"top1": scores[f"probe_top1_{name}"], "knn_top1": scores.get(f"knn_top1_{name}")}
            for name in ("learned", "random", "pixels")}
    try:
        rows = report.label_efficiency(config, model, train, test, full, settings)
    except ValueError as err:
        print(f"Skipped the label-efficiency report: {' '.join(str(err).split())}")
        return {}
    margin = report.margins(rows)
    with atomic_path(os.path.join(out, "report.png")) as tmp:
        report.plot(history, rows, tmp)
    return {
        "label_efficiency": rows,
        "label_efficiency_margin": {str(k): list(v) for k, v in margin.items()},
        "label_efficiency_table": (
            "Test top-1 and kNN top-1 (%) by label fraction; mean ± std over label-subset seeds "
            f"{', '.join(map(str, settings['seeds']))} (100%: the full probes above, one run):\n"
            + evaluation.format_label_efficiency(rows)
        ),
    }


def run_probes(config, model, train, test):
    """Linear probes (and kNN) on frozen features: learned, random init, raw pixels."""
    eval_view = lambda x: model.augmenter(x, training=False)  # noqa: E731
    scores = probes.probe_representations(config, model.encoder, eval_view, train, test, knn=True)
    results = {}
    for name, result in scores.items():
        results[f"probe_top1_{name}"] = result["top1"]
        results[f"probe_top5_{name}"] = result["top5"]
        if "l2" in result:
            results[f"probe_l2_{name}"] = result["l2"]
        results[f"knn_top1_{name}"] = result["knn_top1"]
    return results
