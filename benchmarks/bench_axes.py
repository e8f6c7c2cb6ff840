"""Time ``bigquant compress`` on the same pixels stored channels-last and channels-first in Zarr.

Usage::

    python benchmarks/bench_axes.py                                  # from data/gigapixel_0.25.tif
    python benchmarks/bench_axes.py path/to/image.tif --data-dir DIR --repeat 2 -k 32

Builds (once, streamed, kept in ``--data-dir``, default ``benchmarks/data/axes``) two Zarr v3
arrays of the TIFF's pixels, zstd: ``yxc.zarr`` (rows, cols, C) in chunks of 512 x 512 x C, and
``cyx.zarr`` (C, rows, cols) in chunks of 1 x 512 x 512 with ``dimension_names`` ("c", "y",
"x"). Then runs ``bigquant compress`` on each, alternating, ``--repeat`` times, every run a
separate process under ``/usr/bin/time -v``, and prints a Markdown table: wall time, peak RSS,
PSNR, and the channels-first time over the channels-last one. bigquant reads the channels-first
array by transposing each chunk as it is read (nothing is rewritten), so the ratio should be
close to 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchutil import DATA, OUT, bigquant_cmd, md_table, timed_run  # noqa: E402


def build(tif: Path, folder: Path) -> tuple[Path, Path]:
    """The two Zarr copies of ``tif``'s pixels (made if missing)."""
    import dask.array as da
    import zarr

    import bigquant

    folder.mkdir(parents=True, exist_ok=True)
    yxc, cyx = folder / "yxc.zarr", folder / "cyx.zarr"
    x = bigquant.read_image(tif)
    rows, cols, c = x.shape
    for path, arr, shape, chunks, names in (
        (yxc, x, (rows, cols, c), (512, 512, c), ("y", "x", "c")),
        (cyx, x.transpose(2, 0, 1), (c, rows, cols), (1, 512, 512), ("c", "y", "x")),
    ):
        if (path / "zarr.json").exists():
            continue
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        z = zarr.create_array(str(tmp), shape=shape, chunks=chunks, dtype=x.dtype, dimension_names=names)
        da.store(arr.rechunk(chunks), z, lock=False)
        tmp.rename(path)
    return yxc, cyx


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tiff", nargs="?", default=str(DATA / "gigapixel_0.25.tif"))
    ap.add_argument("--data-dir", default=str(DATA / "axes"))
    ap.add_argument("-k", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    yxc, cyx = build(Path(args.tiff), Path(args.data_dir))
    out = OUT / "axes"
    out.mkdir(parents=True, exist_ok=True)
    print(f"# bench_axes: {args.tiff}, K={args.k}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    runs: dict[str, list[dict]] = {"channels last (yxc.zarr)": [], "channels first (cyx.zarr)": []}
    for _ in range(args.repeat):
        for label, src in zip(runs, (yxc, cyx)):
            store = out / f"{src.stem}.bq.zarr"
            cmd = [*bigquant_cmd(), "compress", str(src), "-k", str(args.k), "-o", str(store), "--overwrite", "-q"]
            res = timed_run(cmd, log=out / f"{src.stem}.log")
            if res["rc"] != 0:
                print(f"{label} failed, log {res['log']}")
                return 1
            info = json.loads(
                subprocess.run(
                    [*bigquant_cmd(), "info", str(store), "--json"], capture_output=True, text=True, check=True
                ).stdout
            )
            runs[label].append({**res, "psnr": info["psnr"]})
    best = {label: min(r["wall_s"] for r in rs) for label, rs in runs.items()}
    rows = [
        [
            label,
            ", ".join(f"{r['wall_s']:.2f}" for r in rs),
            f"{max(r['rss_mib'] for r in rs):.0f}",
            f"{rs[0]['psnr']:.2f}",
        ]
        for label, rs in runs.items()
    ]
    print(md_table(["input", "wall s (each run)", "peak RSS MiB", "PSNR dB"], rows, right={2, 3}))
    first, last = best["channels first (cyx.zarr)"], best["channels last (yxc.zarr)"]
    print(f"\nchannels first / channels last (fastest runs): {first / last:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
