"""I/O floors for bench_gigapixel.py: the least work a chunked compress or decode must do.

Usage::

    # read floor: every tile of a tiled TIFF of 3+ bands -> uint8 Zarr v3 array (H, W), zstd
    python benchmarks/io_floor.py read IMAGE.tif FLOOR.zarr [--chunks 2560 [2560]] [--engine tiles|zarr]

    # write floor: a uint8 Zarr array (H, W) -> tiled RGB BigTIFF through a 256-entry LUT
    python benchmarks/io_floor.py write FLOOR.zarr OUT.tif [--tile 512] [--compression zlib]

``read`` is what ``bigquant compress`` cannot avoid: decode every tile of the input and write
one byte per pixel, a cheap function of the pixel (the maximum of its channels, so every
channel is used; of a uint16 image its high byte, of a float one times 255), to a Zarr v3 array
compressed with zstd (level 3), in chunks that are whole multiples of the tile.  The input is a
tiled uint8, uint16 or float32 TIFF of 3 or more bands.  Two engines:

* ``tiles`` (default; the floor): one thread per CPU, each taking a chunk, reading its tiles
  with ``os.pread`` and decoding them with tifffile's ``TiffPage.decode`` (imagecodecs,
  which releases the GIL), then writing its Zarr chunk;
* ``zarr``: ``dask.array.from_zarr(tifffile.imread(..., aszarr=True))`` on Dask's threaded
  scheduler, then ``da.store``.  Simpler, but zarr 3 runs a store's ``get`` -- and so
  tifffile's tile decoding -- on its single event-loop thread, so it decodes on one core.
  Falls back to this engine for TIFFs that are not tiled, 3+ bands, contiguous samples.

``write`` is what ``bigquant decode`` cannot avoid: read one byte per pixel from a Zarr array,
map it through a 256 x 3 colour table (``codebook[labels]``), and write a tiled RGB BigTIFF
tile by tile (tifffile's thread pool, one thread per CPU, compresses the tiles), a band of
chunk rows at a time.

Each prints one line: ``<mode> <seconds> s <Mpx/s> Mpx/s``.  bench_gigapixel.py runs them
under /usr/bin/time -v as separate processes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def channel_max(block: np.ndarray) -> np.ndarray:
    """Per-pixel maximum of the colour channels (elementwise; ``max(axis=2)`` is ~8x slower)."""
    out = block[..., 0].copy()
    for c in range(1, block.shape[-1]):
        np.maximum(out, block[..., c], out=out)
    return out


def to_byte(m: np.ndarray) -> np.ndarray:
    """One byte per pixel from a channel maximum: uint8 as it is, uint16 its high byte, float
    in [0, 1] scaled by 255 (a cheap function of every value, as ``compress`` must read them)."""
    if m.dtype == np.uint8:
        return m
    if m.dtype == np.uint16:
        return (m >> 8).astype(np.uint8)
    return (np.clip(m, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)


def read_floor_tiles(
    src: str, dst: str, chunks: tuple[int, int], level: int = 3, workers: int | None = None
) -> float | None:
    """Thread-pool tile decoder; returns None if the TIFF is not one it handles."""
    from concurrent.futures import ThreadPoolExecutor

    import tifffile
    import zarr

    t0 = time.perf_counter()
    tf = tifffile.TiffFile(src)
    page = tf.pages[0]
    if (
        not page.is_tiled
        or page.planarconfig != 1
        or page.samplesperpixel < 3
        or page.imagedepth > 1
        or page.dtype not in (np.uint8, np.uint16, np.float32)
    ):
        tf.close()
        return None
    H, W = page.imagelength, page.imagewidth
    th, tw = page.tilelength, page.tilewidth
    ntx = -(-W // tw)
    cr = min(H, max(th, chunks[0] // th * th))
    cc = min(W, max(tw, chunks[1] // tw * tw))
    out = zarr.create_array(
        dst,
        shape=(H, W),
        chunks=(cr, cc),
        dtype="uint8",
        compressors=zarr.codecs.ZstdCodec(level=level),
        overwrite=True,
    )
    offsets, counts = page.dataoffsets, page.databytecounts
    decode, jpegtables = page.decode, page.jpegtables
    fd = os.open(src, os.O_RDONLY)

    def do_chunk(rc):
        r0, c0 = rc
        h, w = min(cr, H - r0), min(cc, W - c0)
        block = np.empty((h, w), np.uint8)
        for y in range(r0, r0 + h, th):
            for x in range(c0, c0 + w, tw):
                i = (y // th) * ntx + x // tw
                seg = decode(os.pread(fd, counts[i], offsets[i]), i, jpegtables=jpegtables)[0]
                hh, ww = min(th, r0 + h - y), min(tw, c0 + w - x)
                block[y - r0 : y - r0 + hh, x - c0 : x - c0 + ww] = to_byte(channel_max(seg[0, :hh, :ww, :]))
        out[r0 : r0 + h, c0 : c0 + w] = block

    cells = [(r, c) for r in range(0, H, cr) for c in range(0, W, cc)]
    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as ex:
        for _ in ex.map(do_chunk, cells):
            pass
    os.close(fd)
    tf.close()
    dt = time.perf_counter() - t0
    print(
        f"read[tiles] {dt:.2f} s {H * W / 1e6 / dt:.1f} Mpx/s  ({H}x{W}, tile {(th, tw)}, "
        f"chunks {(cr, cc)}, {workers or os.cpu_count()} threads)"
    )
    return dt


def read_floor_zarr(src: str, dst: str, chunks: tuple[int, int], level: int = 3) -> float:
    import dask.array as da
    import tifffile
    import zarr

    t0 = time.perf_counter()
    store = tifffile.imread(src, aszarr=True)
    z = zarr.open(store, mode="r")
    if z.ndim != 3:
        raise SystemExit(f"{src}: expected an (H, W, C) image, got shape {z.shape}")
    H, W, C = z.shape
    tile = z.chunks[:2]
    # whole multiples of the TIFF tile, so each tile is decoded by one task
    cr = min(H, max(tile[0], chunks[0] // tile[0] * tile[0]))
    cc = min(W, max(tile[1], chunks[1] // tile[1] * tile[1]))
    x = da.from_zarr(z, chunks=(cr, cc, C))
    y = x.map_blocks(lambda b: to_byte(channel_max(b)), drop_axis=2, dtype=np.uint8)
    out = zarr.create_array(
        dst,
        shape=(H, W),
        chunks=(cr, cc),
        dtype="uint8",
        compressors=zarr.codecs.ZstdCodec(level=level),
        overwrite=True,
    )
    da.store(y, out, lock=False)
    store.close()
    dt = time.perf_counter() - t0
    print(f"read[zarr] {dt:.2f} s {H * W / 1e6 / dt:.1f} Mpx/s  ({H}x{W}x{C}, tile {tile}, chunks {(cr, cc)})")
    return dt


def write_floor(src: str, dst: str, tile: int, compression: str | None, level: int | None, predictor: bool) -> float:
    import tifffile
    import zarr

    t0 = time.perf_counter()
    z = zarr.open_array(src, mode="r")
    H, W = z.shape
    band = max(tile, z.chunks[0] // tile * tile)  # rows read at once: whole chunk rows
    # a smooth colour table, so the image compresses like a quantized photograph
    i = np.arange(256)
    codebook = np.stack([i, 255 - i, 64 + i // 2], axis=1).astype(np.uint8)

    class LazyTile:
        """codebook[labels] of one tile, computed when tifffile's compression thread converts
        it with numpy.ascontiguousarray, so the lookup runs in parallel with compression."""

        __slots__ = ("labels",)

        def __init__(self, labels):
            self.labels = labels

        def __array__(self, dtype=None, copy=None):
            return codebook[self.labels]

    def tiles():
        for r0 in range(0, H, band):
            labels = z[r0 : r0 + band]  # (band, W) uint8
            for tr in range(0, labels.shape[0], tile):
                row = labels[tr : tr + tile]
                for c0 in range(0, W, tile):
                    yield LazyTile(row[:, c0 : c0 + tile])

    kw: dict = {"photometric": "rgb"}
    if compression and compression != "none":
        kw["compression"] = int(compression) if compression.isdigit() else compression
        if level is not None:
            kw["compressionargs"] = {"level": level}
        if predictor and compression.lower() in (
            "zlib",
            "deflate",
            "adobe_deflate",
            "lzw",
            "zstd",
            "5",
            "8",
            "32946",
            "50000",
        ):
            kw["predictor"] = True
    # tifffile's default is TIFF.MAXWORKERS = cpu_count // 2 threads: use all CPUs
    tifffile.imwrite(
        dst,
        data=tiles(),
        shape=(H, W, 3),
        dtype=np.uint8,
        tile=(tile, tile),
        bigtiff=True,
        metadata=None,
        buffersize=32 * 2**20,
        maxworkers=os.cpu_count() or 1,
        **kw,
    )
    dt = time.perf_counter() - t0
    print(f"write {dt:.2f} s {H * W / 1e6 / dt:.1f} Mpx/s  ({H}x{W}, tile {tile}, {compression})")
    return dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("read", help="TIFF tiles -> uint8 Zarr (H, W), zstd")
    r.add_argument("src")
    r.add_argument("dst")
    r.add_argument(
        "--chunks",
        type=int,
        nargs="+",
        default=[2560],
        help="Dask/Zarr chunk rows [cols], rounded down to whole tiles (default 2560)",
    )
    r.add_argument("--level", type=int, default=3, help="zstd level (default 3)")
    r.add_argument(
        "--engine",
        choices=("tiles", "zarr"),
        default="tiles",
        help="tiles: thread pool over tifffile's tile decoder (default); zarr: dask over tifffile's Zarr store",
    )
    r.add_argument("--threads", type=int, help="threads of the tiles engine (default: CPUs)")
    w = sub.add_parser("write", help="uint8 Zarr (H, W) -> tiled RGB BigTIFF")
    w.add_argument("src")
    w.add_argument("dst")
    w.add_argument("--tile", type=int, default=512)
    w.add_argument("--compression", default="zlib", help="tifffile compression name or TIFF tag number (default zlib)")
    w.add_argument("--level", type=int)
    w.add_argument("--no-predictor", action="store_true")
    args = ap.parse_args(argv)
    if args.mode == "read":
        ch = args.chunks if len(args.chunks) == 2 else [args.chunks[0]] * 2
        done = None
        if args.engine == "tiles":
            done = read_floor_tiles(args.src, args.dst, (ch[0], ch[1]), args.level, args.threads)
            if done is None:
                print("not a tiled contiguous TIFF of 3+ bands: using the zarr engine", file=sys.stderr)
        if done is None:
            read_floor_zarr(args.src, args.dst, (ch[0], ch[1]), args.level)
    else:
        write_floor(args.src, args.dst, args.tile, args.compression, args.level, not args.no_predictor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
