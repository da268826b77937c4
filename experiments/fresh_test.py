"""Re-probes finished main-job runs on test images the main job never sees.

The main job prints its linear-probe accuracies on the embedded test split:
2,000 images, on which the defaults were also chosen. This script takes the
official Fashion-MNIST test images that are *not* in that split (8,000 of
10,000; the Debian package `dataset-fashion-mnist`) and, for each run folder
written by `experiments.pretrain`, repeats the main job's three probes with
the same training rows and seed: the saved learned encoder, a random encoder
rebuilt from the run's config and seed (the run's own random baseline), and
raw pixels. The probes' validation figures (the held-out fifth of the
training rows that picks L2) therefore reproduce the run's own; only the
test images change.

    python -m experiments.fresh_test runs/default runs/seed1 --output=runs/fresh_test.json

Prints one line per run and writes the figures as JSON (atomically) to
`--output` if given.
"""

import json
import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Fashion-MNIST IDX folder (default: the Debian package's).")
flags.DEFINE_string("output", None, "Where to write the figures as JSON (optional).")


def fresh_test_split(data_dir=None):
    """The official test images (and labels) that are not in the embedded test split."""
    import numpy as np

    from simclr_tf import data

    images, labels = data.load_fashion_mnist("test", path=data_dir or data.FASHION_MNIST_DIR)
    embedded = {image.tobytes() for image in data.load_embedded("test")[0]}
    keep = np.array([image.tobytes() not in embedded for image in images], dtype=bool)
    return images[keep], labels[keep]


def probe_run(run_dir, train, test):
    """The main job's three probes for one run folder, on `train` / `test` arrays.

    The run's `probe.max_examples` (when set) keeps the first that many
    training rows, as `simclr-tf pretrain` did; every `test`
    image is probed.

    Returns {"learned" | "random" | "pixels": {"top1", "validation_top1", "l2"}}
    with accuracies in percent.
    """
    import keras

    from simclr_tf import data
    from simclr_tf_cli import builders, probes

    metrics_path = os.path.join(run_dir, "metrics.json")
    encoder_path = os.path.join(run_dir, "encoder.keras")
    for path in (metrics_path, encoder_path):
        if not os.path.isfile(path):
            raise ValueError(f"`run_dir` must be a finished main-job run folder; {path} is missing. "
                             f"Received: run_dir={run_dir!r}")
    with open(metrics_path) as f:
        config = json.load(f)["config"]
    limit = config.get("probe", {}).get("max_examples")
    if limit:  # the run's own probe took the first `limit` rows (run_probes)
        train = tuple(array[:limit] for array in train)
    augmenter = builders.build_augmenter(config)  # its evaluation transform, as the run's
    view = lambda x: augmenter(x, training=False)  # noqa: E731
    scores = probes.probe_representations(
        config, keras.saving.load_model(encoder_path), view,
        *(data.from_arrays(images, labels, batch_size=500) for images, labels in (train, test)))
    return {
        name: {
            "top1": round(100 * result["top1"], 2),
            "validation_top1": round(100 * max(result["validation_top1"].values()), 2)
            if "validation_top1" in result else None,
            "l2": result.get("l2"),
        }
        for name, result in scores.items()
    }


def main(argv):
    runs = argv[1:]
    if not runs:
        raise app.UsageError("Name at least one run folder: python -m experiments.fresh_test RUN_DIR ...")
    from simclr_tf import data
    from simclr_tf.atomic import write_json

    test = fresh_test_split(FLAGS.data_dir)
    train = data.load_embedded("train")
    print(f"{len(test[0])} test images outside the embedded test split")
    out = {}
    for run_dir in runs:
        out[run_dir] = probe_run(run_dir, train, test)
        print(run_dir, {k: (v["top1"], v["validation_top1"]) for k, v in out[run_dir].items()},
              flush=True)
    if FLAGS.output:
        write_json(FLAGS.output, {"test_images": len(test[0]), "runs": out})


if __name__ == "__main__":
    sys.exit(app.run(main))
