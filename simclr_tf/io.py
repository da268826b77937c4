"""Deprecated name of `simclr_tf.atomic` (it shadowed the standard library's
`io` in tracebacks and greps); kept so existing imports keep working."""

from simclr_tf.atomic import *  # noqa: F401,F403
from simclr_tf.atomic import OLD_SUFFIX, atomic_path, old_artefact_name, save_keras, write_json  # noqa: F401
