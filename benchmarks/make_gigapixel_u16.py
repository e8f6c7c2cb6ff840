"""Build a 16-bit, float32 or 4-band gigapixel tiled BigTIFF from real photographs, tile by tile.

Usage (after ``bash benchmarks/fetch_images.sh``)::

    python benchmarks/make_gigapixel_u16.py --gigapixels 0.25              # uint16 RGB
    python benchmarks/make_gigapixel_u16.py --gigapixels 0.25 --kind f32   # float32 RGB in [0, 1]
    python benchmarks/make_gigapixel_u16.py --gigapixels 0.25 --kind u16x4 # uint16, 4 bands
    python benchmarks/make_gigapixel_u16.py --gigapixels 1 -o /tmp/big.tif

Writes ``benchmarks/data/gigapixel_<G>_<kind>.tif`` (``-o`` overrides), the name
``bench_gigapixel.py --kinds`` looks for.  The layout is make_gigapixel.py's (the same
``Mosaic``: a square of ``round(sqrt(G · 1e9))`` pixels a side, cells of ``--cell`` pixels, each
from one photograph with its own crop, orientation and tone curve, drawn from
``numpy.random.default_rng([seed, cell_row, cell_col])``), but every cell is made in floating
point, so the low-order bits vary as in a real 16-bit scan, never 8-bit × 257:

* a square crop of ``cell · s`` pixels (s drawn in [0.85, 1.15], at most the photo's short
  side) resized to the cell by Pillow's Lanczos filter in float32 (``make_pixel_images.lanczos``);
* the cell's tone curve in float: ``gain · v ** gamma + (shift + colour shift) / 255``, clipped
  to [0, 1];
* ``u16``: round(65535 · v); ``f32``: v; ``u16x4``: the uint16 RGB and a fourth band, the
  luminance of the cell blurred by a Gaussian of sigma 3 px (``make_pixel_images.fourth_band``;
  TIFF ExtraSamples "unspecified", a plain band, not alpha).

Tiles are streamed to ``tifffile.imwrite`` (Deflate with predictor, 512 × 512 tiles, BigTIFF):
in memory are the decoded photographs (about 275 MiB), one row of cells (W × cell pixels of the
output dtype: 200 MiB for uint16 RGB at 0.25 Gpx) and a batch of tiles being compressed.
Measured on 2 busy cores: 0.25 Gpx in about 5-10 min, peak RSS under 1.2 GiB.

Prints one Markdown table row: output, shape, dtype, bands, file size, seconds, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchutil import DATA  # noqa: E402
from make_gigapixel import Mosaic, load_photos  # noqa: E402
from make_pixel_images import fourth_band, lanczos, to_u16  # noqa: E402

KINDS = {"u16": (np.uint16, 3), "f32": (np.float32, 3), "u16x4": (np.uint16, 4)}


class FloatMosaic(Mosaic):
    """make_gigapixel's mosaic with every cell resampled and tone-mapped in floating point."""

    def __init__(self, photos, cell: int, seed: int, kind: str):
        super().__init__(photos, cell, seed)
        self.kind = kind
        self.dtype, self.bands = KINDS[kind]
        self.cells_made = 0
        self._cells_row: int | None = None
        self._cells: dict[int, np.ndarray] = {}

    def cell_pixels(self, cy: int, cx: int) -> np.ndarray:
        """The (cell, cell, bands) pixels of cell (cy, cx) in the output dtype."""
        if self._cells_row != cy:  # tiles come row by row: keep only the current row of cells
            self._cells_row, self._cells = cy, {}
        if cx in self._cells:
            return self._cells[cx]
        q = self.params(cy, cx)
        s = float(np.random.default_rng([self.seed, cy, cx, 1]).uniform(0.85, 1.15))
        c = self.cell
        side = min(round(c * s), *self.full[q["photo"]].shape[:2])
        f = lanczos(self.crop(q, side).astype(np.float32) / np.float32(255.0), (c, c))
        offset = ((q["shift"] + q["cshift"]) / 255.0).astype(np.float32)
        f = np.float32(q["gain"]) * f ** np.float32(q["gamma"]) + offset
        np.clip(f, 0.0, 1.0, out=f)
        if self.kind == "f32":
            out = f
        elif self.kind == "u16":
            out = to_u16(f)
        else:
            out = np.concatenate([to_u16(f), to_u16(fourth_band(f))[..., None]], axis=2)
        self._cells[cx] = out
        self.cells_made += 1
        return out


