"""The pixel path's last passes: is the codebook a fixed point of exact Lloyd's on the pixels?

The fit on the coreset (:mod:`bigquant.coreset`) ends close to where Lloyd's over every pixel
would. The label pass that writes the labels for codebook C also sums each cluster's pixels
(:func:`bigquant.coreset.label_and_sum`), so it holds the exact Lloyd update of C:
:func:`after_labels` keeps C and those labels when the update would not move it past the stop
test, and otherwise :func:`polish` runs exact passes (:func:`bigquant.kmeans.lloyd`) and asks
for another label pass. A gigapixel compress so reads its image about twice (the coreset pass
and the label pass) when the coreset's codebook already passes the test.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from . import kmeans, metrics, params
from .fitting import FitResult, LabelPlan, label_plan
from .params import FitOptions
from .progress import Iteration, Progress, or_silent


def after_labels(
    x: da.Array, fit: FitResult, plan: LabelPlan, stats: np.ndarray, opts: FitOptions, progress: Progress | None = None
) -> LabelPlan | None:
    """After a label pass: None if its labels and ``fit.codebook`` are final, else the plan of
    another label pass, for the codebook :func:`polish` moved ``fit`` to.

    A polishing pass (``plan.polish``) also summed each cluster's pixels, so it holds the exact
    Lloyd update of the codebook it labelled with. If that update, rounded to the image's dtype,
    moves no entry by more than ``fit.tol_abs``, the codebook is a fixed point of exact Lloyd's
    up to the stop test and is kept with its labels (``stopped_by="shift"``). So is it when the
    update would lower the inertia by at most :func:`bigquant.params.pixel_gain_rtol` of it
    (``"gain"``: the centroids' move alone gains ``sum n_j |m_j - c_j|^2``, exactly), when the
    exact passes before stopped on such a test, or when ``max_iter`` passes are spent.
    Otherwise exact passes (:func:`polish`) move it on, and another label pass follows.
    """
    res = fit.result
    if not plan.polish or res is None:
        return None
    cb = fit.codebook
    k, c = cb.shape
    counts, sse = stats[:k], float(stats[k])
    empty = counts <= 0
    sums = stats[k + 3 : k + 3 + k * c].reshape(k, c)
    new = np.where(empty[:, None], cb, sums / np.where(empty, 1.0, counts)[:, None])
    moved = metrics.round_codebook(new, cb.dtype).astype(np.float64) - cb.astype(np.float64)
    shift = float(np.sqrt((moved * moved).sum(1)).max())
    gain = float((counts * ((new - cb) ** 2).sum(1)).sum())  # what the update alone would gain
    res.n_iter += 1
    res.inertia = sse
    res.inertia_history.append(sse)
    res.shift_history.append(shift)
    or_silent(progress)(Iteration("Lloyd", res.n_iter, opts.max_iter, sse, shift, fit.tol_abs, 0.0))
    if shift <= fit.tol_abs and not empty.any():
        res.converged, res.stopped_by = True, "shift"
    elif res.stopped_by in ("inertia", "gain"):
        res.converged = True
    elif gain <= params.pixel_gain_rtol(opts.tol) * sse:
        res.converged, res.stopped_by = True, "gain"
    elif res.n_iter >= opts.max_iter:
        res.converged, res.stopped_by = False, "max_iter"
    else:
        polish(fit, new, opts, progress, reserve=1)
        return label_plan(x, fit, progress)
    res.centroids = cb.astype(np.float64)
    return None


def polish(
    fit: FitResult, start: np.ndarray, opts: FitOptions, progress: Progress | None = None, *, reserve: int = 0
) -> None:
    """Exact Lloyd passes over the pixels from ``start`` until the shift, inertia or gain test
    stops them, within ``opts.max_iter`` passes in all less ``reserve``; ``fit`` takes the result
    (its codebook rounded to the image's dtype, its passes added to ``fit.result``)."""
    res, data = fit.result, fit.data
    assert res is not None and data is not None
    left = opts.max_iter - res.n_iter - reserve
    if left < 1:
        fit.codebook = metrics.round_codebook(start, data.dtype)
        return
    run = kmeans.lloyd(
        data.xs,
        start,
        max_iter=left,
        tol_abs=fit.tol_abs,
        inertia_rtol=opts.inertia_rtol,
        gain_rtol=params.pixel_gain_rtol(opts.tol),
        sample=np.ascontiguousarray(data.sample, dtype=np.float64),
        progress=progress,
    )
    res.n_iter += run.n_iter
    res.inertia, res.centroids = run.inertia, run.centroids
    res.inertia_history += run.inertia_history
    res.shift_history += run.shift_history
    res.reseeded += run.reseeded
    res.converged, res.stopped_by = run.converged, run.stopped_by
    fit.codebook = metrics.round_codebook(run.centroids, data.dtype)
