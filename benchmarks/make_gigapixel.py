"""Build a gigapixel tiled RGB BigTIFF from real photographs, tile by tile.

Usage (after ``bash benchmarks/fetch_images.sh``)::

    python benchmarks/make_gigapixel.py                      # 1 Gpx -> benchmarks/data/gigapixel_1.0.tif
    python benchmarks/make_gigapixel.py --gigapixels 0.25    # 0.25 Gpx -> .../gigapixel_0.25.tif
    python benchmarks/make_gigapixel.py --gigapixels 0.01 -o /tmp/small.tif --compression jpeg

    # peak memory, as reported for the builder:
    /usr/bin/time -v python benchmarks/make_gigapixel.py 2>&1 | grep -E "Maximum resident|Elapsed"

The image is a square of ``round(sqrt(gigapixels * 1e9))`` pixels a side (31623 x 31623 for
1 Gpx, 15811 x 15811 for 0.25 Gpx; ``--shape H W`` overrides), deliberately not a multiple of
the tile size so that readers meet partial edge tiles.  It is a mosaic of ``--cell`` x
``--cell`` pixel cells (default 2048, a multiple of the tile), each cut from one of the
photographs in ``benchmarks/data/photos/`` (listed in its manifest.tsv) with its own

* photograph, and crop position inside it;
* orientation: one of the 8 flips/rotations by 90 degrees;
* tone curve: a per-channel lookup table from a gain (0.85-1.15), a gamma (0.85-1.15),
  a common brightness shift (+-12) and a small per-channel colour shift (sd 4).

so the colour statistics are those of real photographs while the mosaic is not a repetition
of a few tiles.  Everything is drawn from ``numpy.random.default_rng([seed, cell_row,
cell_col])``: the same seed, photos and options always give the same pixels.

The image is written with ``tifffile.imwrite(data=<generator of tiles>, shape=(H, W, 3),
tile=..., bigtiff=True, buffersize=...)``: only the decoded photographs (275 MiB for the
8 Debian photos) and a small batch of tiles being compressed (``--buffer-mib``, default 32;
tifffile's own default would batch 512 MiB of tiles) are in memory, never the image.  Tiles
are compressed by tifffile's thread pool, one thread per CPU (tifffile's default is half the
CPUs).  Measured on 2 cores: peak RSS 421 MiB at any size; 0.25 Gpx in 9 s (269 MB file),
1 Gpx in about 40-70 s (989 MB), zlib level 6 with predictor; ``--compression jpeg`` is about
4x faster and 5x smaller.

Prints the parameters, then one Markdown table row: output, shape, tiles, compression, file
size, seconds, peak RSS (MiB, from getrusage) and throughput.
"""

from __future__ import annotations

import argparse
import csv
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
from _benchutil import DATA, load_rgb  # noqa: E402


def load_photos(photo_dir: Path, max_photos: int | None = None) -> list[tuple[str, np.ndarray]]:
    """Decode the photographs (RGB uint8), in manifest order, else sorted by file name."""
    manifest = photo_dir / "manifest.tsv"
    if manifest.exists():
        with open(manifest) as fh:
            names = [row["file"] for row in csv.DictReader(fh, delimiter="\t")]
    else:
        names = sorted(
            p.name for p in photo_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff")
        )
    if max_photos:
        names = names[:max_photos]
    return [(name, load_rgb(photo_dir / name)) for name in names]


