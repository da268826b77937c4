"""Entry points of a checkout: `python -m experiments.<name>`.

`pretrain`, `linear_eval` and `finetune` run the code of the installed
`simclr-tf` command (`simclr_tf_cli`); `fresh_test` and `ablations` are this
project's studies. These are programs, so they decide for their process:
importing this package turns TensorFlow's oneDNN CPU kernels on (off for
`--deterministic`) before anything loads TensorFlow, as `simclr-tf` does
(`simclr_tf_launcher`, whose docstring says why); a value the user set wins.
"""

import sys

import simclr_tf_launcher

simclr_tf_launcher.set_onednn(sys.argv)
