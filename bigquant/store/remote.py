"""Stores on object storage: the target's checks and the group documents of the commit without rename.

Object stores cannot rename a prefix, so a store there is written in place
(:class:`bigquant._objstore.RemoteStaging`, the one such write; docs/store-format.md, "On object
storage"), in this order:

1. the root ``zarr.json`` is PUT first, marking the store incomplete (``complete: false``);
2. every other key under the prefix is deleted (what a killed run, or the replaced store, left);
3. arrays, their metadata and all chunks are written;
4. the root ``zarr.json`` with ``complete: true`` and the consolidated metadata is PUT last
   (:func:`write_group`).

A PUT of one object is atomic, so a reader sees the old complete store (before step 1), an
incomplete one (steps 1-3, refused by every reader), or the new complete one: never a
complete-looking half. A failed run deletes what it wrote; a killed one leaves an incomplete
store, which the next run writing there replaces without ``--overwrite``.
"""

from __future__ import annotations

import json

from .._objstore import Location, group_document
from .._objstore import check_target as check_url
from .metadata import store_document


def check_target(where: Location, overwrite: bool) -> Location:
    """Validate a store URL before any work; raises OutputError (one line).

    Refused: a read-only scheme, a missing bucket, a denied write, an existing complete store
    without ``overwrite``, and anything there that is not a bigquant store. An incomplete store
    (a killed run's) is replaced.
    """
    return check_url(
        where,
        overwrite,
        lambda w: store_document(w) is not None,
        "is not a bigquant store; --overwrite only replaces stores",
    )


def node_documents(where: Location) -> dict[str, dict]:
    """Every node's ``zarr.json`` below ``where`` (keys relative to it), parsed; chunk folders
    (``c/``) are not listed."""
    fs = where.fs
    fs.invalidate_cache(where.path)
    base = where.path.rstrip("/")
    docs: dict[str, dict] = {}
    todo = [base]
    while todo:
        folder = todo.pop()
        for entry in fs.ls(folder, detail=True):
            name = entry["name"].rstrip("/")
            if entry["type"] == "directory" and name.rsplit("/", 1)[-1] != "c":
                todo.append(name)
            elif name.endswith("/zarr.json") and folder != base:
                docs[folder[len(base) + 1 :]] = json.loads(fs.cat_file(name))
    return dict(sorted(docs.items()))


def write_group(where: Location, attributes: dict) -> None:
    """PUT a group's ``zarr.json`` with ``attributes`` and the consolidated metadata of every
    node below it: one object, so readers see the old document or the new one."""
    members = node_documents(where)
    for doc in members.values():
        if doc.get("node_type") == "group":
            doc["consolidated_metadata"] = {"kind": "inline", "must_understand": False, "metadata": {}}
    where.fs.pipe_file(f"{where.path}/zarr.json", group_document(attributes, members))
