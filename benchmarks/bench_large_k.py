"""Time ``bigquant compress`` at large K on a 512 x 512 photograph, before and after, and the
k-d tree search against the full search (the crossover behind ``kmeans.TREE_MIN_K``).

Usage::

    flock -x /work/bench.lock python benchmarks/bench_large_k.py               # this checkout
    python benchmarks/bench_large_k.py --baseline /path/to/older/checkout      # and an older one
    python benchmarks/bench_large_k.py --crossover                             # search costs only

The image is scikit-image's astronaut (512 x 512 x 3, 113,382 distinct colours), written as a
PNG under ``--work`` (default benchmarks/out/large_k). For each K (``-k``, default 256 4096
65536) ``bigquant compress IMG -k K -o OUT --overwrite --quiet`` runs as its own process under
``/usr/bin/time -v``, after an untimed run to fill numba's cache (``--no-warm`` skips it); with
``--baseline DIR`` the same command runs with ``PYTHONPATH=DIR`` (another checkout of bigquant),
each up to ``--baseline-timeout`` seconds (a run cut short shows as ``> N``). Prints a
Markdown table: K, seconds before and after, speed-up, peak RSS, PSNR and iterations.

``--crossover`` times, on the photograph's colours against codebooks of K of those colours,
the nearest-centroid search of every colour (``kmeans.label_block``) by a full search and by the
tree (its build included), for K around the crossover.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchutil import OUT, bigquant_cmd, md_table, timed_run  # noqa: E402


def _image(work: Path) -> Path:
    import imageio.v3 as iio
    from skimage import data

    work.mkdir(parents=True, exist_ok=True)
    p = work / "astronaut_512.png"
    if not p.exists():
        iio.imwrite(p, data.astronaut())
    return p


def _compress(img: Path, k: int, out: Path, env: dict, timeout: float | None, warm: int | None) -> dict:
    def command(kk: int) -> list[str]:
        return [*bigquant_cmd(), "compress", str(img), "-k", str(kk), "-o", str(out), "--overwrite", "--quiet"]

    cmd = command(k)
    if warm:  # numba's cache for this checkout (at K = warm), so that no timed run compiles
        subprocess.run(command(warm), env=env, capture_output=True, check=False)
    res = timed_run(cmd, env=env, timeout=timeout, log=out.with_suffix(".log"))
    if res["rc"] == 0 and not res["timed_out"]:
        info = subprocess.run(
            [*bigquant_cmd(), "info", str(out), "--json"], env=env, capture_output=True, text=True, check=False
        )
        try:
            meta = json.loads(info.stdout)
            res["psnr"] = meta.get("psnr")
            res["iterations"] = meta.get("iterations")
        except json.JSONDecodeError:
            pass
    return res


def _seconds(r: dict | None, timeout: float | None) -> str:
    if r is None:
        return "-"
    if r["timed_out"]:
        return f"> {timeout:.0f}"
    return f"{r['wall_s']:.1f}" if r["rc"] == 0 else f"failed ({r['rc']})"


def compress_table(args: argparse.Namespace) -> None:
    img = _image(args.work)
    here = str(Path(__file__).resolve().parents[1])
    rows = []
    for k in args.k:
        env = {**os.environ, "PYTHONPATH": here}
        after = _compress(img, k, args.work / f"after_{k}.bq.zarr", env, None, k if args.warm else None)
        before = None
        if args.baseline:
            env = {**os.environ, "PYTHONPATH": str(args.baseline)}
            warm = 16 if args.warm and k == args.k[0] else None  # its kernels are those of any K
            before = _compress(img, k, args.work / f"before_{k}.bq.zarr", env, args.baseline_timeout, warm)
        speed = (
            f"{before['wall_s'] / after['wall_s']:.1f}x{'+' if before['timed_out'] else ''}"
            if before and after["rc"] == 0
            else "-"
        )
        psnr = after.get("psnr")
        rows.append(
            [
                k,
                _seconds(before, args.baseline_timeout),
                _seconds(after, None),
                speed,
                f"{after.get('rss_mib', 0):.0f}",
                f"{psnr:.2f}" if isinstance(psnr, (int, float)) else "-",
                after.get("iterations", "-"),
            ]
        )
        print(f"K={k}: done", file=sys.stderr, flush=True)
    print(f"\n## compress {img.name} (512 x 512 x 3), whole process, {os.cpu_count()} CPUs\n")
    print(md_table(["K", "before s", "after s", "speed-up", "after peak RSS MiB", "after PSNR dB", "iterations"], rows))


def crossover_table(ks: list[int]) -> None:
    import dask.array as da
    import numpy as np
    from skimage import data

    from bigquant import histogram, kmeans

    colours, _ = histogram.colour_histogram(da.from_array(data.astronaut(), chunks=(256, 256, 3)))
    rng = np.random.default_rng(0)
    rows = []
    for k in ks:
        cb = colours[rng.choice(len(colours), k, replace=False)].astype(float)
        times = {}
        for name, limit in (("full", 10**9), ("tree", 1)):
            kmeans.TREE_MIN_K = limit
            kmeans.label_block(colours[:100], cb)  # compiled or loaded before timing
            t0 = time.perf_counter()
            for _ in range(3):
                kmeans.label_block(colours, cb)
            times[name] = (time.perf_counter() - t0) / 3
        per = 1e9 / len(colours)
        rows.append(
            [k, f"{times['full'] * per:.0f}", f"{times['tree'] * per:.0f}", f"{times['full'] / times['tree']:.2f}"]
        )
    print(f"\n## nearest of K centroids, {len(colours):,} colours of astronaut, one thread\n")
    print(md_table(["K", "full search ns/colour", "k-d tree ns/colour", "full / tree"], rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", type=int, nargs="+", default=[256, 4096, 65536])
    ap.add_argument("--baseline", type=Path, help="another checkout of bigquant to time as 'before'")
    ap.add_argument("--baseline-timeout", type=float, default=900.0, help="seconds per 'before' run (default 900)")
    ap.add_argument("--work", type=Path, default=OUT / "large_k", help="scratch folder")
    ap.add_argument("--no-warm", dest="warm", action="store_false", help="no untimed run first")
    ap.add_argument("--crossover", action="store_true", help="time the searches only")
    ap.add_argument("--crossover-k", type=int, nargs="+", default=[32, 64, 128, 192, 256, 384, 512, 1024])
    args = ap.parse_args(argv)
    if args.crossover:
        crossover_table(args.crossover_k)
    else:
        compress_table(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
