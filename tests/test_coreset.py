"""The pixel path's grid coreset and its exact polish, against NumPy and scikit-learn.

The images are real photographs resampled in floating point (a Lanczos resize of each channel
as float32), so 16-bit values have real low-order bits, never 8-bit x 257.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from PIL import Image
from sklearn.cluster import KMeans

import bigquant
from bigquant import coreset, kmeans, metrics, params, seeding


def _lanczos(rgb: np.ndarray, scale: float) -> np.ndarray:
    """Each channel of ``rgb`` (0..255) resized by ``scale`` with Lanczos, in float32."""
    h, w = rgb.shape[:2]
    size = (round(w * scale), round(h * scale))
    chans = [
        np.asarray(Image.fromarray(rgb[..., i].astype(np.float32), mode="F").resize(size, Image.LANCZOS))
        for i in range(rgb.shape[2])
    ]
    return np.clip(np.stack(chans, axis=-1), 0.0, 255.0)


def _image(kind: str) -> np.ndarray:
    from skimage import data, filters

    rgb = {"astronaut": data.astronaut, "coffee": data.coffee, "chelsea": data.chelsea}[kind.split("-")[0]]()
    f = _lanczos(rgb.astype(np.float32), 0.61)
    if kind.endswith("f32"):
        return (f / 255.0).astype(np.float32)
    u16 = np.rint(f * (65535.0 / 255.0)).astype(np.uint16)
    if kind.endswith("4band"):
        # a real fourth band: the luminance of a blurred copy of the photograph
        lum = filters.gaussian(f.mean(axis=2), sigma=3, preserve_range=True)
        band = np.rint(np.clip(lum, 0, 255) * (65535.0 / 255.0)).astype(np.uint16)
        return np.concatenate([u16, band[..., None]], axis=2)
    return u16


IMAGES = [
    "astronaut-u16",  # uint16 RGB with real low-order bits
    "coffee-f32",  # float32 RGB in [0, 1]
    "chelsea-4band",  # 4-band uint16 stack
]


@pytest.fixture(scope="module", params=IMAGES)
def photo(request) -> np.ndarray:
    return _image(request.param)


def _nearest(px: np.ndarray, cb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = (px * px).sum(1)[:, None] - 2 * px @ cb.T + (cb * cb).sum(1)[None, :]
    lab = d.argmin(1)
    return lab, ((px - cb[lab]) ** 2).sum(1)


def _psnr(img: np.ndarray, cb: np.ndarray) -> float:
    px = img.reshape(-1, img.shape[-1]).astype(np.float64)
    _, err = _nearest(px, cb.astype(np.float64))
    peak = metrics.peak_value(img.dtype, (float(px.min()), float(px.max())))
    return metrics.psnr(float(err.sum()) / px.size, peak)


def test_distinct_values_are_real_16_bit():
    img = _image("astronaut-u16")
    assert all(len(np.unique(img[..., i])) > 4000 for i in range(3))


def test_cells_hold_every_pixel_exactly(photo):
    x = da.from_array(photo, chunks=(97, 130, -1))
    px = photo.reshape(-1, photo.shape[-1]).astype(np.float64)
    sample = seeding.sample_pixels(x, 20_000, 0)
    for budget in (coreset.CORESET_CELLS, 512):  # the default grid, and one coarsened by the merges
        cells = coreset.coreset(x, sample, budget)
        assert len(cells.counts) <= max(budget, 1)
        assert cells.pixels == len(px)
        np.testing.assert_allclose(cells.sums.sum(0), px.sum(0), rtol=1e-12)
        np.testing.assert_allclose(cells.sq.sum(), (px * px).sum(), rtol=1e-12)
        assert cells.scale() == pytest.approx(kmeans.data_scale(px), rel=1e-9)
        cb = seeding.init_centroids(sample, 6, 0)
        # the cells' error for a codebook bounds the pixels' from above
        assert cells.sse(cb) >= _nearest(px, cb)[1].sum() * (1 - 1e-12)
    assert coreset.coreset(x, sample, 512).bits < cells.bits or len(cells.counts) <= 512


def test_fused_label_pass_is_an_exact_lloyd_step(photo):
    x = da.from_array(photo, chunks=(97, 130, -1))
    cb = seeding.init_centroids(seeding.sample_pixels(x, 20_000, 0), 7, 0)
    labels, stats = coreset.label_and_sum(photo, cb)
    (total,) = __import__("dask").compute(kmeans.lloyd_step_graph(x, cb))
    k, c = cb.shape
    np.testing.assert_array_equal(stats[:k], total[:k, c])
    np.testing.assert_allclose(stats[k + 3 :].reshape(k, c), total[:k, :c], rtol=1e-12)
    ref, _ = kmeans.label_block(photo, cb)
    np.testing.assert_array_equal(labels, ref)


@pytest.mark.parametrize("k", [32, 300])
def test_cell_labels_are_the_full_searchs_on_every_point_of_their_cells(photo, k):
    # K = 300 passes the neighbour lists' 24 entries, so some cells compare every centroid
    x = da.from_array(photo, chunks=(97, 130, -1))
    sample = seeding.sample_pixels(x, 20_000, 0)
    cells = coreset.coreset(x, sample)
    cb = seeding.init_centroids(sample, k, 0)
    c = photo.shape[2]
    table = coreset.cell_labels(cells, cb, min_share=0.0)
    assert table is not None and table.bits == min(cells.bits, coreset.TABLE_LOG2 // c)
    # too few pixels in labelled cells (four bands, K = 300): no table, a lookup each costs more
    assert (coreset.cell_labels(cells, cb) is None) == (table.share < coreset.TABLE_MIN_SHARE)
    # by chunks: each leaves its labelled cells' counts and sums out, the table holds them
    parts = [coreset.label_and_sum(photo[r : r + 97], cb, table) for r in range(0, len(photo), 97)]
    labels = np.concatenate([p[0] for p in parts])
    stats = coreset.combine_fused([p[1] for p in parts], k) + table.held
    ref, ref_stats = coreset.label_and_sum(photo, cb)
    np.testing.assert_array_equal(labels, ref)
    np.testing.assert_array_equal(stats[:k], ref_stats[:k])
    np.testing.assert_allclose(stats, ref_stats, rtol=1e-12)
    # a labelled cell's box lies in its centroid's region: all its corners do (the region is
    # convex), each strictly nearer that centroid than any other
    held = np.flatnonzero(table.table >= 0)
    q = (held[:, None] >> (table.bits * np.arange(c))) & ((1 << table.bits) - 1)
    corners = np.array(np.meshgrid(*[[0, 1]] * c, indexing="ij")).reshape(c, -1).T
    for corner in corners:
        pts = table.lo + (q + corner) / table.scale
        d = ((pts[:, None, :] - cb[None]) ** 2).sum(-1)
        own = d[np.arange(len(held)), table.table[held]]
        d[np.arange(len(held)), table.table[held]] = np.inf
        assert (own < d.min(1)).all()
    # the share of pixels in labelled cells is the one the table reports, and most of them at
    # K = 32 in RGB (a finer Voronoi partition at K = 300, and four bands, leave fewer)
    pix = photo.reshape(-1, c).astype(np.float64)
    idx = np.floor((pix - table.lo) * table.scale).astype(np.int64)
    inside = ((idx >= 0) & (idx < (1 << table.bits))).all(1)
    code = (np.clip(idx, 0, (1 << table.bits) - 1) << (table.bits * np.arange(c))).sum(1)
    hit = (inside & (table.table[code] >= 0)).mean()
    assert hit == pytest.approx(table.share, abs=0.01)
    assert hit > {(32, 3): 0.8, (300, 3): 0.35, (32, 4): 0.3, (300, 4): 0.02}[k, c]


def test_pixels_beyond_the_grid_are_searched_and_counted_once(photo):
    # A sample that misses the brightest tenth of each channel: the coreset clips those pixels
    # into its edge cells, which the table may label although the pixels lie outside them.
    x = da.from_array(photo, chunks=(97, 130, -1))
    sample = seeding.sample_pixels(x, 20_000, 0)
    sample = sample[(sample < np.quantile(sample, 0.9, axis=0)).all(1)]
    cells = coreset.coreset(x, sample)
    cb = seeding.init_centroids(sample, 16, 1)
    table = coreset.cell_labels(cells, cb, min_share=0.0)
    beyond = (photo.reshape(-1, photo.shape[2]) >= cells.lo + 1 / cells.unit).any(1)
    assert table is not None and beyond.mean() > 0.05
    labels, stats = coreset.label_and_sum(photo, cb, table)
    ref, ref_stats = coreset.label_and_sum(photo, cb)
    np.testing.assert_array_equal(labels, ref)
    np.testing.assert_array_equal((stats + table.held)[:16], ref_stats[:16])
    np.testing.assert_allclose(stats + table.held, ref_stats, rtol=1e-12)


def test_a_tie_on_a_cells_edge_is_searched():
    # One band of the integers 0..1023: cells one value wide, each the interval [v, v + 1). Even
    # centroids put their bisectors on integers, so a cell's lower edge is a tie that the lower
    # index wins, while the rest of the cell lies nearer the other centroid: the cell must be
    # searched, not labelled (a table that took ties as inside gives the higher index there).
    x = np.arange(1024, dtype=np.uint16).reshape(1, -1, 1)
    cb = np.array([[100.0], [400.0], [230.0], [20.0], [900.0], [700.0]])
    cells = coreset.coreset(da.from_array(x, chunks=(1, 256, -1)), x[0])
    table = coreset.cell_labels(cells, cb)
    assert table is not None and table.bits == 10
    labels, _ = coreset.label_and_sum(x, cb, table)
    d = np.abs(x.reshape(-1, 1).astype(float) - cb.T)
    exact = d.argmin(1)  # the first on ties
    np.testing.assert_array_equal(labels.ravel(), exact)
    assert (table.table[[60, 165, 315, 550, 800]] == -1).all()  # the cells of the five ties


def _compress(img, tmp_path, name, **kw):
    return bigquant.compress(img, tmp_path / f"{name}.bq.zarr", chunks=(97, 130), **kw)


def test_codebook_is_a_fixed_point_of_exact_lloyd(photo, tmp_path):
    st = _compress(photo, tmp_path, "a", k=12, seed=1)
    cb = st.codebook.astype(np.float64)
    meta = st.metadata
    assert meta["converged"] and meta["stopped_by"] in ("shift", "gain")
    px = photo.reshape(-1, photo.shape[-1]).astype(np.float64)
    lab, err = _nearest(px, cb)
    np.testing.assert_array_equal(np.asarray(st.labels).reshape(-1), lab)
    assert meta["inertia"] == pytest.approx(err.sum(), rel=1e-9)
    # one more exact Lloyd step, in NumPy, from the stored codebook:
    counts = np.bincount(lab, minlength=len(cb))
    new = np.stack([px[lab == j].mean(0) for j in range(len(cb))])
    moved = metrics.round_codebook(new, photo.dtype).astype(np.float64) - cb
    gain = float((counts * ((new - cb) ** 2).sum(1)).sum())
    if meta["stopped_by"] == "shift":  # it moves no centre by more than the tolerance
        assert np.sqrt((moved**2).sum(1)).max() <= params.tol_abs(1e-4, kmeans.data_scale(px))
    else:  # its update would lower the error by at most the gain tolerance
        assert gain <= params.pixel_gain_rtol(1e-4) * err.sum()
    assert meta["shift_history"][-1] == pytest.approx(np.sqrt((moved**2).sum(1)).max(), rel=1e-6, abs=1e-9)


def test_matches_full_lloyd_from_the_same_centres(photo, tmp_path):
    px = photo.reshape(-1, photo.shape[-1]).astype(np.float64)
    init = seeding.init_centroids(px[:: max(1, len(px) // 50_000)], 16, 3)
    ref = KMeans(16, init=init, n_init=1, algorithm="lloyd", max_iter=1000, tol=1e-9).fit(px)
    ref_psnr = _psnr(photo, metrics.round_codebook(ref.cluster_centers_, photo.dtype))
    st = _compress(photo, tmp_path, "b", k=16, init=init)
    assert abs(_psnr(photo, st.codebook) - ref_psnr) <= 0.01
    assert abs(st.metadata["psnr"] - ref_psnr) <= 0.01


def test_reruns_are_bit_identical(photo, tmp_path):
    a = _compress(photo, tmp_path, "c", k=9, seed=4)
    b = _compress(photo, tmp_path, "d", k=9, seed=4)
    np.testing.assert_array_equal(a.codebook, b.codebook)
    np.testing.assert_array_equal(np.asarray(a.labels), np.asarray(b.labels))
    assert a.metadata["inertia"] == b.metadata["inertia"]
    assert a.metadata["shift_history"] == b.metadata["shift_history"]


def test_restarts_are_never_worse_than_one_start(photo, monkeypatch):
    """The coarse-grid restarts keep the better of two fits on the cells: never a worse inertia
    than the single k-means++ start, and on some seed a strictly better one."""
    from bigquant import fitting

    x = da.from_array(photo, chunks=(97, 130, photo.shape[-1]))
    opts = params.FitOptions()
    data = fitting.prepare(x, False, opts, "test")

    def inertia(seed: int, restarts: int) -> float:
        monkeypatch.setattr(coreset, "RESTARTS", restarts)
        return fitting.fit_k(data, 12, params.FitOptions(seed=seed)).result.inertia

    restarts = coreset.RESTARTS
    pairs = [(inertia(s, restarts), inertia(s, 1)) for s in range(4)]
    assert all(best <= one for best, one in pairs)
    assert any(best < one for best, one in pairs)


def test_probe_chunks_change_no_cell(photo, monkeypatch):
    """The chunks read first set the grid the others start on; the coreset is the one every
    chunk gets from the sample's grid (a chunk that overflows merges down either way)."""
    x = da.from_array(photo, chunks=(61, 83, -1))
    sample = seeding.sample_pixels(x, 20_000, 0)
    budget = 4 * 300  # chunk tables of 300 cells: the chunks of these photos end on 2-4 grids
    probed = coreset.coreset(x, sample, budget)
    monkeypatch.setattr(coreset, "parallel_tasks", lambda: 10**6)  # every chunk a probe
    plain = coreset.coreset(x, sample, budget)
    assert probed.bits == plain.bits < coreset.grid(sample, photo.dtype, photo.size, budget)[2]
    np.testing.assert_array_equal(probed.codes, plain.codes)
    np.testing.assert_array_equal(probed.counts, plain.counts)
    np.testing.assert_allclose(probed.sums, plain.sums, rtol=1e-12)
    if photo.dtype.kind == "u":  # integer sums are exact whatever order the pixels come in
        np.testing.assert_array_equal(probed.sums, plain.sums)


