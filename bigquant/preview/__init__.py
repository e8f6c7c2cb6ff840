"""Pictures of a store: a downsampled side-by-side preview, the palette, the convergence curve.

* :mod:`.panels`: :func:`preview_panels`, :func:`preview_image`, :func:`write_preview` (streamed:
  the full image is never loaded);
* :mod:`.palette`: :func:`palette_entries`, :func:`palette_image`, :func:`write_palette`;
* :mod:`.convergence`: :func:`convergence_image`, :func:`write_convergence` (matplotlib).

Every picture maps values to colours by :mod:`bigquant.display`'s rules (the display range,
grey / RGB / alpha by channel count); the original and the reconstruction always share one
display range. Every ``write_*`` refuses an existing output (without ``overwrite``) or a
non-``.png`` name before any work, and writes atomically.
"""

from __future__ import annotations

from .convergence import DEFAULT_PLOT_SIZE, convergence_image, write_convergence
from .palette import DEFAULT_PALETTE_TOP, PaletteEntry, palette_entries, palette_image, write_palette
from .panels import DEFAULT_MAX_SIZE, Panel, downsample, preview_image, preview_panels, write_preview

__all__ = [
    "DEFAULT_MAX_SIZE",
    "DEFAULT_PALETTE_TOP",
    "DEFAULT_PLOT_SIZE",
    "Panel",
    "PaletteEntry",
    "convergence_image",
    "downsample",
    "palette_entries",
    "palette_image",
    "preview_image",
    "preview_panels",
    "write_convergence",
    "write_palette",
    "write_preview",
]
