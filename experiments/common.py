"""The entry points' shared pieces, now in `simclr_tf_cli` (split by concern:
config, builders, probes, files); re-exported so `experiments.common.<name>`
keeps working."""

from simclr_tf_cli.builders import (  # noqa: F401
    STRATEGIES,
    build_augmenter,
    build_encoder,
    build_model,
    build_optimizer,
    make_strategy,
    on_accelerator,
    resolve_jit,
)
from simclr_tf_cli.config import (  # noqa: F401
    DEPTHS,
    HEAD_MODES,
    OPTIMIZERS,
    SCALINGS,
    STRING_OR_NONE,
    apply_overrides,
    check_config,
    check_steps_per_epoch,
    load_config,
    override_keys,
)
from simclr_tf_cli.files import check_output_dir, count_batches, move_stale_checkpoints  # noqa: F401
from simclr_tf_cli.probes import probe_representations, single_channel_if_gray  # noqa: F401
