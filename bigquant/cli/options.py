"""The options the subcommands share, each declared once, and their argument types.

A subcommand adds the ones it takes with :func:`add` (``add(parser, "seed", "max_iter")``), in
the order its ``--help`` lists them; :func:`add_run_options` adds the ones every command that
computes takes. Nothing here imports the library's numerical stack, so ``--help`` and usage
errors stay fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from ..chunking import DEFAULT_MEMORY_LIMIT
from ..params import METHODS, SEED_LIMIT


class Parser(argparse.ArgumentParser):
    """argparse's parser, with its convention for errors: usage line + one error line, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"bigquant: error: {message}\n")


def positive_int(text: str) -> int:
    """An ``int`` of at least 1 (``--workers``)."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return n


def seed(text: str) -> int:
    """A seed, 0 to 2**32 - 1 (numpy takes any; scikit-learn's k-means++ takes 32 bits)."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"seed must be a whole number from 0 to {SEED_LIMIT - 1}, got {text!r}")
    return n


def pair(text: str) -> tuple[int, int]:
    """``ROWS,COLS`` of positive integers (``--chunks``, ``--max-size``)."""
    try:
        r, c = (int(v) for v in text.split(","))
        if r < 1 or c < 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"chunks must be ROWS,COLS with positive integers, got {text!r}") from None
    return r, c


def compression(value: str) -> str | None:
    """A decode compression name: zlib, zstd, lzw, or none (None)."""
    name = value.strip().lower()
    if name not in ("zlib", "zstd", "lzw", "none"):
        raise argparse.ArgumentTypeError(f"{value!r} is not one of zlib, zstd, lzw, none")
    return None if name == "none" else name


def k_value(text: str) -> Any:
    """``-k``/``--max-k`` as given: an int, else a float (``16.0`` is K=16, ``16.5`` is refused
    by :func:`bigquant.params.check_k` with its message), else the text."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


_TOL_HELP = (
    "stop when the largest centroid shift is below TOL times the data's scale, or when five "
    "iterations in a row each lower the inertia by at most TOL/100 of it (default 1e-4)"
)
_METHOD_HELP = (
    "histogram: exact Lloyd's on the colour histogram (uint8, 1-3 channels); "
    "pixels: Lloyd's over every pixel; auto (default): histogram where it applies"
)

#: name -> (flags, keyword arguments of ``add_argument``).
OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "k": (("-k",), dict(default="16", metavar="K", help="colours in the codebook, 1-65536 (default 16)")),
    "seed": (("--seed",), dict(type=seed, default=0, help="seed of the sample and k-means++ (default 0)")),
    "max_iter": (("--max-iter",), dict(type=int, default=100, help="most Lloyd iterations (default 100)")),
    "tol": (("--tol",), dict(type=float, default=1e-4, help=_TOL_HELP)),
    "method": (("--method",), dict(choices=METHODS, default="auto", help=_METHOD_HELP)),
    "level": (
        ("--level",),
        dict(type=int, default=0, help="pyramid level of a pyramidal TIFF or OME-Zarr (default 0, full size)"),
    ),
    "series": (
        ("--series",),
        dict(
            type=int,
            default=None,
            metavar="N",
            help="image N of a multi-image file, as `bigquant info INPUT` lists them (default: the first "
            "that is not a slide's label, macro or thumbnail)",
        ),
    ),
    "axes": (
        ("--axes",),
        dict(
            default=None,
            metavar="AXES",
            help="the input array's axes in its order, e.g. CYX for channels first: Y rows, X columns, "
            "C channels, T and Z of length 1 (default: from the input's metadata)",
        ),
    ),
    "debug": (
        ("--debug",),
        dict(action="store_true", default=argparse.SUPPRESS, help="show tracebacks of unexpected errors"),
    ),
    "memory_limit": (
        ("--memory-limit",),
        dict(
            default=None,
            metavar="SIZE",
            help=f"memory budget of the job; chunk sizes follow from it (default {DEFAULT_MEMORY_LIMIT})",
        ),
    ),
    "scheduler": (
        ("--scheduler",),
        dict(
            default=None,
            metavar="ADDRESS",
            help="run on an existing dask.distributed cluster, e.g. tcp://host:8786 "
            "(default: $DASK_SCHEDULER_ADDRESS, else Dask's local scheduler)",
        ),
    ),
    "workers": (
        ("--workers",),
        dict(
            type=positive_int,
            default=None,
            metavar="N",
            help="start a local dask.distributed cluster of N worker processes for this run "
            "(instead of --scheduler or $DASK_SCHEDULER_ADDRESS)",
        ),
    ),
    "quiet": (("-q", "--quiet"), dict(action="store_true", help="print only the final summary")),
    "overwrite": (("--overwrite",), dict(action="store_true", help="replace an existing output")),
}


def add(parser: argparse.ArgumentParser, *names: str, **help_texts: str) -> None:
    """Add the shared options ``names`` to ``parser``, in that order.

    ``help_texts`` replaces the help of some of them for this command (``k="colours in the
    palette, ..."``).
    """
    for name in names:
        flags, kwargs = OPTIONS[name]
        if name in help_texts:
            kwargs = {**kwargs, "help": help_texts[name]}
        parser.add_argument(*flags, **kwargs)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options of every command that computes: --debug (also accepted after the command),
    --memory-limit, --scheduler, --workers, -q and --overwrite."""
    add(parser, "debug", "memory_limit", "scheduler", "workers", "quiet", "overwrite")