def test_four_bands_give_a_chunk_a_larger_share_of_the_budget():
    """A 4-band image has twice the cell budget and a chunk of it up to half the budget, a 3-band
    one a quarter, every sum exact."""
    img = _image("chelsea-4band")
    budget = 1 << 12
    parts = {}
    for c in (3, 4):
        block = np.ascontiguousarray(img[..., :c])
        sample = block.reshape(-1, c)[::7]
        lo, unit, bits = coreset.grid(sample, block.dtype, block.size, budget)
        parts[c] = coreset.block_part(block, lo, unit, bits, budget)
        assert len(parts[c][0]) <= budget // coreset.chunk_share(c)
        np.testing.assert_array_equal(parts[c][2].sum(0), block.reshape(-1, c).sum(0, dtype=np.float64))
    assert coreset.chunk_share(3) == coreset.CHUNK_SHARE > coreset.chunk_share(4) == coreset.WIDE_CHUNK_SHARE
    assert coreset.cell_budget(4) == coreset.WIDE_BUDGET * coreset.cell_budget(3) > coreset.cell_budget(3)
    assert len(parts[4][0]) > budget // coreset.CHUNK_SHARE


def _signatures() -> dict[str, set[str]]:
    import importlib
    import pkgutil

    from numba.core.registry import CPUDispatcher

    import bigquant._kernels as kernels

    out: dict[str, set[str]] = {}
    for info in pkgutil.iter_modules(kernels.__path__):
        mod = importlib.import_module(f"bigquant._kernels.{info.name}")
        for name, fn in vars(mod).items():
            if isinstance(fn, CPUDispatcher):
                out[f"{info.name}.{name}"] = {str(s) for s in fn.signatures}
    return out


def test_pixel_path_warm_up_loads_every_kernel_a_compress_calls(photo, tmp_path):
    """The warm-up that runs while a TIFF decodes calls the kernels with the argument types of a
    real compress of that kind of image, so the compress itself loads none."""
    import tifffile

    from bigquant import _runtime, fitting

    _runtime.start_kernel_warm_up(fitting.load_pixel_kernels, photo.dtype, photo.shape[2]).join()
    before = _signatures()
    path = tmp_path / "in.tif"
    extra = {"extrasamples": (0,)} if photo.shape[2] == 4 else {}  # a plain fourth band
    tifffile.imwrite(path, photo, tile=(64, 64), photometric="rgb", compression="zlib", **extra)
    bigquant.compress(path, tmp_path / "out.bq.zarr", k=8, chunks=(128, 128))
    new = {name: sigs - before.get(name, set()) for name, sigs in _signatures().items()}
    assert not {name: sigs for name, sigs in new.items() if sigs}
