"""bigquant's pixel path against scikit-learn and faiss on real uint16, float32 and 4-band images.

Usage (after ``bash benchmarks/fetch_images.sh`` and ``python benchmarks/make_pixel_images.py``)::

    python benchmarks/bench_pixels.py                                  # benchmarks/data/pixel/*.tif, K = 32
    python benchmarks/bench_pixels.py --images /work/lab/pixbench/data -k 32 --json out.json
    python benchmarks/bench_pixels.py --methods bigquant --reuse out.json   # peers from an earlier run
    python benchmarks/bench_pixels.py --only _u16.tif --max-images 2

Images: every ``*.tif`` in ``--images`` (``--only SUBSTRING`` keeps those whose name contains
it; ``--max-images N`` keeps the first N per kind u16 / f32 / u16x4).  Methods (``--methods``):

==========  ==================================================================================
sklearn     ``sklearn.cluster.KMeans(K, init="k-means++", n_init=1, random_state=SEED,
            algorithm="lloyd", max_iter=300, tol=1e-4)``: full Lloyd on every pixel, float32
faiss       ``faiss.Kmeans(C, K, niter=20, seed=SEED)`` trained on its default sample (256 points
            per centroid), then ``index.search`` of every pixel, float32
bigquant    ``bigquant compress IN.tif -k K -o OUT.bq.zarr --overwrite --seed SEED --quiet``
==========  ==================================================================================

Each (image, method) is one whole process under ``/usr/bin/time -v`` (``_benchutil.timed_run``)
that starts an interpreter, reads the TIFF (tifffile; bigquant through its own reader), fits and
assigns every pixel: "wall s" and "peak RSS MiB" are that process's.  The sklearn and faiss
workers save labels and codebook; bigquant's are read from its store.  Every codebook is then
cast to the image's dtype in the same way (rounded and clipped for integers; bigquant's store
already holds it so) and the reconstruction ``codebook[labels]`` compared with the original
values in float64: MSE over all pixels and bands, PSNR = 10·log10(peak² / MSE) with peak 65535
for uint16 and 1 for float32.  "Δ dB" is bigquant − sklearn.

``--reuse FILE`` takes the results of methods not run now from an earlier ``--json`` file (same
images and K), so that a second version of bigquant is compared with the same peer runs.

Prints a Markdown table (image, dtype, bands, Mpx, wall s / peak RSS MiB / PSNR of each method,
Δ dB, bigquant ÷ sklearn and ÷ faiss wall time) and the medians; ``--json FILE`` saves every
number.  Run time on 2 shared cores, K = 32, 14.7 Mpx, measured: scikit-learn 73 s (float32,
load 3) to 300 s (4 bands, load 12) an image, faiss 5-20 s, main's bigquant 91-600 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchutil import DATA, OUT, bigquant_cmd, md_table, python, tail  # noqa: E402
from bench_peers import available, best_of, bigquant_info  # noqa: E402

METHODS = ["sklearn", "faiss", "bigquant"]
KINDS = ("u16x4", "u16", "f32")  # file name suffixes of make_pixel_images.py, longest first


def kind_of(path: Path) -> str:
    for kind in KINDS:
        if path.stem.endswith("_" + kind):
            return kind
    return "other"


def peak_of(dtype) -> float:
    import numpy as np

    dt = np.dtype(dtype)
    return float(np.iinfo(dt).max) if dt.kind in "ui" else 1.0


def cast_codebook(codebook, dtype):
    """The codebook as the image's dtype: rounded and clipped for integers."""
    import numpy as np

    dt = np.dtype(dtype)
    cb = np.asarray(codebook, dtype=np.float64)
    if dt.kind in "ui":
        info = np.iinfo(dt)
        return np.clip(np.rint(cb), info.min, info.max).astype(dt)
    return cb.astype(dt)


