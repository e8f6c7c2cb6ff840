"""Time bigquant on a gigapixel TIFF against the I/O floor: wall time and peak RSS per step.

Usage (after ``bash benchmarks/fetch_images.sh`` and ``python benchmarks/make_gigapixel.py``
[``--gigapixels 0.25``])::

    python benchmarks/bench_gigapixel.py                          # benchmarks/data/gigapixel_1.0.tif
    python benchmarks/bench_gigapixel.py --gigapixels 0.25 1.0    # both sizes, then RSS side by side
    python benchmarks/bench_gigapixel.py path/to/image.tif -k 32 --memory-limit 1GiB --keep
    # the pixel path (make_gigapixel_u16.py --kind u16|f32|u16x4 first):
    python benchmarks/bench_gigapixel.py --gigapixels 0.25 --kinds u16 f32 u16x4 --no-decode

For each TIFF, in one run, every step a separate process under ``/usr/bin/time -v``:

0. the TIFF is read once (``cat``-like, untimed) so that every step finds it in the page cache;
1. **read floor** -- ``io_floor.py read``: decode every tile (one thread per CPU, tifffile's
   tile decoder) and write a uint8 Zarr v3 array (H, W), zstd, in chunks a whole number of
   tiles: the least work ``compress`` must do.  Its chunk side is bigquant's own choice
   (``bigquant.chunking.choose_chunks`` for the memory limit) when that is importable, else
   ``--floor-chunks`` (default 2560).  For information the same is also timed through
   ``dask.array.from_zarr(tifffile.imread(..., aszarr=True))`` (``--engine zarr``; it decodes
   on zarr's one event-loop thread), unless ``--no-zarr-floor``;
2. **compress** -- ``bigquant compress IN -k K -o OUT.bq.zarr --overwrite --seed S --quiet
   [--memory-limit M]``;
3. ``bigquant info OUT.bq.zarr --json`` (untimed) for MSE / PSNR / iterations;
4. **decode** -- ``bigquant decode OUT.bq.zarr -o recon.tif --overwrite``;
5. **write floor** -- ``io_floor.py write``: the floor's uint8 array through a 256-colour table
   to a tiled RGB BigTIFF with recon.tif's tile size, compression and predictor (and, for
   Deflate, decode's default level, which the TIFF does not record): the least work ``decode``
   must do.

Prints, per TIFF, a Markdown table -- step, wall s, peak RSS MiB, CPU %, × read floor,
× write floor -- then bigquant's PSNR line and the issue's targets with PASS/FAIL:
compress ≤ 2.5 × read floor and ≤ 120 s for uint8 RGB (the histogram path), ≤ 4 × for uint16
RGB and ≤ 5 × for float32 and 4-band images (the pixel path, issue #15); peak RSS ≤ 2 GiB
(compress and decode); decode ≤ 1.5 × floor (judged against the read floor, as the issue states
it; the write-floor ratio is printed beside it; the write floor writes uint8 RGB, so it is a
floor for decode only of uint8 RGB images).  The read floor's chunks are bigquant's own choice
for the image's bytes per pixel (itemsize × bands).  With several TIFFs a last table puts their
peak RSS side by side, and for each kind of image the ratio of compress's peak RSS at the
largest and smallest size (target: within 10 %).  ``--json FILE`` saves every number.

Outputs go to benchmarks/out/gigapixel/<name>/ and are deleted after each TIFF unless
``--keep`` (1 Gpx needs about 3 GB free there).  Exit status 1 if a step failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchutil import DATA, HERE, OUT, bigquant_cmd, md_table, python, tail, timed_run  # noqa: E402

TARGETS = {
    "compress_x_floor": 2.5,
    "compress_s": 120.0,
    "rss_mib": 2048.0,
    "decode_x_floor": 1.5,
}
#: compress ÷ read floor limit of the pixel path (issue #15), by the image's kind
PIXEL_X_FLOOR = {"u16": 4.0, "f32": 5.0, "u16x4": 5.0}
#: --kinds -> file name suffix: make_gigapixel.py writes gigapixel_<G>.tif (uint8 RGB),
#: make_gigapixel_u16.py gigapixel_<G>_<kind>.tif
KIND_SUFFIX = {"u8": "", "u16": "_u16", "f32": "_f32", "u16x4": "_u16x4"}


def kind_of(info: dict) -> str:
    """u8, u16, f32, u16x4 (or dtype x bands) of a TIFF described by tiff_info."""
    bands = info["shape"][2] if len(info["shape"]) > 2 else 1
    short = {"uint8": "u8", "uint16": "u16", "float32": "f32"}.get(info["dtype"], info["dtype"])
    return short if bands == 3 else f"{short}x{bands}"


def warm_cache(path: Path) -> float:
    """Read the file once so that later steps are not charged for cold disk reads."""
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        while fh.read(64 << 20):
            pass
    return time.perf_counter() - t0


def tiff_info(path: Path) -> dict:
    import tifffile

    with tifffile.TiffFile(path) as tf:
        p = tf.pages[0]
        return {
            "shape": list(p.shape),
            "tile": [p.tilelength, p.tilewidth] if p.is_tiled else None,
            "compression": int(p.compression),
            "compression_name": getattr(p.compression, "name", str(p.compression)),
            "predictor": int(p.predictor),
            "dtype": str(p.dtype),
            "itemsize": int(p.dtype.itemsize),
            "bigtiff": tf.is_bigtiff,
            "bytes": path.stat().st_size,
        }


def floor_chunks(shape, itemsize: int, tile, memory_limit: str | None, fallback: int) -> tuple[tuple[int, int], str]:
    """Chunk shape for the read floor: bigquant's own choice if available (it takes bytes per
    pixel: itemsize × channels)."""
    try:
        from bigquant.chunking import choose_chunks, parse_memory_limit

        ch = choose_chunks(
            tuple(shape[:2]),
            itemsize * (shape[2] if len(shape) > 2 else 1),
            parse_memory_limit(memory_limit),
            tile=tuple(tile) if tile else None,
        )
        return (int(ch[0]), int(ch[1])), "bigquant.chunking.choose_chunks"
    except Exception as exc:  # bigquant missing or its API changed
        return (fallback, fallback), f"--floor-chunks ({type(exc).__name__})"


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def zarr_chunks(store: Path, name: str = "labels"):
    """Chunk shape of an array in a Zarr v3 store, read from its zarr.json (no zarr import)."""
    meta = store / name / "zarr.json"
    if (store / name / "0" / "zarr.json").is_file():  # format 2: labels is a group, level 0 the full size
        meta = store / name / "0" / "zarr.json"
    try:
        m = json.loads(meta.read_text())
        grid = m["chunk_grid"]["configuration"]["chunk_shape"]
        for codec in m.get("codecs", []):
            if codec.get("name") == "sharding_indexed":
                return {"shard": grid, "chunk": codec["configuration"]["chunk_shape"]}
        return {"chunk": grid}
    except Exception:
        return None


def run_one(tif: Path, args) -> dict:
    name = tif.stem
    work = args.out / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    floor_zarr = work / "floor.zarr"
    store = work / "out.bq.zarr"
    recon = work / "recon.tif"
    floor_tif = work / "floor_write.tif"
    res: dict = {"tiff": str(tif), "k": args.k, "steps": {}}

    info = tiff_info(tif)
    res["input"] = info
    H, W = info["shape"][:2]
    res["gigapixels"] = H * W / 1e9
    res["kind"] = kind_of(info)
    print(
        f"\n## {tif.name}: {H} × {W} × {info['shape'][2] if len(info['shape']) > 2 else 1} {info['dtype']}"
        f" ({H * W / 1e9:.3f} Gpx), tile {info['tile']}, {info['compression_name']}, "
        f"{info['bytes'] / 1e6:.0f} MB",
        flush=True,
    )
    res["warm_s"] = warm_cache(tif)

    chunks, how = floor_chunks(info["shape"], info["itemsize"], info["tile"], args.memory_limit, args.floor_chunks)
    res["floor_chunks"] = {"chunks": chunks, "from": how}

    def step(key, cmd):
        r = timed_run(cmd, log=work / f"{key}.log", timeout=args.timeout)
        res["steps"][key] = r
        ok = r["rc"] == 0 and not r["timed_out"]
        print(
            f"   {key:12s} {'ok' if ok else 'FAILED':6s} {r['wall_s']:8.1f} s "
            f"{r.get('rss_mib', float('nan')):8.0f} MiB",
            file=sys.stderr,
            flush=True,
        )
        if not ok:
            print(
                f"   --- {key} failed (rc={r['rc']}{', timed out' if r['timed_out'] else ''}),"
                f" log {r['log']}:\n{tail(r['log'])}",
                file=sys.stderr,
            )
        return ok

    here = str(HERE / "io_floor.py")
    step("read_floor", [python(), here, "read", tif, floor_zarr, "--chunks", *map(str, chunks)])
    if not args.no_zarr_floor:
        step(
            "read_zarr",
            [
                python(),
                here,
                "read",
                tif,
                work / "floor_zarr_engine.zarr",
                "--engine",
                "zarr",
                "--chunks",
                *map(str, chunks),
            ],
        )
        shutil.rmtree(work / "floor_zarr_engine.zarr", ignore_errors=True)

    bq = bigquant_cmd()
    cmd = [*bq, "compress", tif, "-k", str(args.k), "-o", store, "--overwrite", "--seed", str(args.seed)]
    if args.memory_limit:
        cmd += ["--memory-limit", args.memory_limit]
    if not args.verbose:
        cmd += ["--quiet"]
    cmd += args.compress_arg
    compressed = step("compress", cmd)

    if compressed:
        p = subprocess.run([*bq, "info", str(store), "--json"], capture_output=True, text=True)
        try:
            res["info"] = json.loads(p.stdout)
        except json.JSONDecodeError:
            res["info"] = None
            print(
                f"   bigquant info --json gave no JSON (rc={p.returncode}): {(p.stdout + p.stderr)[-500:]}",
                file=sys.stderr,
            )
        res["store_bytes"] = du(store)
        res["labels_chunks"] = zarr_chunks(store)

    decoded = False
    if compressed and not args.no_decode:
        decoded = step("decode", [*bq, "decode", store, "-o", recon, "--overwrite"])
    if decoded:
        res["recon"] = tiff_info(recon)
        if res["recon"]["shape"][:2] != [H, W]:
            print(f"   WARNING: recon.tif shape {res['recon']['shape']} != input {info['shape']}", file=sys.stderr)

    if not args.no_decode and (floor_zarr / "zarr.json").exists():
        wt = res.get("recon") or {
            "tile": info["tile"] or [512, 512],
            "compression": info["compression"],
            "predictor": info["predictor"],
        }
        cmd = [
            python(),
            here,
            "write",
            floor_zarr,
            floor_tif,
            "--tile",
            str((wt["tile"] or [512, 512])[1]),
            "--compression",
            str(wt["compression"]),
        ]
        if wt["predictor"] <= 1:
            cmd.append("--no-predictor")
        if wt["compression"] in (8, 32946) or "DEFLATE" in str(wt.get("compression_name", "")).upper():
            # a TIFF does not record the Deflate level: write the floor at decode's default
            from bigquant.io import TIFF_ZLIB_LEVEL

            cmd += ["--level", str(TIFF_ZLIB_LEVEL)]
        step("write_floor", cmd)

    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    report(res)
    return res


def _ok(flag: bool | None) -> str:
    return "" if flag is None else ("PASS" if flag else "FAIL")


def report(res: dict) -> None:
    st = res["steps"]

    def good(key):
        r = st.get(key)
        return r if r and r["rc"] == 0 and not r["timed_out"] else None

    rf, wf = good("read_floor"), good("write_floor")
    rows = []
    labels = {
        "read_floor": "read floor (TIFF → uint8 zarr)",
        "read_zarr": "(info) same via tifffile zarr store + dask",
        "compress": f"bigquant compress -k {res['k']}",
        "decode": "bigquant decode",
        "write_floor": "write floor (uint8 zarr → TIFF)",
    }
    for key in ("read_floor", "read_zarr", "compress", "decode", "write_floor"):
        r = st.get(key)
        if r is None:
            continue
        failed = r["rc"] != 0 or r["timed_out"]
        wall = r["wall_s"]
        rows.append(
            [
                labels[key] + (" (FAILED)" if failed else ""),
                wall,
                r.get("rss_mib"),
                r.get("cpu_pct"),
                None if failed or not rf else wall / rf["wall_s"],
                None if failed or not wf or key in ("read_floor", "read_zarr", "compress") else wall / wf["wall_s"],
            ]
        )
    print()
    print(md_table(["step", "wall s", "peak RSS MiB", "CPU %", "× read floor", "× write floor"], rows))
    print(
        f"\n(page cache warmed first: {res['warm_s']:.1f} s; read-floor chunks "
        f"{tuple(res['floor_chunks']['chunks'])} from {res['floor_chunks']['from']}"
        + (f"; bigquant labels chunks {res['labels_chunks']}" if res.get("labels_chunks") else "")
        + (f"; store {res['store_bytes'] / 1e6:.0f} MB" if res.get("store_bytes") else "")
        + ")"
    )
    info = res.get("info")
    if info:
        keys = ("k", "iterations", "mse", "psnr")
        skip = set(keys) | {"source", "created", "bigquant_version", "format_version", "complete"}
        extra = [
            f"{k}={v}"
            for k, v in info.items()
            if k not in skip and isinstance(v, (int, float, bool, str)) and len(str(v)) <= 40
        ]
        print(
            f"\nbigquant info: PSNR {info.get('psnr', float('nan')):.2f} dB, MSE "
            f"{info.get('mse', float('nan')):.2f}, k {info.get('k')}, iterations {info.get('iterations')}"
            + (f" ({', '.join(extra[:12])})" if extra else "")
        )

    c, d = good("compress"), good("decode")
    x_floor = PIXEL_X_FLOOR.get(res.get("kind", "u8"), TARGETS["compress_x_floor"])
    checks = [
        (f"compress ≤ {x_floor:g} × read floor", c and rf and c["wall_s"] / rf["wall_s"], x_floor),
        ("compress peak RSS ≤ 2 GiB (MiB)", c and c.get("rss_mib"), TARGETS["rss_mib"]),
    ]
    if res.get("kind", "u8") == "u8":  # the uint8 targets of the histogram path
        checks[1:1] = [("compress ≤ 120 s", c and c["wall_s"], TARGETS["compress_s"])]
    if d:
        checks += [
            ("decode peak RSS ≤ 2 GiB (MiB)", d.get("rss_mib"), TARGETS["rss_mib"]),
            ("decode ≤ 1.5 × read floor", rf and d["wall_s"] / rf["wall_s"], TARGETS["decode_x_floor"]),
        ]
    rows = []
    for label, val, lim in checks:
        val = val if isinstance(val, (int, float)) and val is not True else None
        rows.append([label, val, lim, _ok(None if val is None else val <= lim)])
    if d and wf:
        rows.append(["(info) decode ÷ write floor", d["wall_s"] / wf["wall_s"], None, ""])
    print("\nTargets (from the issue):\n")
    print(md_table(["target", "measured", "limit", "result"], rows))
    res["targets"] = [{"target": r[0], "measured": r[1], "limit": r[2], "result": r[3]} for r in rows]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("tiffs", nargs="*", type=Path, help="TIFF files (default: from --gigapixels)")
    ap.add_argument(
        "--gigapixels",
        nargs="+",
        type=float,
        default=None,
        help="use <data>/gigapixel_<G><suffix>.tif for each G and kind (default 1.0)",
    )
    ap.add_argument(
        "--kinds",
        nargs="+",
        choices=sorted(KIND_SUFFIX),
        default=["u8"],
        help="images for --gigapixels: u8 (make_gigapixel.py), u16, f32, u16x4 (make_gigapixel_u16.py "
        "--kind); default u8",
    )
    ap.add_argument("--data", type=Path, default=DATA, help="folder of the gigapixel TIFFs (default benchmarks/data)")
    ap.add_argument("-k", type=int, default=32, help="colours (default 32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory-limit", help="passed to bigquant compress (default: bigquant's, 1GiB)")
    ap.add_argument(
        "--floor-chunks",
        type=int,
        default=2560,
        help="read-floor chunk side if bigquant.chunking is not importable (default 2560)",
    )
    ap.add_argument(
        "--compress-arg", action="append", default=[], help="extra argument for bigquant compress (repeatable)"
    )
    ap.add_argument("--no-decode", action="store_true", help="skip decode and the write floor")
    ap.add_argument(
        "--no-zarr-floor", action="store_true", help="skip the informational read through tifffile's zarr store"
    )
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per step (default 1800)")
    ap.add_argument("--out", type=Path, default=OUT / "gigapixel", help="work folder")
    ap.add_argument("--keep", action="store_true", help="keep the outputs")
    ap.add_argument("--verbose", action="store_true", help="do not pass --quiet to compress")
    ap.add_argument("--json", type=Path, help="save all results as JSON")
    args = ap.parse_args(argv)

    tiffs = list(args.tiffs)
    if args.gigapixels or not tiffs:
        tiffs += [
            args.data / f"gigapixel_{float(g)!s}{KIND_SUFFIX[kind]}.tif"
            for kind in args.kinds
            for g in (args.gigapixels or [1.0])
        ]
    missing = [t for t in tiffs if not t.exists()]
    if missing:
        raise SystemExit(
            "missing: "
            + ", ".join(map(str, missing))
            + "\nbuild with: python benchmarks/make_gigapixel.py --gigapixels G "
            + "(uint8) or make_gigapixel_u16.py --gigapixels G --kind KIND"
        )

    load = os.getloadavg()[0]
    print(
        f"# bench_gigapixel: bigquant = {' '.join(bigquant_cmd())}; {os.cpu_count()} CPUs; "
        f"k={args.k}, seed={args.seed}, memory limit {args.memory_limit or 'default'}; "
        f"load average {load:.2f}" + ("  (WARNING: machine busy, timings unreliable)" if load > 0.5 else "")
    )
    results = [run_one(t, args) for t in tiffs]

    if len(results) > 1:
        print("\n## Peak RSS by image size\n")
        rows = []
        for r in results:
            s = r["steps"]
            rows.append(
                [
                    Path(r["tiff"]).name,
                    r.get("kind"),
                    r["gigapixels"],
                    *(
                        s[k].get("rss_mib") if k in s else None
                        for k in ("read_floor", "compress", "decode", "write_floor")
                    ),
                    s["compress"]["wall_s"] if "compress" in s else None,
                ]
            )
        print(
            md_table(
                [
                    "image",
                    "kind",
                    "Gpx",
                    "read floor MiB",
                    "compress MiB",
                    "decode MiB",
                    "write floor MiB",
                    "compress s",
                ],
                rows,
            )
        )
        for kind in dict.fromkeys(r.get("kind") for r in results):  # sizes of one kind of image
            peaks = [
                (r["gigapixels"], r["steps"]["compress"].get("rss_mib"))
                for r in results
                if r.get("kind") == kind and "compress" in r["steps"] and r["steps"]["compress"].get("rss_mib")
            ]
            if len(peaks) >= 2:
                (g_lo, lo), (g_hi, hi) = min(peaks), max(peaks)
                ratio = hi / lo
                print(
                    f"\n{kind}: compress peak RSS at {g_hi:.3g} Gpx ÷ at {g_lo:.3g} Gpx: {ratio:.3f} "
                    f"(target: within 10 %) {'PASS' if abs(ratio - 1) <= 0.10 else 'FAIL'}"
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    failed = any(r["rc"] != 0 or r["timed_out"] for res in results for r in res["steps"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
