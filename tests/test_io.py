"""Tests of bigquant.io: every reader against the bytes it was given, every writer round trip,
and each bad input raising the right error with a message that names the problem."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import cloudpickle
import dask
import dask.array as da
import imagecodecs
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from bigquant import _runtime
from bigquant.errors import InputError, MemoryBudgetError, OutputError, ParameterError
from bigquant.io import check_output_path, read_image, write_image
from bigquant.io.tiff_reader import TiffReader
from bigquant.io.tiff_writer import strip_ranges

RNG = np.random.default_rng(1234)


def random_image(shape, dtype) -> np.ndarray:
    """Random pixels over most of the dtype's range (floats in [0, 1))."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return RNG.random(shape).astype(dtype)
    info = np.iinfo(dtype)
    return RNG.integers(max(info.min, -30000), min(info.max, 60000), size=shape, endpoint=True).astype(dtype)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    """scikit-image's bundled photograph, 512 x 512 x 3 uint8."""
    from skimage import data

    return data.astronaut()


def find_reader(arr: da.Array) -> TiffReader:
    """The TIFF reader object stored in ``arr``'s graph (dask may wrap it in a DataNode)."""
    for value in dict(arr.__dask_graph__()).values():
        value = getattr(value, "value", value)
        if isinstance(value, TiffReader):
            return value
    raise AssertionError("no _TiffReader in the graph")


# ---------------------------------------------------------------------------------------------
# PNG / JPEG
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        # 8-bit RGB photograph: the common case.
        pytest.param(lambda a, c: a, id="rgb8"),
        # Greyscale must come back as (rows, cols, 1).
        pytest.param(lambda a, c: c, id="grey8"),
        # RGBA keeps alpha as a fourth channel.
        pytest.param(lambda a, c: np.dstack([a, c[:, ::-1]]), id="rgba8"),
        # 16-bit RGB: Pillow and imageio silently downcast these to 8 bits.
        pytest.param(lambda a, c: a.astype(np.uint16) * 257 + 3, id="rgb16"),
        # 16-bit greyscale (Pillow mode 'I;16').
        pytest.param(lambda a, c: c.astype(np.uint16) * 200, id="grey16"),
        # Grey + alpha: two channels.
        pytest.param(lambda a, c: np.dstack([c, c[::-1]]), id="grey-alpha"),
    ],
)
def test_png_round_trip_exact(tmp_path, astronaut, camera, make):
    expected = make(astronaut, camera)
    path = tmp_path / "in.png"
    path.write_bytes(imagecodecs.png_encode(expected))
    arr = read_image(path)
    if expected.ndim == 2:
        expected = expected[:, :, None]
    assert arr.shape == expected.shape and arr.dtype == expected.dtype
    assert arr.chunks[2] == (expected.shape[2],)
    np.testing.assert_array_equal(arr.compute(), expected)


def test_png_palette_becomes_rgb_and_rgba(tmp_path, astronaut):
    pal = Image.fromarray(astronaut).quantize(16)
    pal.save(tmp_path / "pal.png")
    pal.save(tmp_path / "pal_t.png", transparency=0)
    rgb = read_image(tmp_path / "pal.png").compute()
    np.testing.assert_array_equal(rgb, np.asarray(pal.convert("RGB")))
    assert read_image(tmp_path / "pal_t.png").shape == (512, 512, 4)


@pytest.mark.parametrize(
    "mode",
    [
        "RGB",  # the usual colour JPEG
        "L",  # greyscale JPEG -> one channel
        "CMYK",  # print JPEGs: converted to RGB, not read as 4 channels
    ],
)
def test_jpeg_read(tmp_path, china, mode):
    path = tmp_path / "in.jpg"
    Image.fromarray(china).convert(mode).save(path, quality=90)
    arr = read_image(path)
    expected = np.asarray(Image.open(path).convert("L" if mode == "L" else "RGB"))
    assert arr.shape == china.shape[:2] + (1 if mode == "L" else 3,)
    np.testing.assert_array_equal(arr.compute(), expected.reshape(arr.shape))


def test_png_chunks_follow_budget(tmp_path, astronaut):
    path = tmp_path / "in.png"
    path.write_bytes(imagecodecs.png_encode(astronaut))
    arr = read_image(path, memory_limit="64MiB", threads=64)
    # 64 MiB shared by 64 threads x 6 copies leaves a chunk far below 512 x 512; MIN_SIDE is 256.
    assert arr.chunks[:2] == ((256, 256), (256, 256))
    assert read_image(path, chunks=(100, 200)).chunks[:2] == ((100,) * 5 + (12,), (200, 200, 112))


def test_kernel_warm_up_ends_with_the_read(tmp_path, astronaut):
    """PNG/JPEG reads set numba up on a thread meanwhile; it never outlives the call, even when
    the input turns out to be bad (a lingering thread would run on into the caller's code)."""
    import threading

    def warm_ups():
        return [t for t in threading.enumerate() if t.name == "bigquant-warm-up"]

    good = tmp_path / "in.png"
    good.write_bytes(imagecodecs.png_encode(astronaut))
    read_image(good)
    assert not warm_ups()
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(InputError):
        read_image(bad)
    assert not warm_ups()