def mse_of(orig, codebook, labels, block_rows: int = 256) -> float:
    """Mean squared error of ``codebook[labels]`` against ``orig`` in float64, over all pixels
    and bands, in blocks of rows."""
    import numpy as np

    cb = np.asarray(codebook, dtype=np.float64)
    total = 0.0
    for r in range(0, orig.shape[0], block_rows):
        d = orig[r : r + block_rows].astype(np.float64) - cb[labels[r : r + block_rows]]
        total += float(np.einsum("ijk,ijk->", d, d))
    return total / orig.size


# ----------------------------------------------------------------------------- worker side


def worker(args) -> int:
    """One peer method on one image, in this process: labels and codebook to .npy files."""
    import numpy as np
    import tifffile

    img = tifffile.imread(args.input)
    H, W, C = img.shape
    X = np.ascontiguousarray(img.reshape(-1, C), dtype=np.float32)
    del img
    meta: dict = {"method": args.worker}
    t0 = time.perf_counter()
    if args.worker == "sklearn":
        from sklearn.cluster import KMeans

        km = KMeans(
            n_clusters=args.k,
            init="k-means++",
            n_init=1,
            random_state=args.seed,
            algorithm="lloyd",
            max_iter=300,
            tol=1e-4,
        ).fit(X)
        labels, centers = km.labels_, km.cluster_centers_
        meta["iters"] = int(km.n_iter_)
    else:
        import faiss

        km = faiss.Kmeans(C, args.k, niter=args.faiss_niter, seed=args.seed)
        km.train(X)
        labels = km.index.search(X, 1)[1][:, 0]
        centers = km.centroids
        meta["iters"] = args.faiss_niter
    meta["algo_s"] = time.perf_counter() - t0
    dt = np.uint8 if args.k <= 256 else np.uint16
    np.save(args.labels, labels.astype(dt).reshape(H, W))
    np.save(args.codebook, np.asarray(centers, dtype=np.float64))
    Path(args.meta).write_text(json.dumps(meta))
    return 0


# ----------------------------------------------------------------------- orchestrator side


def run_case(tif: Path, method: str, args, work: Path) -> tuple[dict, object, object]:
    """Run one method on one image; return (result, codebook, labels) (None, None on failure)."""
    import numpy as np

    tag = f"{tif.stem}_k{args.k}_{method}"
    log = work / f"{tag}.log"
    store = work / f"{tag}.bq.zarr"
    files = {x: work / f"{tag}.{x}" for x in ("labels.npy", "codebook.npy", "meta.json")}
    if method == "bigquant":
        cmd = [*bigquant_cmd(), "compress", tif, "-k", args.k, "-o", store, "--overwrite"]
        cmd += ["--seed", args.seed, "--quiet", *args.bigquant_arg]
    else:
        cmd = [python(), __file__, "--worker", method, "--input", tif, "--k", args.k, "--seed", args.seed]
        cmd += ["--faiss-niter", args.faiss_niter]
        cmd += ["--labels", files["labels.npy"], "--codebook", files["codebook.npy"], "--meta", files["meta.json"]]
    r = best_of([str(c) for c in cmd], log, args, cleanup=store if method == "bigquant" else None)
    res = {k: r.get(k) for k in ("wall_s", "rss_mib", "rc", "timed_out", "cpu_pct")}
    if r["rc"] != 0 or r["timed_out"]:
        res["error"] = "timeout" if r["timed_out"] else f"rc={r['rc']}"
        print(f"   {tag} FAILED ({res['error']}), log {log}:\n{tail(log, 8)}", file=sys.stderr)
        return res, None, None
    if method == "bigquant":
        import bigquant

        st = bigquant.open(str(store))
        codebook, labels = st.codebook, np.asarray(st.labels.compute())
        info = bigquant_info(store)
        res["iters"] = info.get("iterations")
        res["bigquant_psnr"] = info.get("psnr")
        shutil.rmtree(store, ignore_errors=True)
    else:
        res.update(json.loads(files["meta.json"].read_text()))
        codebook, labels = np.load(files["codebook.npy"]), np.load(files["labels.npy"])
        for f in files.values():
            f.unlink(missing_ok=True)
    return res, codebook, labels


