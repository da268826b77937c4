"""`simclr-tf finetune`: semi-supervised fine-tuning on a fraction of the labels.

Fine-tunes the whole encoder plus a linear layer on a class-balanced
fraction of the training labels (`simclr_tf.evaluation.label_fraction_subset`:
max(1, round-half-up(fraction * class count)) per class, nested across
fractions for one seed), from h (--head_layer=0) or from a projection-head
layer of a pretrained SimCLR model (--head_layer=1 is SimCLRv2's choice), and
writes into --output_dir:

- `results.json` (atomically): test top-1 / top-5, the fraction, the number
  of labelled examples, the per-epoch history and the settings;
- `tensorboard/`: per-epoch training loss and accuracy
  (`finetune_train/loss`, `finetune_train/acc`), final `finetune/top1`, `top5`;
- `encoder.keras`: the fine-tuned encoder (--save_encoder).

    simclr-tf finetune --encoder=runs/default --label_fraction=0.01
    simclr-tf finetune --encoder=runs/default --label_fraction=0.1 \\
        --head_layer=1 --epochs=30 --output_dir=runs/default/finetune_10pct

--head_layer > 0 needs --encoder to hold the whole SimCLR model (a pretrain
--output_dir or its simclr.keras), since the head is not in encoder.keras.
"""

import os
import time

from absl import flags, logging

from simclr_tf_cli import linear_eval


def define_flags(flag_values=flags.FLAGS):
    fv = dict(flag_values=flag_values)
    flags.DEFINE_string("encoder", None, "A .keras encoder or SimCLR model, or a pretrain --output_dir.", **fv)
    flags.DEFINE_string("dataset", "embedded", "Dataset name for simclr_tf.data.load.", **fv)
    flags.DEFINE_string("data_dir", None, "TFDS data folder or Fashion-MNIST IDX folder.", **fv)
    flags.DEFINE_integer("source_image_size", None, "Size folder and TFDS images are read at "
                         "(default: the loader's).", **fv)
    flags.DEFINE_float("label_fraction", 0.1, "Fraction of each class's training labels, in (0, 1].", **fv)
    flags.DEFINE_integer("head_layer", 0, "0: fine-tune from h; i: from the projection head's i-th layer.", **fv)
    flags.DEFINE_integer("epochs", 30, "Fine-tuning epochs over the labelled subset.", **fv)
    flags.DEFINE_boolean("augment", True, "Random crop + flip training views.", **fv)
    flags.DEFINE_integer("batch_size", 128, "Batch size (capped at the subset size).", **fv)
    flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.", **fv)
    flags.DEFINE_integer("max_test_examples", None, "Seeded random subset of the test split (short runs).", **fv)
    flags.DEFINE_boolean("save_encoder", True, "Write the fine-tuned encoder as encoder.keras.", **fv)
    flags.DEFINE_integer("seed", 0, "Seed of the label subset, initialisation and augmentation.", **fv)
    flags.DEFINE_string("output_dir", "runs/finetune", "Where results.json, logs and the encoder go.", **fv)
    flags.mark_flag_as_required("encoder", flag_values=flag_values)


def main(argv, flag_values=flags.FLAGS):
    del argv
    import keras

    from simclr_tf import evaluation
    from simclr_tf.atomic import save_keras, write_json
    from simclr_tf_cli import files, usage

    f = flag_values
    with usage.checks():
        out = os.path.abspath(f.output_dir)
        logdir = os.path.join(out, "tensorboard")
        # Checked first, created only once the evaluation has run: a refused run
        # (bad encoder, data or argument) leaves no empty folder behind.
        files.check_output_dir(out)
        keras.utils.set_random_seed(f.seed)
        model = evaluation.load_encoder(f.encoder)
        train = linear_eval.load_split(f.dataset, "train", f.data_dir, None, f.seed, f.source_image_size)
        test = linear_eval.load_split(f.dataset, "test", f.data_dir, f.max_test_examples, f.seed + 1,
                                      f.source_image_size)

        start = time.time()
        scores, classifier = evaluation.finetune(
            model, train, test, label_fraction=f.label_fraction, head_layer=f.head_layer,
            augment=f.augment, epochs=f.epochs, batch_size=f.batch_size,
            learning_rate=f.learning_rate, seed=f.seed, return_model=True,
        )
    os.makedirs(out, exist_ok=True)  # the evaluation ran: its arguments were good
    results = {
        "encoder": os.path.abspath(f.encoder),
        "dataset": f.dataset,
        "test_examples": int(len(test[1])),
        "finetune_seconds": round(time.time() - start, 1),
        **scores,
    }
    linear_eval.write_history(logdir, scores["history"], "finetune_train")
    linear_eval.write_scalars(
        logdir, {f"finetune/{k}": results[k] for k in ("top1", "top5")}, step=f.epochs)
    if f.save_encoder:
        save_keras(classifier.encoder, os.path.join(out, "encoder.keras"))
        results["encoder_keras"] = "encoder.keras"
    write_json(os.path.join(out, "results.json"), results)
    logging.info("finetune: top1 %.4f top5 %.4f", results["top1"], results["top5"])
    print(f"{results['train_examples']} labels ({f.label_fraction:g} of train): "
          f"top-1 {results['top1']:.4f}, top-5 {results['top5']:.4f}; wrote {out}")
    return results

