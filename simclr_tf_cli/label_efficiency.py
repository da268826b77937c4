"""`simclr-tf label-efficiency`: every arm of the label-efficiency protocol on one encoder.

The analogue of SimCLR's table 7 (`simclr_tf.evaluation.label_efficiency`):
class-balanced nested subsets of the training labels at `--fractions`, for
each `--seeds`; the L-BFGS linear probe of the pretrained encoder
(`learned`), of a random encoder and of raw pixels; the pretrained encoder
fine-tuned (`finetune`, from h or with `--head_layer=1` from the projection
head's first layer) and the same architecture trained from scratch
(`supervised`), both on crop + flip views with their learning rate and
epochs chosen on held-out labelled rows; kNN beside each. It writes into
--output_dir `label_efficiency.json` (every row, atomically),
`label_efficiency.txt` (the table) and `label_efficiency.png` (the bars).

    simclr-tf label-efficiency --encoder=runs/pretrain
    simclr-tf label-efficiency --encoder=runs/pretrain --arms=finetune,supervised \\
        --epochs=0.01:100,0.1:30,1:15 --seeds=0
"""

import os
import time

from absl import flags

from simclr_tf_cli import usage


def define_flags(flag_values=flags.FLAGS):
    fv = dict(flag_values=flag_values)
    flags.DEFINE_string("encoder", None, "A pretrain --output_dir, or a .keras SimCLR model or encoder.", **fv)
    flags.DEFINE_string("dataset", "embedded", "Labelled dataset with train and test splits "
                        "(embedded, fashion_mnist, folder:PATH, tfds:NAME).", **fv)
    flags.DEFINE_string("data_dir", None, "TFDS data folder or Fashion-MNIST IDX folder.", **fv)
    flags.DEFINE_integer("source_image_size", None, "Size folder and TFDS images are read at.", **fv)
    flags.DEFINE_list("fractions", ["0.01", "0.1", "1.0"], "Label fractions in (0, 1].", **fv)
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Label-subset seeds.", **fv)
    flags.DEFINE_list("arms", ["learned", "random", "pixels", "finetune", "supervised"], "Arms to run.", **fv)
    flags.DEFINE_string("epochs", "30", "Most epochs of the trained arms: N, or FRACTION:N,... per fraction.", **fv)
    flags.DEFINE_list("learning_rates", ["3e-3"], "Adam rates the trained arms choose from.", **fv)
    flags.DEFINE_integer("head_layer", 0, "0: fine-tune from h; 1: from the head's first layer.", **fv)
    flags.DEFINE_integer("max_train_examples", None, "Class-balanced cap on the train split.", **fv)
    flags.DEFINE_string("output_dir", "runs/label_efficiency", "Where the table, rows and picture go.", **fv)


def _numbers(name, values, kind):
    try:
        return [kind(v) for v in values]
    except ValueError:
        raise ValueError(f"`--{name}` must be a comma-separated list of {kind.__name__}s. "
                         f"Received: {name}={','.join(values)}") from None


def parse_epochs(value):
    """`--epochs`: an int, or `fraction:int` pairs (a dict).

    >>> parse_epochs("30"), parse_epochs("0.01:100,1:15")
    (30, {0.01: 100, 1.0: 15})
    """
    try:
        if ":" not in value:
            return int(value)
        pairs = (item.split(":") for item in value.split(","))
        return {float(fraction): int(epochs) for fraction, epochs in pairs}
    except ValueError:
        raise ValueError("`--epochs` must be an integer or FRACTION:EPOCHS pairs separated by commas. "
                         f"Received: epochs={value!r}") from None


def main(argv, flag_values=flags.FLAGS):
    del argv
    from simclr_tf import evaluation
    from simclr_tf.atomic import atomic_path, write_json
    from simclr_tf_cli import files, report
    from simclr_tf_cli.linear_eval import load_split

    f = flag_values
    with usage.checks():
        out = os.path.abspath(f.output_dir)
        files.check_output_dir(out)
        if f.encoder is None:
            raise ValueError("`--encoder` must name a pretrain --output_dir or a .keras file. Received: encoder=None")
        fractions = tuple(_numbers("fractions", f.fractions, float))
        if not fractions or not all(0 < x <= 1 for x in fractions):
            raise ValueError(f"`--fractions` must be numbers in (0, 1]. Received: fractions={','.join(f.fractions)}")
        kwargs = dict(
            fractions=fractions,
            seeds=tuple(_numbers("seeds", f.seeds, int)),
            arms=tuple(f.arms),
            epochs=parse_epochs(f.epochs),
            learning_rates=tuple(_numbers("learning_rates", f.learning_rates, float)),
            head_layer=f.head_layer,
            max_train_examples=f.max_train_examples,
        )
        model = evaluation.load_encoder(f.encoder)
        train = load_split(f.dataset, "train", f.data_dir, None, 0, f.source_image_size)
        test = load_split(f.dataset, "test", f.data_dir, None, 0, f.source_image_size)
        start = time.time()
        rows = evaluation.evaluate_label_efficiency(model, train, test, **kwargs)
    table = evaluation.format_label_efficiency(rows)
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "label_efficiency.json"), {
        "encoder": os.path.abspath(f.encoder), "dataset": f.dataset,
        "seconds": round(time.time() - start, 1), "rows": rows,
    })
    with atomic_path(os.path.join(out, "label_efficiency.txt")) as tmp:
        with open(tmp, "w") as fh:
            fh.write(table + "\n")
    with atomic_path(os.path.join(out, "label_efficiency.png")) as tmp:
        report.plot({}, rows, tmp)
    print(table)
    margin = report.margins(rows)
    if margin:
        print(report.format_margins(margin))
    print(f"Wrote {out}")