class Mosaic:
    """Deterministic description of the mosaic: which pixels go in each cell."""

    def __init__(self, photos, cell: int, seed: int):
        self.cell = cell
        self.seed = seed
        self.names = [n for n, _ in photos]
        self.full = [p for _, p in photos]
        small = [n for n, p in photos if min(p.shape[:2]) < cell]
        if small:
            raise SystemExit(f"photos smaller than a cell ({cell} px): {small}; use a smaller --cell")
        self._row = None
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def params(self, cy: int, cx: int) -> dict:
        """The random choices of cell (cy, cx)."""
        rng = np.random.default_rng([self.seed, cy, cx])
        return {
            "photo": int(rng.integers(len(self.full))),
            "flip_ud": bool(rng.integers(2)),
            "flip_lr": bool(rng.integers(2)),
            "transpose": bool(rng.integers(2)),
            "fy": float(rng.random()),
            "fx": float(rng.random()),
            "gain": float(rng.uniform(0.85, 1.15)),
            "gamma": float(rng.uniform(0.85, 1.15)),
            "shift": float(rng.uniform(-12, 12)),
            "cshift": rng.normal(0.0, 4.0, size=3),
        }

    def crop(self, q: dict, side: int) -> np.ndarray:
        """A ``side`` x ``side`` view of the photo that ``q`` (a cell's ``params``) names, turned
        and flipped as it says, at its relative position (fy, fx)."""
        img = self.full[q["photo"]]
        if q["transpose"]:
            img = img.transpose(1, 0, 2)
        if q["flip_ud"]:
            img = img[::-1]
        if q["flip_lr"]:
            img = img[:, ::-1]
        y0 = int(q["fy"] * (img.shape[0] - side + 1))
        x0 = int(q["fx"] * (img.shape[1] - side + 1))
        return img[y0 : y0 + side, x0 : x0 + side]

    def cell_view(self, cy: int, cx: int) -> tuple[np.ndarray, np.ndarray]:
        """(view, lut): a (cell, cell, 3) strided view into a photo, and a (3, 256) uint8 LUT."""
        if self._row != cy:  # tiles come row by row: keep only the current row of cells
            self._row, self._cache = cy, {}
        if cx in self._cache:
            return self._cache[cx]
        q = self.params(cy, cx)
        view = self.crop(q, self.cell)
        v = np.arange(256, dtype=np.float64) / 255.0
        curve = 255.0 * v ** q["gamma"] * q["gain"] + q["shift"]
        lut = np.clip(np.rint(curve[None, :] + q["cshift"][:, None]), 0, 255).astype(np.uint8)
        self._cache[cx] = (view, lut)
        return view, lut