def test_png_over_budget_refused_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    # 3000 x 4000 x 3 = 34 MiB decoded, over half of a 64 MiB budget; zeros compress to almost nothing.
    path.write_bytes(imagecodecs.png_encode(np.zeros((3000, 4000, 3), np.uint8)))
    match = r"big\.png' decodes to 34\.3 MiB.*64\.0 MiB.*tiled TIFF or Zarr"
    with pytest.raises(MemoryBudgetError, match=match):
        read_image(path, memory_limit="64MiB")
    assert read_image(path, memory_limit="128MiB").shape == (3000, 4000, 3)


def test_jpeg_decompression_bomb_becomes_budget_error(tmp_path, china, monkeypatch):
    path = tmp_path / "bomb.jpg"
    Image.fromarray(china).save(path)
    # Pillow refuses images over 2 * MAX_IMAGE_PIXELS; monkeypatch restores the global afterwards.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(MemoryBudgetError, match="bomb.jpg.*too large.*tiled TIFF or Zarr"):
        read_image(path)


def test_pillow_bomb_guard_left_alone(tmp_path, china):
    Image.fromarray(china).save(tmp_path / "x.jpg")
    read_image(tmp_path / "x.jpg")
    assert Image.MAX_IMAGE_PIXELS is not None


# ---------------------------------------------------------------------------------------------
# TIFF
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "channels", "kwargs"),
    [
        # Tiled, deflate: the layout bigquant writes itself.
        (np.uint8, 3, dict(tile=(64, 64), compression="zlib", photometric="rgb")),
        # LZW tiles, as many GIS tools write.
        (np.uint8, 3, dict(tile=(64, 64), compression="lzw", photometric="rgb")),
        # zstd through imagecodecs.
        (np.uint16, 3, dict(tile=(64, 64), compression="zstd", photometric="rgb")),
        # BigTIFF (64-bit offsets).
        (np.uint16, 3, dict(tile=(64, 128), compression="zlib", photometric="rgb", bigtiff=True)),
        # Greyscale -> C=1.
        (np.uint16, 1, dict(tile=(64, 64), compression="zlib", photometric="minisblack")),
        # RGBA with an alpha extrasample -> C=4.
        (np.uint8, 4, dict(tile=(64, 64), photometric="rgb", extrasamples=["unassalpha"])),
        # Floats, including float64, stay floats.
        (np.float32, 3, dict(tile=(32, 48), compression="zlib", photometric="rgb")),
        (np.float64, 1, dict(tile=(64, 64), photometric="minisblack")),
        # Signed and 32-bit integers.
        (np.int16, 3, dict(tile=(64, 64), compression="zlib", photometric="rgb")),
        (np.uint32, 1, dict(tile=(64, 64), photometric="minisblack")),
        (np.int8, 1, dict(tile=(64, 64), photometric="minisblack")),
        # Strips instead of tiles: the strip (rows_per_strip, cols) is the "tile".
        (np.uint8, 3, dict(rowsperstrip=16, compression="zlib", photometric="rgb")),
        # Planar RGB (SYX) is transposed lazily to (rows, cols, C).
        (np.uint8, 3, dict(tile=(64, 64), planarconfig="separate", photometric="rgb", compression="zlib")),
        # Big-endian file: the array comes back in native byte order.
        (np.uint16, 3, dict(tile=(64, 64), photometric="rgb", byteorder=">")),
        # Uncompressed single strip (tifffile's default layout).
        (np.uint8, 3, dict(photometric="rgb")),
    ],
)
def test_tiff_read_exact(tmp_path, dtype, channels, kwargs):
    # 300 x 517 is not a multiple of any tile: the ragged right and bottom edges must be exact.
    expected = random_image((300, 517, channels), dtype)
    data = expected if channels > 1 else expected[:, :, 0]
    if kwargs.get("planarconfig") == "separate":
        data = np.moveaxis(expected, -1, 0)
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, data, **kwargs)
    arr = read_image(path, chunks=(128, 192))
    assert arr.shape == expected.shape and arr.dtype == np.dtype(dtype).newbyteorder("=")
    assert arr.chunks == ((128, 128, 44), (192, 192, 133), (channels,))
    # one tiled page of interleaved samples is decoded tile by tile; any other layout through
    # tifffile's zarr store
    if "tile" in kwargs and kwargs.get("planarconfig") != "separate":
        assert find_reader(arr).mode == "tiles"
    elif "rowsperstrip" in kwargs or "planarconfig" in kwargs:
        assert find_reader(arr).mode == "zarr"
    np.testing.assert_array_equal(arr.compute(), expected)


