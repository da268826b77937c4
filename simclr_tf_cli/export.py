"""`simclr-tf export`: a pretrained encoder as a serving SavedModel.

Loads `--encoder` (a `.keras` encoder or SimCLR model, or a pretrain
`--output_dir`, whose `simclr.keras` brings the augmenter's evaluation
transform and the projection head along) and writes
`simclr_tf.export_encoder`'s SavedModel to `--output_dir`, atomically:
`serving_default` takes uint8 images of any size, `serving_float` float
images in [0, 1] at the encoder's input size.

    simclr-tf export --encoder=runs/default --output_dir=runs/default/serving
    saved_model_cli show --dir runs/default/serving --all
"""

import os

from absl import flags


def define_flags(flag_values=flags.FLAGS):
    fv = dict(flag_values=flag_values)
    flags.DEFINE_string("encoder", None, "A .keras encoder or SimCLR model, or a pretrain --output_dir.", **fv)
    flags.DEFINE_string("output_dir", None, "The SavedModel folder to write (replaced if it exists).", **fv)
    flags.mark_flag_as_required("encoder", flag_values=flag_values)
    flags.mark_flag_as_required("output_dir", flag_values=flag_values)


def main(argv, flag_values=flags.FLAGS):
    del argv
    import simclr_tf
    from simclr_tf import evaluation
    from simclr_tf_cli import files, usage

    f = flag_values
    with usage.checks():
        out = os.path.abspath(f.output_dir)
        files.check_output_dir(out)
        model = evaluation.load_encoder(f.encoder)
        simclr_tf.export_encoder(model, out)
    print(f"Wrote {out} (signatures serving_default: uint8 images of any size; "
          "serving_float: float images in [0, 1])")
    return out
