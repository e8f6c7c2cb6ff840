"""PNG and JPEG (bigquant.io.png_jpeg): reading exact pixels within the memory budget, the
decompression-bomb guards, and writing them back."""

from __future__ import annotations

import dask.array as da
import imagecodecs
import numpy as np
import pytest
from PIL import Image

from bigquant.errors import InputError, MemoryBudgetError
from bigquant.io import inspect, read_image, write_image


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


def test_a_jpeg_pillow_cannot_open_is_one_input_error(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff" + b"\x00" * 64)  # sniffed as JPEG by its SOI marker, no header after it
    for read in (inspect, read_image):  # the header's description and the decode open it the same way
        with pytest.raises(InputError, match="broken.jpg.*is not a readable JPEG file"):
            read(path)


def test_pillow_bomb_guard_left_alone(tmp_path, china):
    Image.fromarray(china).save(tmp_path / "x.jpg")
    read_image(tmp_path / "x.jpg")
    assert Image.MAX_IMAGE_PIXELS is not None


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


def test_write_png_over_budget(tmp_path):
    big = da.zeros((4000, 5000, 3), dtype=np.uint8, chunks=(1000, 1000, 3))  # 57 MiB, never computed
    with pytest.raises(MemoryBudgetError, match=r"needs 57\.2 MiB .* 64\.0 MiB .*write \.tif or \.zarr"):
        write_image(big, tmp_path / "big.png", memory_limit="64MiB")
