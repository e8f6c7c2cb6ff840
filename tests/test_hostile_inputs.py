"""Hostile inputs, absurd sizes and exit statuses (issue #13): one line on stderr, exit 2, nothing touched.

The table follows tests/test_bad_input.py's contract: exit status 2; exactly one error line on
stderr (argument-parsing errors too: no usage block); no traceback; nothing written or deleted in
the working folder (hidden partial folders included); every input byte-identical afterwards. The
cases here are those a hostile test of the CLI found exiting 0 with a wrong result, or 1 ("a
bug") for something the user can fix, and the absurd sizes around them. Inputs that change while
they are read, a full disk, and the sizes that must work come after the table.
"""

from __future__ import annotations

import contextlib
import io as _io
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from cli_harness import error_line, png_claiming, refused, snapshot, table
from PIL import Image

import bigquant
from bigquant.cli import main
from bigquant.errors import InputError
from bigquant.progress import Pass

pytestmark = pytest.mark.timeout(120)


def _jpeg_bytes(image: np.ndarray, **options) -> bytes:
    buf = _io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", **options)
    return buf.getvalue()


def _eoi_inside_scan(data: bytes, keep_tail: bool) -> bytes:
    """``data`` with an EOI marker half-way through its last scan's entropy-coded data; the rest
    of the scan kept after it (``keep_tail``) or dropped (a file cut short, then closed)."""
    sos = data.rindex(b"\xff\xda")
    mid = (sos + len(data)) // 2
    while data[mid - 1] == 0xFF:  # not between a 0xFF and its stuffed zero
        mid += 1
    return data[:mid] + b"\xff\xd9" + (data[mid:] if keep_tail else b"")


