"""The parser of the ``bigquant`` command, the dispatch to a subcommand, errors as one line.

Exit status: 0 success; 2 a problem with the input, arguments, output or scheduler address (one
line on stderr); 1 a bug or a failure of the Dask cluster (short message; the traceback with
``--debug``); 130 interrupted by SIGINT (Ctrl-C), 143 by SIGTERM; 141 stdout a pipe whose reader
has gone (said nowhere, as a tool killed by SIGPIPE would).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from typing import Any, TextIO, cast

from .._version import __version__
from ..errors import BigquantError
from . import compress, decode, fit, info, preview
from .common import Stdout, StdoutError, UsageError, one_line
from .warn import captured

EXAMPLES = """
  bigquant compress scan.tif -k 32            # -> scan.bq.zarr, and a summary
  bigquant decode scan.bq.zarr -o recon.tif   # the reconstruction
  bigquant info scan.bq.zarr
  bigquant preview scan.bq.zarr -o side.png --original scan.tif
  bigquant COMMAND --help                     # the options and examples of each
"""

#: The subcommands, in the order ``--help`` lists them; each has ``add_parser`` and ``run``.
COMMANDS = (compress, fit, preview, decode, info)


def build_parser() -> argparse.ArgumentParser:
    """The ``bigquant`` parser with every subcommand."""
    from .options import Parser, epilog

    p = Parser(
        prog="bigquant",
        description="Colour quantization by K-means for images too big for memory.",
        epilog=epilog(EXAMPLES, sizes=False),
    )
    p.add_argument("--version", action="version", version=f"bigquant {__version__}")
    p.add_argument("--debug", action="store_true", help="print the traceback of an unexpected error")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    p.set_defaults(subparsers=sub.choices)
    return p


#: The signals that stop a run cleanly, and the exit status of each (128 + the signal's number).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


#: Loggers silenced once a run is stopped: a cluster's complaints about the work being cancelled
#: (tasks cancelled, connections closed under it) say nothing a user can act on.
NOISY_WHEN_STOPPED = ("distributed", "asyncio", "tornado")


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by the first SIGINT or SIGTERM of a run (see :func:`stoppable`)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signum)
        self.signum = signum


def exit_status(exc: KeyboardInterrupt) -> int:
    """The exit status of an interrupted run: 128 + the signal's number (SIGINT: 130, SIGTERM: 143)."""
    return 128 + int(getattr(exc, "signum", signal.SIGINT))


@contextlib.contextmanager
def stoppable() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` in the main thread, once.

    The exception unwinds the run as Ctrl-C does (a partial output is removed, the cluster
    closed); a second signal, which a hurried user or a supervisor sends while that cleanup
    runs, is ignored, so that it cannot cut the cleanup short and leave a half-written folder
    behind. SIGKILL still ends the process at once. A no-op off the main thread, where Python
    cannot install handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []
    loggers = [logging.getLogger(name) for name in NOISY_WHEN_STOPPED]
    levels = [logger.level for logger in loggers]

    def handler(signum: int, frame: Any) -> None:
        if fired:
            return
        fired.append(signum)
        for logger in loggers:
            logger.setLevel(logging.CRITICAL + 1)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _from_cluster(exc: BaseException) -> bool:
    """True for dask.distributed's own failures (a worker died too often, a lost connection)."""
    return type(exc).__module__.split(".")[0] == "distributed"


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the subcommand; every error becomes one line on ``err`` and an exit status."""
    handlers = {command.NAME: command.run for command in COMMANDS}
    try:
        status = handlers[args.command](args, out, err)
        out.flush()
        return status
    except StdoutError as exc:
        return _stdout_failed(exc, err)
    except UsageError as exc:
        print(f"bigquant {args.command}: error: {one_line(exc)}", file=err)
        return 2
    except BigquantError as exc:
        if args.debug:
            traceback.print_exc(file=err)
        print(f"bigquant: error: {one_line(exc)}", file=err)
        return 2
    except KeyboardInterrupt as exc:
        return _interrupted(exc, err)
    except Exception as exc:  # a bug (or the cluster failing): short message, traceback with --debug
        if args.debug:
            traceback.print_exc(file=err)
        cluster = _from_cluster(exc)
        what = "the Dask cluster failed" if cluster else "internal error"
        text = one_line(f"{type(exc).__name__}: {exc}")
        if cluster:  # distributed lists every lost future's key after its reason
            text = text.split(" Futures: [")[0]
        print(f"bigquant: {what}: {text} (run with --debug for the traceback)", file=err)
        return 1


#: The exit status when stdout is a pipe whose reader has gone (``| head``): that of a process
#: killed by SIGPIPE, as the shell reports for the classic tools.
CLOSED_PIPE_STATUS = 128 + signal.SIGPIPE


def _stdout_failed(exc: StdoutError, err: TextIO) -> int:
    """A closed pipe ends the run quietly; any other failure to write stdout is one line, status 2.
    Either way the outputs already written are complete and kept."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        # What is still buffered would fail again when the process flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    if exc.errno == errno.EPIPE:
        return CLOSED_PIPE_STATUS
    with contextlib.suppress(OSError, ValueError):
        print(f"bigquant: error: cannot write to standard output: {exc}", file=err, flush=True)
    return 2


def _interrupted(exc: KeyboardInterrupt, err: TextIO) -> int:
    status = exit_status(exc)
    name = signal.Signals(status - 128).name
    with contextlib.suppress(OSError, ValueError):
        print(f"bigquant: interrupted ({name})", file=err, flush=True)
    return status


def guard_standard_streams() -> None:
    """Put /dev/null on standard descriptors closed when the process started (``>&-``).

    Otherwise the next file opened (a chunk of the store, a worker's pipe) would get the number
    and receive what is printed to that stream. stdout stays refused: Python left
    ``sys.stdout`` None, and :class:`~bigquant.cli.common.Stdout` says so when the summary is
    printed, after the work is done. A closed stderr becomes a silent one.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            if os.open(os.devnull, os.O_RDWR) != fd:  # the lowest free number: this one
                return
            if fd == 2:
                sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 - the process's stderr


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    SIGINT and SIGTERM end the run cleanly with status 130 and 143 (:func:`stoppable`).
    """
    try:
        with stoppable():
            return _main(argv)
    except KeyboardInterrupt as exc:  # outside a subcommand: while parsing, or warnings' teardown
        return _interrupted(exc, sys.stderr)


def _main(argv: list[str] | None) -> int:
    out, err = cast(TextIO, Stdout(sys.stdout)), sys.stderr
    parser = build_parser()
    stdout, sys.stdout = sys.stdout, out  # argparse prints --help there and ignores its OSErrors
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # said by the subcommand's parser, so that the error names the subcommand
            where = args.subparsers.get(args.command) if args.command else None
            (where or parser).error(f"unrecognized arguments: {' '.join(extra)}")
        if args.command is None:
            parser.print_help(err)
            return 2
    except SystemExit as exc:  # --help or --version (printed on stdout), or a usage error
        try:
            out.flush()
        except StdoutError as failed:
            return _stdout_failed(failed, err)
        return int(exc.code or 0)
    except StdoutError as exc:
        return _stdout_failed(exc, err)
    finally:
        sys.stdout = stdout
    with captured(err) as hub:  # warnings: once each, prefixed, above the progress line
        args.hub = hub
        return _run(args, out, err)
