"""`simclr-tf linear-eval`: linear evaluation of a pretrained encoder.

Freezes the encoder and fits a linear classifier on h. By default it is the
main job's probe (`simclr_tf_cli.probes`: logistic regression by L-BFGS on
cached features, its L2 penalty chosen on a held-out fifth of the training
rows), so one encoder reports the number `simclr-tf pretrain` printed for
it; `--solver=adam` trains by Adam on cached features for `--epochs`, and
`--augment` on random crop + flip views (the paper's protocol, Adam). It
writes into --output_dir:

- `results.json` (atomically): top-1 / top-5 of the linear classifier and
  weighted kNN top-1 (k=200, t=0.1) on the test split, with the settings;
- `embedding_tsne.png`: a t-SNE of test embeddings coloured by label
  (needs scikit-learn and matplotlib; --embedding_points=0 skips it);
- `tensorboard/`: every metric as a scalar, the picture as an image, and
  under --augment the per-epoch training loss and accuracy
  (`linear_eval_train/loss`, `linear_eval_train/acc`).

    simclr-tf linear-eval --encoder=runs/default
    simclr-tf linear-eval --encoder=runs/default/encoder.keras \\
        --augment --epochs=30 --output_dir=runs/default/linear_eval_aug
    simclr-tf linear-eval --encoder=runs/photos --dataset=folder:/data/labelled

Flags are defined in `define_flags`, called by the command, so tests can
parse them into their own `FlagValues` next to other entry points' flags.
"""

import os
import time

from absl import flags, logging

SOLVERS = ("lbfgs", "adam")


def define_flags(flag_values=flags.FLAGS):
    fv = dict(flag_values=flag_values)
    flags.DEFINE_string("encoder", None, "A .keras encoder or SimCLR model, or a pretrain --output_dir.", **fv)
    flags.DEFINE_string("dataset", "embedded", "Labelled dataset with train and test splits "
                        "(embedded, fashion_mnist, folder:PATH, tfds:NAME).", **fv)
    flags.DEFINE_string("data_dir", None, "TFDS data folder or Fashion-MNIST IDX folder.", **fv)
    flags.DEFINE_integer("source_image_size", None, "Size folder and TFDS images are read at "
                         "(default: the loader's).", **fv)
    flags.DEFINE_enum("solver", "lbfgs", SOLVERS, "lbfgs: the main job's probe; adam: Adam for --epochs.", **fv)
    flags.DEFINE_string("l2", "auto", "L-BFGS L2 penalty: a number, or auto (chosen on held-out train rows).", **fv)
    flags.DEFINE_integer("max_iterations", 150, "L-BFGS iterations per fit.", **fv)
    flags.DEFINE_integer("epochs", 30, "Adam epochs (--solver=adam or --augment).", **fv)
    flags.DEFINE_boolean("augment", False, "Train on random crop + flip views by Adam instead of "
                         "cached features (implies --solver=adam).", **fv)
    flags.DEFINE_integer("batch_size", 256, "Batch size.", **fv)
    flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.", **fv)
    flags.DEFINE_float("weight_decay", 1e-4, "Adam's L2 penalty on the linear weights.", **fv)
    flags.DEFINE_integer("knn_k", 200, "Neighbours for the kNN top-1 (0 skips it).", **fv)
    flags.DEFINE_integer("embedding_points", 2000, "Test points in the t-SNE picture (0 skips it).", **fv)
    flags.DEFINE_integer("max_train_examples", None, "Seeded random subset of the train split (short runs).", **fv)
    flags.DEFINE_integer("max_test_examples", None, "Seeded random subset of the test split (short runs).", **fv)
    flags.DEFINE_integer("seed", 0, "Seed of subsets, classifier, augmentation and t-SNE.", **fv)
    flags.DEFINE_string("output_dir", "runs/linear_eval", "Where results.json, the picture and logs go.", **fv)
    flags.mark_flag_as_required("encoder", flag_values=flag_values)


