"""``bigquant compress``: fit a K-colour codebook and write labels + codebook to a store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from . import options
from ._cluster import scheduler
from .common import UsageError, bar, progress

NAME = "compress"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    c = sub.add_parser(
        NAME,
        help="fit a K-colour codebook and write labels + codebook to a store",
        description="Quantize an image to K colours and write a bigquant store (Zarr v3).",
    )
    c.add_argument("input", nargs="?", help="image: any TIFF (SVS, NDPI, OME-TIFF, ...), PNG, JPEG, Zarr or OME-Zarr")
    c.add_argument(
        "--sample",
        action="store_true",
        help="compress scikit-learn's sample photograph (china.jpg) instead of an input",
    )
    options.add(c, "k")
    c.add_argument(
        "-o",
        "--output",
        default=None,
        help="store to write (default: <input stem>.bq.zarr beside the input; for --sample, in the current folder)",
    )
    options.add(c, "seed", "max_iter", "tol", "method", "level", "series", "axes")
    c.add_argument(
        "--chunks",
        type=options.pair,
        default=None,
        metavar="ROWS,COLS",
        help="chunk shape instead of one derived from --memory-limit",
    )
    c.add_argument(
        "--codebook",
        default=None,
        metavar="STORE",
        help="encode with the codebook of this palette (from `bigquant fit`) or store: no fitting",
    )
    c.add_argument(
        "--target-psnr",
        type=float,
        default=None,
        metavar="DB",
        help="choose the smallest K (up to --max-k) whose PSNR reaches DB; -k is then ignored",
    )
    c.add_argument("--max-k", default="256", metavar="K", help="largest K --target-psnr may choose (default 256)")
    c.add_argument(
        "--labels-level",
        type=int,
        default=None,
        metavar="N",
        help="zstd level of the stored labels, 1-22 (default 3); higher is smaller and slower to write",
    )
    options.add_run_options(c)
    return c


def sample_path() -> Path:
    """scikit-learn's bundled photograph, china.jpg (``--sample``)."""
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "images" / "china.jpg"


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .. import api, report

    if args.sample and args.input:
        raise UsageError("give an input or --sample, not both")
    if not args.sample and not args.input:
        raise UsageError("an input image is needed (or --sample for the bundled sample photograph)")
    source = sample_path() if args.sample else args.input
    output = args.output or (Path.cwd() / "china.bq.zarr" if args.sample else None)
    if args.codebook and args.target_psnr is not None:
        raise UsageError("give --codebook or --target-psnr, not both")
    say = progress(args, err)
    with scheduler(args, err), bar(say, err):
        store = api.compress(
            source,
            output,
            k=options.k_value(args.k),
            seed=args.seed,
            max_iter=args.max_iter,
            tol=args.tol,
            method=args.method,
            memory_limit=args.memory_limit,
            chunks=args.chunks,
            level=args.level,
            series=args.series,
            axes=args.axes,
            overwrite=args.overwrite,
            progress=say,
            codebook=args.codebook,
            target_psnr=args.target_psnr,
            max_k=options.k_value(args.max_k),
            labels_level=args.labels_level,
        )
    info = store.info()
    print(f"wrote {store.path}", file=out)
    print("\n".join(report.summary_lines(info)), file=out)
    if args.target_psnr is not None:
        print(report.auto_k_line(info, args.target_psnr), file=out)
    return 0
