"""bigquant against other colour quantizers on real images: time, peak memory, MSE and PSNR.

Usage::

    python benchmarks/bench_peers.py                          # small bundled images, K = 16 64 256
    python benchmarks/bench_peers.py -k 16 --methods sklearn,faiss,bigquant
    python benchmarks/bench_peers.py --large                  # + benchmarks/data/photos/ (fetch_images.sh)
    python benchmarks/bench_peers.py --large --only-large --large-sklearn -k 32
    python benchmarks/bench_peers.py --image some.png --image other.jpg   # your own files too

Images: scikit-learn's bundled ``china.jpg`` and ``flower.jpg`` (427 × 640), scikit-image's
``astronaut`` (512 × 512), ``coffee`` (400 × 600) and ``chelsea`` (300 × 451), all bundled (no
network); with ``--large`` the 8-18 Mpx Debian photographs that ``fetch_images.sh`` put in
benchmarks/data/photos/ (sklearn's KMeans is skipped on them, about 50 s each at K = 32 on
15 Mpx, unless ``--large-sklearn``).

Methods (``--methods``, comma-separated; default all):

==============  =============================================================================
sklearn         ``KMeans(k, init="k-means++", n_init=1, random_state=0, algorithm="lloyd",
                max_iter=300, tol=1e-4)`` (full Lloyd, sklearn's defaults) on float32 RGB
minibatch       ``MiniBatchKMeans(k, random_state=0)`` (its defaults: batch 1024,
                max_iter 100), labels of all pixels
faiss           ``faiss.Kmeans(3, k, niter=20, seed=0)`` trained on its default sample
                (256 points per centroid), then nearest-centroid search of every pixel
mediancut       Pillow ``quantize(k, method=MEDIANCUT, dither=NONE)`` (K ≤ 256)
pngquant        ``pngquant --nofs --force --output OUT.png K IN.png`` (K ≤ 256), read back
daskml          ``dask_ml.cluster.KMeans(k, init="k-means||", random_state=0, max_iter=300,
                tol=1e-4 × mean feature variance)`` (dask-ml's tol is absolute; scaled so it
                stops where sklearn would) (skipped when dask-ml does not import)
bigquant        ``bigquant compress IN.png -k K -o OUT.bq.zarr --overwrite --seed 0 --quiet``
                (the CLI, timed as a process), then read back with
                ``bigquant.open(OUT).reconstruct().compute()`` (or ``codebook[labels]`` from
                the Zarr store)
bigquant-api    ``bigquant.compress(array, OUT, k=K, seed=0)`` inside a Python process; "algo
                s" is the call alone, comparable to the Python peers' "algo s"
==============  =============================================================================

Every (image, K, method) runs in its own process under ``/usr/bin/time -v`` and reads the image
from the same PNG file (the Python peers with Pillow), so every process pays for decoding it;
"wall s" and "peak RSS MiB" are that process's (interpreter start and imports included: about
1 s and 100 MiB for scikit-learn).  "algo s" is the fit + assignment alone, timed inside the Python
workers (up to the labels: building the reconstruction is not counted; for bigquant-api, the
``compress`` call, which also writes the store).  Each writes its reconstruction (uint8, same
shape) to a .npy and this script computes MSE over all pixels and channels and PSNR = 10·log10(255² / MSE) the same way for
every method.  "iters" is the Lloyd iterations run where the method reports them.

Prints one Markdown table of all runs (image, size Mpx, K, method, wall s, peak RSS MiB, MSE,
PSNR, algo s, iters), then a summary per K for each bigquant variant: median PSNR of bigquant
and of sklearn over the images, the worst per-image PSNR difference (bigquant − sklearn), and
the median per-image time ratios bigquant / sklearn and bigquant / faiss (process wall time,
and "algo s" where both have it).  ``--json FILE`` saves every number.  Work files go to
benchmarks/out/peers/ (``--keep`` keeps the reconstructions).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchutil import DATA, OUT, bigquant_cmd, md_table, mse_uint8, psnr_from_mse, python, tail, timed_run  # noqa: E402

ALL_METHODS = ["sklearn", "minibatch", "faiss", "mediancut", "pngquant", "daskml", "bigquant", "bigquant-api"]
PY_METHODS = {"sklearn", "minibatch", "faiss", "mediancut", "daskml", "bigquant-api"}
MAX_256 = {"mediancut", "pngquant"}
IMPORTS = {
    "sklearn": "sklearn.cluster",
    "minibatch": "sklearn.cluster",
    "faiss": "faiss",
    "mediancut": "PIL.Image",
    "daskml": "dask_ml.cluster",
    "bigquant-api": "bigquant",
    "bigquant": "bigquant",
}
LARGE_MPX = 4.0  # sklearn's KMeans runs on images above this only with --large-sklearn


# ----------------------------------------------------------------------------- worker side


def _to_uint8(codebook):
    import numpy as np

    return np.clip(np.rint(np.asarray(codebook, dtype=np.float64)), 0, 255).astype(np.uint8)


def worker(args) -> int:
    """Run one method on one image in this process; write recon .npy and meta .json."""
    import numpy as np

    if str(args.input).endswith(".png"):
        from PIL import Image

        with Image.open(args.input) as im:  # the same file the bigquant CLI and pngquant read
            img = np.asarray(im.convert("RGB"))
    else:
        img = np.load(args.input)
    H, W, C = img.shape
    k, seed = args.k, args.seed
    meta: dict = {"method": args.worker}
    t0 = time.perf_counter()
    if args.worker in ("sklearn", "minibatch"):
        from sklearn.cluster import KMeans, MiniBatchKMeans

        X = img.reshape(-1, C).astype(np.float32)
        if args.worker == "sklearn":
            km = KMeans(
                n_clusters=k,
                init="k-means++",
                n_init=1,
                random_state=seed,
                algorithm="lloyd",
                max_iter=args.max_iter,
                tol=args.tol,
            ).fit(X)
        else:
            km = MiniBatchKMeans(n_clusters=k, random_state=seed).fit(X)
        labels, centers = km.labels_, km.cluster_centers_
        meta["algo_s"] = time.perf_counter() - t0
        meta["iters"] = int(km.n_iter_)
        recon = _to_uint8(centers)[labels].reshape(H, W, C)
    elif args.worker == "faiss":
        import faiss

        X = np.ascontiguousarray(img.reshape(-1, C), dtype=np.float32)
        km = faiss.Kmeans(C, k, niter=args.faiss_niter, seed=seed)
        km.train(X)
        _, labels = km.index.search(X, 1)
        meta["algo_s"] = time.perf_counter() - t0
        meta["iters"] = args.faiss_niter
        recon = _to_uint8(km.centroids)[labels[:, 0]].reshape(H, W, C)
    elif args.worker == "daskml":
        import dask.array as da
        from dask_ml.cluster import KMeans

        X = img.reshape(-1, C).astype(np.float32)
        rows = max(65536, -(-X.shape[0] // (4 * (os.cpu_count() or 1))))
        Xd = da.from_array(X, chunks=(rows, C))
        # dask-ml stops when the summed squared centre shift is below tol, unscaled; sklearn
        # scales tol by the mean variance of the features.  Scale it the same way here.
        tol = args.tol * float(X.var(axis=0).mean())
        meta["tol_abs"] = tol
        km = KMeans(n_clusters=k, init="k-means||", random_state=seed, max_iter=args.max_iter, tol=tol).fit(Xd)
        labels = np.asarray(km.labels_.compute() if hasattr(km.labels_, "compute") else km.labels_)
        meta["algo_s"] = time.perf_counter() - t0
        meta["iters"] = int(getattr(km, "n_iter_", -1))
        recon = _to_uint8(km.cluster_centers_)[labels].reshape(H, W, C)
    elif args.worker == "mediancut":
        from PIL import Image

        q = Image.fromarray(img).quantize(colors=k, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        meta["algo_s"] = time.perf_counter() - t0
        recon = np.asarray(q.convert("RGB"))
    elif args.worker == "bigquant-api":
        import bigquant

        kwargs = json.loads(args.bigquant_kwargs) if args.bigquant_kwargs else {}
        store = bigquant.compress(img, args.store, k=k, seed=seed, **kwargs)
        meta["algo_s"] = time.perf_counter() - t0
        attrs = dict(getattr(store, "attrs", {}) or {})
        meta["iters"] = attrs.get("iterations")
        meta["bigquant_psnr"] = attrs.get("psnr")
        recon = np.asarray(store.reconstruct().compute())
    else:
        raise SystemExit(f"unknown method {args.worker}")
    meta.setdefault("algo_s", time.perf_counter() - t0)
    np.save(args.out, np.ascontiguousarray(recon, dtype=np.uint8))
    Path(args.meta).write_text(json.dumps(meta))
    return 0


# ----------------------------------------------------------------------- orchestrator side


def load_images(args) -> list[tuple[str, object]]:
    import numpy as np
    from _benchutil import load_rgb

    imgs = []
    if not args.only_large:
        from sklearn.datasets import load_sample_image

        for name in ("china", "flower"):
            imgs.append((name, load_sample_image(f"{name}.jpg")))
        import skimage.data

        for name in ("astronaut", "coffee", "chelsea"):
            imgs.append((name, getattr(skimage.data, name)()))
    if args.large or args.only_large:
        photo_dir = args.photos
        names = []
        if (photo_dir / "manifest.tsv").exists():
            with open(photo_dir / "manifest.tsv") as fh:
                names = [r["file"] for r in csv.DictReader(fh, delimiter="\t")]
        elif photo_dir.is_dir():
            names = sorted(p.name for p in photo_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not names:
            print(f"no photographs in {photo_dir}: run `bash benchmarks/fetch_images.sh`", file=sys.stderr)
        for n in names[: args.max_large] if args.max_large else names:
            imgs.append((Path(n).stem, load_rgb(photo_dir / n)))
    for p in args.image:
        imgs.append((Path(p).stem, load_rgb(p)))
    return [(n, np.ascontiguousarray(a[..., :3], dtype=np.uint8)) for n, a in imgs]


def available(methods: list[str]) -> dict[str, str | None]:
    """None if a method can run here, else why not."""
    why: dict[str, str | None] = {}
    for m in methods:
        if m == "pngquant":
            why[m] = None if shutil.which("pngquant") else "pngquant not on PATH (apt-get install pngquant)"
            continue
        p = subprocess.run([python(), "-c", f"import {IMPORTS[m]}"], capture_output=True, text=True)
        why[m] = None if p.returncode == 0 else (p.stderr.strip().splitlines() or ["import failed"])[-1]
        if m == "bigquant" and why[m] is None:
            p = subprocess.run([*bigquant_cmd(), "--help"], capture_output=True, text=True)
            if p.returncode != 0:
                why[m] = "bigquant CLI does not start"
    return why


def read_bigquant(store: Path):
    """Reconstruction of a bigquant store: the API if it has ``open``, else the Zarr arrays."""
    import numpy as np

    try:
        import bigquant

        if hasattr(bigquant, "open"):
            return np.asarray(bigquant.open(str(store)).reconstruct().compute())
    except ImportError:
        pass
    import zarr

    g = zarr.open_group(str(store), mode="r")
    codebook = np.asarray(g["codebook"][...])
    if codebook.dtype != np.uint8:
        codebook = _to_uint8(codebook)
    labels = g["labels/0"] if g.attrs["bigquant"]["format_version"] >= 2 else g["labels"]
    return codebook[np.asarray(labels[...])]


def bigquant_info(store: Path) -> dict:
    p = subprocess.run([*bigquant_cmd(), "info", str(store), "--json"], capture_output=True, text=True)
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        return {}


def best_of(cmd, log, args, cleanup: Path | None = None) -> dict:
    """Run ``cmd`` ``args.repeat`` times (stopping at a failure); keep the fastest run."""
    best = None
    for _ in range(max(1, args.repeat)):
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
        r = timed_run(cmd, log=log, timeout=args.timeout)
        if r["rc"] != 0 or r["timed_out"]:
            return r
        if best is None or r["wall_s"] < best["wall_s"]:
            best = r
    return best


def api_kwargs(cli_args: list[str]) -> dict:
    """``--max-iter 300 --tol 1e-4`` (bigquant CLI options) -> keyword arguments of
    ``bigquant.compress`` (``max_iter=300, tol=1e-4``); values parsed as JSON when they can be."""
    kw, i = {}, 0
    while i < len(cli_args):
        key = cli_args[i].lstrip("-").replace("-", "_")
        if i + 1 < len(cli_args) and not cli_args[i + 1].startswith("--"):
            try:
                kw[key] = json.loads(cli_args[i + 1])
            except json.JSONDecodeError:
                kw[key] = cli_args[i + 1]
            i += 2
        else:
            kw[key] = True
            i += 1
    return kw


def run_case(name, img_npy, img_png, k, method, args, work: Path) -> dict:
    import numpy as np
    from PIL import Image

    tag = f"{name}_k{k}_{method}"
    recon_npy, meta_json, log = work / f"{tag}.npy", work / f"{tag}.json", work / f"{tag}.log"
    res: dict = {"method": method}
    recon = None
    if method in PY_METHODS:
        store = work / f"{tag}.bq.zarr"
        shutil.rmtree(store, ignore_errors=True)
        cmd = [
            python(),
            __file__,
            "--worker",
            method,
            "--input",
            img_png,
            "--k",
            str(k),
            "--out",
            recon_npy,
            "--meta",
            meta_json,
            "--seed",
            str(args.seed),
            "--max-iter",
            str(args.max_iter),
            "--tol",
            str(args.tol),
            "--faiss-niter",
            str(args.faiss_niter),
            "--store",
            store,
        ]
        if method == "bigquant-api" and args.bigquant_arg:
            cmd += ["--bigquant-kwargs", json.dumps(api_kwargs(args.bigquant_arg))]
        r = best_of(cmd, log, args, cleanup=store)
        if r["rc"] == 0 and meta_json.exists():
            res.update(json.loads(meta_json.read_text()))
            recon = np.load(recon_npy)
        shutil.rmtree(store, ignore_errors=True)
    elif method == "pngquant":
        out_png = work / f"{tag}.png"
        cmd = ["pngquant", "--nofs", "--force", "--output", out_png, str(k), img_png]
        r = best_of(cmd, log, args)
        if r["rc"] == 0:
            with Image.open(out_png) as im:
                recon = np.asarray(im.convert("RGB"))
            out_png.unlink()
    elif method == "bigquant":
        store = work / f"{tag}.bq.zarr"
        cmd = [
            *bigquant_cmd(),
            "compress",
            img_png,
            "-k",
            str(k),
            "-o",
            store,
            "--overwrite",
            "--seed",
            str(args.seed),
            "--quiet",
            *args.bigquant_arg,
        ]
        r = best_of(cmd, log, args)
        if r["rc"] == 0:
            recon = read_bigquant(store)
            info = bigquant_info(store)
            res["iters"] = info.get("iterations")
            res["bigquant_psnr"] = info.get("psnr")
        shutil.rmtree(store, ignore_errors=True)
    else:
        raise ValueError(method)
    res.update(
        {
            "wall_s": r["wall_s"],
            "rss_mib": r.get("rss_mib"),
            "rc": r["rc"],
            "timed_out": r["timed_out"],
            "cpu_pct": r.get("cpu_pct"),
        }
    )
    if r["rc"] != 0 or r["timed_out"]:
        res["error"] = "timeout" if r["timed_out"] else f"rc={r['rc']}"
        print(f"   {tag} FAILED ({res['error']}), log {log}:\n{tail(log, 8)}", file=sys.stderr)
        return res
    orig = np.load(img_npy, mmap_mode="r")
    if recon is None:
        res["error"] = "recon missing"
        return res
    if recon.shape != orig.shape:
        res["error"] = f"recon shape {recon.shape} != {orig.shape}"
        return res
    res["mse"] = mse_uint8(orig, recon)
    res["psnr"] = psnr_from_mse(res["mse"])
    flat = recon.reshape(-1, 3).astype(np.uint32)
    packed = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    res["colours"] = int(np.count_nonzero(np.bincount(packed, minlength=1 << 24)))
    bq = res.get("bigquant_psnr")
    if isinstance(bq, (int, float)) and abs(bq - res["psnr"]) > 0.05:
        print(f"   note: {tag}: bigquant reports PSNR {bq:.3f}, measured {res['psnr']:.3f}", file=sys.stderr)
    if not args.keep:
        recon_npy.unlink(missing_ok=True)
    return res


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summary(results: list[dict], ks: list[int]) -> str:
    out = []
    rows = []
    variants = [m for m in ("bigquant", "bigquant-api") if any(r["method"] == m for r in results)]
    for k in ks:
        for bq in variants:
            by = {}
            for r in results:
                if r["k"] == k and "psnr" in r:
                    by.setdefault(r["image"], {})[r["method"]] = r
            both_sk = [img for img, d in by.items() if bq in d and "sklearn" in d]
            both_fa = [img for img, d in by.items() if bq in d and "faiss" in d]
            if not any(bq in d for d in by.values()):
                continue
            diffs = [(by[i][bq]["psnr"] - by[i]["sklearn"]["psnr"], i) for i in both_sk]
            worst = min(diffs) if diffs else None

            def ratio(imgs, other, key):
                return _median(
                    [by[i][bq][key] / by[i][other][key] for i in imgs if by[i][bq].get(key) and by[i][other].get(key)]
                )

            rows.append(
                [
                    k,
                    bq,
                    len(both_sk),
                    _median([by[i][bq]["psnr"] for i in both_sk]),
                    _median([by[i]["sklearn"]["psnr"] for i in both_sk]),
                    f"{worst[0]:+.2f} ({worst[1]})" if worst else "",
                    ratio(both_sk, "sklearn", "wall_s"),
                    ratio(both_fa, "faiss", "wall_s"),
                    ratio(both_sk, "sklearn", "algo_s") if bq == "bigquant-api" else None,
                    ratio(both_fa, "faiss", "algo_s") if bq == "bigquant-api" else None,
                ]
            )
    if rows:
        out.append(
            md_table(
                [
                    "K",
                    "variant",
                    "images",
                    "median PSNR bigquant",
                    "median PSNR sklearn",
                    "worst ΔPSNR (image)",
                    "wall ÷ sklearn",
                    "wall ÷ faiss",
                    "algo ÷ sklearn",
                    "algo ÷ faiss",
                ],
                rows,
            )
        )
        out.append(
            "\n(ΔPSNR = bigquant − sklearn per image, dB; ratios are medians over images "
            "of per-image ratios; PSNR medians over the images both ran)"
        )
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "-k",
        nargs="+",
        default=["16", "64", "256"],
        help="numbers of colours (space or comma separated; default 16 64 256)",
    )
    ap.add_argument(
        "--methods",
        default=",".join(ALL_METHODS),
        help=f"comma-separated subset of {','.join(ALL_METHODS)} (default all)",
    )
    ap.add_argument("--large", action="store_true", help="also the photos in benchmarks/data/photos/")
    ap.add_argument("--only-large", action="store_true", help="only the large photos")
    ap.add_argument("--max-large", type=int, help="at most N large photos")
    ap.add_argument(
        "--large-sklearn", action="store_true", help=f"run sklearn KMeans on images over {LARGE_MPX:g} Mpx too (slow)"
    )
    ap.add_argument("--photos", type=Path, default=DATA / "photos")
    ap.add_argument("--image", action="append", default=[], help="extra image file (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-iter", type=int, default=300, help="sklearn / dask-ml max_iter (default 300)")
    ap.add_argument("--tol", type=float, default=1e-4, help="sklearn / dask-ml tol (default 1e-4)")
    ap.add_argument("--faiss-niter", type=int, default=20, help="faiss iterations (default 20)")
    ap.add_argument(
        "--bigquant-arg",
        action="append",
        default=[],
        help="extra option for `bigquant compress`, e.g. --bigquant-arg=--max-iter "
        "--bigquant-arg=300 (repeatable; bigquant-api gets them as keywords)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="run each case N times and keep the fastest (default 1)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per run (default 1800)")
    ap.add_argument("--out", type=Path, default=OUT / "peers", help="work folder")
    ap.add_argument("--keep", action="store_true", help="keep reconstructions (.npy)")
    ap.add_argument("--json", type=Path, help="save all results as JSON")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--worker"]:  # internal: one method on one image, in this process
        wp = argparse.ArgumentParser(prog="bench_peers.py --worker")
        wp.add_argument("--worker", choices=sorted(PY_METHODS), required=True)
        for opt in ("--input", "--out", "--meta", "--store"):
            wp.add_argument(opt, required=True)
        wp.add_argument("--k", type=int, required=True)
        wp.add_argument("--seed", type=int, default=0)
        wp.add_argument("--max-iter", type=int, default=300)
        wp.add_argument("--tol", type=float, default=1e-4)
        wp.add_argument("--faiss-niter", type=int, default=20)
        wp.add_argument("--bigquant-kwargs")
        return worker(wp.parse_args(argv))
    args = ap.parse_args(argv)

    import numpy as np
    from PIL import Image

    ks = sorted({int(x) for s in args.k for x in str(s).split(",") if x})
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in ALL_METHODS]
    if bad:
        ap.error(f"unknown methods {bad}; choose from {ALL_METHODS}")
    why = available(methods)
    for m, w in why.items():
        if w:
            print(f"# skipping {m}: {w}", file=sys.stderr)
    runnable = [m for m in methods if not why[m]]

    images = load_images(args)
    work = args.out
    inputs = work / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    prepared = []
    for name, img in images:
        npy, png = inputs / f"{name}.npy", inputs / f"{name}.png"
        np.save(npy, img)
        if any(m in runnable for m in ("pngquant", "bigquant")):
            Image.fromarray(img).save(png, compress_level=1)
        prepared.append((name, img.shape, npy, png))
    load = os.getloadavg()[0]
    print(
        f"# bench_peers: {os.cpu_count()} CPUs, load average {load:.2f}"
        + ("  (WARNING: machine busy, timings unreliable)" if load > 0.5 else "")
        + f"; K = {ks}; methods = {runnable}; sklearn/dask-ml max_iter={args.max_iter}, "
        f"tol={args.tol}; faiss niter={args.faiss_niter}; seed={args.seed}"
    )

    results = []
    t_start = time.perf_counter()
    for k in ks:
        for name, shape, npy, png in prepared:
            for m in runnable:
                base = {"image": name, "mpx": shape[0] * shape[1] / 1e6, "k": k, "method": m}
                if m in MAX_256 and k > 256:
                    results.append({**base, "error": "K > 256 unsupported"})
                    continue
                if m == "sklearn" and base["mpx"] > LARGE_MPX and not args.large_sklearn:
                    results.append({**base, "error": "skipped: large image, see --large-sklearn"})
                    continue
                r = run_case(name, npy, png, k, m, args, work)
                results.append({**base, **r})
                print(
                    f"   {name:14s} K={k:<4d} {m:13s} {r.get('wall_s', 0):7.2f} s "
                    f"{r.get('rss_mib') or 0:7.0f} MiB  PSNR {r.get('psnr', float('nan')):6.2f}"
                    + (f"  {r['error']}" if r.get("error") else ""),
                    file=sys.stderr,
                    flush=True,
                )
                if args.json:
                    args.json.write_text(json.dumps(results, indent=1, default=str))

    rows = [
        [
            r["image"],
            r["mpx"],
            r["k"],
            r["method"] + (f" ({r['error']})" if r.get("error") else ""),
            r.get("wall_s"),
            r.get("rss_mib"),
            r.get("mse"),
            r.get("psnr"),
            r.get("algo_s"),
            r.get("iters"),
        ]
        for r in results
    ]
    print()
    print(
        md_table(["image", "Mpx", "K", "method", "wall s", "peak RSS MiB", "MSE", "PSNR dB", "algo s", "iters"], rows)
    )
    s = summary(results, ks)
    if s:
        print("\n## Summary per K\n")
        print(s)
    print(f"\n(total {time.perf_counter() - t_start:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 1 if any(r.get("error", "").startswith(("rc=", "timeout", "recon")) for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