def _tiff_claiming(path: Path, photo: np.ndarray, side: int) -> None:
    """A small real striped TIFF whose ImageWidth and ImageLength tags are patched to ``side``."""
    tifffile.imwrite(path, photo, photometric="rgb")
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        for name in ("ImageWidth", "ImageLength"):
            tag = tags[name]
            fmt = "<I" if tag.dtype == 4 else "<H"
            value = side if tag.dtype == 4 else min(side, 0xFFFF)
            data[tag.valueoffset : tag.valueoffset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    path.write_bytes(bytes(data))


def _make(name: str, d: Path, photo: np.ndarray, template: Path, china: np.ndarray) -> None:
    """Create the input called ``name`` in ``d`` (names are those used in CASES)."""
    if name == "photo.png":
        Image.fromarray(photo).save(d / name)
    elif name == "eoi_mid.jpg":
        (d / name).write_bytes(_eoi_inside_scan(_jpeg_bytes(china), keep_tail=True))
    elif name == "eoi_cut.jpg":
        (d / name).write_bytes(_eoi_inside_scan(_jpeg_bytes(china), keep_tail=False))
    elif name == "eoi_progressive.jpg":
        (d / name).write_bytes(_eoi_inside_scan(_jpeg_bytes(china, progressive=True), keep_tail=True))
    elif name == "eoi_grey.jpg":
        grey = np.ascontiguousarray(china[:, :, 1])
        (d / name).write_bytes(_eoi_inside_scan(_jpeg_bytes(grey), keep_tail=True))
    elif name == "garbage_chunk.zarr":
        zarr.create_array(str(d / name), data=photo, chunks=(32, 32, 3))
        (d / name / "c" / "1" / "2" / "0").write_bytes(b"this is not zstd data" * 3)  # info reads it too
    elif name == "fill_12mpx.zarr":  # 3000 x 4000 RGB, no chunk written: metadata only
        zarr.create_array(str(d / name), shape=(3000, 4000, 3), dtype="uint8", chunks=(1000, 1000, 3))
    elif name == "chunk_1x1.zarr":  # 10^10 chunks of one pixel, none written
        zarr.create_array(str(d / name), shape=(100_000, 100_000, 3), dtype="uint8", chunks=(1, 1, 3))
    elif name == "huge_tiff.tif":
        _tiff_claiming(d / name, photo, 1_000_000)
    elif name == "tall.png":
        (d / name).write_bytes(png_claiming(2**31 - 1, 1))
    elif name == "new\nline.png":
        (d / name).write_text("not an image\n")
    elif name == "zero_rows.png":
        (d / name).write_bytes(png_claiming(0, 10))
    elif name == "zero_size.tif":
        _tiff_claiming(d / name, photo, 0)
    elif name == "good.bq.zarr":
        shutil.copytree(template, d / name)
    else:
        raise ValueError(f"no recipe for {name}")


def _compress(*argv: str) -> list[str]:
    return ["compress", *argv, "-q"]


# (id, inputs to make in the working folder, argv, fragment of the one error line)
CASES = [
    # --- JPEGs whose scan ends early: libjpeg-turbo only warns and fills the rest with grey
    # an EOI marker half-way through the entropy-coded data, the rest of the scan after it
    ("jpeg-eoi-mid-scan", ["eoi_mid.jpg"], _compress("eoi_mid.jpg"), "is damaged: Corrupt JPEG data: premature end"),
    # the file cut half-way through its scan and closed with an EOI (it then looks well-formed)
    ("jpeg-cut-then-eoi", ["eoi_cut.jpg"], _compress("eoi_cut.jpg"), "is damaged: Corrupt JPEG data"),
    # the same in the last scan of a progressive JPEG (the early scans are complete)
    ("jpeg-progressive-eoi", ["eoi_progressive.jpg"], _compress("eoi_progressive.jpg"), "is damaged"),
    # a greyscale JPEG (one component)
    ("jpeg-grey-eoi", ["eoi_grey.jpg"], _compress("eoi_grey.jpg"), "is damaged"),
    # --- a Zarr input with a chunk zarr cannot decode (was exit 1)
    (
        "zarr-garbage-chunk",
        ["garbage_chunk.zarr"],
        _compress("garbage_chunk.zarr", "-k", "4"),
        "cannot read [0:60, 0:80, 0:3] of input",
    ),
    # --- memory budgets that are no size (1e400 is inf as a float: was exit 1), or absurd
    ("memory-1e400", ["photo.png"], _compress("photo.png", "--memory-limit", "1e400"), "memory limit '1e400' is not"),
    ("memory-inf", ["photo.png"], _compress("photo.png", "--memory-limit", "inf"), "memory limit 'inf' is not"),
    ("memory-nan", ["photo.png"], _compress("photo.png", "--memory-limit", "nan"), "memory limit 'nan' is not"),
    ("memory-negative", ["photo.png"], _compress("photo.png", "--memory-limit=-1GB"), "is below the minimum of 64MB"),
    # above any machine (and 1e30 bytes would overflow the budgets derived from it)
    ("memory-1e30", ["photo.png"], _compress("photo.png", "--memory-limit", "1e30"), "is above the largest, 1PiB"),
    # --- compression levels the codec does not have: zstd would fail (exit 1), Deflate clamp silently
    (
        "decode-zarr-level-100",
        ["good.bq.zarr"],
        ["decode", "good.bq.zarr", "-o", "x.zarr", "--compression-level", "100"],
        "zstd compression level must be a whole number from 1 to 22, got 100",
    ),
    (
        "decode-tiff-zlib-level-100",
        ["good.bq.zarr"],
        ["decode", "good.bq.zarr", "-o", "x.tif", "--compression-level", "100"],
        "zlib compression level must be a whole number from 0 to 12, got 100",
    ),
    (
        "decode-tiff-zlib-level-negative",
        ["good.bq.zarr"],
        ["decode", "good.bq.zarr", "-o", "x.tif", "--compression-level", "-1"],
        "from 0 to 12, got -1",
    ),
    (
        "decode-tiff-zstd-level-23",
        ["good.bq.zarr"],
        ["decode", "good.bq.zarr", "-o", "x.tif", "--compression", "zstd", "--compression-level", "23"],
        "zstd compression level must be a whole number from 1 to 22, got 23",
    ),
    # --- chunkings with more tasks than a pass can carry (--chunks 1,1 grew to 6.8 GiB; 16,16 ran >120 s)
    (
        "chunks-1x1-12mpx",
        ["fill_12mpx.zarr"],
        _compress("fill_12mpx.zarr", "--chunks", "1,1"),
        "12,000,000 chunks of 1 x 1 pixels, more than the 4,096 a pass may have",
    ),
    (
        "chunks-16x16-12mpx",
        ["fill_12mpx.zarr"],
        _compress("fill_12mpx.zarr", "--chunks", "16,16"),
        "use chunks of at least 55,55",
    ),
    # the smallest budget allows fewer chunks: their scheduling would take more than half of it
    (
        "chunks-48x48-64mb",
        ["fill_12mpx.zarr"],
        _compress("fill_12mpx.zarr", "--chunks", "48,48", "--memory-limit", "64MB"),
        "more than the 3,906 a pass may have within the memory budget 61.0 MiB",
    ),
    # --- more worker processes than the cores or the budget carry (1000 reached 6.5 GiB starting them)
    ("workers-1000", ["photo.png"], _compress("photo.png", "--workers", "1000"), "--workers 1000 is more than"),
    # --- -k with --codebook: the codebook's size is K, so a -k would be silently ignored
    (
        "k-with-codebook",
        ["photo.png", "good.bq.zarr"],
        _compress("photo.png", "--codebook", "good.bq.zarr", "-k", "8"),
        "give -k or --codebook, not both",
    ),
    # --- a control character in a file name is shown escaped, not as a space
    ("newline-in-name", ["new\nline.png"], _compress("new\nline.png"), "input 'new\\nline.png'"),
    ("newline-missing", [], _compress("gone\tnow.tif"), "input 'gone\\tnow.tif' does not exist"),
    # --- argument errors: one line, no usage block
    ("argparse-seed", ["photo.png"], _compress("photo.png", "--seed", "-1"), "argument --seed"),
    ("argparse-workers", ["photo.png"], _compress("photo.png", "--workers", "0"), "argument --workers"),
    ("argparse-chunks", ["photo.png"], _compress("photo.png", "--chunks", "0,0"), "argument --chunks"),
    (
        "argparse-decode-compression",
        ["good.bq.zarr"],
        ["decode", "good.bq.zarr", "-o", "x.tif", "--compression", "jpeg"],
        "argument --compression: invalid choice: 'jpeg'",
    ),
    # --- absurd sizes, refused from the metadata before any allocation
    # a TIFF whose header claims 10^6 x 10^6 pixels (a 3 TB image): too many chunks for any budget
    (
        "tiff-claims-10e12",
        ["huge_tiff.tif"],
        _compress("huge_tiff.tif"),
        "claims 1000000 x 1000000 pixels in 16,667 strips, but lists 1",
    ),
    # a PNG claiming 2^31 - 1 rows (the most PNG allows) of one pixel: 6 GiB to decode whole
    ("png-2e31-rows", ["tall.png"], _compress("tall.png"), "convert it to a tiled TIFF or Zarr"),
    # zero-size images from their headers: a PNG IHDR of 10 x 0 (libpng warned, then failed: two
    # lines), a TIFF of 0 x 0
    ("png-zero-rows", ["zero_rows.png"], _compress("zero_rows.png"), "IHDR header says 10 x 0 pixels"),
    ("tiff-zero-size", ["zero_size.tif"], _compress("zero_size.tif"), "cannot read input 'zero_size.tif'"),
    # info INPUT times a few chunks of a Zarr input: a garbage one among them (was exit 1)
    ("info-garbage-chunk", ["garbage_chunk.zarr"], ["info", "garbage_chunk.zarr"], "Zstd decompression error"),
    # a Zarr array stored in 10^10 chunks of one pixel: a file to open per pixel, every pass
    ("zarr-chunk-shape-1", ["chunk_1x1.zarr"], _compress("chunk_1x1.zarr"), "is stored in 10,000,000,000 chunks"),
]


@table(CASES)
def test_hostile_input_one_line_exit_2_nothing_touched(
    tmp_path, monkeypatch, capsys, photo_array, template_store, china, case, make, argv, message
):
    monkeypatch.chdir(tmp_path)
    for name in make:
        _make(name, tmp_path, photo_array, template_store, china)
    # Every case runs with -q or fails before any progress: the error line is all there is.
    refused(capsys, argv, tmp_path, message, case)


@pytest.mark.parametrize(
    "workers, budget, message",
    [
        # a worker process with bigquant's kernels loaded holds about 250 MiB before any data
        # (benchmarks/README.md, "Limits on chunks and workers"): 1 GiB holds four of them
        (5, "1GiB", "the memory budget 1.0 GiB holds 4 worker processes of 256.0 MiB); use at most 4"),
        # the least budget still runs one worker
        (2, "64MB", "the memory budget 61.0 MiB holds 1 worker processes of 256.0 MiB); use at most 1"),
    ],
)
def test_workers_beyond_the_memory_budget_are_refused(tmp_path, monkeypatch, capsys, china, workers, budget, message):
    import bigquant.chunking

    monkeypatch.setattr(bigquant.chunking, "available_cores", lambda: 16)  # memory binds, not cores
    monkeypatch.chdir(tmp_path)
    Image.fromarray(china).save(tmp_path / "china.png")
    argv = _compress("china.png", "--workers", str(workers), "--memory-limit", budget)
    refused(capsys, argv, tmp_path, message, f"workers-{workers}-{budget}")


# --- An input that changes while it is read -----------------------------------------------------


def _change_on_second_pass(path: Path, change):
    """A progress callback that applies ``change(path)`` when the second pass over the input
    starts (the fit has read every chunk once; the label pass reads them again)."""
    passes = []

    def progress(event):
        if isinstance(event, Pass):
            passes.append(event)
            if len(passes) == 2:
                change(path)

    return progress, passes


def _rewrite_chunk(path: Path) -> None:
    zarr.open_array(str(path), mode="r+")[0:32, 0:32] = 0


def _delete_chunk(path: Path) -> None:
    (path / "c" / "1" / "1" / "0").unlink()


def _add_chunk(path: Path) -> None:  # a chunk that was missing (read as the fill value) appears
    zarr.open_array(str(path), mode="r+")[32:64, 64:96] = 200


@pytest.mark.parametrize(
    "change, method",
    [
        (_rewrite_chunk, "auto"),  # a chunk rewritten between the histogram pass and the label pass
        (_delete_chunk, "auto"),  # a chunk deleted: zarr would read the fill value for it
        (_add_chunk, "auto"),  # a missing chunk written
    ],
    ids=["rewritten", "deleted", "added"],
)
def test_zarr_input_changing_while_read_is_refused(tmp_path, photo_array, change, method):
    src = tmp_path / "in.zarr"
    arr = zarr.create_array(str(src), shape=(60, 120, 3), dtype="uint8", chunks=(32, 32, 3), fill_value=7)
    arr[:, :80] = photo_array  # columns 80-119 hold no chunk files: the fill value
    progress, passes = _change_on_second_pass(src, change)
    before = set(tmp_path.iterdir())
    with pytest.raises(InputError, match=r"in.zarr' changed on disk while it was read \(its chunk 'c/"):
        bigquant.compress(src, tmp_path / "out.bq.zarr", k=4, chunks=(32, 32), method=method, progress=progress)
    assert len(passes) >= 2
    assert set(tmp_path.iterdir()) == before  # no store, no partial folder


def _replace_chunk_same_size_same_mtime(path: Path) -> None:
    """Chunk (0, 0) rewritten as a tool that writes atomically does it: a temporary file of the
    same size moved over it by rename, its modification time set to the old one's (as a rewrite
    within the timestamp resolution would leave it). Size and mtime alone cannot see it."""
    chunk = path / "c" / "0" / "0" / "0"
    old = chunk.stat()
    data = chunk.read_bytes()
    tmp = path / "c" / "0" / "0" / ".0.tmp"
    tmp.write_bytes(bytes(255 - b for b in data))  # uncompressed: same size, other pixels
    os.utime(tmp, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(tmp, chunk)
    new = chunk.stat()
    assert (new.st_size, new.st_mtime_ns) == (old.st_size, old.st_mtime_ns)


def test_zarr_chunk_replaced_by_rename_same_size_and_mtime_is_refused(tmp_path, photo_array):
    # The histogram path reads the input again on the label pass: the replaced chunk is caught
    # by its new inode (and status-change time), not by its size or modification time.
    src = tmp_path / "in.zarr"
    # Uncompressed chunks: every full chunk file has the same size, so the rewrite keeps it.
    arr = zarr.create_array(str(src), shape=(60, 120, 3), dtype="uint8", chunks=(32, 32, 3), compressors=None)
    arr[:, :80] = photo_array
    progress, passes = _change_on_second_pass(src, _replace_chunk_same_size_same_mtime)
    before = set(tmp_path.iterdir())
    with pytest.raises(InputError, match=r"in.zarr' changed on disk while it was read \(its chunk 'c/0/0/0'"):
        bigquant.compress(src, tmp_path / "out.bq.zarr", k=4, chunks=(32, 32), progress=progress)
    assert len(passes) >= 2
    assert set(tmp_path.iterdir()) == before  # no store, no partial folder


def test_zarr_input_held_in_memory_by_the_pixel_path_is_read_once(tmp_path, photo_array):
    # An image within a quarter of the budget is decoded once and kept: a chunk rewritten after
    # that read changes nothing, and the store is that of the input as it was first read.
    stores = {}
    for name in ("changed", "pristine"):
        src = tmp_path / f"{name}.zarr"
        arr = zarr.create_array(str(src), shape=(60, 120, 3), dtype="uint8", chunks=(32, 32, 3), fill_value=7)
        arr[:, :80] = photo_array
        progress, passes = _change_on_second_pass(src, _rewrite_chunk if name == "changed" else lambda p: None)
        out = tmp_path / f"{name}.bq.zarr"
        stores[name] = bigquant.compress(src, out, k=4, chunks=(32, 32), method="pixels", progress=progress)
        assert len(passes) >= 2
    a, b = stores["changed"], stores["pristine"]
    assert np.array_equal(a.codebook, b.codebook)
    assert np.array_equal(np.asarray(a.labels), np.asarray(b.labels))


def test_zarr_input_unchanged_reads_as_before(tmp_path, photo_array):
    # The stamps must not refuse a Zarr input that nobody touches, sharded ones included, nor
    # change its pixels: the store decodes to what a plain read of the array gives.
    few = photo_array // 64 * 64  # at most 64 colours, so K=64 reconstructs it exactly
    for name, shards in (("plain.zarr", None), ("sharded.zarr", (32, 32, 3))):
        src = tmp_path / name
        chunks = (16, 16, 3) if shards else (32, 32, 3)
        zarr.create_array(str(src), data=few, chunks=chunks, shards=shards)
        store = bigquant.compress(src, tmp_path / f"{name}.bq.zarr", k=64, chunks=(32, 32))
        assert np.array_equal(store.reconstruct().compute(), few)


# --- A full disk while compress writes its store --------------------------------------------------


@contextlib.contextmanager
def _small_tmpfs(where: Path, size: str):
    where.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    except OSError:
        done = None
    if done is None or done.returncode != 0:
        pytest.skip("needs to mount a tmpfs (root on Linux)")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_disk_full_while_writing_the_store_is_exit_2(tmp_path, capsys, china):
    Image.fromarray(china).save(tmp_path / "china.png")
    with _small_tmpfs(tmp_path / "small", "48k") as small:
        status = main(["compress", str(tmp_path / "china.png"), "-k", "16", "-o", str(small / "c.bq.zarr"), "-q"])
        err = capsys.readouterr().err
        assert status == 2, err
        line = error_line(err)
        assert f"cannot write the store '{small / 'c.bq.zarr'}': No space left on device" in line, line
        assert os.listdir(small) == []  # the partial store is gone


@pytest.mark.parametrize(
    "argv",
    [
        ["compress", "china.png", "-k", "16", "-o", "c.bq.zarr", "-q"],
        ["decode", "done.bq.zarr", "-o", "r.tif"],
        ["decode", "done.bq.zarr", "-o", "r.zarr"],
    ],
    ids=["compress", "decode-tiff", "decode-zarr"],
)
def test_file_size_limit_while_writing_is_exit_2(tmp_path, china, argv):
    """A full disk without a mount (which needs root): ``ulimit -f`` (RLIMIT_FSIZE) below the
    size of the largest file the command writes, SIGXFSZ ignored as a shell's ``ulimit`` user's
    would be, so write() fails with EFBIG. One line, exit 2, nothing left: no output at the
    target, no hidden .partial folder, the inputs untouched."""
    resource = pytest.importorskip("resource")
    import signal
    import sys

    Image.fromarray(china).save(tmp_path / "china.png")
    # Unlimited first (numba's cache is then warm, so the limited run writes only its output):
    # the largest file of the finished store sets the limit below it.
    assert main(["compress", str(tmp_path / "china.png"), "-k", "16", "-o", str(tmp_path / "done.bq.zarr"), "-q"]) == 0
    limit = max(f.stat().st_size for f in (tmp_path / "done.bq.zarr").rglob("*") if f.is_file()) // 2
    before = snapshot(tmp_path)

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = subprocess.run(
        [sys.executable, "-m", "bigquant.cli", *argv],
        cwd=tmp_path,
        preexec_fn=small_files,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 2, r.stderr
    said = [line for line in r.stderr.splitlines() if line.startswith("bigquant")]
    assert "Traceback" not in r.stderr and len(said) == 1, r.stderr
    assert r.stderr.splitlines()[-1] == said[0] and "File too large" in said[0], r.stderr
    assert f"'{argv[argv.index('-o') + 1]}'" in said[0], said[0]
    assert snapshot(tmp_path) == before  # no output, no .partial folder, the inputs as they were


# --- Absurd but valid: these work --------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, k",
    [
        ((1, 1, 3), 16),  # one pixel: K is reduced to 1
        ((2, 3, 3), 65536),  # K far above the 6 pixels
        ((1, 5000, 3), 8),  # one row, many columns (chunks follow the long side)
    ],
    ids=["one-pixel", "k-above-pixels", "one-row"],
)
def test_tiny_and_thin_images_work(tmp_path, capsys, china, shape, k):
    img = np.ascontiguousarray(np.resize(china, shape) // 128 * 128)  # at most 8 colours
    Image.fromarray(img).save(tmp_path / "tiny.png")
    out = tmp_path / "tiny.bq.zarr"
    assert main(["compress", str(tmp_path / "tiny.png"), "-k", str(k), "-o", str(out), "-q"]) == 0, capsys.readouterr()
    assert np.array_equal(bigquant.open(out).reconstruct().compute(), img)  # fewer colours than K: exact


def test_jpeg_with_trailing_bytes_after_eoi_still_works(tmp_path, capsys, china):
    # Data after the EOI (a camera's trailer, a second picture of an MPO) loses no pixels.
    (tmp_path / "trailer.jpg").write_bytes(_jpeg_bytes(china) + b"trailer of some camera\0" * 40)
    assert main(["compress", str(tmp_path / "trailer.jpg"), "-k", "4", "-o", str(tmp_path / "t.bq.zarr"), "-q"]) == 0
    assert "error" not in capsys.readouterr().err
