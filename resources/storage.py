"""The storage root: every store the platform writes lives under one fsspec URL.

Writes are atomic from a reader's point of view. A store is first written to a staging
prefix (``<root>/.staging/<uuid>/``), so a failed or killed computation never touches the
store already in place, then committed:

* local disk: the old store is renamed aside and the staged one renamed into place (two
  ``rename`` calls on one filesystem), then the old one is deleted;
* object stores (S3): the consolidated-metadata object (``.zmetadata``) of the old store is
  deleted first, the staged objects are copied server-side, and ``.zmetadata`` is copied
  *last*. Stores are always opened through their consolidated metadata, so a reader sees
  either no store or a complete one, never a mixture.

Stores are zarr format 2 with consolidated metadata: ``.zmetadata`` doubles as the "this
store is complete" marker that sensors look for.
"""

from __future__ import annotations

import hashlib
import posixpath
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dagster as dg
import fsspec
import numpy as np
import xarray as xr
from pydantic import Field

ZARR_FORMAT = 2
COMPLETE_MARKER = ".zmetadata"
STAGING = ".staging"


@dataclass(frozen=True)
class WrittenStore:
    """What a committed write produced."""

    url: str
    nbytes: int
    checksum: str


def dataset_checksum(ds: xr.Dataset) -> str:
    """sha256 over names, dims, coordinates and values: the dataset's content version.

    Independent of chunking and compression, so the same data gives the same version
    wherever and however it is stored.
    """
    h = hashlib.sha256()
    for name in sorted(map(str, ds.variables)):
        var = ds.variables[name]
        h.update(f"{name}|{var.dims}|{var.dtype.str}|{var.shape}".encode())
        values = np.ascontiguousarray(var.values)
        if values.dtype.kind == "O":
            h.update(repr(values.tolist()).encode())
        else:
            h.update(values.tobytes())
    return h.hexdigest()


class Storage:
    """Atomic zarr reads and writes under one root URL (plain class, no Dagster)."""

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None):
        self.root = root.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.fs, self._root_path = fsspec.core.url_to_fs(self.root, **self.storage_options)
        self._local = "file" in _protocols(self.fs)

    def url(self, relpath: str) -> str:
        """Full URL of a path relative to the root."""
        return f"{self.root}/{relpath.lstrip('/')}"

    def _path(self, relpath: str) -> str:
        return posixpath.join(self._root_path, relpath.lstrip("/"))

    def path(self, relpath: str) -> str:
        """The filesystem path (no protocol) of ``relpath``, for ``self.fs`` calls."""
        return self._path(relpath)

    def write_bytes(self, data: bytes, relpath: str) -> str:
        """Write one file atomically; returns its URL.

        Local disk: staged, then renamed into place. Object stores: a single PUT, which
        S3 already makes visible all at once.
        """
        target = self._path(relpath)
        self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        if not self._local:
            self.fs.pipe_file(target, data)
            return self.url(relpath)
        staged_dir = self._path(f"{STAGING}/{uuid.uuid4().hex}")
        staged = posixpath.join(staged_dir, posixpath.basename(relpath))
        try:
            self.fs.makedirs(staged_dir, exist_ok=True)
            self.fs.pipe_file(staged, data)
            self.fs.mv(staged, target)
        finally:
            if self.fs.exists(staged_dir):
                self.fs.rm(staged_dir, recursive=True)
        return self.url(relpath)

    def read_bytes(self, relpath: str) -> bytes | None:
        """A file's bytes under the root, None if absent."""
        path = self._path(relpath)
        if not self.fs.exists(path):
            return None
        return self.fs.cat_file(path)

    def exists(self, relpath: str) -> bool:
        """Whether a complete (committed) store exists at ``relpath``."""
        return self.fs.exists(posixpath.join(self._path(relpath), COMPLETE_MARKER))

    def open_zarr(self, relpath: str, **kwargs: Any) -> xr.Dataset:
        """Open a committed store lazily; FileNotFoundError naming the URL if absent."""
        if not self.exists(relpath):
            raise FileNotFoundError(f"no complete zarr store at {self.url(relpath)}")
        return xr.open_zarr(
            self.url(relpath),
            consolidated=True,
            zarr_format=ZARR_FORMAT,
            storage_options=self.storage_options or None,
            **kwargs,
        )

    def nbytes(self, relpath: str) -> int:
        """Total size in bytes of the objects of a store."""
        return int(self.fs.du(self._path(relpath), total=True))

    @contextmanager
    def staged_zarr(self, relpath: str) -> Iterator[str]:
        """Yield a staging URL to write a store into; commit it to ``relpath`` on clean exit.

        On an exception the staged data is removed and the existing store is untouched.
        """
        token = uuid.uuid4().hex
        name = posixpath.basename(relpath.rstrip("/"))
        staged_rel = f"{STAGING}/{token}/{name}"
        try:
            yield self.url(staged_rel)
            if not self.fs.exists(posixpath.join(self._path(staged_rel), COMPLETE_MARKER)):
                raise RuntimeError(
                    f"nothing complete was written to {self.url(staged_rel)}: a store must be "
                    "written with consolidated metadata before it is committed"
                )
            self._commit(self._path(staged_rel), self._path(relpath))
        finally:
            staged_dir = self._path(f"{STAGING}/{token}")
            if self.fs.exists(staged_dir):
                self.fs.rm(staged_dir, recursive=True)

    def write_zarr(
        self, ds: xr.Dataset, relpath: str, encoding: dict | None = None
    ) -> WrittenStore:
        """Write a whole dataset atomically; returns its URL, size and content checksum."""
        checksum = dataset_checksum(ds)
        with self.staged_zarr(relpath) as url:
            to_zarr(ds, url, self.storage_options, encoding=encoding)
        return WrittenStore(self.url(relpath), self.nbytes(relpath), checksum)

    def _commit(self, staged: str, target: str) -> None:
        fs = self.fs
        if self._local:
            parent = posixpath.dirname(target)
            fs.makedirs(parent, exist_ok=True)
            trash = None
            if fs.exists(target):
                trash = posixpath.join(self._root_path, STAGING, f"trash-{uuid.uuid4().hex}")
                fs.mv(target, trash, recursive=True)
            fs.mv(staged, target, recursive=True)
            if trash is not None:
                fs.rm(trash, recursive=True)
            return
        marker = posixpath.join(target, COMPLETE_MARKER)
        if fs.exists(marker):
            fs.rm(marker)  # from here on readers see no store rather than a mixed one
        if fs.exists(target):
            fs.rm(target, recursive=True)
        sources = [p for p in fs.find(staged) if posixpath.basename(p) != COMPLETE_MARKER]
        for src in sources:
            fs.copy(src, posixpath.join(target, posixpath.relpath(src, staged)))
        fs.copy(posixpath.join(staged, COMPLETE_MARKER), marker)
        fs.invalidate_cache()


