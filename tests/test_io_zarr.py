"""Zarr images (bigquant.io.zarr_image): v2 and v3 arrays and one-array groups read exactly, and
the Zarr v3 writer's round trip."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr
from conftest import random_image

from bigquant.io import read_image, write_image


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


def test_write_zarr_round_trip(tmp_path, astronaut):
    # Irregular chunks are made regular so each dask chunk is exactly one zarr chunk.
    image = da.from_array(astronaut, chunks=((100, 200, 212), (256, 256), (3,)))
    out = write_image(image, tmp_path / "out.zarr")
    z = zarr.open_array(str(out), mode="r")
    assert z.metadata.zarr_format == 3 and z.chunks == (100, 256, 3)
    assert "zstd" in str(z.compressors).lower()
    np.testing.assert_array_equal(z[...], astronaut)
    np.testing.assert_array_equal(read_image(out).compute(), astronaut)


def test_pixel_sample_reads_only_small_regions_of_a_large_array(tmp_path, monkeypatch):
    """As for a tiled TIFF: the sample of a Zarr input chunked finer than its dask chunks reads
    regions of about WINDOW_SIDE."""
    import sys

    from bigquant import chunking, seeding, sources

    img = np.random.default_rng(4).integers(0, 65535, size=(1024, 1024, 3), dtype=np.uint16)
    arr = zarr.create_array(tmp_path / "in.zarr", shape=img.shape, chunks=(128, 128, 3), dtype=img.dtype)
    arr[...] = img
    x = sources.load(tmp_path / "in.zarr", chunks=(1024, 1024)).x
    reader = sys.modules["bigquant.io.zarr_reader"].ZarrReader
    read: list[tuple[int, ...]] = []
    original = reader.__getitem__

    def counted(self, key):
        block = original(self, key)
        read.append(block.shape)
        return block

    monkeypatch.setattr(reader, "__getitem__", counted)
    sample = seeding.sample_pixels(x, 1000, 5, max_blocks=2)
    side = chunking.WINDOW_SIDE
    assert len(read) == 2 and all(r[0] <= side and r[1] <= side for r in read)
    assert sample.shape == (1000, 3)


def test_a_100_gigapixel_inputs_reader_travels_in_the_graph_without_a_size_warning(tmp_path):
    # The reader holds a digest of every stored chunk's stamp; 100 Gpx in 512 x 512 chunks is
    # 381,924 of them. The array has only its metadata: every chunk is stamped as missing.
    import pickle

    import dask
    import distributed  # noqa: F401 - its configuration holds the threshold
    from dask.utils import parse_bytes

    from bigquant.io.zarr_reader import ZarrReader

    side = 316_228
    zarr.create_array(tmp_path / "big.zarr", shape=(side, side, 3), chunks=(512, 512, 3), dtype=np.uint8)
    reader = ZarrReader(str(tmp_path / "big.zarr"), None, "input 'big.zarr'")
    assert reader.stamps.size == 618 * 618
    threshold = parse_bytes(dask.config.get("distributed.admin.large-graph-warning-threshold"))
    assert len(pickle.dumps(reader, protocol=5)) < threshold / 2
