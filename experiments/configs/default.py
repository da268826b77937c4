"""The default config, `simclr_tf_cli/configs/default.py`, where the installed
`simclr-tf` command finds it; re-exported so `--config=default` and imports of
this module keep working in a checkout.

Launch:
    python -m experiments.pretrain --config=default --output_dir=runs/default
"""

from simclr_tf_cli.configs.default import get_config  # noqa: F401
