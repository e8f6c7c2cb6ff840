"""Shared fixtures: small real images (scikit-learn / scikit-image bundled data) and synthetic ones."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def china() -> np.ndarray:
    """scikit-learn's bundled photograph, 427 x 640 x 3 uint8."""
    from sklearn.datasets import load_sample_image

    return load_sample_image("china.jpg")


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    """scikit-image's bundled photograph, 400 x 600 x 3 uint8."""
    from skimage import data

    return data.coffee()


@pytest.fixture(scope="session")
def camera() -> np.ndarray:
    """scikit-image's bundled greyscale photograph, 512 x 512 uint8."""
    from skimage import data

    return data.camera()


def known_colours_image(k: int = 6, shape=(120, 170), noise: float = 2.0, seed: int = 0, dtype=np.uint8):
    """An image made of ``k`` well separated colours in random blocks, plus small Gaussian noise.

    Returns ``(image, colours)`` with ``colours`` of shape (k, 3) float64.
    """
    rng = np.random.default_rng(seed)
    colours = rng.permutation(np.array(
        [[30, 30, 200], [220, 40, 40], [40, 200, 60], [240, 240, 240], [20, 20, 20], [200, 200, 40],
         [150, 60, 200], [60, 180, 190]], dtype=np.float64))[:k]
    cell = rng.integers(0, k, size=(shape[0] // 10 + 1, shape[1] // 10 + 1))
    idx = np.kron(cell, np.ones((10, 10), dtype=int))[: shape[0], : shape[1]]
    idx.flat[:k] = np.arange(k)  # every colour present
    img = colours[idx] + rng.normal(0, noise, size=shape + (3,))
    if np.dtype(dtype).kind == "u":
        img = np.clip(np.rint(img), 0, np.iinfo(dtype).max)
    return img.astype(dtype), colours
