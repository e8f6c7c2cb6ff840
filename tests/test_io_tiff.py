"""TIFF (bigquant.io.tiff_input, tiff_reader, tiff_writer): every reader mode against the pixels
it was given, chunks on whole tiles and strips, small picklable graphs, pyramids, and the tiled
BigTIFF writer's round trips and options."""

from __future__ import annotations

import os
import pickle

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pytest
import tifffile
from conftest import random_image
from PIL import Image

from bigquant.errors import InputError, MemoryBudgetError, ParameterError
from bigquant.io import read_image, write_image
from bigquant.io.tiff_reader import TiffReader
from bigquant.io.tiff_writer import strip_ranges


def find_reader(arr: da.Array) -> TiffReader:
    """The TIFF reader object stored in ``arr``'s graph (dask may wrap it in a DataNode)."""
    for value in dict(arr.__dask_graph__()).values():
        value = getattr(value, "value", value)
        if isinstance(value, TiffReader):
            return value
    raise AssertionError("no _TiffReader in the graph")


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


def test_tiff_written_by_bigquant_reads_tile_aligned(tmp_path):
    image = random_image((700, 900, 3), np.uint8)
    out = write_image(da.from_array(image, chunks=(300, 300, 3)), tmp_path / "t.tif", tile=(128, 64))
    arr = read_image(out, memory_limit="64MiB", threads=64)
    assert arr.chunks[0][0] % 128 == 0 and arr.chunks[1][0] % 64 == 0
    with dask.config.set(scheduler="threads"):
        np.testing.assert_array_equal(arr.compute(), image)


def test_pixel_sample_reads_only_small_regions_of_a_large_file(tmp_path, monkeypatch):
    """The initialisation sample of a tiled TIFF reads regions of about WINDOW_SIDE, not whole
    chunks, and is the same on every run."""
    import sys

    from bigquant import chunking, seeding, sources

    rng = np.random.default_rng(3)
    img = rng.integers(0, 65535, size=(1024, 1024, 3), dtype=np.uint16)
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, img, tile=(128, 128), compression="zlib", photometric="rgb")
    x = sources.load(path, chunks=(1024, 1024)).x
    reader = sys.modules["bigquant.io.tiff_reader"].TiffReader
    read: list[tuple[int, int]] = []
    original = reader.__getitem__

    def counted(self, key):
        block = original(self, key)
        read.append(block.shape[:2])
        return block

    monkeypatch.setattr(reader, "__getitem__", counted)
    a = seeding.sample_pixels(x, 1000, 5, max_blocks=2)
    side = chunking.WINDOW_SIDE
    assert read and all(r <= side and c <= side for r, c in read) and len(read) == 2
    assert len(a) == 1000 and a.dtype == np.uint16
    flat = {tuple(p) for p in img.reshape(-1, 3)}
    assert all(tuple(p) in flat for p in a[:50])
    np.testing.assert_array_equal(
        a, seeding.sample_pixels(sources.load(path, chunks=(1024, 1024)).x, 1000, 5, max_blocks=2)
    )
    held = x.persist()
    read.clear()
    seeding.sample_pixels(held, 1000, 5, max_blocks=2)  # in memory: the file is not read again
    assert read == []
