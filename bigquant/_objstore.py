"""Object storage by URL (``s3://``, ``gs://``, ``az://``, ``abfs://``, ``https://``, ``memory://``)
through fsspec: what a URL is, the file system behind it, its errors in one line, and the one
write without rename that every output there takes (:class:`RemoteStaging`).

Credentials and endpoints come the way fsspec and the cloud SDKs take them (environment,
config files), plus ``storage_options`` (a dict, ``--storage-options JSON`` on the CLI) passed to
the file system as keyword arguments. A :class:`Location` (URL + options) is what a task
carries: small, picklable, hashed by value, so each task opens the file system itself.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._abort import AbortOnError
from .errors import BigquantError, OutputError, ParameterError

#: Schemes whose file system needs an optional extra, and the extra that installs it.
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure"}
#: Schemes that cannot be written.
READ_ONLY = ("http", "https")
#: Schemes whose first path component is a bucket (or container) that must exist.
BUCKETED = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl")
#: The group attribute holding bigquant's metadata: a store's, and the placeholder root a write on
#: object storage puts first (``complete: false``), so an unfinished output of any kind reads as
#: an unfinished bigquant store and the next run writing there replaces it.
ATTRS = "bigquant"
#: The most bytes of a ``zarr.json`` anything parses: the store format's limit on its metadata
#: documents (``bigquant.store.format.MAX_METADATA_BYTES`` is this), and of roots read here.
MAX_DOCUMENT_BYTES = 64 << 20


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


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status of a refused request, where the exception carries one: aiohttp's
    ``status``, the Azure SDK's ``status_code`` (adlfs), gcsfs's ``code``."""
    for attr in ("status", "status_code", "code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    return None


def describe_error(exc: BaseException) -> str:
    """One line for a failed request: what the service said, without the traceback."""
    name, status = type(exc).__name__, _http_status(exc)
    # gcsfs raises a plain OSError("Forbidden: PATH ...") for HTTP 403
    if status in (401, 403) or type(exc) is OSError and str(exc).startswith("Forbidden"):
        return f"access denied (HTTP {status or 403})"
    if name == "NoCredentialsError" or "credential" in str(exc).lower() and name != "PermissionError":
        return f"no credentials found ({exc}); set them in the environment or pass --storage-options"
    if isinstance(exc, FileNotFoundError) or status == 404:
        # the Azure SDK's message goes on with lines of RequestId, Time and ErrorCode
        said = str(exc.args[-1] if exc.args else exc).strip().splitlines()
        return f"not found ({said[0] if said else name})"
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
    def fs_class(self) -> Any:
        """The class of :attr:`fs`, one for all the names of a scheme (``az``, ``abfs``)."""
        from fsspec.registry import get_filesystem_class

        try:
            return get_filesystem_class(scheme_of(self.url))
        except ImportError as exc:
            raise _missing_backend(self.url, exc) from None
        except ValueError as exc:  # a scheme fsspec does not know
            raise ParameterError(f"cannot open {self.url!r}: {exc}") from None

    @property
    def path(self) -> str:
        """The URL as the file system names it (no scheme). Needs no file system instance, so no
        credentials: adlfs, for one, refuses to be created without them."""
        return self.fs_class._strip_protocol(self.url)

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        """The extension of the last path component (``.zarr`` for ``x.ome.zarr``), as Path's."""
        return Path(self.name).suffix

    @property
    def writable(self) -> bool:
        return scheme_of(self.url) not in READ_ONLY

    def child(self, key: str) -> Location:
        return Location(f"{self.url}/{key.strip('/')}", self.options)

    def sibling(self, name: str) -> Location:
        return Location(f"{self.url.rsplit('/', 1)[0]}/{name}", self.options)


def _overlap(out: Location, read: Location) -> str | None:
    if out.fs_class is not read.fs_class:
        return None
    a, b = out.path.strip("/"), read.path.strip("/")
    if a == b:
        return "is"
    if b.startswith(a + "/"):
        return "holds"
    return "lies inside" if a.startswith(b + "/") else None


def check_urls_apart(reads: list[Any], writes: list[Any]) -> None:
    """:func:`bigquant._staging.check_apart` for URLs: refuse an output URL that is, holds or lies
    inside (by key prefix) one that is read. Local paths and arrays are skipped (check_apart's)."""
    ins = [r for r in (location(x) for x in reads if isinstance(x, (str, Location))) if r is not None]
    for w in writes:
        out = location(w) if isinstance(w, (str, Location)) else None
        if out is None:
            continue
        for r in ins:
            how = _overlap(out, r)
            if how is not None:
                raise OutputError(
                    f"output {out.url!r} {how} the input {r.url!r}{' itself' if how == 'is' else ''}: "
                    "writing it could destroy what is read; choose an output apart from the inputs"
                )


def location(x: str | os.PathLike | Location, options: dict | None = None) -> Location | None:
    """A :class:`Location` for a URL (or one given), None for a local path."""
    if isinstance(x, Location):
        return x
    if is_url(x):
        return Location(str(x), dict(options or {}))
    return None


# --- the write without rename: root metadata last -------------------------------------------------


def open_group(where: Any, mode: Any) -> Any:
    """A zarr group at a local path (str or Path) or a :class:`Location`."""
    import zarr

    if isinstance(where, Location):
        return zarr.open_group(where.url, mode=mode, storage_options=where.options)
    return zarr.open_group(str(where), mode=mode)


def open_array(where: Any, mode: Any) -> Any:
    """A zarr array at a local path (str or Path) or a :class:`Location`."""
    import zarr

    if isinstance(where, Location):
        return zarr.open_array(where.url, mode=mode, storage_options=where.options)
    return zarr.open_array(str(where), mode=mode)


def chunk_writer(where: Location, document: dict) -> Any:
    """The zarr array that ``document`` (an array's ``zarr.json``, parsed) describes at ``where``,
    without that document being there: writing it PUTs chunks only, so the array's metadata can
    be the last key written (the commit of a plain Zarr output)."""
    import zarr
    from zarr.storage import FsspecStore, StorePath

    store = FsspecStore.from_url(where.url, storage_options=where.options, read_only=False)
    return zarr.Array(zarr.AsyncArray(document, StorePath(store, "")))  # type: ignore[call-overload]


def root_document(where: Location) -> dict | None:
    """The parsed root ``zarr.json`` at ``where``: None where there is none, ``{}`` where it is
    not a JSON object (or larger than :data:`MAX_DOCUMENT_BYTES`)."""
    try:
        raw = where.fs.cat_file(f"{where.path}/zarr.json")
    except FileNotFoundError:
        return None
    if len(raw) > MAX_DOCUMENT_BYTES:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def is_placeholder(doc: Any) -> bool:
    """True for a root that a write put first and never committed (a killed or failed run's)."""
    attrs = doc.get("attributes") if isinstance(doc, dict) else None
    meta = attrs.get(ATTRS) if isinstance(attrs, dict) else None
    return isinstance(meta, dict) and meta.get("complete") is not True


def group_document(attributes: dict, members: dict | None = None) -> bytes:
    """A Zarr v3 group's ``zarr.json`` holding ``attributes`` (and ``members`` consolidated inline)."""
    doc: dict[str, Any] = {"zarr_format": 3, "node_type": "group", "attributes": attributes}
    if members is not None:
        doc["consolidated_metadata"] = {"kind": "inline", "must_understand": False, "metadata": members}
    return json.dumps(doc, indent=2, allow_nan=False).encode()


def _has_keys(where: Location) -> bool:
    fs = where.fs
    fs.invalidate_cache(where.path)
    return bool(fs.exists(where.path) and (fs.isfile(where.path) or fs.ls(where.path)))


def check_target(where: Location, overwrite: bool, replaceable: Callable[[Location], bool], refusal: str) -> Location:
    """Validate an output URL before any work; raises OutputError (one line).

    Refused: a read-only scheme, a missing bucket, a denied write (probed by a PUT and a DELETE
    of an empty object), an existing output without ``overwrite``, and with it anything for which
    ``replaceable(where)`` is false (``refusal`` says why, e.g. ``"is not a bigquant store"``).
    A placeholder root (:func:`is_placeholder`: a dead run's unfinished output) is replaced.
    """
    quoted = repr(where.url)
    if not where.writable:
        raise OutputError(f"output {quoted}: {scheme_of(where.url)}:// is read-only; write to s3://, gs://, az://")
    fs = where.fs
    try:
        bucket = where.path.split("/", 1)[0]
        if scheme_of(where.url) in BUCKETED:
            try:
                fs.ls(bucket, detail=False)  # exists() would answer False for any failure
            except FileNotFoundError:
                raise OutputError(f"bucket {bucket!r} of output {quoted} does not exist") from None
        dead_run = not fs.isfile(where.path) and is_placeholder(root_document(where))
        if _has_keys(where) and not dead_run:
            if not replaceable(where):
                raise OutputError(f"output {quoted} exists and {refusal}: remove it or choose another output")
            if not overwrite:
                raise OutputError(f"output {quoted} exists; pass --overwrite to replace it")
        probe = f"{where.path}/.bigquant-probe-{uuid.uuid4().hex[:8]}"
        fs.pipe_file(probe, b"")
        fs.rm_file(probe)
    except OutputError:
        raise
    except BigquantError as exc:  # what is there could not be read: its own one line
        raise OutputError(str(exc)) from None
    except Exception as exc:
        raise OutputError(f"cannot write output {quoted}: {describe_error(exc)}") from None
    return where


class RemoteStaging(AbortOnError):
    """The in-place write of an output at ``target`` (a URL), the object-storage face of
    :class:`bigquant._staging.Staging` (docs/store-format.md, "On object storage").

    Creating it PUTs a placeholder root ``zarr.json`` (``complete: false``) and then deletes every
    other key under the prefix; the writer then writes its arrays and, last, the real root
    ``zarr.json`` in one PUT: that is the commit, so :meth:`commit` has nothing left to move.
    :meth:`abort` (also on an exception in a ``with`` block) deletes the prefix.
    """

    def __init__(self, target: Location, overwrite: bool, *, noun: str = "store", quoted: str | None = None):
        self.target = self.path = target
        self.noun, self.quoted = noun, quoted or repr(target.url)
        fs = target.fs
        root = f"{target.path}/zarr.json"
        try:
            fs.pipe_file(root, group_document({ATTRS: {"complete": False, "writer": uuid.uuid4().hex}}))
            fs.invalidate_cache(target.path)
            old = [k for k in fs.find(target.path) if k.lstrip("/") != root.lstrip("/")]
            if old:
                fs.rm(old)
        except Exception as exc:
            raise self.write_error(exc) from None

    def write_error(self, exc: BaseException) -> OutputError:
        return OutputError(f"cannot write {self.noun} {self.quoted}: {describe_error(exc)}")

    def commit(self) -> Location:
        """Nothing left to move: the root written last was the commit."""
        return self.target

    def abort(self) -> None:
        """Delete what this run wrote (the root is a placeholder, so nobody reads it)."""
        try:
            self.target.fs.rm(self.target.path, recursive=True)
        except Exception:  # the next run writing here replaces a placeholder anyway
            pass


def upload(local: Path, where: Location) -> Location:
    """PUT the finished local file ``local`` as the one object at ``where``: the object appears
    whole or not at all (a multipart upload completes atomically), replacing any old one."""
    try:
        where.fs.put_file(str(local), where.path)
    except Exception as exc:
        raise OutputError(f"cannot write output {where.url!r}: {describe_error(exc)}") from None
    return where