@pytest.mark.parametrize(
    "compression",
    [
        "jpeg",  # what most whole-slide scanners write
        "jpeg2000",  # Aperio's other choice, decoded through imagecodecs
    ],
)
def test_tiff_lossy_tiles(tmp_path, astronaut, compression):
    path = tmp_path / f"{compression}.tif"
    tifffile.imwrite(path, astronaut, tile=(64, 64), compression=compression, photometric="rgb")
    got = read_image(path).compute()
    assert got.shape == astronaut.shape and got.dtype == np.uint8
    # Lossy: compare with tifffile's own decoding of the same tiles, and loosely with the source.
    np.testing.assert_array_equal(got, tifffile.imread(path))
    assert np.abs(got.astype(int) - astronaut).mean() < 8


@pytest.mark.parametrize(
    ("tile", "expected_chunk"),
    [
        # 64 x 64 tiles: chunks are 256 = 4 tiles (MIN_SIDE bounds them below).
        ((64, 64), (256, 256)),
        # Tiles that do not divide 256: 240 = 5 x 48 and 240 = 3 x 80.
        ((48, 80), (240, 240)),
        # Tiles bigger than MIN_SIDE are read whole: one tile per chunk.
        ((320, 288), (320, 288)),
    ],
)
def test_tiff_chunks_are_whole_tiles(tmp_path, tile, expected_chunk):
    image = random_image((700, 900, 3), np.uint8)
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(path, image, tile=tile, photometric="rgb")
    # A tight budget over many threads makes several chunks per axis.
    arr = read_image(path, memory_limit="64MiB", threads=64)
    assert (arr.chunks[0][0], arr.chunks[1][0]) == expected_chunk
    for sizes, t in zip(arr.chunks[:2], tile):
        assert all(n % t == 0 for n in sizes[:-1])
    np.testing.assert_array_equal(arr.compute(), image)


def test_strip_tiff_chunks_are_whole_strips(tmp_path):
    image = random_image((700, 900, 3), np.uint8)
    path = tmp_path / "strips.tif"
    tifffile.imwrite(path, image, rowsperstrip=24, compression="zlib", photometric="rgb")
    arr = read_image(path, memory_limit="64MiB", threads=64)
    assert arr.chunks[1] == (900,)
    assert all(n % 24 == 0 for n in arr.chunks[0][:-1]) and len(arr.chunks[0]) > 1
    np.testing.assert_array_equal(arr.compute(), image)


def test_huge_single_strip_read_by_memmap(tmp_path):
    image = random_image((700, 900, 3), np.uint8)
    path = tmp_path / "onestrip.tif"
    tifffile.imwrite(path, image, photometric="rgb")  # uncompressed, one strip of 1.8 MB
    arr = read_image(path, memory_limit="64MiB", threads=64)
    assert len(arr.chunks[0]) > 1  # not one chunk of the whole strip
    assert find_reader(arr).mode == "memmap"
    np.testing.assert_array_equal(arr.compute(), image)


def test_compressed_strip_over_budget_refused(tmp_path):
    image = np.zeros((3000, 4000, 3), np.uint8)
    path = tmp_path / "onestrip.tif"
    # One compressed 34 MiB strip cannot be read piecewise and is over half of 64 MiB.
    tifffile.imwrite(path, image, photometric="rgb", compression="zlib", rowsperstrip=3000)
    with pytest.raises(MemoryBudgetError, match=r"blocks of 3000 x 4000 pixels.*tiled TIFF"):
        read_image(path, memory_limit="64MiB")


def test_tiff_graph_is_small_and_picklable(tmp_path):
    image = random_image((1000, 1000, 3), np.uint8)
    path = tmp_path / "many_tiles.tif"
    tifffile.imwrite(path, image, tile=(32, 32), compression="zlib", photometric="rgb")
    arr = read_image(path, chunks=(64, 64))  # 256 chunks
    graph = arr.__dask_graph__()
    for dumps in (pickle.dumps, cloudpickle.dumps):
        assert len(dumps(graph)) < 100_000
        assert len(dumps(dict(graph))) < 100_000  # materialised too
    # No open file or tifffile store hides anywhere in the graph.
    blob = cloudpickle.dumps(dict(graph))
    assert b"ZarrTiffStore" not in blob and b"TiffFile" not in blob and b"BufferedReader" not in blob
    restored = pickle.loads(pickle.dumps(arr))
    np.testing.assert_array_equal(restored[100:300, 500:700].compute(), image[100:300, 500:700])


def test_tiff_graph_runs_in_other_processes(tmp_path):
    image = random_image((300, 517, 3), np.uint16)
    path = tmp_path / "proc.tif"
    tifffile.imwrite(path, image, tile=(64, 64), compression="zlib", photometric="rgb")
    arr = read_image(path, chunks=(128, 128))
    got = arr.compute(scheduler="processes", num_workers=2)
    np.testing.assert_array_equal(got, image)


