"""The storage root: every store the platform writes lives under one fsspec URL.

A write is *staged, validated, then committed* (write-audit-publish), and a commit covers a
whole set of stores at once (every member of a cycle):

1. Staging: each store is written under ``<root>/.staging/<token>/<i>/`` beside a lease
   (``LEASE.json``: host, pid, start time). A failed or killed computation never touches
   the stores in place; the caller validates the staged stores inside the ``with`` block and
   raising there commits nothing.
2. The commit point: ``COMMIT.json`` (the list of staged -> target pairs) is written in one
   atomic operation (rename on local disk, one PUT on S3). Before it exists nothing has
   changed; once it exists the commit *will* complete, by this writer or, if it dies, by
   the next writer or the staging cleanup (roll-forward, idempotent).
3. Switch, store by store:

   * local disk: the old store is renamed aside and the staged one renamed into place;
   * object stores (S3): the new objects are copied over the old ones, the consolidated
     metadata (``.zmetadata``) is copied *last*, and objects of the old version that the new
     one does not have are deleted *after*. The old ``.zmetadata`` is never deleted first,
     so a store never disappears, even when the endpoint stops answering mid-commit.

4. ``COMMIT.json`` is removed (the commit is done), then the rest of the staging area.

Every object-store call has a timeout (``s3_options``) and the commit's calls are retried
with a log line on the ``wxplat.storage`` logger. Staging left by dead writers is removed by
:meth:`Storage.clean_staging` (age- and lease-based: never a live write).

Stores are zarr format 2 with consolidated metadata: ``.zmetadata`` doubles as the "this
store is complete" marker that sensors look for.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import posixpath
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import dagster as dg
import fsspec
import numpy as np
import xarray as xr
from pydantic import Field

from resources.processes import pid_alive

ZARR_FORMAT = 2
COMPLETE_MARKER = ".zmetadata"
STAGING = ".staging"
LEASE = "LEASE.json"
JOURNAL = "COMMIT.json"
# Object-store calls: seconds before a silent endpoint counts as failed, and how often a
# commit call is tried before the write fails (each failure is logged).
DEFAULT_TIMEOUT_SECONDS = 20.0
COMMIT_ATTEMPTS = 3
# Staging older than this with no live writer on this host is abandoned.
DEFAULT_STAGING_MAX_AGE = timedelta(hours=6)

logger = logging.getLogger("wxplat.storage")
# Tokens of the writes this process has in flight (its other staging areas are abandoned).
_ACTIVE: set[str] = set()
T = TypeVar("T")


class StorageFullError(OSError):
    """The storage root has no space left; nothing was committed."""


@dataclass(frozen=True)
class WrittenStore:
    """What a committed write produced."""

    url: str
    nbytes: int
    checksum: str


@dataclass
class CleanupReport:
    """What :meth:`Storage.clean_staging` did."""

    rolled_forward: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def dataset_checksum(ds: xr.Dataset) -> str:
    """sha256 over names, dims, coordinates and values: the dataset's content version.

    Independent of chunking and compression, so the same data gives the same version
    wherever and however it is stored. Per variable (sorted by name) it hashes
    ``name|dims|dtype|shape`` and then the values' C-order bytes (``repr`` of the list for
    object arrays). In-memory arrays are hashed in place (no copy of contiguous data);
    dask-backed ones one slab of leading-axis chunks at a time, never whole.
    """
    h = hashlib.sha256()
    for name in sorted(map(str, ds.variables)):
        var = ds.variables[name]
        h.update(f"{name}|{var.dims}|{var.dtype.str}|{var.shape}".encode())
        for values in _c_order_slabs(var):
            if values.dtype.kind in "OT":  # object and variable-width strings: by value
                h.update(repr(values.tolist()).encode())
            else:
                h.update(_raw_bytes(values))
    return h.hexdigest()


def _c_order_slabs(var: xr.Variable) -> Iterator[np.ndarray]:
    """A variable's values as consecutive pieces whose C-order bytes, joined, are the whole's.

    One piece (the array itself) unless the data is dask-backed with several chunks along
    its first axis: then one computed slab per chunk of that axis (object arrays, whose
    hash is the ``repr`` of the whole list, are always one piece).
    """
    data = var.data
    if is_dask_backed(var) and var.ndim and var.dtype.kind not in "OT" and len(data.chunks[0]) > 1:
        for i in range(len(data.chunks[0])):
            yield np.asarray(data.blocks[i].compute())
        return
    yield np.ascontiguousarray(var.values)


def _raw_bytes(values: np.ndarray) -> memoryview:
    """The C-order bytes of an array, as ``tobytes()`` gives them, without copying them
    when the array is contiguous (datetime arrays too, via a byte view)."""
    flat = np.ascontiguousarray(values).reshape(-1)
    return memoryview(flat.view(np.uint8))


def is_dask_backed(var: xr.Variable) -> bool:
    """Whether a variable's data is a chunked (dask) array rather than in memory or lazy."""
    return var.chunks is not None and hasattr(var.data, "blocks")


