"""``bigquant fit``: fit one codebook (a palette) across several images."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from . import options
from ._cluster import scheduler
from .common import bar, progress

NAME = "fit"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    f = sub.add_parser(
        NAME,
        help="fit one codebook (a palette) across several images",
        description="Fit one K-colour codebook across all the chunks of several images and "
        "write it as a palette store; encode each image with it by "
        "`bigquant compress IMAGE --codebook PALETTE`.",
    )
    f.add_argument("inputs", nargs="+", metavar="IMAGE", help="images with the same channels and dtype")
    options.add(f, "k", k="colours in the palette, 1-65536 (default 16)")
    f.add_argument("-o", "--output", required=True, help="palette store to write (e.g. palette.bq.zarr)")
    options.add(
        f,
        "seed",
        "max_iter",
        "tol",
        "method",
        "level",
        "series",
        "axes",
        tol="as for compress (default 1e-4)",
        method="as for compress",
        level="pyramid level of pyramidal TIFFs or OME-Zarr (default 0)",
        series="image N of multi-image files (default: each file's main image)",
        axes="the images' axes, e.g. CYX (default: from their metadata)",
    )
    options.add_run_options(f)
    return f


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .. import api, report

    say = progress(args, err)
    with scheduler(args, err), bar(say, err):
        pal = api.fit(
            args.inputs,
            args.output,
            k=options.k_value(args.k),
            seed=args.seed,
            max_iter=args.max_iter,
            tol=args.tol,
            method=args.method,
            memory_limit=args.memory_limit,
            level=args.level,
            series=args.series,
            axes=args.axes,
            overwrite=args.overwrite,
            progress=say,
        )
    print("\n".join(report.fit_lines(pal.path, pal.metadata)), file=out)
    return 0