def measure(tif: Path, methods: list[str], args, work: Path, reused: dict) -> dict:
    import numpy as np
    import tifffile

    orig = tifffile.imread(tif)
    row: dict = {
        "image": tif.name,
        "kind": kind_of(tif),
        "dtype": str(orig.dtype),
        "bands": int(orig.shape[2]),
        "mpx": orig.shape[0] * orig.shape[1] / 1e6,
        "k": args.k,
        "methods": {},
    }
    peak = peak_of(orig.dtype)
    for m in METHODS:
        if m not in methods:
            if (tif.name, m) in reused:
                row["methods"][m] = {**reused[(tif.name, m)], "reused": True}
            continue
        res, cb, labels = run_case(tif, m, args, work)
        if cb is not None:
            res["mse"] = mse_of(orig, cast_codebook(cb, orig.dtype), labels)
            res["psnr"] = 10.0 * np.log10(peak**2 / res["mse"]) if res["mse"] > 0 else float("inf")
        row["methods"][m] = res
        print(
            f"   {tif.name:40s} {m:9s} {res.get('wall_s') or 0:7.1f} s {res.get('rss_mib') or 0:6.0f} MiB "
            f"PSNR {res.get('psnr', float('nan')):6.3f}" + (f"  {res['error']}" if res.get("error") else ""),
            file=sys.stderr,
            flush=True,
        )
    return row


def _get(row: dict, m: str, key: str):
    return row["methods"].get(m, {}).get(key)


def table(rows: list[dict]) -> str:
    headers = ["image", "dtype", "bands", "Mpx"]
    for m in METHODS:
        headers += [f"{m} s", f"{m} MiB", f"{m} dB"]
    headers += ["Δ dB (bq − sk)", "bq ÷ sk wall", "bq ÷ faiss wall", "bq iters", "sk iters"]
    out = []
    for r in rows:
        cells = [r["image"], r["dtype"], r["bands"], r["mpx"]]
        for m in METHODS:
            rss = _get(r, m, "rss_mib")
            psnr = _get(r, m, "psnr")
            cells += [
                _get(r, m, "wall_s"),
                None if rss is None else round(rss),
                None if psnr is None else f"{psnr:.3f}",
            ]
            if _get(r, m, "error"):
                cells[-1] = _get(r, m, "error")
        sk, bq = _get(r, "sklearn", "psnr"), _get(r, "bigquant", "psnr")
        cells.append(f"{bq - sk:+.3f}" if bq is not None and sk is not None else "")
        for other in ("sklearn", "faiss"):
            a, b = _get(r, "bigquant", "wall_s"), _get(r, other, "wall_s")
            ok = a and b and not _get(r, "bigquant", "error") and not _get(r, other, "error")
            cells.append(a / b if ok else None)
        cells += [_get(r, "bigquant", "iters"), _get(r, "sklearn", "iters")]
        out.append(cells)
    return md_table(headers, out)


def medians(rows: list[dict]) -> str:
    lines = []
    for kind in sorted({r["kind"] for r in rows}):
        rs = [r for r in rows if r["kind"] == kind]
        parts = []
        for m in METHODS:
            ps = [p for r in rs if (p := _get(r, m, "psnr")) is not None]
            ws = [w for r in rs if (w := _get(r, m, "wall_s")) is not None and not _get(r, m, "error")]
            if ps or ws:
                parts.append(
                    f"{m} {statistics.median(ws) if ws else float('nan'):.1f} s / "
                    f"{statistics.median(ps) if ps else float('nan'):.3f} dB"
                )
        d = [
            b - s
            for r in rs
            if (b := _get(r, "bigquant", "psnr")) is not None and (s := _get(r, "sklearn", "psnr")) is not None
        ]
        extra = f"; Δ dB median {statistics.median(d):+.3f}, worst {min(d):+.3f}" if d else ""
        lines.append(f"- {kind} ({len(rs)} images), medians: " + ", ".join(parts) + extra)
    return "\n".join(lines)


