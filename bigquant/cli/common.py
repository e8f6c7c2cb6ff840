"""What the subcommands share besides options: usage errors, the progress renderer, one-line messages."""

from __future__ import annotations

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
