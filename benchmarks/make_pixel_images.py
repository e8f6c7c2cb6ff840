"""Real 16-bit, float and 4-band test images for the pixel path, from the Debian photographs.

Usage (after ``bash benchmarks/fetch_images.sh``)::

    python benchmarks/make_pixel_images.py                       # -> benchmarks/data/pixel/
    python benchmarks/make_pixel_images.py --photos DIR -o OUT --max-photos 6 --mpx 14.7

For each photograph (``--photos``, in its manifest.tsv order, largest first, at most
``--max-photos``; default 6) this writes three tiled TIFFs (512 × 512 tiles, Deflate with
predictor) to ``--out``:

* ``<name>_u16.tif`` -- uint16 RGB;
* ``<name>_f32.tif`` -- float32 RGB in [0, 1];
* ``<name>_u16x4.tif`` -- uint16, 4 bands: red, green, blue and a fourth band (ExtraSamples
  "unspecified", so readers take it for a plain band, not alpha): the Rec. 709 luminance of
  the photograph blurred by a Gaussian of sigma 3 px -- correlated with RGB as a real extra
  band is, but not a function of the pixel's own RGB.

All three come from one floating-point image: the 8-bit photograph as float64 in [0, 1],
resized per channel with Pillow's Lanczos filter (mode "F") to ``--mpx`` megapixels (default
14.7, the size of a 5120 × 2880 frame; aspect ratio kept), clipped to [0, 1].  Resampling in
floating point is what makes the low-order bits vary for real: an 8-bit image × 257 would
have only 256 distinct values per channel, these have tens of thousands (the script prints
the count per channel and stops if any is under 4096).  uint16 = round(65535 · value).

Prints one Markdown table (file, dtype, bands, H × W, Mpx, distinct values per channel,
source photo, linear scale) and writes it as ``manifest.tsv`` next to the images.  Peak memory
is about 1 GiB for an 18 Mpx photograph; about 10 s per photograph on one core.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchutil import DATA, load_rgb, md_table  # noqa: E402

MIN_DISTINCT = 4096
LUMA = np.array([0.2126, 0.7152, 0.0722])


def photo_names(photo_dir: Path) -> list[str]:
    """Photographs in manifest order (fetch_images.sh), else sorted by name."""
    manifest = photo_dir / "manifest.tsv"
    if manifest.exists():
        with open(manifest) as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        rows.sort(key=lambda r: -float(r["mpx"]))
        return [r["file"] for r in rows]
    return sorted(p.name for p in photo_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def lanczos(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, C) float in [0, 1] -> (h, w, C) float32 resized by Lanczos per channel in float32,
    clipped to [0, 1] (Lanczos overshoots at edges)."""
    from PIL import Image

    h, w = size
    out = np.empty((h, w, img.shape[2]), np.float32)
    for c in range(img.shape[2]):
        band = Image.fromarray(np.ascontiguousarray(img[..., c], dtype=np.float32))  # mode "F"
        out[..., c] = np.asarray(band.resize((w, h), Image.Resampling.LANCZOS))
    np.clip(out, 0.0, 1.0, out=out)
    return out


def fourth_band(rgb: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """Luminance of a Gaussian-blurred version of the image, float32 in [0, 1]."""
    from scipy.ndimage import gaussian_filter

    luma = np.tensordot(rgb, LUMA.astype(np.float32), axes=([2], [0]))
    return np.clip(gaussian_filter(luma, sigma), 0.0, 1.0).astype(np.float32)


def to_u16(x: np.ndarray) -> np.ndarray:
    return np.rint(x * 65535.0).astype(np.uint16)


def distinct(a: np.ndarray) -> list[int]:
    """Distinct values per channel."""
    return [int(np.unique(a[..., c]).size) for c in range(a.shape[2])]


def write_tiff(path: Path, a: np.ndarray, tile: int) -> None:
    import tifffile

    kw: dict = {"photometric": "rgb"}
    if a.shape[2] == 4:
        kw["extrasamples"] = (0,)  # unspecified: a plain fourth band, not alpha
    tmp = path.with_name(path.name + ".part")
    tifffile.imwrite(tmp, a, tile=(tile, tile), compression="zlib", predictor=True, metadata=None, maxworkers=2, **kw)
    tmp.replace(path)  # a reader never sees half a file


def make_one(photo: Path, out_dir: Path, mpx: float, tile: int) -> list[list]:
    rgb8 = load_rgb(photo)
    H, W = rgb8.shape[:2]
    scale = math.sqrt(mpx * 1e6 / (H * W))
    h, w = round(H * scale), round(W * scale)
    f = lanczos(rgb8.astype(np.float32) / np.float32(255.0), (h, w))
    del rgb8
    stem = photo.stem
    variants = {
        "u16": to_u16(f),
        "f32": f,
        "u16x4": np.concatenate([to_u16(f), to_u16(fourth_band(f))[..., None]], axis=2),
    }
    rows = []
    for tag, a in variants.items():
        counts = distinct(a)
        if min(counts) < MIN_DISTINCT:
            raise SystemExit(f"{stem}_{tag}: only {min(counts)} distinct values in a channel (< {MIN_DISTINCT})")
        path = out_dir / f"{stem}_{tag}.tif"
        write_tiff(path, a, tile)
        rows.append(
            [
                path.name,
                str(a.dtype),
                a.shape[2],
                f"{h} × {w}",
                h * w / 1e6,
                " ".join(map(str, counts)),
                photo.name,
                scale,
            ]
        )
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--photos", type=Path, default=DATA / "photos", help="photographs (default benchmarks/data/photos)")
    ap.add_argument(
        "-o", "--out", type=Path, default=DATA / "pixel", help="output folder (default benchmarks/data/pixel)"
    )
    ap.add_argument("--max-photos", type=int, default=6, help="at most N photographs, largest first (default 6)")
    ap.add_argument("--mpx", type=float, default=14.7, help="megapixels of each output (default 14.7)")
    ap.add_argument("--tile", type=int, default=512, help="TIFF tile side (default 512)")
    args = ap.parse_args(argv)
    if not args.photos.is_dir():
        print(f"{args.photos} does not exist: run `bash benchmarks/fetch_images.sh` first", file=sys.stderr)
        return 2
    names = photo_names(args.photos)[: args.max_photos]
    if not names:
        print(f"no photographs in {args.photos}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[list] = []
    for n in names:
        t0 = time.perf_counter()
        rows += make_one(args.photos / n, args.out, args.mpx, args.tile)
        print(f"  {n}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    headers = ["file", "dtype", "bands", "H × W", "Mpx", "distinct per channel", "photo", "scale"]
    print(md_table(headers, rows))
    with open(args.out / "manifest.tsv", "w") as fh:
        fh.write("\t".join(["file", "dtype", "bands", "shape", "mpx", "distinct", "photo", "scale"]) + "\n")
        for r in rows:
            fh.write("\t".join(str(c) for c in r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