def select_images(args) -> list[Path]:
    """The images of make_pixel_images.py's manifest.tsv in the folder (so that other TIFFs
    there, a gigapixel one say, are left alone), else every ``*_<kind>.tif``."""
    manifest = args.images / "manifest.tsv"
    if manifest.exists():
        with open(manifest) as fh:
            found = [args.images / line.split("\t")[0] for line in fh.read().splitlines()[1:] if line]
    else:
        found = [p for p in args.images.glob("*.tif") if kind_of(p) in KINDS]
    tifs = sorted(p for p in found if p.exists() and (not args.only or args.only in p.name))
    if args.max_images:
        per: dict[str, int] = {}
        keep = []
        for t in tifs:
            per[kind_of(t)] = per.get(kind_of(t), 0) + 1
            if per[kind_of(t)] <= args.max_images:
                keep.append(t)
        tifs = keep
    return sorted(tifs, key=lambda t: (KINDS.index(kind_of(t)) if kind_of(t) in KINDS else 9, t.name))


def worker_main(argv: list[str]) -> int:
    wp = argparse.ArgumentParser(prog="bench_pixels.py --worker")
    wp.add_argument("--worker", choices=("sklearn", "faiss"), required=True)
    for opt in ("--input", "--labels", "--codebook", "--meta"):
        wp.add_argument(opt, required=True)
    wp.add_argument("--k", type=int, required=True)
    wp.add_argument("--seed", type=int, default=0)
    wp.add_argument("--faiss-niter", type=int, default=20)
    return worker(wp.parse_args(argv))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--worker"]:  # internal: one peer on one image, in this process
        return worker_main(argv)
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--images", type=Path, default=DATA / "pixel", help="folder of TIFFs (default benchmarks/data/pixel)"
    )
    ap.add_argument("--only", help="only images whose file name contains this")
    ap.add_argument("--max-images", type=int, help="at most N images of each kind (u16, f32, u16x4)")
    ap.add_argument("-k", type=int, default=32, help="colours (default 32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    ap.add_argument("--faiss-niter", type=int, default=20, help="faiss iterations (default 20)")
    ap.add_argument(
        "--bigquant-arg", action="append", default=[], help="extra option for bigquant compress (repeatable)"
    )
    ap.add_argument("--reuse", type=Path, help="earlier --json file: results of the methods not run now")
    ap.add_argument("--repeat", type=int, default=1, help="run each case N times and keep the fastest (default 1)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per run (default 1800)")
    ap.add_argument("--out", type=Path, default=OUT / "pixels", help="work folder")
    ap.add_argument("--json", type=Path, help="save all results as JSON")
    args = ap.parse_args(argv)

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if bad := [m for m in methods if m not in METHODS]:
        ap.error(f"unknown methods {bad}; choose from {METHODS}")
    why = available(methods)
    for m, w in why.items():
        if w:
            print(f"# skipping {m}: {w}", file=sys.stderr)
    methods = [m for m in methods if not why[m]]
    tifs = select_images(args)
    if not tifs:
        print(f"no TIFFs in {args.images}: run `python benchmarks/make_pixel_images.py`", file=sys.stderr)
        return 2
    reused: dict = {}
    if args.reuse:
        for r in json.loads(args.reuse.read_text())["rows"]:
            if r["k"] == args.k:
                for m, res in r["methods"].items():
                    reused[(r["image"], m)] = res
    args.out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    head = (
        f"# bench_pixels: {os.cpu_count()} CPUs, load average {load:.2f}; K = {args.k}, seed {args.seed}; "
        f"methods run {methods}; bigquant = {' '.join(bigquant_cmd())} {' '.join(args.bigquant_arg)}"
    )
    print(head + ("  (WARNING: machine busy, timings unreliable)" if load > 0.5 else ""))
    t0 = time.perf_counter()
    rows = []
    for tif in tifs:
        rows.append(measure(tif, methods, args, args.out, reused))
        if args.json:
            args.json.write_text(json.dumps({"header": head, "rows": rows}, indent=1, default=str))
    print()
    print(table(rows))
    print()
    print(medians(rows))
    print(f"\n(total {time.perf_counter() - t0:.0f} s; Δ dB = bigquant − sklearn PSNR; ratios of process wall time)")
    failed = any(res.get("error") for r in rows for res in r["methods"].values() if not res.get("reused"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
