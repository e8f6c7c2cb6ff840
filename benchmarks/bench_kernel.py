"""Cost per pixel-iteration of bigquant's pixel-level Lloyd pass against scikit-learn's Lloyd.

Both run the same number of Lloyd iterations from the same initial centroids on the same pixels
(a real photograph converted to uint16, so bigquant takes its pixel path, not the histogram):
scikit-learn ``KMeans(algorithm="lloyd", n_init=1, init=C0, max_iter=N, tol=0)`` on the float64
pixel matrix, and ``bigquant.kmeans.lloyd`` over the dask array (local threaded scheduler,
chunks from the default memory budget). Both use every core. The JIT is warmed up first.

Run:  python benchmarks/bench_kernel.py [-k 32] [--iters 10] [--image PATH]
Prints a Markdown table: method, seconds, ns per pixel-iteration, ratio to scikit-learn.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import dask.array as da
import numpy as np

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", type=int, default=32)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--image", default=None, help="default: the largest photo in data/photos, else china.jpg")
    args = ap.parse_args(argv)

    from PIL import Image
    from sklearn.cluster import KMeans

    from bigquant import kmeans
    from bigquant.chunking import choose_chunks, parse_memory_limit

    photos = sorted((HERE / "data" / "photos").glob("*.jpg"), key=lambda p: p.stat().st_size)
    if args.image:
        img = np.asarray(Image.open(args.image).convert("RGB"))
    elif photos:
        img = np.asarray(Image.open(photos[len(photos) // 2]).convert("RGB"))
    else:
        from sklearn.datasets import load_sample_image

        img = load_sample_image("china.jpg")
    img16 = img.astype(np.uint16) * 257
    n = img.shape[0] * img.shape[1]
    rng = np.random.default_rng(0)
    flat = img16.reshape(-1, 3)
    init = flat[rng.choice(n, args.k, replace=False)].astype(np.float64)

    chunks = choose_chunks(img.shape[:2], 6, parse_memory_limit(None))
    x = da.from_array(img16, chunks=chunks + (3,))
    sample = flat[rng.choice(n, 10_000, replace=False)].astype(np.float64)
    kmeans.lloyd(x[:64, :64], init, max_iter=1, sample=sample)  # JIT warm-up (cached on disk after the first run)

    t = time.perf_counter()
    res = kmeans.lloyd(x, init, max_iter=args.iters, tol_abs=0.0, sample=sample)
    t_bq = time.perf_counter() - t

    X = flat.astype(np.float64)
    t = time.perf_counter()
    km = KMeans(args.k, init=init, n_init=1, algorithm="lloyd", max_iter=args.iters, tol=0).fit(X)
    t_sk = time.perf_counter() - t
    it_sk = km.n_iter_
    dev = np.abs(res.centroids - km.cluster_centers_).max() / np.abs(km.cluster_centers_).max()

    print(
        f"{img.shape[0]} x {img.shape[1]} pixels ({n / 1e6:.1f} Mpx) as uint16, K = {args.k}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"centroids after the run agree to {dev:.1e} (relative)\n")
    print("| method | iterations | seconds | ns per pixel-iteration | ratio to scikit-learn |")
    print("|---|---:|---:|---:|---:|")
    ns_sk = t_sk / (n * it_sk) * 1e9
    ns_bq = t_bq / (n * res.n_iter) * 1e9
    print(f"| scikit-learn KMeans (lloyd) | {it_sk} | {t_sk:.2f} | {ns_sk:.1f} | 1.00 |")
    print(f"| bigquant map-reduce pass | {res.n_iter} | {t_bq:.2f} | {ns_bq:.1f} | {ns_bq / ns_sk:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
