"""Object storage by URL (``s3://``, ``gs://``, ``az://``, ``abfs://``, ``https://``, ``memory://``)
through fsspec: what a URL is, the file system behind it, and its errors in one line.

Credentials and endpoints come the way fsspec and the cloud SDKs take them (environment,
config files), plus ``storage_options`` (a dict, ``--storage-options JSON`` on the CLI) passed to
the file system as keyword arguments. A :class:`Location` (URL + options) is what a task
carries: small, picklable, hashed by value, so each task opens the file system itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from .errors import BigquantError, ParameterError

#: Schemes whose file system needs an optional extra, and the extra that installs it.
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure"}
#: Schemes that cannot be written.
READ_ONLY = ("http", "https")


def is_url(x: Any) -> bool:
    """True for a string naming object storage or another fsspec file system (``scheme://...``),
    not for a local path (``file://`` is a local path too)."""
    if not isinstance(x, str) or "://" not in x:
        return False
    scheme = x.split("://", 1)[0].lower()
    return scheme.isidentifier() and scheme not in ("file", "local")


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower()


def parse_storage_options(text: str | dict | None) -> dict[str, Any]:
    """``storage_options`` as a dict, from a dict, a JSON object or None; ParameterError otherwise."""
    if text is None:
        return {}
    if isinstance(text, dict):
        return dict(text)
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ParameterError(f"--storage-options is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ParameterError(f"--storage-options must be a JSON object, not {type(value).__name__}")
    return value


def _missing_backend(url: str, exc: ImportError) -> BigquantError:
    extra = EXTRAS.get(scheme_of(url))
    hint = f"pip install 'bigquant-kmeans[{extra}]'" if extra else "install its fsspec implementation"
    return ParameterError(f"cannot open {url!r}: {exc}; {hint}")


def describe_error(exc: BaseException) -> str:
    """One line for a failed request: what the service said, without the traceback."""
    name = type(exc).__name__
    if name == "NoCredentialsError" or "credential" in str(exc).lower() and name != "PermissionError":
        return f"no credentials found ({exc}); set them in the environment or pass --storage-options"
    status = getattr(exc, "status", None)  # an HTTP answer (aiohttp)
    if status in (401, 403):
        return f"access denied (HTTP {status})"
    if isinstance(exc, FileNotFoundError) or status == 404:
        return f"not found ({exc.args[-1] if exc.args else exc})"
    if isinstance(exc, PermissionError):
        return f"access denied ({exc})"
    text = " ".join(str(exc).split())
    return f"{name}: {text}" if text else name


@dataclass(frozen=True)
class Location:
    """One URL on object storage with its fsspec options: picklable, hashed by value."""

    url: str
    options: dict = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", self.url.rstrip("/"))

    def __dask_tokenize__(self) -> tuple:
        return ("bigquant-location", self.url, json.dumps(self.options, sort_keys=True, default=str))

    def __str__(self) -> str:
        return self.url

    @property
    def fs(self) -> Any:
        """The fsspec file system (fsspec caches instances by options, so this is cheap)."""
        from fsspec.core import url_to_fs

        try:
            return url_to_fs(self.url, **self.options)[0]
        except ImportError as exc:
            raise _missing_backend(self.url, exc) from None
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"cannot open {self.url!r} with these storage options: {exc}") from None

    @property
    def path(self) -> str:
        """The URL as the file system names it (no scheme)."""
        return self.fs._strip_protocol(self.url)

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def writable(self) -> bool:
        return scheme_of(self.url) not in READ_ONLY

    def child(self, key: str) -> Location:
        return Location(f"{self.url}/{key.strip('/')}", self.options)

    def sibling(self, name: str) -> Location:
        return Location(f"{self.url.rsplit('/', 1)[0]}/{name}", self.options)


def location(x: str | os.PathLike | Location, options: dict | None = None) -> Location | None:
    """A :class:`Location` for a URL (or one given), None for a local path."""
    if isinstance(x, Location):
        return x
    if is_url(x):
        return Location(str(x), dict(options or {}))
    return None
