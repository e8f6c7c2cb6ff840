"""bigquant: colour quantization by K-means for images too big for memory."""

from ._version import __version__
from .api import Palette, Store, compress, decode, fit, open_store
from .api import open_store as open  # noqa: A001  - bigquant.open(path), like zarr.open
from .errors import (
    BigquantError,
    BigquantWarning,
    InputError,
    KReducedWarning,
    MemoryBudgetError,
    OutputError,
    ParameterError,
    SchedulerError,
    StoreFormatError,
)
from .io import read_image

__all__ = [
    "__version__",
    "BigquantError",
    "BigquantWarning",
    "InputError",
    "KMeans",
    "KReducedWarning",
    "MemoryBudgetError",
    "OutputError",
    "ParameterError",
    "Palette",
    "Store",
    "SchedulerError",
    "StoreFormatError",
    "compress",
    "decode",
    "fit",
    "open",
    "open_store",
    "read_image",
]


def __getattr__(name: str):
    # bigquant.KMeans imports scikit-learn (about a second); load it only when asked for, so the
    # CLI starts fast and can import scikit-learn in the background while it reads the image.
    if name == "KMeans":
        from .estimator import KMeans

        return KMeans
    raise AttributeError(f"module 'bigquant' has no attribute {name!r}")