def test_one_chunk_reads_only_its_tiles(tmp_path):
    image = random_image((512, 512, 3), np.uint8)
    path = tmp_path / "corrupt.tif"
    tifffile.imwrite(path, image, tile=(64, 64), compression="zlib", photometric="rgb")
    with tifffile.TiffFile(path) as tf:
        offsets, counts = tf.pages[0].dataoffsets, tf.pages[0].databytecounts
    # Zero every tile outside the top-left 128 x 128 chunk (tiles are stored row-major, 8 per row).
    raw = bytearray(path.read_bytes())
    for i, (offset, count) in enumerate(zip(offsets, counts)):
        if not (i // 8 < 2 and i % 8 < 2):
            raw[offset : offset + count] = bytes(count)
    path.write_bytes(bytes(raw))
    arr = read_image(path, chunks=(128, 128))
    np.testing.assert_array_equal(arr.blocks[0, 0].compute(), image[:128, :128])
    with pytest.raises(InputError, match=r"cannot read rows .* of input .*corrupt\.tif"):
        arr.compute()


def write_pyramid(path, image, levels=3):
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        opts = dict(tile=(64, 64), photometric="rgb", compression="zlib")
        tw.write(image, subifds=levels - 1, **opts)
        for n in range(1, levels):
            tw.write(image[:: 2**n, :: 2**n], subfiletype=1, **opts)


def test_pyramid_levels(tmp_path, astronaut):
    path = tmp_path / "pyramid.tif"
    write_pyramid(path, astronaut)
    for n in range(3):
        np.testing.assert_array_equal(read_image(path, level=n).compute(), astronaut[:: 2**n, :: 2**n])
    with pytest.raises(ParameterError, match=r"level 3 is out of range.*3 level"):
        read_image(path, level=3)
    with pytest.raises(ParameterError, match="level -1"):
        read_image(path, level=-1)


def test_level_on_a_single_level_input(tmp_path, china):
    Image.fromarray(china).save(tmp_path / "x.png")
    with pytest.raises(ParameterError, match=r"level 1 .* 1 level"):
        read_image(tmp_path / "x.png", level=1)


def test_tiff_channel_pages(tmp_path, astronaut):
    # tifffile writes a (3, rows, cols) minisblack array as three pages, axes 'QYX'.
    path = tmp_path / "pages.tif"
    tifffile.imwrite(path, np.moveaxis(astronaut, -1, 0), photometric="minisblack")
    np.testing.assert_array_equal(read_image(path).compute(), astronaut)


def test_file_changed_after_open(tmp_path, astronaut):
    path = tmp_path / "changing.tif"
    tifffile.imwrite(path, astronaut, tile=(64, 64), photometric="rgb")
    arr = read_image(path)
    tifffile.imwrite(path, astronaut[::-1], tile=(64, 64), photometric="rgb", compression="zlib")
    with pytest.raises(InputError, match="changed on disk"):
        arr.compute()


# ---------------------------------------------------------------------------------------------
# Zarr
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zarr_format", "dtype", "shape"),
    [
        # zarr v3, the format bigquant writes.
        (3, np.uint8, (300, 517, 3)),
        # zarr v2 arrays are still common.
        (2, np.uint16, (300, 517, 3)),
        # v2 big-endian: converted to native order.
        (2, ">u2", (300, 517, 4)),
        # 2-D greyscale -> C=1.
        (3, np.float64, (300, 517)),
        (3, np.float32, (300, 517, 3)),
    ],
)
def test_zarr_read_exact(tmp_path, zarr_format, dtype, shape):
    expected = random_image(shape, np.dtype(dtype).newbyteorder("="))
    path = tmp_path / "img.zarr"
    z = zarr.create_array(str(path), shape=shape, chunks=(50, 70) + shape[2:], dtype=dtype, zarr_format=zarr_format)
    z[...] = expected
    arr = read_image(path, memory_limit="64MiB", threads=64)
    expected = expected.reshape(shape[:2] + (-1,))
    assert arr.shape == expected.shape and arr.dtype == expected.dtype
    assert arr.chunks[0][0] % 50 == 0 and arr.chunks[1][0] % 70 == 0 and len(arr.chunks[2]) == 1
    np.testing.assert_array_equal(arr.compute(), expected)


def test_zarr_group_with_one_array(tmp_path, astronaut):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("image", shape=astronaut.shape, chunks=(128, 128, 3), dtype="u1")[...] = astronaut
    np.testing.assert_array_equal(read_image(tmp_path / "g.zarr").compute(), astronaut)
    # Any directory name works, and so does the path of the member.
    np.testing.assert_array_equal(read_image(tmp_path / "g.zarr" / "image").compute(), astronaut)


# ---------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------


def _zarr(path, shape, dtype="u1", name=None):
    if name is None:
        zarr.create_array(str(path), shape=shape, dtype=dtype)
    else:
        zarr.open_group(str(path), mode="a").create_array(name, shape=shape, dtype=dtype)


