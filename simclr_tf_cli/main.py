"""`simclr-tf COMMAND [flags]`: the installed command's sub-commands.

Each sub-command is a module of `simclr_tf_cli` with `define_flags` and
`main`; `python -m experiments.<name>` runs the same code in a checkout.
`simclr_tf_launcher.main`, the console script, sets oneDNN before
TensorFlow loads and calls `run` here.

    simclr-tf pretrain --config=default --output_dir=runs/default
    simclr-tf linear-eval --encoder=runs/default
    simclr-tf finetune --encoder=runs/default --label_fraction=0.1
    simclr-tf export --encoder=runs/default --output_dir=runs/default/serving
    simclr-tf label-efficiency --encoder=runs/default
    simclr-tf pretrain --help
"""

import importlib
import os
import sys

from absl import flags

from simclr_tf_cli import usage

COMMANDS = {
    "pretrain": ("simclr_tf_cli.pretrain", "SimCLR pretraining, then linear probes and kNN"),
    "linear-eval": ("simclr_tf_cli.linear_eval", "linear evaluation of a pretrained encoder"),
    "finetune": ("simclr_tf_cli.finetune", "fine-tuning on a fraction of the labels"),
    "export": ("simclr_tf_cli.export", "an encoder as a serving SavedModel"),
    "label-efficiency": ("simclr_tf_cli.label_efficiency", "every arm at 1%, 10% and 100% of the labels"),
}


def _usage(prog):
    lines = [f"usage: {prog} COMMAND [flags]   ({prog} COMMAND --help lists a command's flags)", ""]
    lines += [f"  {name:<16} {about}" for name, (_, about) in COMMANDS.items()]
    return "\n".join(lines)


def run(argv):
    """Runs `argv[1]`'s command with the flags in `argv[2:]`; exits like a program."""
    prog = os.path.basename(argv[0]) if argv else "simclr-tf"
    if prog.endswith(".py") or prog in ("-m", "__main__.py", ""):
        prog = "simclr-tf"
    if len(argv) < 2 or argv[1] in ("-h", "--help", "-help", "help"):
        print(_usage(prog))
        return 0 if len(argv) >= 2 else usage.EXIT_USAGE
    name = argv[1]
    if name not in COMMANDS:
        usage.fail(prog, f"unknown command {name!r}; known: {', '.join(COMMANDS)}. "
                         f"Received: {' '.join(argv[1:])}")
    module = importlib.import_module(COMMANDS[name][0])
    module.define_flags(flags.FLAGS)
    if "__main__" in sys.modules:  # absl's --help shows the program's docstring: the command's
        sys.modules["__main__"].__doc__ = module.__doc__
    usage.run(module.main, [f"{prog} {name}", *argv[2:]])
    return 0

