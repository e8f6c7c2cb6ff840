"""The options the subcommands share, each declared once, and their argument types.

A subcommand adds the ones it takes with :func:`add` (``add(parser, "seed", "max_iter")``), in
the order its ``--help`` lists them; :func:`add_run_options` adds the ones every command that
computes takes, :func:`add_fit_options` those of every command that fits (read back as the API's
keywords by :func:`fit_keywords`). Nothing here imports the library's numerical stack, so ``--help`` and usage
errors stay fast.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from ..chunking import DEFAULT_MEMORY_LIMIT
from ..params import METHODS, SEED_LIMIT


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of a description and epilog (the examples, the exit statuses), and
    wraps only their long unindented lines (prose)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        lines = []
        for line in text.splitlines():
            if len(line) > width and line and not line[0].isspace():
                lines += textwrap.wrap(line, width, initial_indent=indent, subsequent_indent=indent)
            else:
                lines.append(indent + line)
        return "\n".join(lines)


class Parser(argparse.ArgumentParser):
    """argparse's parser with bigquant's conventions: a usage error is one line on stderr,
    ``bigquant compress: error: argument --seed: ... (see bigquant compress --help)``, exit 2;
    the help keeps the line breaks of its description and epilog (the examples)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


#: What every running command's help ends with.
EXIT_STATUSES = """exit status:
  0    success
  1    a bug, or the Dask cluster failed (one line; the traceback with --debug)
  2    a problem you can fix: bad input, option, output or scheduler (one line on stderr;
       nothing is written or deleted)
  130  interrupted (Ctrl-C, SIGINT); 143 terminated (SIGTERM): an existing output stays as
       it was, nothing half-written is left"""

#: The sizes --memory-limit takes.
SIZES = "sizes: 2GiB, 1.5GiB, 500MB, 64MB (the least), 2e9 (bytes); KiB/MiB/GiB are powers of 1024, kB/MB/GB of 1000"


def epilog(examples: str, *, sizes: bool = True) -> str:
    """A command's epilog: its examples, the size units (for --memory-limit) and the exit statuses."""
    parts = ["examples:\n" + examples.strip("\n")]
    if sizes:
        parts.append(SIZES)
    parts.append(EXIT_STATUSES)
    return "\n\n".join(parts)


#: The option groups of a command's --help, in their order.
GROUPS = {
    "input": "input",
    "fit": "fit",
    "output": "output",
    "cluster": "memory and cluster",
    "diagnostics": "diagnostics",
}


def groups(parser: argparse.ArgumentParser, *names: str) -> dict[str, Any]:
    """Argument groups ``names`` (keys of :data:`GROUPS`) of ``parser``, in GROUPS' order."""
    return {name: parser.add_argument_group(GROUPS[name]) for name in GROUPS if name in names}


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
        raise argparse.ArgumentTypeError(f"must be ROWS,COLS with two positive integers, got {text!r}") from None
    return r, c


#: decode's --compression choices.
COMPRESSIONS = ("zlib", "zstd", "lzw", "none")


def compression(value: str) -> str:
    """A decode compression name as typed, case folded (``ZSTD`` is zstd); argparse checks the choice."""
    return value.strip().lower()


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
    "stop when the largest centroid shift is at most T times the data's scale (the root of the "
    "mean per-channel variance), or when five iterations in a row each lower the inertia by at "
    "most T/100 of it (default 1e-4; 0 runs until nothing moves)"
)
_METHOD_HELP = (
    "histogram: exact Lloyd's on the colour histogram (uint8, 1-3 channels); "
    "pixels: Lloyd's over every pixel, a pass per iteration; auto (default): histogram where it applies"
)

