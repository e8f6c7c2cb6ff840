"""bigquant: colour quantization by K-means for images too big for memory."""

from ._version import __version__
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
    "inspect",
    "open",
    "open_store",
    "read_image",
]


#: The API, imported on first use: ``import bigquant`` stays light, so the command line can set
#: itself up before Dask is imported (see :func:`bigquant.cli.entry`).
_LAZY = {
    "Palette": ("store", "Palette"),
    "Store": ("store", "Store"),
    "compress": ("api", "compress"),
    "decode": ("api", "decode"),
    "fit": ("api", "fit"),
    "open": ("api", "open_store"),  # bigquant.open(path), like zarr.open
    "open_store": ("api", "open_store"),
    "read_image": ("io", "read_image"),
    "inspect": ("io", "inspect"),  # an input's ImageInfo from its metadata
    # scikit-learn's estimator machinery is imported only when asked for
    "KMeans": ("estimator", "KMeans"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bigquant' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