def _truncate(src, dst, fraction=0.5):
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])


def make_bad(kind: str, d, china):
    """Create the bad input ``kind`` under ``d`` and return its path."""
    png = d / "ok.png"
    png.write_bytes(imagecodecs.png_encode(china))
    jpg = d / "ok.jpg"
    Image.fromarray(china).save(jpg)
    tif = d / "ok.tif"
    tifffile.imwrite(tif, china, tile=(64, 64), compression="zlib", photometric="rgb")
    p = d / {"dir": "plain", "bmp": "x.bmp", "zarrfile": "x.zarr"}.get(kind, kind)
    if kind == "missing.png":
        pass
    elif kind in ("empty.png", "empty.jpg", "empty.tif"):
        p.write_bytes(b"")
    elif kind in ("text.png", "text.jpg", "text.tif"):
        p.write_text("this is not an image\n")
    elif kind == "truncated.png":
        _truncate(png, p)
    elif kind == "truncated.jpg":
        _truncate(jpg, p)
    elif kind == "truncated-late.jpg":
        _truncate(jpg, p, 0.9)
    elif kind == "truncated.tif":
        _truncate(tif, p)
    elif kind == "png-as.jpg":
        p.write_bytes(png.read_bytes())
    elif kind == "dir":
        p.mkdir()
        (p / "file.txt").write_text("x")
    elif kind == "bmp":
        Image.fromarray(china).save(p)
    elif kind == "zarrfile":
        p.write_text("x")
    elif kind == "several.zarr":
        _zarr(p, (10, 10, 3), name="a")
        _zarr(p, (10, 10, 3), name="b")
    elif kind == "store.zarr":
        _zarr(p, (10, 10), "u2", name="labels")
        _zarr(p, (4, 3), "f4", name="codebook")
    elif kind == "emptygroup.zarr":
        zarr.open_group(str(p), mode="w")
    elif kind == "chfirst.zarr":
        _zarr(p, (3, 40, 50))
    elif kind == "bool.zarr":
        _zarr(p, (10, 10, 3), "bool")
    elif kind == "complex.zarr":
        _zarr(p, (10, 10, 3), "complex64")
    elif kind == "int64.zarr":
        _zarr(p, (10, 10, 3), "int64")
    elif kind == "1d.zarr":
        _zarr(p, (100,))
    elif kind == "4d.zarr":
        _zarr(p, (1, 10, 10, 3))
    elif kind == "zero.zarr":
        _zarr(p, (0, 10, 3))
    elif kind == "zstack.tif":
        stack = np.zeros((5, 30, 40), np.uint16)
        tifffile.imwrite(p, stack, photometric="minisblack", metadata={"axes": "ZYX"})
    elif kind == "pages.tif":
        tifffile.imwrite(p, np.zeros((7, 30, 40), np.uint8), photometric="minisblack")
    elif kind == "tcyx.tif":
        tifffile.imwrite(p, np.zeros((2, 3, 30, 40), np.uint8), ome=True, metadata={"axes": "TCYX"})
    elif kind == "bool.tif":
        tifffile.imwrite(p, np.zeros((30, 40), bool))
    elif kind == "complex.tif":
        tifffile.imwrite(p, np.zeros((30, 40), np.complex64))
    else:
        raise AssertionError(kind)
    return p


