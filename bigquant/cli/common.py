"""What the subcommands share besides options: usage errors, progress output, one-line messages."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TextIO

#: Longest error message printed (a cluster's exception can quote a whole task graph).
MAX_MESSAGE_CHARS = 2000

Progress = Callable[[str], None]


class UsageError(Exception):
    """A wrong combination of arguments: ``bigquant COMMAND: error: ...``, exit 2."""


def one_line(text: object) -> str:
    """``text`` on one line (newlines and runs of spaces collapsed), at most MAX_MESSAGE_CHARS."""
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_MESSAGE_CHARS else line[: MAX_MESSAGE_CHARS - 3] + "..."


def progress(args: Any, err: TextIO) -> Progress | None:
    """A progress printer for stderr, or None: silent with --quiet or when stderr is no terminal."""
    if args.quiet or not err.isatty():
        return None
    return lambda msg: print(msg, file=err, flush=True)


@contextlib.contextmanager
def bar(say: Progress | None, err: TextIO) -> Iterator[None]:
    """A progress bar for each pass over the chunks that takes over a second (local scheduler).

    On a dask.distributed cluster the per-iteration lines still show; Dask's local progress bar
    does not see tasks run there.
    """
    if say is None:
        yield
        return
    from dask.diagnostics import ProgressBar

    with ProgressBar(minimum=1.0, out=err, width=30):
        yield
