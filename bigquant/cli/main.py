"""The parser of the ``bigquant`` command, the dispatch to a subcommand, errors as one line.

Exit status: 0 success; 2 a problem with the input, arguments, output or scheduler address (one
line on stderr); 1 a bug or a failure of the Dask cluster (short message; the traceback with
``--debug``); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import TextIO

from .._version import __version__
from ..errors import BigquantError
from . import compress, decode, fit, info, preview
from .common import UsageError, one_line
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


def _from_cluster(exc: BaseException) -> bool:
    """True for dask.distributed's own failures (a worker died too often, a lost connection)."""
    return type(exc).__module__.split(".")[0] == "distributed"


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the subcommand; every error becomes one line on ``err`` and an exit status."""
    handlers = {command.NAME: command.run for command in COMMANDS}
    try:
        return handlers[args.command](args, out, err)
    except UsageError as exc:
        print(f"bigquant {args.command}: error: {one_line(exc)}", file=err)
        return 2
    except BigquantError as exc:
        if args.debug:
            traceback.print_exc(file=err)
        print(f"bigquant: error: {one_line(exc)}", file=err)
        return 2
    except KeyboardInterrupt:
        print("bigquant: interrupted", file=err)
        return 130
    except Exception as exc:  # a bug (or the cluster failing): short message, traceback with --debug
        if args.debug:
            traceback.print_exc(file=err)
        what = "the Dask cluster failed" if _from_cluster(exc) else "internal error"
        print(
            f"bigquant: {what}: {one_line(f'{type(exc).__name__}: {exc}')} (run with --debug for the traceback)",
            file=err,
        )
        return 1


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    out, err = sys.stdout, sys.stderr
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # said by the subcommand's parser, so that the error names the subcommand
            where = args.subparsers.get(args.command) if args.command else None
            (where or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(err)
        return 2
    with captured(err) as hub:  # warnings: once each, prefixed, above the progress line
        args.hub = hub
        return _run(args, out, err)
