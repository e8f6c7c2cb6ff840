"""The convergence plot: the inertia after each Lloyd iteration, drawn with matplotlib.

matplotlib is imported when a plot is drawn, never with the package, so the other commands do
not pay for it; it draws on its Agg canvas (no display, no global pyplot state).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParameterError, StoreFormatError
from ..report import run_state
from ._draw import PathLike, StoreLike, as_store, check_png, source_name, write_png

#: (rows, cols) of the convergence plot.
DEFAULT_PLOT_SIZE = (480, 720)
#: The curve's colour (matplotlib's default blue).
CURVE = "#1f77b4"
#: Up to this many iterations every point gets a marker.
MARKED_POINTS = 60
_DPI = 100


def _history(s: Any) -> np.ndarray:
    hist = s.metadata.get("inertia_history")
    if not isinstance(hist, list) or not all(isinstance(v, (int, float)) for v in hist):
        raise StoreFormatError(
            f"store '{s.path}' has no inertia_history (written by an older bigquant?); compress it again"
        )
    y = np.asarray(hist, dtype=np.float64)
    return y[np.isfinite(y)] if len(y) else y


def _titles(s: Any, n: int) -> tuple[str, str]:
    meta = s.metadata
    iters = meta.get("iterations", n)
    title = f"Lloyd's k-means: K={s.k}, {iters} iteration{'s' if iters != 1 else ''} ({run_state(meta)})"
    sub = f"{source_name(s)}, {meta.get('method', '?')} method"
    coarse = int(meta.get("coarse_iterations") or 0)
    if coarse:
        on = "the pixel sample" if meta.get("method") == "pixels" else "coarse histograms"
        sub += f", after {coarse} warm-start iterations on {on}"
    return title, sub


def convergence_image(
    store: StoreLike, *, size: Sequence[int] = DEFAULT_PLOT_SIZE, log: bool | None = None
) -> np.ndarray:
    """A line plot of the inertia after each Lloyd iteration, with axes, ticks and a title.

    Parameters
    ----------
    store : Store or path
    size : (int, int)
        (rows, cols) of the picture (default 480 x 720; at least 200 x 300).
    log : bool, optional
        Logarithmic inertia axis. Default: when the inertia spans at least a factor of 10 and
        is positive throughout.

    Returns
    -------
    ndarray of shape (rows, cols, 3), uint8
    """
    try:
        rows, cols = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ParameterError(f"size must be two whole numbers (rows, cols), got {size!r}") from None
    if rows < 200 or cols < 300:
        raise ParameterError(f"size {(rows, cols)} is too small for a plot; at least (200, 300)")
    s = as_store(store)
    y = _history(s)
    n = len(y)
    positive = n > 0 and bool((y > 0).all())
    if log is None:
        log = positive and float(y.max()) >= 10 * float(y.min())
    elif log and not positive:
        log = False  # zero inertia (a lossless fit) cannot go on a log axis

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(cols / _DPI, rows / _DPI), dpi=_DPI, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    title, sub = _titles(s, n)
    fig.text(0.02, 0.97, title, ha="left", va="top", fontsize=11, color="black")
    fig.text(0.02, 0.92, sub, ha="left", va="top", fontsize=9, color="#6e6e6e")
    ax = fig.add_axes((0.14, 0.14, 0.82, 0.68))
    if n == 0:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no iterations recorded", ha="center", va="center", color="#6e6e6e", transform=ax.transAxes)
    else:
        x = np.arange(1, n + 1)
        ax.plot(x, y, color=CURVE, linewidth=2, marker="o" if n <= MARKED_POINTS else None, markersize=5)
        if log:
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
        ax.grid(True, color="#e2e2e2", linewidth=1)
        ax.set_axisbelow(True)
        ax.set_xlabel("Lloyd iteration", color="black")
        ax.set_ylabel("inertia (sum of squared errors)" + (", log scale" if log else ""), color="black")
        ax.tick_params(colors="black")
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:rows, :cols, :3].copy()


def write_convergence(
    store: StoreLike,
    output_png: PathLike,
    *,
    size: Sequence[int] = DEFAULT_PLOT_SIZE,
    log: bool | None = None,
    overwrite: bool = False,
) -> Path:
    """Write :func:`convergence_image` to a PNG (built under a hidden sibling and moved into place: :func:`bigquant._staging.staged`)."""
    check_png(output_png, overwrite)
    img = convergence_image(store, size=size, log=log)
    return write_png(img, output_png, overwrite)