def tiles(mosaic: FloatMosaic, shape: tuple[int, int], tile: int, progress: bool):
    """Yield the image's tiles in TIFF order (row-major); edge tiles are cut short."""
    H, W = shape
    nty, ntx = math.ceil(H / tile), math.ceil(W / tile)
    per_cell = mosaic.cell // tile
    t0 = time.perf_counter()
    for ty in range(nty):
        cy, oy = divmod(ty, per_cell)
        h = min(tile, H - ty * tile)
        for tx in range(ntx):
            cx, ox = divmod(tx, per_cell)
            w = min(tile, W - tx * tile)
            yield mosaic.cell_pixels(cy, cx)[oy * tile : oy * tile + h, ox * tile : ox * tile + w]
        if progress and (ty % 8 == 7 or ty == nty - 1):
            el = time.perf_counter() - t0
            eta = el / (ty + 1) * (nty - ty - 1)
            print(f"  tile row {ty + 1}/{nty}  {el:6.1f} s  ETA {eta:6.1f} s", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--gigapixels", type=float, default=0.25, help="size in gigapixels; square (default 0.25)")
    ap.add_argument("--kind", choices=sorted(KINDS), default="u16", help="u16, f32 or u16x4 (default u16)")
    ap.add_argument("-o", "--output", type=Path, help="output (default benchmarks/data/gigapixel_<G>_<kind>.tif)")
    ap.add_argument("--photos", type=Path, default=DATA / "photos", help="photographs (default benchmarks/data/photos)")
    ap.add_argument("--max-photos", type=int, help="use only the first N photos")
    ap.add_argument("--tile", type=int, default=512, choices=(256, 512, 1024), help="TIFF tile side (default 512)")
    ap.add_argument("--cell", type=int, default=2048, help="mosaic cell side, a multiple of --tile (default 2048)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--buffer-mib", type=float, default=32, help="MiB of tiles tifffile batches (default 32)")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    if args.cell % args.tile:
        ap.error("--cell must be a multiple of --tile")
    if not args.photos.is_dir():
        print(f"{args.photos} does not exist: run `bash benchmarks/fetch_images.sh` first", file=sys.stderr)
        return 2
    H = W = int(round(math.sqrt(args.gigapixels * 1e9)))
    out = args.output or DATA / f"gigapixel_{float(args.gigapixels)!s}_{args.kind}.tif"
    out.parent.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    photos = load_photos(args.photos, args.max_photos)
    if not photos:
        print(f"no photographs in {args.photos}", file=sys.stderr)
        return 2
    mosaic = FloatMosaic(photos, args.cell, args.seed, args.kind)
    dtype, bands = KINDS[args.kind]
    description = {"generator": "bigquant benchmarks/make_gigapixel_u16.py", "shape": [H, W, bands]}
    description.update(kind=args.kind, tile=args.tile, cell=args.cell, seed=args.seed, photos=mosaic.names)
    extra = {"extrasamples": (0,)} if bands == 4 else {}
    tmp = out.with_name(out.name + ".part")
    tifffile.imwrite(
        tmp,
        data=tiles(mosaic, (H, W), args.tile, not args.quiet),
        shape=(H, W, bands),
        dtype=dtype,
        tile=(args.tile, args.tile),
        bigtiff=True,
        photometric="rgb",
        compression="zlib",
        predictor=True,
        description=json.dumps(description),
        metadata=None,
        buffersize=int(args.buffer_mib * 2**20),
        maxworkers=os.cpu_count() or 1,
        **extra,
    )
    tmp.replace(out)  # a reader never finds half a file under the final name
    total = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("| output | H × W | dtype | bands | cells | file MB | total s | peak RSS MiB |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    print(
        f"| {out.name} | {H} × {W} | {np.dtype(dtype).name} | {bands} | {mosaic.cells_made} | "
        f"{out.stat().st_size / 1e6:.0f} | {total:.1f} | {rss:.0f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
