"""`python -m experiments.label_efficiency`: `simclr-tf label-efficiency` in a checkout.

The code is `simclr_tf_cli.label_efficiency`; importing this module gives
that module itself. Flags are defined only when it runs as a program.

    python -m experiments.label_efficiency --encoder=runs/pretrain
"""

import sys

from simclr_tf_cli import label_efficiency, usage

if __name__ == "__main__":
    label_efficiency.define_flags()
    usage.run(label_efficiency.main, ["python -m experiments.label_efficiency", *sys.argv[1:]])
else:
    sys.modules[__name__] = label_efficiency
