"""SimCLR pretraining entry point: flags -> config -> strategy -> data -> fit.

With no flags it pretrains a small ResNet-10 on the Fashion-MNIST subset
shipped in the package (about 5 minutes on an idle 2-core CPU), then writes into
`--output_dir`: `backup/` (the resumable training state), `checkpoints/` (the
newest per-epoch weights), TensorBoard logs, the encoder and the whole model as
`.keras`, a SavedModel of the encoder and `metrics.json` with the linear-probe
top-1 of the learned encoder, a randomly initialised encoder of the same
architecture, and raw pixels. Every artefact is written under a temporary name
and renamed, and nothing is written before the config, data and model are
checked, so a bad input leaves `--output_dir` untouched.

Fault tolerance: re-running the same command with the same `--output_dir`
resumes from the newest backup (weights, optimizer state and step, augmenter
random state, epoch counter); the data stream skips the batches the finished
epochs consumed, so a resumed run sees the batches an uninterrupted one would.
A finished run's backup is kept, so re-running it only redoes the exports.
A fresh start (no backup in `--output_dir`) moves an earlier run's
`checkpoints/epoch_*` files into `checkpoints/earlier_run_<time>/` first:
left in place they would count as newer than the new run's.

    python -m experiments.pretrain
    python -m experiments.pretrain --config=default --epochs=2 --output_dir=/tmp/run
    python -m experiments.pretrain --set temperature=0.2 --set encoder.depth=34
"""

import json
import os
import shutil
import sys
import time

from absl import app, flags, logging

from experiments import argv as argv_lib  # no TensorFlow import


def _asks_for_determinism(argv):
    # Every spelling absl accepts (`--deterministic=TRUE`, `-deterministic`,
    # `--nodeterministic` last, ...); main() checks the parsed flag as well.
    return bool(argv_lib.bool_flag(argv, "deterministic"))


if _asks_for_determinism(sys.argv):
    # oneDNN's multi-threaded CPU kernels (which simclr_tf turns on) differ in
    # the last bits from run to run; TensorFlow reads this once, at import.
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"

from experiments import common  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "default", "Config module in experiments/configs, or a .py path.")
flags.DEFINE_string("output_dir", "runs/pretrain", "Where checkpoints, logs and results go.")
flags.DEFINE_string("dataset", None, "Overrides config dataset (embedded, fashion_mnist, folder:PATH, tfds:NAME).")
flags.DEFINE_integer("epochs", None, "Overrides config epochs.")
flags.DEFINE_integer("batch_size", None, "Overrides config global batch size.")
flags.DEFINE_integer("steps_per_epoch", None, "Caps steps per epoch (short runs).")
flags.DEFINE_multi_string("set", [], "Config override key.sub=value (repeatable).")
flags.DEFINE_enum("strategy", "default", common.STRATEGIES, "tf.distribute strategy.")
flags.DEFINE_string("tpu", "", "TPU address for --strategy=tpu.")
flags.DEFINE_boolean("probe", True, "Run the final linear probes and baselines.")
flags.DEFINE_integer("backup_every_steps", 0, "Also back up every N steps (0: every epoch only).")
flags.DEFINE_boolean("deterministic", False, "Bit-reproducible runs: oneDNN off "
                     "(TF_ENABLE_ONEDNN_OPTS=0, about 2x slower on AVX2 CPUs) and "
                     "tf.config.experimental.enable_op_determinism().")


