"""`python -m experiments.finetune`: `simclr-tf finetune` in a checkout.

The code is `simclr_tf_cli.finetune`, whose docstring lists its outputs;
importing this module gives that module itself, so tests that patch it patch
the code that runs. Flags are defined only when it runs as a program.

    python -m experiments.finetune --encoder=runs/default --label_fraction=0.01
"""

import sys

from simclr_tf_cli import finetune, usage

if __name__ == "__main__":
    finetune.define_flags()
    usage.run(finetune.main, ["python -m experiments.finetune", *sys.argv[1:]])
else:
    sys.modules[__name__] = finetune
