"""The parameter rules, in one place: ranges, defaults, what ``tol`` means, the labels' dtype.

Every public entry point (:func:`bigquant.compress`, :func:`bigquant.fit`, the CLI) validates
its arguments once, here, by building a :class:`FitOptions`; the algorithm modules below take
those values as given. Messages name the offending value and the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ParameterError

#: Largest K bigquant accepts: labels are stored as uint16.
MAX_K = 65536
#: The fitting methods: ``histogram`` (exact, on the colour histogram of uint8 images with 1-3
#: channels), ``pixels`` (Lloyd's over every pixel), ``auto`` (the histogram where it applies).
METHODS = ("auto", "histogram", "pixels")
#: Default number of pixels sampled for the k-means++ initialisation and empty-cluster repair.
DEFAULT_SAMPLE_SIZE = 100_000
#: Seeds are 32 bits: scikit-learn's k-means++ (whose random stream bigquant follows) takes no more.
SEED_LIMIT = 2**32

#: Runs also stop when the inertia stalls: :data:`INERTIA_PATIENCE` steps in a row that each
#: lower it by at most this fraction of ``tol`` (1e-6 of the inertia at the default tol 1e-4).
INERTIA_RTOL_PER_TOL = 0.01
#: Steps in a row whose inertia gain must stay under the relative tolerance: long enough that a
#: run crosses a short plateau of small gains instead of stopping on it.
INERTIA_PATIENCE = 5
#: The warm-up stages (coarse histograms, the pixel sample) stop at this multiple of the shift
#: tolerance: they only have to bring the exact stage close to its optimum.
COARSE_TOL_FACTOR = 10.0

#: Default zstd level of the stored labels, chosen with benchmarks/bench_codecs.py and
#: bench_gigapixel.py (see the labels-codec decision in docs/).
LABELS_ZSTD_LEVEL = 3
#: zstd levels a store may use (``--labels-level``).
ZSTD_LEVELS = range(1, 23)
#: Deflate level of TIFF outputs unless one is given: libdeflate's fastest.
TIFF_ZLIB_LEVEL = 1
#: zstd level of Zarr image outputs unless one is given (zstd's own default).
ZARR_ZSTD_LEVEL = 3
#: TIFF compressions (tifffile names, upper case) that take a level.
LEVELLED_TIFF_COMPRESSIONS = ("ZSTD", "LZMA", "WEBP", "JPEG", "JPEGXL", "JPEG2000", "LERC")
#: TIFF compressions that are Deflate, whose level defaults to :data:`TIFF_ZLIB_LEVEL`.
DEFLATE_NAMES = ("ZLIB", "ADOBE_DEFLATE", "DEFLATE")


def _is_whole(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def check_k(k: object) -> int:
    """Return ``k`` as an int if it is a whole number in ``[1, MAX_K]``, else raise ParameterError.

    A float with an integer value (``16.0``) is accepted; ``16.5`` is not.
    """
    if not _is_whole(k):
        if isinstance(k, (float, np.floating)) and float(k).is_integer():
            k = int(k)
        else:
            raise ParameterError(f"K must be a whole number between 1 and {MAX_K}, got {k!r}")
    value = int(k)  # type: ignore[call-overload]
    if not 1 <= value <= MAX_K:
        raise ParameterError(f"K must be between 1 and {MAX_K}, got {value}")
    return value


def check_codebook(codebook: Any) -> np.ndarray:
    """A fixed codebook as an ndarray of shape (K, C), numeric, finite, with K in range."""
    cb = np.asarray(codebook)
    if cb.ndim != 2 or cb.shape[0] < 1 or cb.dtype.kind not in "uif":
        raise ParameterError(f"a codebook must be a (K, C) numeric array, got shape {cb.shape} {cb.dtype}")
    if cb.dtype.kind == "f" and not np.isfinite(cb).all():
        raise ParameterError("the codebook holds NaN or inf")
    check_k(cb.shape[0])
    return cb


def check_seed(seed: object) -> int:
    """``seed`` as an int in ``[0, 2**32)``, else ParameterError."""
    if not _is_whole(seed) or not 0 <= seed < SEED_LIMIT:  # type: ignore[operator]
        raise ParameterError(f"seed must be a whole number from 0 to 2**32 - 1, got {seed!r}")
    return int(seed)  # type: ignore[call-overload]


def check_method(method: object) -> str:
    """``method`` if it is one of :data:`METHODS`, else ParameterError."""
    if method not in METHODS:
        raise ParameterError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return str(method)


def check_max_iter(max_iter: object) -> int:
    """``max_iter`` as an int of at least 1, else ParameterError."""
    if not _is_whole(max_iter) or max_iter < 1:  # type: ignore[operator]
        raise ParameterError(f"max_iter must be a whole number of at least 1, got {max_iter!r}")
    return int(max_iter)  # type: ignore[call-overload]


def check_tol(tol: object) -> float:
    """``tol`` as a float >= 0, else ParameterError."""
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
        raise ParameterError(f"tol must be a number >= 0, got {tol!r}")
    return float(tol)


def check_target_psnr(target_psnr: object) -> float:
    """A target PSNR as a positive float (dB), else ParameterError."""
    if isinstance(target_psnr, bool) or not isinstance(target_psnr, (int, float)) or not target_psnr > 0:
        raise ParameterError(f"target PSNR must be a positive number of dB, got {target_psnr!r}")
    return float(target_psnr)


def tol_abs(tol: float, data_scale: float) -> float:
    """The absolute shift tolerance: ``tol`` times the data's scale.

    ``data_scale`` is the square root of the mean per-channel variance
    (:func:`bigquant.kmeans.data_scale`), so ``tol`` means the same for uint8 and float data.
    """
    return float(tol) * float(data_scale)


def inertia_rtol(tol: float) -> float:
    """The relative inertia gain per step below which a run is called converged, for the shift
    tolerance ``tol`` (:data:`INERTIA_RTOL_PER_TOL`; see :func:`bigquant.kmeans.lloyd_loop`)."""
    return INERTIA_RTOL_PER_TOL * float(tol)


#: The pixel path's passes also stop once the next update's move alone would lower the inertia
#: by at most this multiple of ``tol`` of it (1e-4 at the default 1e-4, 0.0004 dB): Lloyd's over
#: the pixels can drift on for tens of passes, each gaining far less than a thousandth of a dB.
PIXEL_GAIN_PER_TOL = 1.0


def pixel_gain_rtol(tol: float) -> float:
    """The relative inertia gain of one update below which the pixel path's passes stop, for the
    shift tolerance ``tol`` (:data:`PIXEL_GAIN_PER_TOL`)."""
    return PIXEL_GAIN_PER_TOL * float(tol)


def labels_dtype(k: int) -> np.dtype:
    """The labels' dtype for K clusters: uint8 for K <= 256, else uint16."""
    return np.dtype(np.uint8 if k <= 256 else np.uint16)


