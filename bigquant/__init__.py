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
    StoreFormatError,
)
from .estimator import KMeans
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
    "StoreFormatError",
    "compress",
    "decode",
    "fit",
    "open",
    "open_store",
    "read_image",
]