#: name -> (flags, keyword arguments of ``add_argument``).
OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "k": (("-k",), dict(default="16", metavar="K", help="colours in the codebook, 1-65536 (default 16)")),
    "seed": (
        ("--seed",),
        dict(
            type=seed, default=0, metavar="N", help=f"seed of the sample and k-means++, 0-{SEED_LIMIT - 1} (default 0)"
        ),
    ),
    "max_iter": (
        ("--max-iter",),
        dict(type=int, default=100, metavar="N", help="most Lloyd iterations over the pixels (default 100)"),
    ),
    "tol": (("--tol",), dict(type=float, default=1e-4, metavar="T", help=_TOL_HELP)),
    "method": (("--method",), dict(choices=METHODS, default="auto", help=_METHOD_HELP)),
    "level": (
        ("--level",),
        dict(
            type=int,
            default=0,
            metavar="N",
            help="pyramid level of a pyramidal TIFF or OME-Zarr (default 0, full size)",
        ),
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
    "chunks": (
        ("--chunks",),
        dict(
            type=pair,
            default=None,
            metavar="ROWS,COLS",
            help="chunk shape in pixels instead of one derived from --memory-limit (at most 4096 chunks)",
        ),
    ),
    "debug": (
        ("--debug",),
        dict(action="store_true", default=argparse.SUPPRESS, help="print the traceback of an unexpected error"),
    ),
    "memory_limit": (
        ("--memory-limit",),
        dict(
            default=None,
            metavar="SIZE",
            help=f"memory budget of the job, e.g. 2GiB or 500MB (default {DEFAULT_MEMORY_LIMIT}, least 64MB); "
            "chunk sizes follow from it",
        ),
    ),
    "scheduler": (
        ("--scheduler",),
        dict(
            default=None,
            metavar="ADDRESS",
            help="run on an existing dask.distributed cluster, e.g. tcp://host:8786 "
            "(default: $DASK_SCHEDULER_ADDRESS, else Dask's local threads)",
        ),
    ),
    "workers": (
        ("--workers",),
        dict(
            type=positive_int,
            default=None,
            metavar="N",
            help="start a local dask.distributed cluster of N single-threaded worker processes for this run "
            "(not with --scheduler; at most the cores here, and one per 256 MiB of --memory-limit)",
        ),
    ),
    "quiet": (
        ("-q", "--quiet"),
        dict(action="store_true", help="no progress and no cluster line: only the summary and warnings"),
    ),
    "storage_options": (
        ("--storage-options",),
        dict(
            default=None,
            metavar="JSON",
            help="fsspec options for inputs and outputs given as URLs (s3://, gs://, az://, https://), e.g. "
            '\'{"endpoint_url": "http://minio:9000"}\' (default: credentials from the environment)',
        ),
    ),
    "overwrite": (
        ("--overwrite",),
        dict(action="store_true", help="replace an existing output, once the new one is complete"),
    ),
}


def add(parser: Any, *names: str, **help_texts: str) -> None:
    """Add the shared options ``names`` to ``parser`` (or an argument group), in that order.

    ``help_texts`` replaces the help of some of them for this command (``k="colours in the
    palette, ..."``).
    """
    for name in names:
        flags, kwargs = OPTIONS[name]
        if name in help_texts:
            kwargs = {**kwargs, "help": help_texts[name]}
        parser.add_argument(*flags, **kwargs)


def check_run_options(args: argparse.Namespace) -> None:
    """Check --memory-limit and --workers before anything starts (a cluster, the kernels'
    compilation): ParameterError, one line, exit 2."""
    from ..chunking import check_workers, parse_memory_limit

    budget = parse_memory_limit(getattr(args, "memory_limit", None))
    if getattr(args, "workers", None) is not None:
        check_workers(args.workers, budget)


def add_run_options(g: dict[str, Any], **help_texts: str) -> None:
    """The options of every command that computes, into its groups (:func:`groups`): --overwrite
    (output), --memory-limit, --scheduler and --workers (memory and cluster), -q and --debug
    (diagnostics; --debug is also accepted before the command)."""
    add(g["output"], "overwrite", **help_texts)
    add(g["cluster"], "memory_limit", "scheduler", "workers", **help_texts)
    add(g["diagnostics"], "quiet", "debug", **help_texts)


#: The options that say which image (or level of it) a command reads, in --help's order.
SOURCE_OPTIONS = ("level", "series", "axes", "storage_options")
#: The options of every command that fits a codebook (compress, fit), in --help's order.
FIT_OPTIONS = ("k", "seed", "max_iter", "tol", "method")


def add_fit_options(g: dict[str, Any], *more_input: str, **help_texts: str) -> None:
    """The options of a command that reads images and fits a codebook, into its groups
    (:func:`groups`): :data:`SOURCE_OPTIONS` and then ``more_input`` (input), :data:`FIT_OPTIONS`
    (fit), so that compress and fit take the same ones; :func:`fit_keywords` reads them back."""
    add(g["input"], *SOURCE_OPTIONS, *more_input, **help_texts)
    add(g["fit"], *FIT_OPTIONS, **help_texts)


def fit_keywords(args: argparse.Namespace) -> dict[str, Any]:
    """What :func:`add_fit_options` (and --memory-limit) parsed, as the keywords of
    :func:`bigquant.compress` and :func:`bigquant.fit`. A ``-k`` left None (compress defaults it
    to None to see one given with --codebook) is the shared default."""
    from .._objstore import parse_storage_options  # here, not above: --help stays light

    k = OPTIONS["k"][1]["default"] if args.k is None else args.k
    return dict(
        k=k_value(k),
        seed=args.seed,
        max_iter=args.max_iter,
        tol=args.tol,
        method=args.method,
        memory_limit=args.memory_limit,
        level=args.level,
        series=args.series,
        axes=args.axes,
        storage_options=parse_storage_options(args.storage_options),
    )