def check_labels_level(level: object) -> int:
    """The zstd level of the labels: ``level``, or :data:`LABELS_ZSTD_LEVEL` for None."""
    if level is None:
        return LABELS_ZSTD_LEVEL
    if not _is_whole(level) or int(level) not in ZSTD_LEVELS:  # type: ignore[call-overload]
        raise ParameterError(
            f"labels zstd level must be a whole number from {ZSTD_LEVELS.start} to "
            f"{ZSTD_LEVELS.stop - 1}, got {level!r}"
        )
    return int(level)  # type: ignore[call-overload]


#: The levels each compression of an image output takes (tifffile's names, upper case; ZSTD for
#: Zarr outputs too). The codecs would clamp a level outside them without a word, or fail. Compressions
#: not listed (JPEG 2000, JPEG XL, LERC) take what their codec takes.
COMPRESSION_LEVELS = {
    **{name: range(0, 13) for name in DEFLATE_NAMES},  # libdeflate's levels, as tifffile writes Deflate
    "ZSTD": ZSTD_LEVELS,
    "LZMA": range(0, 10),
    "WEBP": range(0, 101),
    "JPEG": range(1, 101),
}


def check_compression_level(level: object, compression: str | None = None) -> int | None:
    """An image output's compression level: None (the codec's default) or an int, within
    :data:`COMPRESSION_LEVELS` of ``compression`` (a tifffile name, any case) where it is listed."""
    if level is None:
        return None
    if not _is_whole(level):
        raise ParameterError(f"compression level {level!r} is not an integer")
    allowed = COMPRESSION_LEVELS.get(str(compression).upper())
    if allowed is not None and int(level) not in allowed:  # type: ignore[call-overload]
        raise ParameterError(
            f"{str(compression).lower()} compression level must be a whole number from {allowed.start} to "
            f"{allowed.stop - 1}, got {level!r}"
        )
    return int(level)  # type: ignore[call-overload]