def _in_memory(ds: xr.Dataset) -> bool:
    """Whether every variable's values are in memory already (reading them costs nothing)."""
    return all(getattr(var, "_in_memory", False) for var in ds.variables.values())


def _with_chunks(
    ds: xr.Dataset, chunks: dict[str, int] | None, encoding: dict | None
) -> dict | None:
    """``encoding`` plus zarr chunks from ``chunks`` for every in-memory non-index variable.

    Gives the store the layout ``ds.chunk(chunks)`` would give it (``chunks[dim]`` along the
    named dims, whole along the others; index coordinates left to zarr), without copying
    the data into dask. Chunks given in ``encoding`` win; dask-backed variables keep theirs.
    """
    if not chunks:
        return encoding
    out = {name: dict(enc) for name, enc in (encoding or {}).items()}
    for name, var in ds.variables.items():
        if name in ds.xindexes or var.ndim == 0 or is_dask_backed(var):
            continue
        shape = tuple(
            max(1, min(int(chunks.get(dim, size)), size))
            for dim, size in zip(var.dims, var.shape, strict=True)
        )
        out.setdefault(str(name), {}).setdefault("chunks", shape)
    return out


def combine_checksums(checksums: list[str]) -> str:
    """One version for several stores written together (members of a cycle)."""
    if len(checksums) == 1:
        return checksums[0]
    return hashlib.sha256("".join(checksums).encode()).hexdigest()