@pytest.mark.parametrize(
    ("kind", "error", "match"),
    [
        # The path must exist.
        ("missing.png", InputError, r"input '.*missing\.png' does not exist"),
        # Zero-byte files of each format.
        ("empty.png", InputError, r"empty\.png' is empty"),
        ("empty.jpg", InputError, r"empty\.jpg' is empty"),
        ("empty.tif", InputError, r"empty\.tif' is empty \(0 bytes\)"),
        # Text files wearing an image extension: the content is no known format, whatever the name.
        ("text.png", InputError, r"text\.png' \(extension '\.png'\) is not an image bigquant can read"),
        ("text.jpg", InputError, r"text\.jpg' \(extension '\.jpg'\) is not an image .*TIFF .*PNG, JPEG"),
        ("text.tif", InputError, r"text\.tif' \(extension '\.tif'\) is not an image bigquant can read"),
        # Truncated files must error, not come back partly grey.
        ("truncated.png", InputError, r"cannot decode input .*truncated\.png"),
        ("truncated.jpg", InputError, r"truncated\.jpg.*[Tt]runcated"),
        # Cut in the entropy-coded data: the header reads fine, decoding must still fail.
        ("truncated-late.jpg", InputError, r"cannot decode input .*truncated-late\.jpg.*truncated"),
        ("truncated.tif", InputError, r"truncated\.tif' is truncated: .* to byte \d+ but the file has \d+"),
        # A directory that is not zarr.
        ("dir", InputError, r"is a directory but not a zarr array or group"),
        # An unknown format (BMP) names its extension and the formats bigquant reads.
        ("bmp", InputError, r"x\.bmp' \(extension '\.bmp'\) is not an image .*SVS, NDPI"),
        # A file named .zarr.
        ("zarrfile", InputError, r"must be a directory"),
        # Ambiguous group: lists the arrays and shows how to pick one.
        ("several.zarr", InputError, r"several arrays \(a, b\); give the path of one, e\.g\. '.*/a'"),
        # bigquant's own output is not an image.
        ("store.zarr", InputError, r"is a bigquant store, not an image; use `bigquant decode`"),
        ("emptygroup.zarr", InputError, r"holds no arrays"),
        # Channels-first zarr without metadata saying so is refused with a hint (--axes CYX), not
        # quantized as 50 'channels'.
        ("chfirst.zarr", InputError, r"shape \(3, 40, 50\).*channels-first.*--axes CYX"),
        # Unsupported dtypes name the dtype and the supported list.
        ("bool.zarr", InputError, r"dtype bool.*supported: uint8, uint16"),
        ("complex.zarr", InputError, r"dtype complex64.*supported"),
        ("int64.zarr", InputError, r"dtype int64.*supported"),
        ("bool.tif", InputError, r"dtype bool.*supported"),
        ("complex.tif", InputError, r"dtype complex64.*supported"),
        # Wrong number of dimensions, quoting the shape; singleton axes are not squeezed away.
        ("1d.zarr", InputError, r"shape \(100,\); expected \(rows, cols\)"),
        ("4d.zarr", InputError, r"shape \(1, 10, 10, 3\); expected"),
        ("zero.zarr", InputError, r"shape \(0, 10, 3\).*no pixels"),
        # Stacks are not colour images.
        ("zstack.tif", InputError, r"shape \(5, 30, 40\) with axes 'ZYX'.*stack"),
        ("pages.tif", InputError, r"shape \(7, 30, 40\) with axes 'QYX'.*stack"),
        ("tcyx.tif", InputError, r"shape \(2, 3, 30, 40\) with axes 'TCYX': more than 3 dimensions"),
    ],
)
def test_bad_inputs(tmp_path, china, kind, error, match):
    path = make_bad(kind, tmp_path, china[:100, :120])
    with pytest.raises(error, match=match) as info:
        read_image(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        # chunks must be a pair of positive integers.
        (dict(chunks=(0, 10)), r"chunks \(0, 10\)"),
        (dict(chunks=(10,)), r"chunks \(10,\)"),
        # The memory limit is parsed before any I/O.
        (dict(memory_limit="1MiB"), r"below the minimum"),
        (dict(level="1"), r"level '1'"),
    ],
)
def test_bad_read_parameters(tmp_path, china, kwargs, match):
    path = tmp_path / "x.png"
    Image.fromarray(china).save(path)
    with pytest.raises(ParameterError, match=match):
        read_image(path, **kwargs)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "dtype", "chunks"),
    [
        # Odd sizes with 256 tiles: partial tiles on the right and bottom, chunks not tile aligned.
        ((300, 517, 3), np.uint8, (100, 150)),
        # Greyscale is written as a 2-D TIFF and read back as C=1.
        ((300, 517, 1), np.uint16, (300, 517)),
        # RGBA (alpha extrasample).
        ((300, 517, 4), np.uint8, (64, 517)),
        # Grey + alpha and five channels (minisblack with extra samples).
        ((70, 90, 2), np.float32, (30, 40)),
        ((70, 90, 5), np.int16, (70, 90)),
        ((40, 60, 3), np.float64, (16, 16)),
    ],
)
def test_write_tiff_round_trip(tmp_path, shape, dtype, chunks):
    image = random_image(shape, dtype)
    out = write_image(da.from_array(image, chunks=chunks + shape[2:]), tmp_path / "out.tif")
    assert out == tmp_path / "out.tif"
    with tifffile.TiffFile(out) as tf:
        assert tf.is_bigtiff and tf.pages[0].is_tiled
        assert (tf.pages[0].tilelength, tf.pages[0].tilewidth) == (256, 256)
        raw = tf.asarray()
    np.testing.assert_array_equal(raw.reshape(shape), image)
    back = read_image(out)
    np.testing.assert_array_equal(back.compute(), image)
    assert sorted(os.listdir(tmp_path)) == ["out.tif"]  # no temporary left behind


def test_write_tiff_streams_strips(tmp_path, monkeypatch):
    # 2000 x 3000 x 3 uint8 is 17 MiB; with a 64 MiB budget each strip is at most 8 MiB.
    image = da.random.randint(0, 255, size=(2000, 3000, 3), chunks=(250, 1000, 3)).astype(np.uint8)
    computed = []
    real_compute = da.Array.compute

    def spy(self, **kw):
        computed.append(self.shape)
        return real_compute(self, **kw)

    monkeypatch.setattr(da.Array, "compute", spy)
    write_image(image, tmp_path / "big.tif", memory_limit="64MiB", compression=None)
    assert all(rows * cols * c <= 8 * 2**20 for rows, cols, c in computed)
    assert sum(rows for rows, _, _ in computed) == 2000  # every row once: strips follow the chunks
    monkeypatch.undo()
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "big.tif"), image.compute())


