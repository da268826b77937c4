"""`python -m experiments.pretrain`: `simclr-tf pretrain` in a checkout.

The code is `simclr_tf_cli.pretrain`, whose docstring lists what it writes;
importing this module defines its flags in absl's global `FLAGS` and gives
that module itself, so tests that patch it patch the code that runs.

    python -m experiments.pretrain
    python -m experiments.pretrain --config=default --epochs=2 --output_dir=/tmp/run
    python -m experiments.pretrain --set temperature=0.2 --set encoder.depth=34
    python -m experiments.pretrain --dataset=folder:/data/photos --set image_size=64
"""

import sys

from absl import flags

from simclr_tf_cli import pretrain, usage

if "output_dir" not in flags.FLAGS:  # a second import must not define them twice
    pretrain.define_flags(flags.FLAGS)

if __name__ == "__main__":
    usage.run(pretrain.main, ["python -m experiments.pretrain", *sys.argv[1:]])
else:
    sys.modules[__name__] = pretrain
