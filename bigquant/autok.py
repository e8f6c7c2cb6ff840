"""Auto K: the smallest number of colours whose fit reaches a PSNR target, by bisection.

Pure algorithm over :mod:`.fitting`: no file I/O; progress goes to the ``say`` callback.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from .errors import BigquantWarning
from .fitting import FitData, FitResult, fit_k, fit_psnr
from .params import FitOptions
from .progress import Progress, Step


def search_k(
    fit_of: Callable[[int], FitResult], target: float, max_k: int, say: Progress
) -> tuple[int, FitResult, dict[str, float]]:
    """Smallest K in [1, max_k] whose :func:`fit_psnr` reaches ``target`` (bisection; PSNR grows
    with K). Returns the K, its fit, and the PSNR of every K tried."""
    cache: dict[int, tuple[FitResult, float]] = {}

    def trial(k: int) -> float:
        if k not in cache:
            f = fit_of(k)
            cache[k] = (f, fit_psnr(f))
            say(Step(f"auto K: K={k} gives {cache[k][1]:.2f} dB"))
        return cache[k][1]

    if trial(max_k) < target:
        warnings.warn(
            f"PSNR {cache[max_k][1]:.2f} dB at --max-k {max_k} stays below the target {target} dB; using K={max_k}",
            BigquantWarning,
            stacklevel=4,
        )
        best = max_k
    else:
        lo, hi = 1, max_k  # psnr(hi) >= target
        while lo < hi:
            mid = (lo + hi) // 2
            if trial(mid) >= target:
                hi = mid
            else:
                lo = mid + 1
        best = hi
    tried = {str(k): round(v[1], 4) for k, v in sorted(cache.items())}
    return best, cache[best][0], tried


def auto_k(data: FitData, opts: FitOptions, target: float, max_k: int, *, init: Any, say: Progress) -> FitResult:
    """The fit of the smallest K up to ``max_k`` whose PSNR reaches ``target`` dB.

    Exact on the histogram path. On the pixel path each trial fits the coreset, whose PSNR is a
    lower bound on the pixels' for the same codebook (the passes over the pixels only raise it).
    """

    def fit_of(kk: int) -> FitResult:
        return fit_k(data, kk, opts, init=init, restarts=False)

    k, fit, tried = search_k(fit_of, target, max_k, say)
    if data.cells is not None and init is None:
        # the trials fit from one start each; the chosen K's fit may only get better with the
        # best of several (never worse on the cells, so the target still holds)
        fit = fit_k(data, k, opts)
    if data.colours is not None:
        estimate = "exact (histogram)"
    else:
        assert data.cells is not None
        estimate = f"lower bound (coreset of {len(data.cells.counts)} cells)"
    say(Step(f"auto K: chose K={k}"))
    fit.extra = dict(target_psnr=float(target), max_k=int(max_k), auto_k_trials=tried, auto_k_estimate=estimate)
    return fit