# What this entry point writes at the top of --output_dir (besides backup/,
# checkpoints/ and tensorboard/).
ARTEFACTS = ("encoder.keras", "simclr.keras", "saved_model", "metrics.json")


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    import simclr_tf
    from simclr_tf import callbacks as callbacks_lib
    from simclr_tf import data
    from simclr_tf.atomic import save_keras, write_json

    config = common.load_config(FLAGS.config)
    for key in ("dataset", "epochs", "batch_size"):
        if getattr(FLAGS, key) is not None:
            config[key] = getattr(FLAGS, key)
    config = common.apply_overrides(config, FLAGS.set)
    common.check_config(config)
    if FLAGS.backup_every_steps < 0:
        raise ValueError(
            f"`--backup_every_steps` must be >= 0. Received: backup_every_steps={FLAGS.backup_every_steps}"
        )
    common.check_steps_per_epoch(FLAGS.steps_per_epoch, "--steps_per_epoch")
    if FLAGS.deterministic and os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0":
        # TensorFlow read the variable at import, before the flags were
        # parsed (e.g. the flag came from a --flagfile).
        raise ValueError(
            "`--deterministic` needs oneDNN off, which TensorFlow reads when it loads: pass "
            "--deterministic on the command line, or set TF_ENABLE_ONEDNN_OPTS=0. Received: "
            f"deterministic=True, TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')!r}"
        )
    out = os.path.abspath(FLAGS.output_dir)
    common.check_output_dir(out)  # without creating it: a bad input leaves nothing behind
    keras.utils.set_random_seed(config["seed"])
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()

    strategy = common.make_strategy(FLAGS.strategy, FLAGS.tpu)
    common.check_config(config, replicas=strategy.num_replicas_in_sync)  # now that replicas are known
    load = dict(data_dir=config.get("data_dir"), seed=config["seed"])
    train = data.load(config["dataset"], split="train", batch_size=config["batch_size"],
                      shuffle=True, drop_remainder=True, **load)
    steps = common.count_batches(train)
    if FLAGS.steps_per_epoch is not None:
        steps = min(steps, FLAGS.steps_per_epoch)
    train = train.repeat()

    with strategy.scope():
        model = common.build_model(config)
        model.compile(optimizer=common.build_optimizer(config, steps),
                      jit_compile=common.resolve_jit(config))
    logging.info("Encoder %s: %d parameters", model.encoder.name, model.encoder.count_params())

    # Non-chief workers of a multi-worker job run every save (they may read
    # distributed variables) into a scratch folder inside --output_dir that
    # is deleted at exit.
    chief = callbacks_lib.is_chief(strategy)
    write_dir = out if chief else callbacks_lib.worker_scratch(out, strategy)
    run_info = {"config": {k: v for k, v in config.items() if k != "probe"}, "steps_per_epoch": steps}
    backup = callbacks_lib.ResumableBackup(
        os.path.join(out, "backup"), save_freq=FLAGS.backup_every_steps or "epoch", keep=2,
        run_info=run_info,
    )
    if chief:
        callbacks_lib.remove_temporaries(out, ARTEFACTS)
    resumed = backup.restore(model)
    if resumed is None and chief:
        # A fresh start: an earlier run's per-epoch weights (its backup was
        # deleted to start over) would sort as newer than this run's and
        # have them pruned at once.
        stale, aside = common.move_stale_checkpoints(os.path.join(out, "checkpoints"))
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
    if FLAGS.probe:
        metrics.update(run_probes(config, model, data))
        print(
            "\nLinear-probe top-1 on the test split: "
            f"learned {metrics['probe_top1_learned']:.4f}, "
            f"random encoder {metrics['probe_top1_random']:.4f}, "
            f"raw pixels {metrics['probe_top1_pixels']:.4f}"
        )
    write_json(os.path.join(out, "metrics.json"), metrics)
    print(json.dumps({k: v for k, v in metrics.items() if k.startswith("probe")}, indent=2))
    print(f"Wrote {out}")


def run_probes(config, model, data):
    """Linear probes on frozen features: learned, random init, raw pixels."""
    limit = config["probe"].get("max_examples")

    def split(name):
        ds = data.load(config["dataset"], split=name, batch_size=500, shuffle=False,
                       drop_remainder=False, data_dir=config.get("data_dir"))
        return ds.unbatch().take(limit).batch(500) if limit else ds

    eval_view = lambda x: model.augmenter(x, training=False)  # noqa: E731
    scores = common.probe_representations(config, model.encoder, eval_view,
                                          split("train"), split("test"))
    results = {}
    for name, result in scores.items():
        results[f"probe_top1_{name}"] = result["top1"]
        results[f"probe_top5_{name}"] = result["top5"]
        if "l2" in result:
            results[f"probe_l2_{name}"] = result["l2"]
    return results


if __name__ == "__main__":
    app.run(main)
