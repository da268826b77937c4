"""Reading a boolean flag from argv before absl parses it (no TensorFlow import).

`experiments.pretrain --deterministic` must turn oneDNN off before TensorFlow
loads, which is before absl has parsed the flags; this reads the flag the way
absl does, so every spelling absl accepts has the same effect.
"""

# absl's boolean parser: these, in any case.
_TRUE = ("true", "t", "1")


def bool_flag(argv, name):
    """The value absl will give the boolean flag `name` from `argv`, or None if absent.

    Accepts what absl accepts: `--name`, `-name`, `--name=<true|t|1|false|f|0>`
    in any case, `--noname`; the last one wins and `--` ends the flags. A
    `--flagfile` is not read (the caller checks the parsed flag too).
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
