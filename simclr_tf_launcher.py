"""The `simclr-tf` command's first step: oneDNN before TensorFlow loads.

TensorFlow reads `TF_ENABLE_ONEDNN_OPTS` once, when it is imported, and turns
its oneDNN CPU kernels on by default only on CPUs with AVX-512 VNNI / BF16 or
AMX; on AVX2-only CPUs they make the SimCLR train step about 2x faster
(docs/BENCHMARKS.md, `benchmarks/onednn.py`). A library must leave the
process alone, so `import simclr_tf` does not set it; the entry points do,
here, before anything imports TensorFlow: on, unless the user set the
variable, and off for `--deterministic` (oneDNN's multi-threaded kernels
differ in the last bits from run to run).

Why a top-level module: importing anything under `simclr_tf` imports
TensorFlow (the package's `__init__` registers the Keras classes that saved
models need), so this step cannot live inside the package. It imports only
the standard library.

    simclr-tf pretrain --config=default --output_dir=runs/default
    python -m simclr_tf_launcher pretrain ...   # the same, without the script
"""

import os
import sys

# absl's boolean parser: these, in any case.
_TRUE = ("true", "t", "1")


def bool_flag(argv, name):
    """The value absl will give the boolean flag `name` from `argv`, or None if absent.

    Accepts what absl accepts: `--name`, `-name`, `--name=<true|t|1|false|f|0>`
    in any case, `--noname`; the last one wins and `--` ends the flags. A
    `--flagfile` is not read (pretrain checks the parsed flag too).
    """
    value = None
    for arg in argv[1:]:
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            continue
        flag, eq, given = (arg[2:] if arg.startswith("--") else arg[1:]).partition("=")
        if flag == name:
            value = not eq or given.lower() in _TRUE
        elif flag == f"no{name}" and not eq:
            value = False
    return value


def set_onednn(argv):
    """Sets `TF_ENABLE_ONEDNN_OPTS` for this process from `argv`, if TensorFlow is not loaded.

    `--deterministic` in `argv` sets it to "0"; otherwise it is set to "1"
    unless the user set it. Once TensorFlow is loaded the variable has no
    effect on this process, so it is left alone.
    """
    if "tensorflow" in sys.modules:
        return
    if bool_flag(argv, "deterministic"):
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    else:
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def main(argv=None):
    """`simclr-tf COMMAND [flags]`: sets oneDNN, then runs the command."""
    argv = list(sys.argv if argv is None else argv)
    set_onednn(argv[1:])  # argv[1] is the command name, skipped like a program name
    from simclr_tf_cli import main as cli_main

    return cli_main.run(argv)


if __name__ == "__main__":
    sys.exit(main())