def to_zarr(
    ds: xr.Dataset,
    url: str,
    storage_options: dict[str, Any] | None = None,
    encoding: dict | None = None,
    **kwargs: Any,
) -> None:
    """Write a dataset the one way the platform writes zarr (format 2, consolidated)."""
    ds.to_zarr(
        url,
        mode=kwargs.pop("mode", "w"),
        consolidated=True,
        zarr_format=ZARR_FORMAT,
        storage_options=storage_options or None,
        encoding=encoding,
        **kwargs,
    )


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def s3_options(endpoint_url: str | None) -> dict[str, Any]:
    """fsspec options for an S3 endpoint; credentials come from the standard AWS variables."""
    return {"client_kwargs": {"endpoint_url": endpoint_url}} if endpoint_url else {}


class StorageResource(dg.ConfigurableResource):
    """The platform's storage root (local directory or any fsspec URL such as ``s3://``)."""

    root: str = Field(description="Storage root: a local directory or an fsspec URL.")
    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, moto); None for AWS or local."
    )

    def storage(self) -> Storage:
        """The plain storage object behind this resource."""
        return Storage(self.root, s3_options(self.endpoint_url) if "://" in self.root else {})

    def url(self, relpath: str) -> str:
        return self.storage().url(relpath)

    def exists(self, relpath: str) -> bool:
        return self.storage().exists(relpath)

    def open_zarr(self, relpath: str, **kwargs: Any) -> xr.Dataset:
        return self.storage().open_zarr(relpath, **kwargs)

    def write_zarr(
        self, ds: xr.Dataset, relpath: str, encoding: dict | None = None
    ) -> WrittenStore:
        return self.storage().write_zarr(ds, relpath, encoding=encoding)

    @contextmanager
    def staged_zarr(self, relpath: str) -> Iterator[str]:
        with self.storage().staged_zarr(relpath) as url:
            yield url
