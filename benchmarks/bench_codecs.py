"""Which lossless codec pipeline should store the labels? Measure, don't guess.

Quantizes real photographs at K (default 32) with bigquant, then encodes the same labels with each
candidate pipeline, chunk by chunk as the store does (the store's own chunks, i.e. the job's,
unless ``--chunks``), on one core, and compares with an optimised indexed PNG of the same labels
(Pillow ``optimize=True``, then ``optipng -o2`` when installed: ``apt-get install optipng``).
"strips W" pipelines shard each chunk into inner chunks of W columns by the chunk's rows
(Zarr's sharding codec): smaller, but slower to read back (the "read MB/s" column); the first
row after the PNGs is the store's default pipeline (``bigquant.store.labels_codecs``).

Run:  python benchmarks/bench_codecs.py [-k 32] [IMAGES...]
      (default images: scikit-learn's and scikit-image's bundled photographs, plus the Debian
      photographs in benchmarks/data/photos/ if fetch_images.sh has been run)

Prints a Markdown table: image, pipeline, bytes, bits per pixel, size relative to the optimised
PNG, encode and read-back MB/s of labels per core; then, per pipeline, the median and largest
relative size over the images, the slowest and median encode speed and the median read speed. For reference it also measures lossless
image codecs with 2-D context models (JPEG-LS, JPEG XL, WebP through imagecodecs), which the
store cannot use: Zarr reads them only after imagecodecs' codecs are registered.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec
from zarr.codecs.numcodecs import BZ2, LZMA, Delta

import bigquant
from bigquant import store as bqstore

HERE = Path(__file__).resolve().parent


def order_palette(codebook: np.ndarray) -> np.ndarray:
    """A permutation of the codebook's rows that gives similar colours nearby indices.

    Neighbouring pixels mostly get similar colours; when those have nearby indices the labels
    might compress better (this script measures whether they do). A greedy nearest-neighbour
    tour from the darkest colour for K <= 4096; beyond that, the order along the first principal
    axis. Returns ``perm`` such that ``codebook[perm]`` is the ordered codebook.
    """
    cb = np.asarray(codebook, dtype=np.float64)
    k = len(cb)
    if k <= 2:
        return np.argsort(cb.sum(1), kind="stable")
    if k > 4096:
        centred = cb - cb.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        proj = centred @ vt[0]
        if proj[np.argmin(cb.sum(1))] > proj.mean():
            proj = -proj
        return np.argsort(proj, kind="stable")
    d = ((cb[:, None, :] - cb[None, :, :]) ** 2).sum(-1)
    perm = [int(np.argmin(cb.sum(1)))]
    used = np.zeros(k, bool)
    used[perm[0]] = True
    for _ in range(k - 1):
        row = np.where(used, np.inf, d[perm[-1]])
        nxt = int(np.argmin(row))
        perm.append(nxt)
        used[nxt] = True
    return np.array(perm)


def default_images() -> list[tuple[str, np.ndarray]]:
    from skimage import data
    from sklearn.datasets import load_sample_image

    out = [
        ("china.jpg", load_sample_image("china.jpg")),
        ("flower.jpg", load_sample_image("flower.jpg")),
        ("astronaut", data.astronaut()),
        ("coffee", data.coffee()),
        ("chelsea", data.chelsea()),
    ]
    photos = HERE / "data" / "photos"
    for p in sorted(photos.glob("*.jpg"))[:4]:
        out.append((p.name, p))
    return out


def candidates():
    # name, function(labels, codebook) -> (labels to store, codecs, strip width or None)
    def plain(level, strip=None):
        return lambda lab, cb: (lab, [BytesCodec(), ZstdCodec(level=level)], strip)

    def ordered(filters, level=3):
        def f(lab, cb):
            perm = order_palette(cb)
            inv = np.argsort(perm).astype(lab.dtype)
            return inv[lab], [*filters, BytesCodec(), ZstdCodec(level=level)], None

        return f

    def gray_bitshuffle(level):
        # Palette tour order, then the Gray code of each position: neighbouring colours differ in
        # one bit, so the high bit planes that bitshuffle separates are smooth where the image is.
        # (A Gray code can exceed K - 1 unless K is a power of two: a measurement, not a store.)
        def f(lab, cb):
            perm = order_palette(cb)
            pos = np.argsort(perm)
            code = (pos ^ (pos >> 1)).astype(lab.dtype)
            return code[lab], [BytesCodec(), BloscCodec(cname="zstd", clevel=level, shuffle="bitshuffle")], None

        return f

    strip = 128
    return [
        # What the store writes: its zstd level with the frame checksum, one chunk per job chunk.
        (
            f"zstd-{bqstore.ZSTD_LEVEL} (the default)",
            lambda lab, cb: (lab, [BytesCodec(), *bqstore.labels_codecs()], None),
        ),
        ("zstd-5", plain(5)),
        ("zstd-9", plain(9)),
        ("zstd-19", plain(19)),
        # Narrow strips: a strip's row is 64-256 labels, so the row above is near for zstd's matches.
        *[(f"zstd-{lv}, strips {strip}", plain(lv, strip)) for lv in (3, 5, 7, 8, 19)],
        ("zstd-8, strips 64", plain(8, 64)),
        ("zstd-8, strips 256", plain(8, 256)),
        (
            "blosc-zstd-5-bitshuffle",
            lambda lab, cb: (lab, [BytesCodec(), BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")], None),
        ),
        ("gray-ordered+blosc-zstd-5-bitshuffle", gray_bitshuffle(5)),
        ("ordered+zstd-3", ordered([])),
        ("ordered+delta+zstd-3", ordered([Delta(dtype="|u1")])),
        ("bz2-9", lambda lab, cb: (lab, [BytesCodec(), BZ2(level=9)], None)),
        ("ordered+bz2-9", lambda lab, cb: (ordered([])(lab, cb)[0], [BytesCodec(), BZ2(level=9)], None)),
        ("bz2-1", lambda lab, cb: (lab, [BytesCodec(), BZ2(level=1)], None)),
        ("lzma-1", lambda lab, cb: (lab, [BytesCodec(), LZMA(preset=1)], None)),
    ]


def image_codecs():
    """For reference only: lossless image codecs with 2-D context models (imagecodecs), on the
    ordered palette's indices as a grey image. No Zarr implementation reads them without
    registering imagecodecs' codecs, so the store cannot use them (it must stay readable by
    zarr alone). Name -> (encode, decode) of one chunk."""
    import imagecodecs

    return {
        "ordered+JPEG-LS (imagecodecs; not a Zarr codec)": (imagecodecs.jpegls_encode, imagecodecs.jpegls_decode),
        "ordered+JPEG XL lossless effort 2 (imagecodecs; not a Zarr codec)": (
            lambda a: imagecodecs.jpegxl_encode(a, lossless=True, effort=2),
            imagecodecs.jpegxl_decode,
        ),
        "WebP lossless method 2 (imagecodecs; not a Zarr codec)": (
            lambda a: imagecodecs.webp_encode(np.dstack([a, a, a]), lossless=True, method=2),
            lambda b: imagecodecs.webp_decode(b)[..., 0],
        ),
    }


def _regions(shape, chunks):
    for r in range(0, shape[0], chunks[0]):
        for c in range(0, shape[1], chunks[1]):
            yield slice(r, r + chunks[0]), slice(c, c + chunks[1])


def encode_chunks(lab: np.ndarray, encode, decode, chunks: tuple[int, int]) -> tuple[int, float]:
    """Bytes and seconds of ``encode`` over the chunks of ``lab``; checks each decodes back."""
    nbytes, dt = 0, 0.0
    for region in _regions(lab.shape, chunks):
        block = np.ascontiguousarray(lab[region])
        t = time.perf_counter()
        data = encode(block)
        dt += time.perf_counter() - t
        nbytes += len(data)
        assert np.array_equal(np.asarray(decode(data)).reshape(block.shape), block), "lossless round trip failed"
    return nbytes, dt


def encode_zarr(lab: np.ndarray, codecs, chunks: tuple[int, int], strip: int | None = None) -> tuple[int, float, float]:
    """Bytes, and seconds of writing and of reading ``lab`` chunk by chunk to and from a Zarr array.

    ``strip``: shard each chunk into inner chunks of ``strip`` columns, the chunk width rounded
    up to a whole number of strips.
    """
    tmp = Path(tempfile.mkdtemp())
    rows, cols = (min(s, n) for s, n in zip(chunks, lab.shape))
    try:
        filters = [c for c in codecs if isinstance(c, Delta)]
        rest = [c for c in codecs if not isinstance(c, (Delta, BytesCodec))]
        layout = {"chunks": (rows, cols)}
        if strip:  # shards a whole number of strips wide (rounded up: a measurement, not a store)
            cols = -(-cols // strip) * strip
            layout = {"chunks": (rows, strip), "shards": (rows, cols)}
        arr = zarr.create_array(
            str(tmp / "l"),
            shape=lab.shape,
            dtype=lab.dtype,
            **layout,
            filters=filters or None,
            compressors=rest,
            fill_value=0,
        )
        arr = arr.with_config({"write_empty_chunks": True})
        t = time.perf_counter()
        for region in _regions(lab.shape, (rows, cols)):
            arr[region] = lab[region]
        dt = time.perf_counter() - t
        nbytes = sum(f.stat().st_size for f in (tmp / "l").rglob("*") if f.is_file() and f.name != "zarr.json")
        back = zarr.open_array(str(tmp / "l"), mode="r")
        t = time.perf_counter()
        parts = [back[region] for region in _regions(lab.shape, (rows, cols))]
        read = time.perf_counter() - t
        for region, part in zip(_regions(lab.shape, (rows, cols)), parts):
            assert np.array_equal(part, lab[region]), "lossless round trip failed"
        return nbytes, dt, read
    finally:
        shutil.rmtree(tmp)


def encode_png(lab: np.ndarray, cb: np.ndarray) -> tuple[int, float, int | None]:
    from PIL import Image

    im = Image.fromarray(lab, mode="P")
    pal = np.zeros((256, 3), np.uint8)
    pal[: len(cb)] = cb[:, :3] if cb.shape[1] >= 3 else np.repeat(cb[:, :1], 3, 1)
    im.putpalette(pal.ravel().tolist())
    buf = io.BytesIO()
    t = time.perf_counter()
    im.save(buf, format="PNG", optimize=True)
    dt = time.perf_counter() - t
    opti = None
    if shutil.which("optipng"):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "l.png"
            p.write_bytes(buf.getvalue())
            subprocess.run(["optipng", "-quiet", "-o2", str(p)], check=True)
            opti = p.stat().st_size
    return len(buf.getvalue()), dt, opti


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="*")
    ap.add_argument("-k", type=int, default=32)
    ap.add_argument(
        "--chunks",
        type=int,
        default=None,
        help="square chunks of this side instead of the store's own (the job's) chunks",
    )
    args = ap.parse_args(argv)
    images = [(Path(p).name, Path(p)) for p in args.images] or default_images()
    rows = []
    totals: dict[str, list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as d:
        for name, src in images:
            store = bigquant.compress(src, Path(d) / f"{name}.bq.zarr", k=args.k)
            lab, cb = store.labels.compute(), store.codebook
            chunks = (args.chunks, args.chunks) if args.chunks else tuple(store.metadata["chunks"])
            n = lab.size
            png, png_dt, opti = encode_png(lab, cb)
            ref = min(png, opti) if opti else png
            nan = float("nan")
            rows.append((name, "indexed PNG (Pillow optimize)", png, png_dt, nan, ref, n))
            if opti:
                rows.append((name, "indexed PNG (optipng -o2)", opti, nan, nan, ref, n))
            for cname, prep in candidates():
                stored, codecs, strip = prep(lab, cb)
                nbytes, dt, read = encode_zarr(stored, codecs, chunks, strip)
                rows.append((name, cname, nbytes, dt, read, ref, n))
                totals.setdefault(cname, []).append((nbytes / ref, n / dt / 1e6, n / read / 1e6))
            ordered = np.argsort(order_palette(cb)).astype(lab.dtype)[lab]
            for cname, (enc, dec) in image_codecs().items():
                nbytes, dt = encode_chunks(ordered if cname.startswith("ordered") else lab, enc, dec, chunks)
                rows.append((name, cname, nbytes, dt, nan, ref, n))
                totals.setdefault(cname, []).append((nbytes / ref, n / dt / 1e6, nan))
    print(
        f"K = {args.k}, chunks {'%d x %d' % (args.chunks, args.chunks) if args.chunks else 'as the store makes them'}; "
        "relative = bytes / best indexed PNG\n"
    )

    def mbs(n, dt):
        return "" if dt != dt else f"{n / dt / 1e6:.0f}"

    print("| image | pipeline | bytes | bits/pixel | relative | encode MB/s | read MB/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, cname, nbytes, dt, read, ref, n in rows:
        print(
            f"| {name} | {cname} | {nbytes:,} | {8 * nbytes / n:.3f} | {nbytes / ref:.3f} | {mbs(n, dt)} | "
            f"{mbs(n, read)} |"
        )
    print(f"\nOver the {len(images)} images:\n")
    print("| pipeline | median relative size | largest | slowest encode MB/s | median encode MB/s | median read MB/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for cname, v in totals.items():
        r = np.array(v)
        read = "" if np.isnan(r[:, 2]).all() else f"{np.median(r[:, 2]):.0f}"
        print(
            f"| {cname} | {np.median(r[:, 0]):.3f} | {r[:, 0].max():.3f} | {r[:, 1].min():.0f} | "
            f"{np.median(r[:, 1]):.0f} | {read} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
