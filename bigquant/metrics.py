"""Quality and size accounting: MSE, PSNR, the seeds' bit formula, bytes on disk."""

from __future__ import annotations

import math

import numpy as np


def peak_value(dtype: np.dtype, data_range: tuple[float, float] | None = None) -> float:
    """The peak signal for PSNR: the dtype's maximum for integers, the data's range for floats."""
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        info = np.iinfo(dt)
        return float(info.max) if dt.kind == "u" else float(info.max - info.min)
    if data_range is None:
        return 1.0
    lo, hi = data_range
    span = float(hi) - float(lo)
    return span if span > 0 else 1.0


def psnr(mse: float, peak: float) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` for a lossless reconstruction."""
    if mse <= 0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def seed_bits(n_pixels: int, k: int, bits_per_colour: int = 24) -> int:
    """The seeds' formula: ``N * ceil(log2 K) + bits_per_colour * K`` bits for labels and codebook."""
    return int(n_pixels) * max(0, math.ceil(math.log2(k))) + bits_per_colour * int(k)


def round_codebook(centroids: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast centroids to the image dtype: rounded and clipped for integers."""
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        info = np.iinfo(dt)
        return np.clip(np.rint(centroids), info.min, info.max).astype(dt)
    return np.asarray(centroids).astype(dt)
