"""Usage errors of the command line: one line on stderr, exit status 2, no traceback.

A bad flag value, config key or dataset is the user's to fix, and a
traceback buries the one line that says how. Entry points run their checks
(config, flags, data, model building) inside `checks()`, which marks the
`ValueError`s and missing files raised there; `run` prints a marked error
as `<prog>: error: <message>` and exits 2. Errors raised elsewhere (during
training) keep their traceback. `main` functions still raise plain
exceptions, so tests and Python callers see the original type.
"""

import contextlib
import sys

from absl import app, flags

USAGE_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError)
EXIT_USAGE = 2


@contextlib.contextmanager
def checks():
    """Marks the `USAGE_ERRORS` raised inside as usage errors, then re-raises them unchanged."""
    try:
        yield
    except USAGE_ERRORS as err:
        err.usage_error = True
        raise


def fail(prog, message):
    """Prints `<prog>: error: <message>` as one line on stderr and exits with status 2."""
    sys.stderr.write(f"{prog}: error: {' '.join(str(message).split())}\n")
    sys.stderr.flush()
    sys.exit(EXIT_USAGE)


def run(main, argv, flag_values=flags.FLAGS):
    """`app.run(main)` with one-line usage errors for flags that do not parse and marked errors.

    `argv[0]` names the program in messages (`simclr-tf pretrain`). `main`
    takes the remaining arguments; its return value is ignored (absl would
    pass it to `sys.exit`).
    """
    prog = argv[0]

    def parse(args):
        try:
            rest = flag_values(args)
        except flags.Error as err:
            fail(prog, err)
        if not flags.FLAGS.is_parsed():  # app.run insists, even for other FlagValues
            flags.FLAGS.mark_as_parsed()
        return rest

    def guarded(args):
        try:
            main(args)
        except USAGE_ERRORS as err:
            if not getattr(err, "usage_error", False):
                raise
            fail(prog, err)

    app.run(guarded, argv=list(argv), flags_parser=parse)
