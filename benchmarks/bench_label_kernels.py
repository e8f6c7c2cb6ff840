"""Nanoseconds per pixel of the pixel path's labelling kernels, one thread, on real photographs.

For each of three images of ``make_pixel_images.py`` (uint16, float32, 4-band uint16) and each
K, a 1024 x 2048 block and a codebook from four Lloyd steps: the label pass's fused kernel
(``coreset.label_and_sum``; also with the cell table of the block's coreset, "cell table",
at any share of labelled pixels, which the row names), the exact pass's
(``lloyd.lloyd_partials``) and the labelling one (``lloyd.assign_labels``, with the k-d tree
from K = 96 as in a run). With ``--against DIR``
(a checkout of another commit, e.g. ``git worktree add /tmp/old 49a4b33``) the same kernels of
that checkout run beside these on the same blocks, and every output is compared bit for bit.

Run:  python benchmarks/bench_label_kernels.py [--against DIR] [-k 8 32 256]
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import dask.array as da
import numpy as np
import tifffile

from bigquant import coreset

HERE = Path(__file__).resolve().parent
IMAGES = ("Bridge_by_Sander_Klootwijk_u16", "Wine_by_Jakkub_Mede_f32", "Wine_by_Jakkub_Mede_u16x4")


def kernels(root: Path | None):
    """(coreset, lloyd, kdtree) kernel modules of bigquant, or of the checkout at ``root``."""
    if root is None:
        from bigquant._kernels import coreset, kdtree, lloyd

        return coreset, lloyd, kdtree
    pkg = root / "bigquant" / "_kernels"
    spec = importlib.util.spec_from_file_location(
        "other_kernels", pkg / "__init__.py", submodule_search_locations=[str(pkg)]
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules["other_kernels"] = mod
    spec.loader.exec_module(mod)
    return tuple(importlib.import_module(f"other_kernels.{m}") for m in ("coreset", "lloyd", "kdtree"))


def fused(mc, x, cb, labels, table=None):
    """The label pass's kernel of module ``mc``, with the cell table ``table`` (this checkout's
    :class:`bigquant.coreset.CellLabels`) or none; an older kernel takes no table."""
    if mc.label_and_sum.py_func.__code__.co_argcount == 3:
        return mc.label_and_sum(x, cb, labels)
    c = cb.shape[1]
    if table is None:
        return mc.label_and_sum(x, cb, labels, np.empty(0, np.int16), np.zeros(c), np.ones(c), 1)
    return mc.label_and_sum(x, cb, labels, table.table, table.lo, table.scale, table.bits)


def per_pixel(f, n: int) -> float:
    f()
    t = time.perf_counter()
    f()
    f()
    return (time.perf_counter() - t) / 2 / n * 1e9


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=HERE / "data" / "pixel")
    ap.add_argument("--against", type=Path, help="a checkout of another commit to compare with")
    ap.add_argument("-k", type=int, nargs="+", default=[8, 32, 256])
    args = ap.parse_args(argv)
    sets = [("this", kernels(None))] + ([("other", kernels(args.against))] if args.against else [])
    rng = np.random.default_rng(0)
    head = "| image | K | kernel | this ns/px |" + (" other ns/px | identical |" if args.against else "")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for name in IMAGES:
        img = tifffile.imread(args.images / f"{name}.tif")
        x = np.ascontiguousarray(img[:1024, :2048]).reshape(-1, img.shape[-1])
        n, c = x.shape
        kc, kl, _ = sets[0][1]
        for k in args.k:
            cb = x[rng.choice(n, k, replace=False)].astype(np.float64)
            for _ in range(4):
                st = fused(kc, x, cb, np.empty(n, np.uint16))
                cnt, sums = st[:k], st[k + 3 :].reshape(k, c)
                cb[cnt > 0] = sums[cnt > 0] / cnt[cnt > 0, None]
            cells = coreset.coreset(da.from_array(x.reshape(1024, 2048, c), chunks=(256, 2048, c)), x[::37])
            table = coreset.cell_labels(cells, cb, min_share=0.0)
            runs = {}
            for tag, (mc, ml, mt) in sets:
                tree = mt.build(cb) if k >= 96 and c <= 4 else None
                labels = np.empty(n, np.uint16)
                calls = {
                    "label + sum": lambda mc=mc, lab=labels: fused(mc, x, cb, lab),
                    "Lloyd partials": lambda ml=ml, t=tree: ml.lloyd_partials(x, np.empty(0), cb, t),
                    "assign labels": lambda ml=ml, t=tree, lab=labels: ml.assign_labels(x, cb, lab, t),
                }
                if tag == "this" and table is not None:
                    name_t = f"label + sum, cell table ({table.share:.0%} of the pixels)"
                    calls[name_t] = lambda mc=mc, lab=labels: fused(mc, x, cb, lab, table) + table.held
                runs[tag] = {
                    kname: (per_pixel(f, n), np.asarray(f()).copy(), labels.copy()) for kname, f in calls.items()
                }
            for kname, (ns, out, lab) in runs["this"].items():
                row = f"| {name} | {k} | {kname} | {ns:.1f} |"
                if args.against and kname in runs["other"]:
                    ons, oout, olab = runs["other"][kname]
                    same = np.array_equal(out, oout) and np.array_equal(lab, olab)
                    row += f" {ons:.1f} | {'yes' if same else 'NO'} |"
                print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
