"""`python -m experiments.linear_eval`: `simclr-tf linear-eval` in a checkout.

The code is `simclr_tf_cli.linear_eval`, whose docstring lists its outputs;
importing this module gives that module itself, so tests that patch it patch
the code that runs. Flags are defined only when it runs as a program.

    python -m experiments.linear_eval --encoder=runs/default
    python -m experiments.linear_eval --encoder=runs/default --solver=adam --epochs=30
"""

import sys

from simclr_tf_cli import linear_eval, usage

if __name__ == "__main__":
    linear_eval.define_flags()
    usage.run(linear_eval.main, ["python -m experiments.linear_eval", *sys.argv[1:]])
else:
    sys.modules[__name__] = linear_eval
