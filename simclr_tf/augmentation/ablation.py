"""Deprecated name of `simclr_tf.augmentation.extra` (the operators are general,
not specific to the ablation study); kept so existing imports keep working."""

from simclr_tf.augmentation.extra import *  # noqa: F401,F403