@pytest.mark.parametrize(
    ("chunks", "max_rows", "tile_rows", "expected"),
    [
        # Several chunk rows fit in a strip: grouped, never split.
        ((100, 100, 100, 50), 256, 64, [(0, 200), (200, 350)]),
        # A chunk row taller than a strip is split into whole tile rows.
        ((600, 100), 256, 64, [(0, 256), (256, 512), (512, 600), (600, 700)]),
        # A strip is at least one tile row however small the budget.
        ((100,), 10, 64, [(0, 64), (64, 100)]),
    ],
)
def test_strip_ranges(chunks, max_rows, tile_rows, expected):
    assert strip_ranges(chunks, max_rows, tile_rows) == expected


def test_write_zarr_round_trip(tmp_path, astronaut):
    # Irregular chunks are made regular so each dask chunk is exactly one zarr chunk.
    image = da.from_array(astronaut, chunks=((100, 200, 212), (256, 256), (3,)))
    out = write_image(image, tmp_path / "out.zarr")
    z = zarr.open_array(str(out), mode="r")
    assert z.metadata.zarr_format == 3 and z.chunks == (100, 256, 3)
    assert "zstd" in str(z.compressors).lower()
    np.testing.assert_array_equal(z[...], astronaut)
    np.testing.assert_array_equal(read_image(out).compute(), astronaut)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        # 8-bit RGB and greyscale PNG.
        ("out.png", lambda a: a),
        ("out.png", lambda a: a[:, :, :1]),
        # 16-bit RGBA PNG keeps all 16 bits.
        ("out.png", lambda a: np.dstack([a, a[:, :, :1]]).astype(np.uint16) * 257),
        # Upper-case extension.
        ("OUT.PNG", lambda a: a),
    ],
)
def test_write_png_exact(tmp_path, astronaut, name, make):
    image = make(astronaut)
    out = write_image(da.from_array(image, chunks=(200, 200, image.shape[2])), tmp_path / name)
    np.testing.assert_array_equal(read_image(out).compute(), image)


def test_write_jpeg(tmp_path, astronaut, camera):
    for image in (astronaut, camera):
        out = write_image(image, tmp_path / "out.jpg", overwrite=True)
        back = read_image(out).compute()
        assert back.shape[:2] == image.shape[:2]
        assert np.abs(back.astype(int) - image.reshape(back.shape)).mean() < 4


@pytest.mark.parametrize(
    ("name", "image", "error", "match"),
    [
        # JPEG is 8-bit only.
        ("o.jpg", np.zeros((10, 10, 3), np.uint16), ParameterError, r"JPEG holds uint8 .* not uint16.*\.tif"),
        # JPEG has no alpha.
        ("o.jpeg", np.zeros((10, 10, 4), np.uint8), ParameterError, r"JPEG .* 1 or 3 channels.*with 4"),
        # Floats cannot go to PNG.
        ("o.png", np.zeros((10, 10, 3), np.float32), ParameterError, r"PNG .*float32.*\.tif or \.zarr"),
        ("o.png", np.zeros((10, 10, 5), np.uint8), ParameterError, r"PNG .* 1 to 4 channels.*with 5"),
        # Unknown extension names the allowed ones.
        ("o.bmp", np.zeros((10, 10, 3), np.uint8), ParameterError, r"extension '\.bmp'; supported: \.tif"),
        # Unsupported dtype.
        ("o.tif", np.zeros((10, 10, 3), bool), ParameterError, r"dtype bool"),
    ],
)
def test_write_refusals(tmp_path, name, image, error, match):
    with pytest.raises(error, match=match):
        write_image(image, tmp_path / name)
    assert os.listdir(tmp_path) == []


def test_write_png_over_budget(tmp_path):
    big = da.zeros((4000, 5000, 3), dtype=np.uint8, chunks=(1000, 1000, 3))  # 57 MiB, never computed
    with pytest.raises(MemoryBudgetError, match=r"needs 57\.2 MiB .* 64\.0 MiB .*write \.tif or \.zarr"):
        write_image(big, tmp_path / "big.png", memory_limit="64MiB")


@pytest.mark.parametrize(
    ("compression", "match"),
    [
        # Not a TIFF compression at all.
        ("gzip9", r"compression 'gzip9'"),
        # JPEG tiles need uint8 RGB or grey; this image is RGBA.
        ("jpeg", r"'jpeg' needs uint8 pixels with 1 or 3 channels"),
    ],
)
def test_write_tiff_bad_options(tmp_path, compression, match):
    with pytest.raises(ParameterError, match=match):
        write_image(np.zeros((10, 10, 4), np.uint8), tmp_path / "o.tif", compression=compression)
    with pytest.raises(ParameterError, match=r"multiples of 16"):
        write_image(np.zeros((10, 10, 3), np.uint8), tmp_path / "o.tif", tile=(100, 100))


