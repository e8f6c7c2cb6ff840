"""What the subcommands share besides options: usage errors, the progress renderer, one-line messages."""

from __future__ import annotations

import errno
import os
from typing import Any, TextIO

#: Longest error message printed (a cluster's exception can quote a whole task graph).
MAX_MESSAGE_CHARS = 2000


class UsageError(Exception):
    """A wrong combination of arguments: ``bigquant COMMAND: error: ...``, exit 2."""


def one_line(text: object) -> str:
    """``text`` on one line (newlines and runs of spaces collapsed), at most MAX_MESSAGE_CHARS."""
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_MESSAGE_CHARS else line[: MAX_MESSAGE_CHARS - 3] + "..."


def renderer(args: Any, err: TextIO) -> Any:
    """The progress renderer of a run on ``err`` (:class:`bigquant.cli.render.Renderer`), or None
    with --quiet: an updating line per phase on a terminal, a compact log otherwise. Warnings
    print above its line (:mod:`bigquant.cli.warn`)."""
    if args.quiet:
        return None
    from .render import Renderer

    r = Renderer(err, live=err.isatty())
    hub = getattr(args, "hub", None)
    if hub is not None:
        hub.renderer = r
    return r


def compile_notice(r: Any) -> None:
    """Say, before a fit, that this run compiles the kernels (numba's cache is cold)."""
    if r is None:
        return
    from .. import _runtime
    from ..progress import Step

    if not _runtime.kernels_cached():
        r(Step("compiling bigquant's kernels: first run only, about 5-10 s; later runs load them from numba's cache"))


class StdoutError(Exception):
    """Standard output cannot be written (a closed pipe, a full disk, a closed descriptor)."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(exc.strerror or str(exc))
        self.errno = exc.errno


class Stdout:
    """A text stream whose write and flush failures raise :class:`StdoutError`, so that they are
    told from the OSErrors of inputs and outputs; None (a descriptor closed when the process
    started) behaves as one that refuses every write (EBADF)."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream

    def _call(self, name: str, *args: Any) -> Any:
        if self.stream is None:
            raise StdoutError(OSError(errno.EBADF, os.strerror(errno.EBADF)))
        try:
            return getattr(self.stream, name)(*args)
        except OSError as exc:
            raise StdoutError(exc) from None

    def write(self, text: str) -> int:
        return int(self._call("write", text))

    def flush(self) -> None:
        self._call("flush")

    def isatty(self) -> bool:
        try:
            return bool(self.stream is not None and self.stream.isatty())
        except (OSError, ValueError):
            return False
