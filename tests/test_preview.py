"""Pictures of a store: the streamed preview, the palette and the convergence plot."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
from conftest import known_colours_image
from dask.callbacks import Callback
from PIL import Image

import bigquant
from bigquant import preview
from bigquant.errors import OutputError, ParameterError

# --------------------------------------------------------------------------------------------
# helpers and fixtures


def _block_means(img: np.ndarray, f: tuple[int, int]) -> np.ndarray:
    """Reference downsample in memory: f x f block means (float64), trailing rows/cols dropped."""
    fr, fc = f
    r, c = img.shape[0] // fr, img.shape[1] // fc
    x = img[: r * fr, : c * fc].astype(np.float64).reshape(r, fr, c, fc, img.shape[2]).mean(axis=(1, 3))
    return x


def _as_rgb8(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x


def _find(big: np.ndarray, small: np.ndarray) -> tuple[int, int] | None:
    """Top-left corner where ``small`` appears exactly inside ``big``, or None."""
    code = lambda a: (a[..., 0].astype(np.int64) << 16) | (a[..., 1].astype(np.int64) << 8) | a[..., 2]  # noqa: E731
    bc, sc = code(big), code(small)
    values, counts = np.unique(bc, return_counts=True)
    freq = dict(zip(values.tolist(), counts.tolist()))
    # anchor on the pixel of ``small`` whose colour is rarest in ``big``: few candidates to check
    i, j = min(np.ndindex(sc.shape), key=lambda ij: freq.get(int(sc[ij]), 0))
    h, w = sc.shape
    for r, c in np.argwhere(bc == sc[i, j]):
        r0, c0 = r - i, c - j
        if (
            0 <= r0 <= bc.shape[0] - h
            and 0 <= c0 <= bc.shape[1] - w
            and np.array_equal(bc[r0 : r0 + h, c0 : c0 + w], sc)
        ):
            return int(r0), int(c0)
    return None


@pytest.fixture(scope="module")
def china_store(tmp_path_factory, china):
    return bigquant.compress(china, tmp_path_factory.mktemp("p") / "china.bq.zarr", k=8)


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory):
    img, _ = known_colours_image(k=6, shape=(157, 203), noise=6.0)
    store = bigquant.compress(img, tmp_path_factory.mktemp("s") / "syn.bq.zarr", k=8, chunks=(40, 50))
    return store, img


# --------------------------------------------------------------------------------------------
# preview


@pytest.mark.parametrize(
    "max_size, with_original",
    [
        ((1200, 1600), True),  # the default: china fits whole, side by side, factor 1
        ((200, 300), True),  # small screen: both panels shrink by a common factor
        ((150, 1000), False),  # one panel, limited by its height
        ((1000, 150), True),  # tall and narrow: the panels are stacked instead
    ],
)
def test_preview_fits_max_size(china_store, china, max_size, with_original):
    img = preview.preview_image(china_store, china if with_original else None, max_size=max_size)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape[0] <= max_size[0] and img.shape[1] <= max_size[1]
    # shrunk no more than needed: an integer factor f leaves at least (f - 1) / f of the room used
    assert max(img.shape[0] / max_size[0], img.shape[1] / max_size[1]) > 0.5 or max_size == (1200, 1600)


def test_preview_china_full_size_is_exact(china_store, china, tmp_path):
    png = tmp_path / "china.png"
    Image.fromarray(china).save(png)
    panels = preview.preview_panels(china_store, png)  # the original read through read_image
    assert [p.factor for p in panels] == [(1, 1), (1, 1)]
    assert np.array_equal(panels[0].image, china)
    assert np.array_equal(panels[1].image, china_store.reconstruct().compute())
    assert [p.title for p in panels] == ["original", f"K=8, PSNR {china_store.metadata['psnr']:.1f} dB"]
    img = preview.preview_image(china_store, png)
    o, r = _find(img, panels[0].image), _find(img, panels[1].image)
    assert o is not None and r is not None and o[0] == r[0] and o[1] < r[1]  # side by side


@pytest.mark.parametrize(
    "max_size",
    [
        (84, 200),  # factor 3 divides neither 157 x 203 nor the (40, 50) chunks: blocks straddle chunks
        (84, 150),  # factor 4 divides the row chunks (40) but not the column chunks (50)
        (84, 130),  # factor 5 divides both chunk sides but not the image: only the trailing trim
    ],
)
def test_panels_equal_block_means_on_ragged_chunks(synthetic_store, max_size):
    store, img = synthetic_store
    panels = preview.preview_panels(store, img, max_size=max_size, titles=False)
    f = panels[0].factor
    assert f == {200: (3, 3), 150: (4, 4), 130: (5, 5)}[max_size[1]] and panels[1].factor == f
    assert np.array_equal(panels[0].image, _as_rgb8(_block_means(img, f)))
    recon = store.reconstruct().compute()
    assert np.array_equal(panels[1].image, _as_rgb8(_block_means(recon, f)))
    # the composed picture holds both panels unchanged, within max_size
    pic = preview.preview_image(store, img, max_size=max_size, titles=False)
    assert pic.shape[0] <= max_size[0] and pic.shape[1] <= max_size[1]
    assert _find(pic, panels[0].image) is not None and _find(pic, panels[1].image) is not None


def test_preview_without_titles_is_smaller_or_equal(synthetic_store):
    store, _ = synthetic_store
    a = preview.preview_image(store, max_size=(300, 400), titles=False)
    b = preview.preview_image(store, max_size=(300, 400))
    assert a.shape[0] < b.shape[0]


def test_uint16_grey_uses_the_data_range(tmp_path):
    rng = np.random.default_rng(0)
    g = (np.linspace(0, 4000, 90)[None, :] + rng.integers(0, 50, (64, 90))).astype(np.uint16)  # 12-bit data
    store = bigquant.compress(g, tmp_path / "g.bq.zarr", k=5)
    hi = store.metadata["data_range"][1]
    (panel,) = preview.preview_panels(store, max_size=(100, 100))
    f = panel.factor
    expected = _block_means(store.reconstruct().compute(), f) * (255.0 / hi)
    assert np.abs(panel.image.astype(int) - _as_rgb8(expected).astype(int)).max() <= 1
    assert panel.image.max() > 200  # not shown near-black by dividing by 65535
    forced = preview.preview_panels(store, max_size=(100, 100), display_range=(0, 65535))[0].image
    assert forced.max() < 20


def test_float_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((40, 60, 4), np.float32)
    rgba[..., 0] = 1.0  # pure red ...
    rgba[..., 3] = np.where(np.arange(60) < 30, 0.0, 1.0)[None, :]  # ... transparent on the left half
    rgba[0, 0, 3] = 0.5  # a data range of 0..1 on every channel
    store = bigquant.compress(rgba, tmp_path / "a.bq.zarr", k=3, bands=["red", "green", "blue", "alpha"])
    (panel,) = preview.preview_panels(store, max_size=(200, 200))
    assert panel.factor == (1, 1)
    assert (panel.image[5:, :30] == 255).all()  # transparent -> white
    assert (panel.image[5:, 30:] == [255, 0, 0]).all()  # opaque red stays red
    # Without band names a fourth band is a plain band, not alpha: the first three are shown.
    plain = bigquant.compress(rgba, tmp_path / "p.bq.zarr", k=3)
    (panel,) = preview.preview_panels(plain, max_size=(200, 200))
    assert (panel.image[5:, :] == [255, 0, 0]).all()


def test_original_must_match_the_store(china_store, china):
    with pytest.raises(ParameterError, match="shape"):
        preview.preview_image(china_store, china[:100])
    with pytest.raises(ParameterError, match="max_size"):
        preview.preview_image(china_store, max_size=(10, 10))


def test_large_image_is_streamed_chunk_by_chunk(tmp_path):
    """A 4000 x 4000 store in (512, 512) chunks: no task holds more than about a chunk."""
    rows = cols = 4000
    yy, xx = np.ogrid[:rows, :cols]
    img = np.empty((rows, cols, 3), np.uint8)
    img[..., 0] = yy // 500 * 30 + xx // 800 * 7
    img[..., 1] = xx // 250 * 15
    img[..., 2] = (yy + xx) // 400 * 12
    init = np.linspace(0, 255, 24).reshape(8, 3)  # a given start and one iteration: the store is what matters
    store = bigquant.compress(
        img, tmp_path / "big.bq.zarr", k=8, chunks=(512, 512), method="pixels", max_iter=1, init=init
    )
    chunk_bytes = 512 * 512 * 3
    assert store.labels.numblocks == (8, 8)

    # the lazy downsample reduces each chunk in its own task, without rechunking
    lazy = preview.downsample(store.reconstruct(), (6, 6), 0.0, 255.0)
    keys = [str(key) for key in dict(lazy.__dask_graph__())]
    assert sum("block_sums" in key for key in keys) == 64 and not any("rechunk" in key for key in keys)

    class Largest(Callback):
        def __init__(self):
            super().__init__()
            self.largest, self.tasks = 0, 0

        def _posttask(self, key, result, dsk, state, id):
            self.tasks += 1
            self.largest = max(self.largest, getattr(result, "nbytes", 0))

    watch = Largest()
    original = da.from_array(img, chunks=(512, 512, 3))
    tracemalloc.start()
    try:
        with watch, dask.config.set(scheduler="sync"):
            panels = preview.preview_panels(store, original, max_size=(400, 600))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    f = panels[0].factor
    assert f[0] >= 10
    small_bytes = panels[0].image.nbytes
    assert watch.tasks > 2 * 64  # every chunk of both images is its own task
    assert watch.largest <= max(2 * chunk_bytes, small_bytes)  # never the 48 MB full image
    # Loading the reconstruction alone would take the image's 48 MB; streamed, the peak is about
    # 10 MB, most of it zarr's reading machinery (a labels.sum() peaks at about the same).
    assert peak < img.nbytes / 3, f"peak traced memory {peak / 1e6:.1f} MB"
    assert np.array_equal(panels[1].image, _as_rgb8(_block_means(store.reconstruct().compute(), f)))


# --------------------------------------------------------------------------------------------
# palette


@pytest.fixture(scope="module")
def frequency_store(tmp_path_factory):
    """Five exact colours covering 40, 25, 17, 10 and 8 % of the pixels (in a scrambled order)."""
    colours = np.array([[200, 30, 30], [30, 160, 40], [20, 40, 200], [230, 200, 40], [120, 40, 160]], np.uint8)
    shares = [17, 40, 8, 25, 10]
    idx = np.repeat(np.arange(5), [s * 60 for s in shares])  # 100 x 60 pixels
    img = colours[np.random.default_rng(0).permutation(idx)].reshape(100, 60, 3)
    store = bigquant.compress(img, tmp_path_factory.mktemp("f") / "freq.bq.zarr", k=5)
    return store, colours, shares


def test_palette_entries_sorted_by_frequency(frequency_store):
    store, colours, shares = frequency_store
    entries = preview.palette_entries(store)
    assert [e.count for e in entries] == sorted((s * 60 for s in shares), reverse=True)
    assert [e.rank for e in entries] == list(range(5))
    by_share = [colours[i].tolist() for i in np.argsort(shares)[::-1]]
    assert [e.colour.tolist() for e in entries] == by_share
    assert abs(sum(e.share for e in entries) - 1) < 1e-12
    assert [e.index for e in preview.palette_entries(store, top=2)] == [e.index for e in entries[:2]]


def test_palette_image_draws_swatches_in_frequency_order(frequency_store):
    store, _, _ = frequency_store
    entries = preview.palette_entries(store)
    img = preview.palette_image(store, swatch=32)
    centres = []
    for e in entries:
        mask = (img == e.colour).all(axis=-1)
        assert mask.sum() == 32 * 32, "each swatch is drawn once, in its exact colour"
        r, c = np.argwhere(mask).mean(axis=0)
        centres.append((c, r))
    # down the columns: ordered by column, then by row
    assert centres == sorted(centres)
    # top=2: only the two most frequent colours get a swatch
    two = preview.palette_image(store, swatch=32, top=2)
    present = [(two == e.colour).all(axis=-1).sum() for e in entries]
    assert present[:2] == [32 * 32] * 2 and present[2:] == [0, 0, 0]


def test_palette_of_65536_entries_stays_small():
    """K = 65536 (uint16 labels): only the top entries are drawn; the rest are summarised."""
    k = 65536
    rng = np.random.default_rng(0)
    fake = bigquant.Store.__new__(bigquant.Store)  # a store's attributes, without files
    fake.path = Path("huge.bq.zarr")
    fake.codebook = rng.integers(0, 65536, (k, 3)).astype(np.uint16)
    fake.labels = None
    fake.metadata = {
        "k": k,
        "shape": [4096, 4096, 3],
        "dtype": "uint16",
        "data_range": [0, 65535],
        "label_counts": rng.integers(0, 1000, k).tolist(),
    }
    img = preview.palette_image(fake)
    assert img.shape[0] * img.shape[1] < 4000 * 4000
    small = preview.palette_image(fake, top=10, swatch=16)
    assert small.shape[0] < 400


def test_palette_refuses_bad_arguments(frequency_store):
    store, _, _ = frequency_store
    with pytest.raises(ParameterError, match="swatch"):
        preview.palette_image(store, swatch=2)
    with pytest.raises(ParameterError, match="top"):
        preview.palette_image(store, top=0)


# --------------------------------------------------------------------------------------------
# convergence


def _curve_pixels(img: np.ndarray) -> np.ndarray:
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return (b > 150) & (b - r > 80) & (g > r)  # the plot's blue, not black, grey or white


@pytest.mark.parametrize("log", [None, True, False])  # automatic, forced log and forced linear axis
def test_convergence_plot_draws_a_curve(china_store, log):
    img = preview.convergence_image(china_store, log=log)
    assert img.shape == (*preview.DEFAULT_PLOT_SIZE, 3) and img.dtype == np.uint8
    assert (img == 255).all(axis=-1).mean() > 0.5  # mostly white background
    assert ((img < 60).all(axis=-1)).sum() > 500  # black axes, ticks and text
    curve = _curve_pixels(img)
    cols = np.flatnonzero(curve.any(axis=0))
    assert cols.max() - cols.min() > 0.6 * img.shape[1]  # the curve spans the plot's width
    assert china_store.metadata["iterations"] > 1
    rows_first, rows_last = (np.flatnonzero(curve[:, c]).mean() for c in (cols.min() + 3, cols.max() - 40))
    assert rows_first < rows_last  # inertia falls: the curve goes down


def test_convergence_single_iteration_and_empty_history(tmp_path):
    img = np.zeros((20, 30, 3), np.uint8)
    img[:, 15:] = 200
    store = bigquant.compress(img, tmp_path / "two.bq.zarr", k=2)
    pic = preview.convergence_image(store)
    assert _curve_pixels(pic).sum() > 10  # at least the marker(s)
    fake = bigquant.Store.__new__(bigquant.Store)
    fake.path, fake.codebook, fake.labels = Path("x.bq.zarr"), np.zeros((1, 3), np.uint8), None
    fake.metadata = {"k": 1, "shape": [2, 2, 3], "dtype": "uint8", "inertia_history": [], "iterations": 0}
    pic = preview.convergence_image(fake)
    assert _curve_pixels(pic).sum() == 0 and (pic < 128).any()  # a message, no curve


# --------------------------------------------------------------------------------------------
# writing


@pytest.mark.parametrize(
    "write, make",
    [
        (lambda s, p, **kw: preview.write_preview(s, p, **kw), lambda s: preview.preview_image(s)),
        (lambda s, p, **kw: preview.write_palette(s, p, **kw), lambda s: preview.palette_image(s)),
        (lambda s, p, **kw: preview.write_convergence(s, p, **kw), lambda s: preview.convergence_image(s)),
    ],
    ids=["preview", "palette", "convergence"],
)
def test_write_png_atomically_and_refuse_overwrite(synthetic_store, tmp_path, write, make):
    store, _ = synthetic_store
    out = tmp_path / "pic.png"
    assert write(store, out) == out
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), make(store))
    before = out.read_bytes()
    with pytest.raises(OutputError, match=r"pic\.png.*--overwrite"):
        write(store, out)
    assert out.read_bytes() == before
    write(store, out, overwrite=True)
    with pytest.raises(ParameterError, match="extension"):
        write(store, tmp_path / "pic.jpg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pic.png"]  # no temporary left behind


def test_existing_output_is_refused_before_any_work(tmp_path):
    out = tmp_path / "taken.png"
    out.write_bytes(b"x")
    with pytest.raises(OutputError, match="taken.png"):
        preview.write_preview(tmp_path / "no-such-store.bq.zarr", out)  # the store is never opened