@pytest.mark.parametrize("name", ["out.tif", "out.zarr", "out.png"])
def test_overwrite(tmp_path, astronaut, name):
    path = tmp_path / name
    write_image(astronaut, path)
    with pytest.raises(OutputError, match=r"out\.\w+' exists; pass --overwrite to replace it"):
        write_image(astronaut[::-1], path)
    np.testing.assert_array_equal(read_image(path).compute(), astronaut)
    write_image(astronaut[::-1], path, overwrite=True)
    np.testing.assert_array_equal(read_image(path).compute(), astronaut[::-1])
    assert os.listdir(tmp_path) == [name]


@pytest.mark.parametrize("name", ["out.tif", "out.zarr"])
def test_failed_write_leaves_old_output(tmp_path, astronaut, name):
    path = tmp_path / name
    write_image(astronaut, path)

    def boom(block):
        raise RuntimeError("worker died")

    failing = da.from_array(astronaut, chunks=(128, 128, 3)).map_blocks(boom, dtype=np.uint8)
    with pytest.raises(RuntimeError, match="worker died"):
        write_image(failing, path, overwrite=True)
    np.testing.assert_array_equal(read_image(path).compute(), astronaut)
    assert os.listdir(tmp_path) == [name]


def test_check_output_path(tmp_path, monkeypatch):
    assert check_output_path(tmp_path / "a.TIFF", overwrite=False) == tmp_path / "a.TIFF"
    with pytest.raises(OutputError, match=r"folder '.*nope' of output .* does not exist"):
        check_output_path(tmp_path / "nope" / "a.tif", overwrite=False)
    with pytest.raises(ParameterError, match=r"extension '\.png'; supported: \.zarr"):
        check_output_path(tmp_path / "a.png", overwrite=False, extensions=(".zarr",))
    (tmp_path / "x.tif").write_bytes(b"keep")
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        check_output_path(tmp_path / "x.tif", overwrite=False)
    assert check_output_path(tmp_path / "x.tif", overwrite=True) == tmp_path / "x.tif"
    assert (tmp_path / "x.tif").read_bytes() == b"keep"  # validation writes nothing
    # Running as root makes every folder writable, so simulate a read-only one.
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(OutputError, match="is not writable"):
        check_output_path(tmp_path / "y.tif", overwrite=False)


def test_tiff_written_by_bigquant_reads_tile_aligned(tmp_path):
    image = random_image((700, 900, 3), np.uint8)
    out = write_image(da.from_array(image, chunks=(300, 300, 3)), tmp_path / "t.tif", tile=(128, 64))
    arr = read_image(out, memory_limit="64MiB", threads=64)
    assert arr.chunks[0][0] % 128 == 0 and arr.chunks[1][0] % 64 == 0
    with dask.config.set(scheduler="threads"):
        np.testing.assert_array_equal(arr.compute(), image)


def test_release_freed_memory_returns_heap_holes_to_the_os():
    """glibc keeps freed small blocks between live ones; the compress steps trim them."""
    import ctypes.util

    if not os.path.exists("/proc/self/statm") or "libc.so.6" not in (ctypes.util.find_library("c") or ""):
        pytest.skip("needs glibc and Linux's /proc")

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    blocks = [np.ones(60_000 // 8) for _ in range(4000)]  # 60 kB each: heap, not mmap
    del blocks[::2]  # about 120 MB of holes between live blocks
    before = rss()
    _runtime.release_freed_memory()
    _runtime.release_freed_memory()  # idempotent
    assert before - rss() > 60 * 2**20, (before, rss())
    del blocks


_MAPPED_FREES = """
import os, sys
import numpy as np
from bigquant import _runtime

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

if sys.argv[1] == "map":
    assert _runtime.map_large_arrays()
first = np.ones((5 << 20) // 8)
del first  # freeing a mapped block raises glibc's own threshold past 5 MiB
blocks = [np.ones((5 << 20) // 8) for _ in range(40)]
before = rss()
del blocks[::2]  # 100 MiB freed between live blocks
print((before - rss()) // 2**20)
"""


@pytest.mark.parametrize("mode", ["map", "default"])
def test_map_large_arrays_returns_freed_arrays_at_once(mode):
    """The ``bigquant`` command has glibc map arrays of 4 MiB and more on their own, so freeing one
    lowers the RSS at once; by default the freed blocks stay in the heap between live ones."""
    import ctypes.util

    if not os.path.exists("/proc/self/statm") or "libc.so.6" not in (ctypes.util.find_library("c") or ""):
        pytest.skip("needs glibc and Linux's /proc")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", _MAPPED_FREES, mode], capture_output=True, text=True, env=env, check=True
    ).stdout
    freed_mib = int(out)
    if mode == "map":
        assert freed_mib > 90, out
    else:
        assert freed_mib < 20, out