#: The only unit of ``pixel_size``: every input unit is converted to micrometres.
PIXEL_UNIT = "micrometer"


def check_pixel_size(pixel_size: Any) -> dict[str, Any] | None:
    """The physical pixel size as ``{"y": float, "x": float, "unit": "micrometer"}``, or None.

    Accepts that dict (``unit`` may be left out), one positive number for square pixels, or a
    (y, x) pair, in micrometres. Raises ParameterError for anything else.
    """
    if pixel_size is None:
        return None
    if isinstance(pixel_size, dict):
        unit = pixel_size.get("unit", PIXEL_UNIT)
        if unit != PIXEL_UNIT or set(pixel_size) - {"y", "x", "unit"}:
            raise ParameterError(f"pixel_size {pixel_size!r} must be {{'y': ..., 'x': ..., 'unit': '{PIXEL_UNIT}'}}")
        values: Any = (pixel_size.get("y"), pixel_size.get("x"))
    elif isinstance(pixel_size, (list, tuple)):
        values = tuple(pixel_size)
    else:
        values = (pixel_size, pixel_size)
    ok = len(values) == 2 and all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values
    )
    if not ok or not all(np.isfinite(float(v)) and float(v) > 0 for v in values):
        raise ParameterError(
            f"pixel_size {pixel_size!r} must be one positive number or a (y, x) pair of them, in micrometres"
        )
    return {"y": float(values[0]), "x": float(values[1]), "unit": PIXEL_UNIT}


@dataclass(frozen=True)
class FitOptions:
    """The validated parameters of a fit, passed down from the public entry points.

    Building one checks every field (in the order k, seed, method, max_iter, tol) and raises
    :class:`ParameterError` for the first bad one; the fields then hold plain ints, floats and
    strings.

    Attributes
    ----------
    k : int
        Colours in the codebook, 1 to :data:`MAX_K`.
    seed : int
        Seed of the pixel sample and the k-means++ initialisation, 0 to 2**32 - 1.
    method : {"auto", "histogram", "pixels"}
    max_iter : int
        Most Lloyd iterations, at least 1.
    tol : float
        Shift tolerance relative to the data's scale (:func:`tol_abs`), and through
        :func:`inertia_rtol` the inertia-stall test.
    sample_size : int
        Pixels sampled for k-means++ and empty-cluster repair.
    """

    k: int = 16
    seed: int = 0
    method: str = "auto"
    max_iter: int = 100
    tol: float = 1e-4
    sample_size: int = DEFAULT_SAMPLE_SIZE

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: the checked values replace the given ones once
        set_(self, "k", check_k(self.k))
        set_(self, "seed", check_seed(self.seed))
        set_(self, "method", check_method(self.method))
        set_(self, "max_iter", check_max_iter(self.max_iter))
        set_(self, "tol", check_tol(self.tol))
        set_(self, "sample_size", int(self.sample_size))

    @property
    def inertia_rtol(self) -> float:
        """:func:`inertia_rtol` of :attr:`tol`."""
        return inertia_rtol(self.tol)