def load_split(name, split, data_dir, limit, seed, image_size=None):
    """`(images, labels)` numpy arrays of a split, optionally a random subset."""
    import numpy as np

    from simclr_tf import data

    if name == "embedded":
        images, labels = data.load_embedded(split)
    else:
        ds = data.load(name, split=split, batch_size=1024, shuffle=False,
                       drop_remainder=False, data_dir=data_dir, image_size=image_size)
        pairs = list(ds.as_numpy_iterator())
        images = np.concatenate([x for x, _ in pairs])
        labels = np.concatenate([y for _, y in pairs])
    if limit is not None:
        if limit < 1:
            raise ValueError(f"`--max_{split}_examples` must be >= 1. Received: max_{split}_examples={limit}")
        if limit < len(labels):
            keep = np.sort(np.random.default_rng(seed).permutation(len(labels))[:limit])
            images, labels = images[keep], labels[keep]
    return images, labels


def class_names(dataset, num_classes):
    from simclr_tf import data

    if dataset in ("embedded", "fashion_mnist"):
        return list(data.CLASS_NAMES)
    return [str(i) for i in range(num_classes)]


def _summary_metadata(plugin):
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin))


# Summaries go through `tf.summary.write` with the plugin metadata that
# TensorBoard reads, because `tf.summary.scalar` / `image` (and so Keras's
# TensorBoard callback) need the separate `tensorboard` package, which
# tensorflow 2.21 does not install.


def write_scalars(logdir, scalars, step):
    """Writes `{tag: number}` as TensorBoard scalars at `step`."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        for key, value in scalars.items():
            tf.summary.write(key, tf.constant(float(value), tf.float32), step=step,
                             metadata=_summary_metadata("scalars"))
    writer.close()


def write_history(logdir, history, prefix):
    """Writes a Keras History dict as per-epoch scalars `prefix/<metric>`."""
    for epoch in range(max((len(v) for v in history.values()), default=0)):
        write_scalars(logdir, {f"{prefix}/{key}": values[epoch] for key, values in history.items()
                               if epoch < len(values)}, step=epoch)


def write_png(logdir, tag, png, height, width):
    """Writes PNG bytes as a TensorBoard image."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        tensor = tf.constant([str(width).encode(), str(height).encode(), png])
        tf.summary.write(tag, tensor, step=0, metadata=_summary_metadata("images"))
    writer.close()


