"""Compress an image to K colours and decode it again, from Python.

Shows the three calls of the Python API: ``bigquant.compress`` (image -> store),
``Store.reconstruct`` (the lazy ``codebook[labels]`` dask array) and ``bigquant.decode``
(store -> tiled TIFF), then prints the PSNR (as recorded in the store and recomputed here) and
the sizes of the input, the store and the decoded TIFF.

Run::

    python examples/compress_and_decode.py                   # scikit-learn's china.jpg, K=16
    python examples/compress_and_decode.py scan.tif -k 32 --out-dir results/

Without an input it writes scikit-learn's bundled photograph (china.jpg, 427 x 640) as a PNG into
the output folder and compresses that. The output folder defaults to a new temporary folder;
``china.bq.zarr`` (or ``<input stem>.bq.zarr``) and ``recon.tif`` are written there.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np

import bigquant


def sample_image(folder: Path) -> Path:
    """scikit-learn's china.jpg, saved losslessly as PNG so the PSNR is against these pixels."""
    import imageio.v3 as iio
    from sklearn.datasets import load_sample_image

    path = folder / "china.png"
    iio.imwrite(path, load_sample_image("china.jpg"))
    return path


def size(path: Path) -> int:
    """Bytes on disk of a file, or of every file under a folder (a Zarr store)."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", nargs="?", type=Path, help="PNG, JPEG, TIFF or Zarr image (default: china.jpg)")
    parser.add_argument("-k", type=int, default=16, help="colours in the codebook (default 16)")
    parser.add_argument("--out-dir", type=Path, default=None, help="folder for the outputs (default: a temp folder)")
    args = parser.parse_args(argv)

    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="bigquant-example-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    image_path = args.image or sample_image(out_dir)
    store_path = out_dir / (image_path.stem + ".bq.zarr")

    # 1. compress: fit K colours, write labels + codebook to a Zarr v3 store
    store = bigquant.compress(image_path, store_path, k=args.k, seed=0, overwrite=True)
    rows, cols, c = store.shape
    meta = store.metadata
    print(f"compressed {image_path} ({rows} x {cols} x {c} {meta['dtype']}) to {store.path}")
    print(
        f"K = {store.k}, {meta['iterations']} Lloyd iterations ({meta['method']} path), "
        f"converged: {meta['converged']} (stopped by: {meta['stopped_by']})"
    )

    # 2. reconstruct lazily and compare with the input, chunk by chunk (nothing loaded whole)
    original = bigquant.read_image(image_path)
    recon = store.reconstruct()
    mse = float(((recon.astype(np.float64) - original.astype(np.float64)) ** 2).mean().compute())
    peak = meta["psnr_peak"]
    psnr = 10 * math.log10(peak**2 / mse) if mse > 0 else math.inf
    print(f"PSNR {meta['psnr']:.2f} dB (recorded in the store), {psnr:.2f} dB (recomputed here)")

    # 3. decode to a tiled TIFF, streamed chunk by chunk
    tif = bigquant.decode(store, out_dir / "recon.tif", overwrite=True)

    raw = rows * cols * c * np.dtype(meta["dtype"]).itemsize
    print(
        f"sizes: raw pixels {raw:,} B, input file {size(image_path):,} B, "
        f"store {size(store.path):,} B ({raw / size(store.path):.1f}:1, "
        f"{8 * size(store.path) / (rows * cols):.2f} bits/pixel), decoded TIFF {size(Path(tif)):,} B"
    )
    print(f"outputs in {out_dir}")


if __name__ == "__main__":
    main()