def tiles(mosaic: Mosaic, shape: tuple[int, int], tile: int, progress: bool):
    """Yield the image's tiles in TIFF order (row-major); edge tiles are cut short (tifffile
    pads them)."""
    H, W = shape
    nty, ntx = math.ceil(H / tile), math.ceil(W / tile)
    per_cell = mosaic.cell // tile
    t0 = time.perf_counter()
    for ty in range(nty):
        y0 = ty * tile
        h = min(tile, H - y0)
        cy, oy = divmod(ty, per_cell)
        for tx in range(ntx):
            x0 = tx * tile
            w = min(tile, W - x0)
            cx, ox = divmod(tx, per_cell)
            view, lut = mosaic.cell_view(cy, cx)
            src = view[oy * tile : oy * tile + h, ox * tile : ox * tile + w]
            out = np.empty((h, w, 3), np.uint8)
            for ch in range(3):
                out[..., ch] = lut[ch][src[..., ch]]
            yield out
        if progress and (ty % 8 == 7 or ty == nty - 1):
            el = time.perf_counter() - t0
            print(
                f"  tile row {ty + 1}/{nty}  {el:6.1f} s  ETA {el / (ty + 1) * (nty - ty - 1):6.1f} s",
                file=sys.stderr,
                flush=True,
            )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--gigapixels", type=float, default=1.0, help="size in gigapixels (1e9 px); the image is square (default 1.0)"
    )
    ap.add_argument(
        "--shape", type=int, nargs=2, metavar=("H", "W"), help="exact height and width instead of --gigapixels"
    )
    ap.add_argument(
        "-o", "--output", type=Path, help="output path (default benchmarks/data/gigapixel_<gigapixels>.tif)"
    )
    ap.add_argument(
        "--photos", type=Path, default=DATA / "photos", help="folder of photographs (default benchmarks/data/photos)"
    )
    ap.add_argument("--max-photos", type=int, help="use only the first N photos")
    ap.add_argument("--tile", type=int, default=512, choices=(128, 256, 512, 1024), help="TIFF tile side (default 512)")
    ap.add_argument("--cell", type=int, default=2048, help="mosaic cell side, a multiple of --tile (default 2048)")
    ap.add_argument(
        "--compression",
        default="zlib",
        choices=("zlib", "jpeg", "zstd", "lzw", "none"),
        help="TIFF compression (default zlib, with horizontal predictor)",
    )
    ap.add_argument("--level", type=int, help="compression level (zlib 1-9, default 6; jpeg quality, default 90)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--workers", type=int, default=0, help="tifffile compression threads (default: all CPUs)")
    ap.add_argument(
        "--buffer-mib",
        type=float,
        default=32,
        help="MiB of raw tiles tifffile batches for its compression threads (default 32)",
    )
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)

    if args.cell % args.tile:
        ap.error("--cell must be a multiple of --tile")
    if args.shape:
        H, W = args.shape
    else:
        H = W = int(round(math.sqrt(args.gigapixels * 1e9)))
    out = args.output or DATA / f"gigapixel_{float(args.gigapixels)!s}.tif"
    out.parent.mkdir(parents=True, exist_ok=True)
    if not args.photos.is_dir():
        raise SystemExit(f"{args.photos} does not exist: run `bash benchmarks/fetch_images.sh` first")

    t0 = time.perf_counter()
    photos = load_photos(args.photos, args.max_photos)
    if not photos:
        raise SystemExit(f"no photographs in {args.photos}")
    mosaic = Mosaic(photos, args.cell, args.seed)
    t_load = time.perf_counter() - t0

    kw: dict = {}
    if args.compression == "none":
        kw["compression"] = None
    elif args.compression == "jpeg":
        kw["compression"] = "jpeg"
        kw["compressionargs"] = {"level": args.level or 90}
        kw["photometric"] = "rgb"  # store RGB (not YCbCr) so any reader decodes it the same
    else:
        kw["compression"] = args.compression
        if args.level is not None:
            kw["compressionargs"] = {"level": args.level}
        kw["predictor"] = True
    kw.setdefault("photometric", "rgb")
    # tifffile's default is TIFF.MAXWORKERS = cpu_count // 2 (1 thread on a 2-core machine)
    kw["maxworkers"] = args.workers or os.cpu_count() or 1

    description = json.dumps(
        {
            "generator": "bigquant benchmarks/make_gigapixel.py",
            "shape": [H, W, 3],
            "tile": args.tile,
            "cell": args.cell,
            "seed": args.seed,
            "photos": mosaic.names,
            "compression": args.compression,
        }
    )
    mpx = H * W / 1e6
    print(
        f"# {out}: {H} x {W} x 3 ({mpx / 1000:.3f} Gpx), tile {args.tile}, cell {args.cell}, "
        f"{args.compression}, seed {args.seed}; {len(photos)} photos decoded in {t_load:.1f} s",
        file=sys.stderr,
    )

    t1 = time.perf_counter()
    tifffile.imwrite(
        out,
        data=tiles(mosaic, (H, W), args.tile, not args.quiet),
        shape=(H, W, 3),
        dtype=np.uint8,
        tile=(args.tile, args.tile),
        bigtiff=True,
        description=description,
        metadata=None,
        buffersize=int(args.buffer_mib * 2**20),
        **kw,
    )
    t_write = time.perf_counter() - t1
    total = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    size = out.stat().st_size
    ntiles = math.ceil(H / args.tile) * math.ceil(W / args.tile)
    print("| output | H × W | tiles | compression | file MB | load s | write s | total s | Mpx/s | peak RSS MiB |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {out.name} | {H} × {W} | {ntiles} | {args.compression} | {size / 1e6:.0f} | "
        f"{t_load:.1f} | {t_write:.1f} | {total:.1f} | {mpx / t_write:.1f} | {rss:.0f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
