"""The checks of bigquant.io (bigquant.io._checks and the write_image dispatch): each bad input
or output raising the right error with a message that names the problem, and outputs replaced
only with overwrite, and only once the new one is complete."""

from __future__ import annotations

import os

import dask.array as da
import imagecodecs
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from bigquant.errors import InputError, OutputError, ParameterError
from bigquant.io import check_output_path, read_image, write_image


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
