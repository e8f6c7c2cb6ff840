"""``bigquant preview``: pictures of a store: side by side, palette, convergence."""

from __future__ import annotations

import argparse
import os
from typing import Any, TextIO

from .._staging import check_apart
from . import options
from ._cluster import scheduler
from .common import UsageError, renderer

NAME = "preview"

EXAMPLES = """
  bigquant preview scan.bq.zarr -o side.png --original scan.tif   # original | reconstruction
  bigquant preview scan.bq.zarr --palette palette.png --convergence curve.png
  bigquant preview scan.bq.zarr -o small.png --max-size 600,800
"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    v = sub.add_parser(
        NAME,
        help="pictures of a store: side by side, palette, convergence",
        description="Write a downsampled picture of the original (if given) beside the "
        "reconstruction, computed by streaming; and/or the palette as swatches "
        "sorted by frequency; and/or the inertia per Lloyd iteration. At least one is needed; "
        "prints 'wrote PNG' for each.",
        epilog=options.epilog(EXAMPLES),
    )
    g = options.groups(v, "input", "output", "cluster", "diagnostics")
    g["input"].add_argument("store", help="bigquant store (.bq.zarr)")
    g["input"].add_argument(
        "--original", default=None, metavar="IMAGE", help="the input image, shown on the left of the -o picture"
    )
    g["output"].add_argument(
        "-o", "--output", default=None, metavar="PNG", help="downsampled reconstruction (beside the original) to write"
    )
    g["output"].add_argument(
        "--palette", default=None, metavar="PNG", help="write the codebook as swatches sorted by frequency"
    )
    g["output"].add_argument(
        "--convergence", default=None, metavar="PNG", help="write the inertia per Lloyd iteration as a plot"
    )
    g["output"].add_argument(
        "--max-size",
        type=options.pair,
        default=None,
        metavar="ROWS,COLS",
        help="the -o picture fits in this many pixels (default 1200,1600)",
    )
    options.add_run_options(g, quiet="no progress and no cluster line: only the 'wrote PNG' lines and warnings")
    return v


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .. import api, io, preview
    from .tasks import watching  # with the library: --help stays light

    outputs = [p for p in (args.output, args.palette, args.convergence) if p]
    if not outputs:
        raise UsageError("nothing to write: give -o PNG, --palette PNG and/or --convergence PNG")
    if args.original and not args.output:
        raise UsageError("--original is shown in the -o preview; give -o PNG too")
    if len({os.path.abspath(p) for p in outputs}) != len(outputs):
        raise UsageError("the outputs must be different files")
    for p in outputs:  # refuse an existing output or a bad extension before any work
        io.check_output_path(p, overwrite=args.overwrite, extensions=(".png",))
    check_apart([args.store, args.original], outputs)
    store = api.open_store(args.store)
    written = []
    if args.output:
        from ..progress import Pass

        r = renderer(args, err)
        with scheduler(args, err) as client, watching(r, client):
            if r is not None:
                r(Pass("preview"))
            written.append(
                preview.write_preview(
                    store,
                    args.output,
                    args.original,
                    max_size=args.max_size or preview.DEFAULT_MAX_SIZE,
                    memory_limit=args.memory_limit,
                    overwrite=args.overwrite,
                )
            )
    if args.palette:
        written.append(preview.write_palette(store, args.palette, overwrite=args.overwrite))
    if args.convergence:
        written.append(preview.write_convergence(store, args.convergence, overwrite=args.overwrite))
    for p in written:
        print(f"wrote {p}", file=out)
    return 0
