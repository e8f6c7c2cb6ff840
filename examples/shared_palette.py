"""Fit one palette across several images, then encode each image with it.

Slide archives and image series often must share one set of K colours, so that label i means the
same colour in every image. ``bigquant.fit`` fits one codebook across all the images' chunks
(one map-reduce over all of them) and writes it as a palette store; ``bigquant.compress(...,
codebook=palette)`` then encodes an image with that fixed codebook (one pass, no fitting). The
script prints each image's PSNR with the shared palette and, for comparison, with a palette
fitted to that image alone: the price of sharing.

Run::

    python examples/shared_palette.py                          # four bundled photographs, K=16
    python examples/shared_palette.py a.tif b.tif c.tif -k 32 --out-dir results/

Without inputs it writes scikit-learn's china.jpg and flower.jpg and scikit-image's coffee and
chelsea as PNGs into the output folder (default: a new temporary folder) and uses those.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import bigquant


def sample_images(folder: Path) -> list[Path]:
    """Four small bundled photographs, saved losslessly as PNG."""
    import imageio.v3 as iio
    from skimage import data
    from sklearn.datasets import load_sample_image

    images = {
        "china": load_sample_image("china.jpg"),
        "flower": load_sample_image("flower.jpg"),
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
    }
    paths = []
    for name, pixels in images.items():
        paths.append(folder / f"{name}.png")
        iio.imwrite(paths[-1], pixels)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="*", type=Path, help="images sharing one palette (default: 4 photographs)")
    parser.add_argument("-k", type=int, default=16, help="colours in the shared palette (default 16)")
    parser.add_argument("--out-dir", type=Path, default=None, help="folder for the outputs (default: a temp folder)")
    args = parser.parse_args(argv)

    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="bigquant-example-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    images = args.images or sample_images(out_dir)

    # 1. one palette for all the images
    palette_path = out_dir / "palette.bq.zarr"
    palette = bigquant.fit([str(p) for p in images], str(palette_path), k=args.k)
    print(f"fitted a palette of K={len(palette.codebook)} colours across {len(images)} images: {palette_path}")

    # 2. encode every image with it, and (to compare) with a palette of its own
    print(f"{'image':<24} {'shared palette':>15} {'own palette':>12}")
    for image in images:
        shared = bigquant.compress(
            image, out_dir / f"{image.stem}.shared.bq.zarr", codebook=str(palette_path), overwrite=True
        )
        own = bigquant.compress(image, out_dir / f"{image.stem}.own.bq.zarr", k=args.k, overwrite=True)
        assert np.array_equal(shared.codebook, palette.codebook), "the store does not hold the shared palette"
        print(f"{image.name:<24} {shared.metadata['psnr']:12.2f} dB {own.metadata['psnr']:9.2f} dB")
    print(f"every *.shared.bq.zarr holds the same codebook; outputs in {out_dir}")


if __name__ == "__main__":
    main()
