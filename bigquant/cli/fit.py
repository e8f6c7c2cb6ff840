"""``bigquant fit``: fit one codebook (a palette) across several images."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from ..errors import show_path
from . import options
from ._cluster import scheduler
from .common import compile_notice, renderer
from .compress import disk_errors

NAME = "fit"

EXAMPLES = """
  bigquant fit a.tif b.tif c.tif -k 32 -o palette.bq.zarr
  bigquant compress a.tif --codebook palette.bq.zarr   # then encode each image with it
  bigquant fit tiles/*.png -k 64 -o palette.bq.zarr --workers 4
"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    f = sub.add_parser(
        NAME,
        help="fit one codebook (a palette) across several images",
        description="Fit one K-colour codebook across all the chunks of several images and "
        "write it as a palette store; encode each image with it by "
        "`bigquant compress IMAGE --codebook PALETTE`, so that label i means the same colour in every image.",
        epilog=options.epilog(EXAMPLES),
    )
    g = options.groups(f, "input", "fit", "output", "cluster", "diagnostics")
    g["input"].add_argument("inputs", nargs="+", metavar="IMAGE", help="images with the same channels and dtype")
    options.add_fit_options(
        g,
        level="pyramid level of pyramidal TIFFs or OME-Zarr (default 0)",
        series="image N of multi-image files (default: each file's main image)",
        axes="the images' axes, e.g. CYX (default: from their metadata)",
        k="colours in the palette, 1-65536 (default 16)",
        tol="as for compress (default 1e-4)",
        method="as for compress",
    )
    g["output"].add_argument(
        "-o", "--output", required=True, metavar="PALETTE", help="palette store to write (e.g. palette.bq.zarr)"
    )
    options.add_run_options(g)
    return f


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .. import api, report
    from .tasks import watching  # with the library: --help stays light

    options.check_run_options(args)
    r = renderer(args, err)
    with scheduler(args, err) as client, watching(r, client), disk_errors(f"the palette {show_path(args.output)}"):
        compile_notice(r)
        pal = api.fit(args.inputs, args.output, **options.fit_keywords(args), overwrite=args.overwrite, progress=r)
    print("\n".join(report.fit_lines(pal.path, pal.metadata)), file=out)
    return 0