def plot_embedding(features, labels, names, path, seed, logdir=None):
    """Writes a t-SNE picture of `features` coloured by label, atomically."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("The embedding picture needs matplotlib: `pip install matplotlib`.") from err
    import numpy as np

    from simclr_tf.evaluation import tsne_2d
    from simclr_tf.atomic import atomic_path

    points = tsne_2d(features, seed=seed)
    fig, ax = plt.subplots(figsize=(7, 6), dpi=100)
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    for cls in np.unique(labels):
        sel = labels == cls
        ax.scatter(points[sel, 0], points[sel, 1], s=6, color=cmap(cls % cmap.N),
                   label=names[cls] if cls < len(names) else str(cls))
    ax.set_title(f"t-SNE of {len(labels)} test embeddings (h)")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=3, fontsize=8, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    if logdir is not None:
        with open(path, "rb") as f:
            png = f.read()
        width, height = fig.canvas.get_width_height()
        write_png(logdir, "embedding_tsne", png, height, width)
    return path


def _l2(value):
    if value == "auto":
        return value
    try:
        l2 = float(value)
    except ValueError:
        l2 = -1.0
    if not l2 >= 0:
        raise ValueError(f"`--l2` must be auto or a number >= 0. Received: l2={value!r}")
    return l2


def main(argv, flag_values=flags.FLAGS):
    del argv
    import keras
    import numpy as np

    from simclr_tf import evaluation, validation
    from simclr_tf.atomic import write_json
    from simclr_tf_cli import files, probes, usage

    f = flag_values
    with usage.checks():
        out = os.path.abspath(f.output_dir)
        logdir = os.path.join(out, "tensorboard")
        # Checked first, created only once the evaluation has run: a refused run
        # (bad encoder, data or argument) leaves no empty folder behind.
        files.check_output_dir(out)
        validation.check_int("epochs", f.epochs, minimum=1)
        solver = "adam" if f.augment else f.solver
        if f.augment and f["solver"].present and f.solver != "adam":
            raise ValueError("`--augment` trains by Adam on random views: leave --solver unset or "
                             f"pass --solver=adam. Received: solver={f.solver!r}, augment=True")
        l2 = _l2(f.l2)
        keras.utils.set_random_seed(f.seed)
        model = evaluation.load_encoder(f.encoder)
        train = load_split(f.dataset, "train", f.data_dir, f.max_train_examples, f.seed, f.source_image_size)
        test = load_split(f.dataset, "test", f.data_dir, f.max_test_examples, f.seed + 1, f.source_image_size)

        start = time.time()
        features = None
        if solver == "lbfgs":
            (xtr, ytr), (xte, yte) = features = evaluation.labelled_features(
                model, train, test, batch_size=f.batch_size)
            probe = {"solver": "lbfgs", "l2": l2, "max_iterations": f.max_iterations}
            scores = probes.probe_features(xtr, ytr, xte, yte, probe, f.seed)
            scores.update(solver="lbfgs", num_classes=int(max(ytr.max(), yte.max())) + 1)
        else:
            scores = evaluation.linear_eval(
                model, train, test, augment=f.augment, epochs=f.epochs, batch_size=f.batch_size,
                learning_rate=f.learning_rate, weight_decay=f.weight_decay, seed=f.seed,
            )
            scores["solver"] = "adam"
    os.makedirs(out, exist_ok=True)  # the evaluation ran: its arguments were good
    if "history" in scores:
        write_history(logdir, scores["history"], "linear_eval_train")
    results = {
        "encoder": os.path.abspath(f.encoder),
        "dataset": f.dataset,
        "train_examples": int(len(train[1])),
        "test_examples": int(len(test[1])),
        "linear_seconds": round(time.time() - start, 1),
        **scores,
    }

    if features is None and (f.knn_k > 0 or f.embedding_points > 0):
        features = evaluation.labelled_features(model, train, test, batch_size=f.batch_size)
    if features is not None:
        (xtr, ytr), (xte, yte) = features
    if f.knn_k > 0:
        results["knn_top1"] = evaluation.knn_accuracy(xtr, ytr, xte, yte, k=f.knn_k,
                                                      temperature=probes.KNN_TEMPERATURE)
        results["knn_k"] = f.knn_k
    metric_keys = ("top1", "top5", "train_top1", "knn_top1")
    write_scalars(logdir, {f"linear_eval/{k}": results[k] for k in metric_keys if k in results},
                  step=f.epochs)
    write_json(os.path.join(out, "results.json"), results)  # before the optional picture
    if f.embedding_points > 0:
        keep = np.random.default_rng(f.seed).permutation(len(yte))[: f.embedding_points]
        names = class_names(f.dataset, scores["num_classes"])
        try:
            plot_embedding(xte[keep], yte[keep], names, os.path.join(out, "embedding_tsne.png"),
                           f.seed, logdir=logdir)
        except ImportError as err:  # matplotlib and scikit-learn are dev requirements
            logging.warning("%s Skipped the embedding picture (--embedding_points=0 skips it quietly).", err)
        else:
            results["embedding_png"] = "embedding_tsne.png"
            write_json(os.path.join(out, "results.json"), results)
    logging.info("linear eval: %s", {k: results[k] for k in metric_keys if k in results})
    print(f"top-1 {results['top1']:.4f}, top-5 {results['top5']:.4f}"
          + (f", kNN top-1 {results['knn_top1']:.4f}" if "knn_top1" in results else "")
          + f"; wrote {out}")
    return results