class Storage:
    """Atomic zarr reads and writes under one root URL (plain class, no Dagster)."""

    def __init__(
        self,
        root: str,
        storage_options: dict[str, Any] | None = None,
        *,
        staging_max_age: timedelta = DEFAULT_STAGING_MAX_AGE,
    ):
        self.root = root.rstrip("/")
        self.storage_options = dict(storage_options or {})
        # An instance of our own: the commit retries (and logs) each failed call itself, so
        # s3fs's silent inner retries are turned down to one try on this instance only.
        self.fs, self._root_path = fsspec.core.url_to_fs(
            self.root, skip_instance_cache=True, **self.storage_options
        )
        if hasattr(self.fs, "retries"):
            self.fs.retries = 1
        self._local = "file" in _protocols(self.fs)
        self.staging_max_age = staging_max_age

    def url(self, relpath: str) -> str:
        """Full URL of a path relative to the root."""
        return f"{self.root}/{relpath.lstrip('/')}"

    def path(self, relpath: str) -> str:
        """The filesystem path (no protocol) of ``relpath``, for ``self.fs`` calls."""
        return posixpath.join(self._root_path, relpath.lstrip("/"))

    def list_dir(self, relpath: str) -> list[str]:
        """Names of the entries directly under ``relpath`` (empty when it does not exist)."""
        target = self.path(relpath)
        if not self.fs.exists(target):
            return []
        return sorted(posixpath.basename(p.rstrip("/")) for p in self.fs.ls(target, detail=False))

    def write_bytes(self, data: bytes, relpath: str) -> str:
        """Write one file atomically; returns its URL.

        Local disk: staged, then renamed into place. Object stores: a single PUT, which
        S3 already makes visible all at once.
        """
        target = self.path(relpath)
        with self._space_errors(relpath):
            self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
            if not self._local:
                self._retry("put", target, self.fs.pipe_file, target, data)
                return self.url(relpath)
            staged_dir = self.path(f"{STAGING}/{uuid.uuid4().hex}")
            staged = posixpath.join(staged_dir, posixpath.basename(relpath))
            try:
                self.fs.makedirs(staged_dir, exist_ok=True)
                self.fs.pipe_file(staged, data)
                os.replace(staged, target)
            finally:
                if self.fs.exists(staged_dir):
                    self.fs.rm(staged_dir, recursive=True)
        return self.url(relpath)

    def read_bytes(self, relpath: str) -> bytes | None:
        """A file's bytes under the root, None if absent."""
        path = self.path(relpath)
        if not self.fs.exists(path):
            return None
        return self.fs.cat_file(path)

    def exists(self, relpath: str) -> bool:
        """Whether a complete (committed) store exists at ``relpath``."""
        return self.fs.exists(posixpath.join(self.path(relpath), COMPLETE_MARKER))

    def open_zarr(self, relpath: str, **kwargs: Any) -> xr.Dataset:
        """Open a committed store lazily; FileNotFoundError naming the URL if absent."""
        if not self.exists(relpath):
            raise FileNotFoundError(f"no complete zarr store at {self.url(relpath)}")
        return open_zarr_url(self.url(relpath), self.storage_options, **kwargs)

    def nbytes(self, relpath: str) -> int:
        """Total size in bytes of the objects of a store."""
        return int(self.fs.du(self.path(relpath), total=True))

    @contextmanager
    def staged_zarr(self, relpath: str, *, label: str | None = None) -> Iterator[str]:
        """Yield a staging URL to write one store into; commit it on clean exit."""
        with self.staged_zarrs([relpath], label=label) as (url,):
            yield url

    @contextmanager
    def staged_zarrs(self, relpaths: list[str], *, label: str | None = None) -> Iterator[list[str]]:
        """Yield staging URLs for a set of stores; commit them all, or none, on clean exit.

        Write each store into its URL, validate what was written (open it, run checks), and
        raise to abandon the write: the stores in place are untouched and the staging is
        removed. ``label`` (an asset and partition, say) names the write in errors.
        """
        if len(set(relpaths)) != len(relpaths):
            raise ValueError(f"a commit names the same store twice: {relpaths}")
        self.recover_commits()  # finish what a dead writer had already committed
        token = uuid.uuid4().hex
        token_dir = self.path(f"{STAGING}/{token}")
        staged = [
            f"{token_dir}/{i}/{posixpath.basename(rel.rstrip('/'))}"
            for i, rel in enumerate(relpaths)
        ]
        what = label or ", ".join(relpaths)
        committing = False
        _ACTIVE.add(token)
        try:
            with self._space_errors(what):
                self._write_json(posixpath.join(token_dir, LEASE), _lease())
                yield [self._url_of(p) for p in staged]
                for path in staged:
                    if not self.fs.exists(posixpath.join(path, COMPLETE_MARKER)):
                        raise RuntimeError(
                            f"nothing complete was written to {self._url_of(path)}: a store must "
                            "be written with consolidated metadata before it is committed"
                        )
                pairs = [(s, self.path(rel)) for s, rel in zip(staged, relpaths, strict=True)]
                committing = True  # from the journal on, the commit only ever goes forward
                self._write_json(
                    posixpath.join(token_dir, JOURNAL),
                    {"pairs": pairs, "label": what, "committed": _now().isoformat()},
                )
                self._apply(token_dir, pairs)
                committing = False
        except BaseException:
            if committing and self._read_json_quietly(posixpath.join(token_dir, JOURNAL)):
                # Interrupted after the commit point: keep the staging and the journal, so
                # that the next writer or the cleanup completes the commit (roll-forward).
                logger.error(
                    "storage: the commit of %s was interrupted; it will be completed by the "
                    "next write under %s or by the staging cleanup",
                    what,
                    self.root,
                )
                token_dir = ""
            raise
        finally:
            _ACTIVE.discard(token)
            if token_dir and self.fs.exists(token_dir):
                self._retry("remove staging", token_dir, self.fs.rm, token_dir, recursive=True)

    def write_zarr(
        self,
        ds: xr.Dataset,
        relpath: str,
        encoding: dict | None = None,
        *,
        label: str | None = None,
    ) -> WrittenStore:
        """Write a whole dataset atomically; returns its URL, size and content checksum."""
        return self.write_zarrs({relpath: ds}, encoding=encoding, label=label)[0]

    def write_zarrs(
        self,
        datasets: dict[str, xr.Dataset],
        encoding: dict | None = None,
        *,
        chunks: dict[str, int] | None = None,
        validate: Callable[[list[xr.Dataset]], None] | None = None,
        label: str | None = None,
    ) -> list[WrittenStore]:
        """Write several stores as one commit; ``validate`` sees the staged stores first.

        ``validate`` receives the staged stores reopened from storage (what would be
        committed) and raises to refuse them: then nothing is committed. ``chunks`` (dim ->
        length) chunks in-memory data in the store as ``ds.chunk(chunks)`` would, without
        the copy into dask (see :func:`_with_chunks`).

        In-memory datasets are hashed in a thread while they are written (hashlib and the
        codecs release the GIL); data that must be computed or read (dask, lazy files) is
        hashed first, so that nothing is computed twice at the same time.
        """
        relpaths = list(datasets)
        values = list(datasets.values())
        encodings = [_with_chunks(ds, chunks, encoding) for ds in values]
        with ThreadPoolExecutor(1, thread_name_prefix="wxplat-checksum") as pool:
            if all(_in_memory(ds) for ds in values):
                hashing = pool.submit(lambda: [dataset_checksum(ds) for ds in values])
            else:
                hashing = Future()
                hashing.set_result([dataset_checksum(ds) for ds in values])
            with self.staged_zarrs(relpaths, label=label) as urls:
                for ds, url, enc in zip(values, urls, encodings, strict=True):
                    to_zarr(ds, url, self.storage_options, encoding=enc)
                checksums = hashing.result()
                if validate is not None:
                    staged = [open_zarr_url(url, self.storage_options) for url in urls]
                    validate(staged)
        return [
            WrittenStore(self.url(rel), self.nbytes(rel), checksum)
            for rel, checksum in zip(relpaths, checksums, strict=True)
        ]

    # -- commits ---------------------------------------------------------------------------

    def _apply(self, token_dir: str, pairs: list[tuple[str, str]]) -> None:
        """Switch every staged store into place (idempotent: safe to repeat after a crash)."""
        for i, (staged, target) in enumerate(pairs):
            if self._local:
                self._switch_local(staged, target, posixpath.join(token_dir, f"old-{i}"))
            else:
                self._switch_object_store(staged, target)
        # The commit is complete: drop the journal first, so that a crash while the rest of
        # the staging area is removed can never replay a partial copy.
        self._retry("finish commit", token_dir, self.fs.rm, posixpath.join(token_dir, JOURNAL))
        if not self._local:
            self.fs.invalidate_cache()

    def _switch_local(self, staged: str, target: str, aside: str) -> None:
        if not os.path.exists(staged):
            return  # switched already
        os.makedirs(posixpath.dirname(target), exist_ok=True)
        if os.path.exists(target):
            if os.path.exists(aside):
                aside = f"{aside}-{uuid.uuid4().hex[:8]}"
            os.rename(target, aside)
        os.rename(staged, target)

    def _switch_object_store(self, staged: str, target: str) -> None:
        fs = self.fs
        new = self._retry("list", staged, fs.find, staged)
        if not new:
            return  # switched already (the staged copy is only removed after the commit)
        rel_new = {posixpath.relpath(p, staged) for p in new}
        old = self._retry("list", target, fs.find, target) if fs.exists(target) else []
        data = sorted(r for r in rel_new if r != COMPLETE_MARKER)
        # New objects first (the old .zmetadata keeps the store visible), metadata last ...
        if data:
            self._retry(
                "copy",
                target,
                fs.copy,
                [posixpath.join(staged, r) for r in data],
                [posixpath.join(target, r) for r in data],
            )
        self._retry(
            "switch metadata",
            target,
            fs.copy,
            posixpath.join(staged, COMPLETE_MARKER),
            posixpath.join(target, COMPLETE_MARKER),
        )
        # ... and what only the old version had, after.
        stale = [p for p in old if posixpath.relpath(p, target) not in rel_new]
        if stale:
            self._retry("delete old objects", target, fs.rm, stale)

    def recover_commits(self) -> list[str]:
        """Complete commits whose writer died after the commit point; their labels."""
        done = []
        for token in self.list_dir(STAGING):
            token_dir = self.path(f"{STAGING}/{token}")
            journal = self._read_json(posixpath.join(token_dir, JOURNAL))
            if journal is None or self._writer_alive(token_dir):
                continue
            logger.warning("storage: completing the interrupted commit of %s", journal["label"])
            self._apply(token_dir, [tuple(p) for p in journal["pairs"]])
            self._retry("remove staging", token_dir, self.fs.rm, token_dir, recursive=True)
            done.append(str(journal["label"]))
        return done

    def clean_staging(self, max_age: timedelta | None = None) -> CleanupReport:
        """Remove staging left by dead writers; complete their commits if they had one.

        A staging area is abandoned when its writer's process is gone (same host) or its
        lease is older than ``max_age`` (default ``staging_max_age``); a live write is kept.
        """
        report = CleanupReport(rolled_forward=self.recover_commits())
        max_age = self.staging_max_age if max_age is None else max_age
        for token in self.list_dir(STAGING):
            token_dir = self.path(f"{STAGING}/{token}")
            if self._writer_alive(token_dir, max_age):
                report.kept.append(self._url_of(token_dir))
                continue
            self._retry("remove staging", token_dir, self.fs.rm, token_dir, recursive=True)
            report.removed.append(self._url_of(token_dir))
        return report

    def _writer_alive(self, token_dir: str, max_age: timedelta | None = None) -> bool:
        lease = self._read_json(posixpath.join(token_dir, LEASE))
        max_age = self.staging_max_age if max_age is None else max_age
        if lease is None:  # a staging area of an older version: judge by its age only
            return _now() - self._modified(token_dir) < max_age
        if lease.get("host") == socket.gethostname():
            pid = int(lease["pid"])
            if not pid_alive(pid) or (
                pid == os.getpid() and token_dir.rsplit("/", 1)[-1] not in _ACTIVE
            ):
                return False
        return _now() - datetime.fromisoformat(lease["started"]) < max_age

    def _modified(self, path: str) -> datetime:
        stamps = []
        for info in self.fs.find(path, detail=True, withdirs=True).values():
            stamp = info.get("mtime") or info.get("LastModified") or info.get("created")
            if isinstance(stamp, datetime):
                stamps.append(stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC))
            elif stamp is not None:
                stamps.append(datetime.fromtimestamp(float(stamp), UTC))
        return max(stamps, default=datetime.fromtimestamp(0, UTC))

    # -- helpers ---------------------------------------------------------------------------

    def _url_of(self, path: str) -> str:
        return self.url(posixpath.relpath(path, self._root_path))

    def _write_json(self, path: str, obj: dict) -> None:
        data = json.dumps(obj).encode()
        if self._local:
            os.makedirs(posixpath.dirname(path), exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex[:8]}"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        else:
            self._retry("put", path, self.fs.pipe_file, path, data)

    def _read_json(self, path: str) -> dict | None:
        try:
            return json.loads(self.fs.cat_file(path))
        except FileNotFoundError:
            return None

    def _read_json_quietly(self, path: str) -> dict | None:
        """Like ``_read_json``, but a failing endpoint counts as "present" (keep the journal)."""
        try:
            return self._read_json(path)
        except (OSError, *_transient_errors()):
            return {"unknown": True}

    def _retry(self, what: str, path: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a storage function, retrying transient failures with a log line each."""
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                return fn(*args, **kwargs)
            except (FileNotFoundError, PermissionError, StorageFullError):
                raise
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise
                error: Exception = exc
            except _transient_errors() as exc:
                error = exc
            url = self._url_of(path)
            if attempt == COMMIT_ATTEMPTS:
                raise OSError(
                    f"storage {what} at {url} failed {COMMIT_ATTEMPTS} times, last with "
                    f"{type(error).__name__}: {error}"
                ) from error
            delay = 2.0 ** (attempt - 1)
            logger.warning(
                "storage: %s at %s failed (%s: %s); retry %d/%d in %.0f s",
                what,
                url,
                type(error).__name__,
                error,
                attempt,
                COMMIT_ATTEMPTS - 1,
                delay,
            )
            time.sleep(delay)
        raise AssertionError("unreachable")

    @contextmanager
    def _space_errors(self, what: str) -> Iterator[None]:
        """Turn "no space left" into one sentence naming the root and what was written."""
        try:
            yield
        except StorageFullError:
            raise
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise StorageFullError(
                exc.errno,
                f"storage root {self.root} is full ({os.strerror(exc.errno)}) while writing "
                f"{what}: nothing was committed, the stored version is unchanged",
            ) from None


def open_zarr_url(url: str, storage_options: dict[str, Any] | None = None, **kwargs: Any):
    """Open a store the one way the platform reads zarr (format 2, consolidated)."""
    return xr.open_zarr(
        url,
        consolidated=True,
        zarr_format=ZARR_FORMAT,
        storage_options=storage_options or None,
        **kwargs,
    )


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


def _transient_errors() -> tuple[type[BaseException], ...]:
    try:
        from botocore.exceptions import BotoCoreError
    except ImportError:  # no S3 support installed: only OSError and timeouts happen
        return (TimeoutError,)
    return (TimeoutError, BotoCoreError)


def _now() -> datetime:
    return datetime.now(UTC)


def _lease() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _now().isoformat()}


def s3_options(
    endpoint_url: str | None, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """fsspec options for S3: the endpoint and a timeout on every call.

    Credentials come from the standard AWS variables. botocore's own retries are off: s3fs
    retries a timed-out call a few times and the commit logs and retries each failure, so a
    silent endpoint fails a write in bounded time instead of hanging.
    """
    options: dict[str, Any] = {
        "config_kwargs": {
            "connect_timeout": timeout_seconds,
            "read_timeout": timeout_seconds,
            "retries": {"max_attempts": 1},
        }
    }
    if endpoint_url:
        options["client_kwargs"] = {"endpoint_url": endpoint_url}
    return options


class StorageResource(dg.ConfigurableResource):
    """The platform's storage root (local directory or any fsspec URL such as ``s3://``)."""

    root: str = Field(description="Storage root: a local directory or an fsspec URL.")
    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, moto); None for AWS or local."
    )
    timeout_seconds: float = Field(
        default=DEFAULT_TIMEOUT_SECONDS, description="Timeout of every object-store call."
    )

    def storage(self) -> Storage:
        """The plain storage object behind this resource."""
        options = (
            s3_options(self.endpoint_url, self.timeout_seconds)
            if self.root.startswith(("s3://", "s3a://"))
            else {}
        )
        return Storage(self.root, options)

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
