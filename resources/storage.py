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

Resumable writes (a forecast, written lead time by lead time): ``staged_zarrs(...,
resume_key=K)`` records ``K`` and the target stores in the lease. When such a writer dies
(SIGKILL, OOM, an evicted pod) or stops on an error with work recorded in a staged store's
progress journal (``PROGRESS.json``, kept by ``resources.forecast_writer``), its staging is
*kept*: the next ``staged_zarrs`` of the same stores with the same key adopts it (renamed to
its own token on local disk, an atomic claim) and the writer resumes from what is there.
The cleanup keeps such staging while it can still be resumed: until a newer lease for the
same stores exists (a run with other inputs, whose key differs, or a commit of those
stores), or until it has shown no progress for ``staging_max_age``. A writer on another host
(a pod) counts as dead for resuming once it has shown no progress (lease, journal) for
``resume_stale_after``.

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
from resources.zarr_files import COMPLETE_MARKER, ZARR_FORMAT, write_dataset

STAGING = ".staging"
LEASE = "LEASE.json"
JOURNAL = "COMMIT.json"
# A staged store's progress journal (written by resources.forecast_writer): a resumable write.
PROGRESS = "PROGRESS.json"
# Object-store calls: seconds before a silent endpoint counts as failed, and how often a
# commit call is tried before the write fails (each failure is logged).
DEFAULT_TIMEOUT_SECONDS = 20.0
COMMIT_ATTEMPTS = 3
# Staging older than this with no live writer on this host is abandoned.
DEFAULT_STAGING_MAX_AGE = timedelta(hours=6)
# A resumable write on another host that shows no progress for this long is taken over.
DEFAULT_RESUME_STALE_AFTER = timedelta(minutes=30)

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
    resumable: list[str] = field(default_factory=list)  # dead writers' work kept for a rerun


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
        resume_stale_after: timedelta = DEFAULT_RESUME_STALE_AFTER,
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
        self.resume_stale_after = resume_stale_after

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
    def staged_zarr(
        self, relpath: str, *, label: str | None = None, resume_key: str | None = None
    ) -> Iterator[str]:
        """Yield a staging URL to write one store into; commit it on clean exit."""
        with self.staged_zarrs([relpath], label=label, resume_key=resume_key) as (url,):
            yield url

    @contextmanager
    def staged_zarrs(
        self,
        relpaths: list[str],
        *,
        label: str | None = None,
        resume_key: str | None = None,
    ) -> Iterator[list[str]]:
        """Yield staging URLs for a set of stores; commit them all, or none, on clean exit.

        Write each store into its URL, validate what was written (open it, run checks), and
        raise to abandon the write: the stores in place are untouched and the staging is
        removed. ``label`` (an asset and partition, say) names the write in errors.

        ``resume_key`` (what the stores' content is made from, e.g. a forecast's inputs
        fingerprint) makes the write resumable: the staging of a dead writer of the same
        stores under the same key is adopted, so the URLs may hold its work (a progress
        journal says how much); and this write's staging is kept, not removed, when it
        stops with such work recorded, for the next write to resume.
        """
        relpaths = list(relpaths)
        if len(set(relpaths)) != len(relpaths):
            raise ValueError(f"a commit names the same store twice: {relpaths}")
        self.recover_commits()  # finish what a dead writer had already committed
        token = uuid.uuid4().hex
        what = label or ", ".join(relpaths)
        committing = False
        keep = False
        token_dir = self.path(f"{STAGING}/{token}")
        _ACTIVE.add(token)
        try:
            with self._space_errors(what):
                if resume_key is not None:
                    adopted = self._adopt(relpaths, resume_key, token_dir, what)
                    if adopted != token_dir:  # object stores: the dead writer's own token
                        _ACTIVE.discard(token)
                        token_dir, token = adopted, posixpath.basename(adopted)
                        _ACTIVE.add(token)
                staged = [
                    f"{token_dir}/{i}/{posixpath.basename(rel.rstrip('/'))}"
                    for i, rel in enumerate(relpaths)
                ]
                self._write_json(posixpath.join(token_dir, LEASE), _lease(relpaths, resume_key))
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
                keep = True
            elif resume_key is not None and not committing and self._progress(token_dir) > 0:
                logger.warning(
                    "storage: %s stopped after %d complete part(s); its staging is kept for "
                    "a rerun of the same inputs to resume",
                    what,
                    self._progress(token_dir),
                )
                keep = True
            raise
        finally:
            _ACTIVE.discard(token)
            if not keep and self.fs.exists(token_dir):
                self._retry("remove staging", token_dir, self.fs.rm, token_dir, recursive=True)
        # Committed: a dead writer's older work on these stores can never be resumed now.
        self._drop_resumable(relpaths, keep_key=None)

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
        codecs release the GIL), their data variables chunk by chunk as plain files
        (:func:`resources.zarr_files.write_dataset`: the same files as ``to_zarr``, without
        zarr's per-chunk machinery, one encoded chunk in memory at a time); data that must
        be computed or read (dask, lazy files) is hashed first, so that nothing is computed
        twice at the same time, and written by xarray.
        """
        relpaths = list(datasets)
        values = list(datasets.values())
        encodings = [_with_chunks(ds, chunks, encoding) for ds in values]
        with ThreadPoolExecutor(1, thread_name_prefix="wxplat-checksum") as pool:
            in_memory = all(_in_memory(ds) for ds in values)
            if in_memory:
                hashing = pool.submit(lambda: [dataset_checksum(ds) for ds in values])
            else:
                hashing = Future()
                hashing.set_result([dataset_checksum(ds) for ds in values])
            with self.staged_zarrs(relpaths, label=label) as urls:
                for ds, url, enc in zip(values, urls, encodings, strict=True):
                    if not (in_memory and write_dataset(ds, url, self.storage_options, enc)):
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
        A dead writer's *resumable* work (``staged_zarrs(resume_key=...)`` with progress
        recorded) is kept too, for a rerun to resume, until a newer lease for the same
        stores exists or it has shown no progress for ``max_age``.
        """
        report = CleanupReport(rolled_forward=self.recover_commits())
        max_age = self.staging_max_age if max_age is None else max_age
        leases = self._leases()
        for token in self.list_dir(STAGING):
            token_dir = self.path(f"{STAGING}/{token}")
            lease = leases.get(token)
            if self._resumable(token_dir, lease, leases, max_age):
                report.resumable.append(self._url_of(token_dir))
                continue
            if self._writer_alive(token_dir, max_age):
                report.kept.append(self._url_of(token_dir))
                continue
            self._retry("remove staging", token_dir, self.fs.rm, token_dir, recursive=True)
            report.removed.append(self._url_of(token_dir))
        return report

    # -- resumable writes ------------------------------------------------------------------

    def _leases(self) -> dict[str, dict]:
        """Every staging area's lease, by token (areas without one are left out)."""
        out = {}
        for token in self.list_dir(STAGING):
            lease = self._read_json(self.path(f"{STAGING}/{token}/{LEASE}"))
            if lease is not None:
                out[token] = lease
        return out

    def _resumable(
        self, token_dir: str, lease: dict | None, leases: dict[str, dict], max_age: timedelta
    ) -> bool:
        """Whether a staging area is a dead writer's work that a rerun can still resume."""
        if not lease or lease.get("resume_key") is None or lease.get("pid") is None:
            return False
        if self._read_json(posixpath.join(token_dir, JOURNAL)) is not None:
            return False  # a commit: rolled forward, not resumed
        if not self._writer_dead(token_dir, lease) or self._progress(token_dir) == 0:
            return False
        if _now() - self._last_activity(token_dir, lease) >= max_age:
            return False
        started = lease.get("started", "")
        token = posixpath.basename(token_dir)
        newer = any(
            other.get("relpaths") == lease.get("relpaths") and other.get("started", "") > started
            for t, other in leases.items()
            if t != token
        )
        return not newer

    def _writer_dead(self, token_dir: str, lease: dict) -> bool:
        """Whether the writer of a resumable staging area is gone (safe to take over).

        On this host: its process is gone (or is this one, and the write is not active).
        Elsewhere (a pod): it has shown no progress for ``resume_stale_after``.
        """
        if lease.get("host") == socket.gethostname():
            pid = int(lease["pid"])
            token = posixpath.basename(token_dir)
            return not pid_alive(pid) or (pid == os.getpid() and token not in _ACTIVE)
        return _now() - self._last_activity(token_dir, lease) >= self.resume_stale_after

    def _journals(self, token_dir: str) -> list[dict | None]:
        """The progress journal of each staged store of an area (None where it has none)."""
        journals = []
        if not self._local:
            self.fs.invalidate_cache(token_dir)  # written by other clients (the writer's)
        for part in self.list_dir(posixpath.relpath(token_dir, self._root_path)):
            part_dir = posixpath.join(token_dir, part)
            if not part.isdigit():
                continue
            for name in self.list_dir(posixpath.relpath(part_dir, self._root_path)):
                journals.append(self._read_json(posixpath.join(part_dir, name, PROGRESS)))
        return journals

    def _progress(self, token_dir: str) -> int:
        """Complete parts (lead times) that every staged store of an area records; 0: none."""
        try:
            journals = self._journals(token_dir)
        except (OSError, ValueError):
            return 0
        if not journals or any(j is None for j in journals):
            return 0
        return min(int(j.get("complete", 0)) for j in journals if j is not None)

    def _last_activity(self, token_dir: str, lease: dict) -> datetime:
        stamps = [datetime.fromisoformat(lease["started"])]
        try:
            journals = self._journals(token_dir)
        except (OSError, ValueError):
            journals = []
        stamps += [datetime.fromisoformat(j["updated"]) for j in journals if j and "updated" in j]
        return max(stamps)

    def _adopt(self, relpaths: list[str], key: str, token_dir: str, what: str) -> str:
        """The staging directory to write into: a dead writer's resumable one, else new.

        Local disk: the dead writer's directory is renamed to ``token_dir`` (one atomic
        claim: of two writers only one gets it). Object stores have no rename: the area
        keeps its token and the new lease claims it.
        """
        self._drop_resumable(relpaths, keep_key=key)  # other inputs: superseded by these
        leases = self._leases()
        candidates = []
        for token, lease in leases.items():
            if lease.get("relpaths") != relpaths or lease.get("resume_key") != key:
                continue
            old = self.path(f"{STAGING}/{token}")
            if self._resumable(old, lease, leases, self.staging_max_age):
                candidates.append((self._progress(old), lease.get("started", ""), old))
        for progress, _, old in sorted(candidates, reverse=True):
            if self._local:
                try:
                    os.rename(old, token_dir)
                except OSError:
                    continue  # claimed by another writer first
                claimed = token_dir
            else:
                claimed = old
            logger.warning(
                "storage: resuming %s from the staging a dead writer left at %s "
                "(%d complete part(s))",
                what,
                self._url_of(old),
                progress,
            )
            return claimed
        return token_dir

    def _drop_resumable(self, relpaths: list[str], keep_key: str | None) -> None:
        """Remove dead writers' resumable staging of ``relpaths`` (but ``keep_key``'s)."""
        try:
            for token, lease in self._leases().items():
                if lease.get("relpaths") != relpaths or lease.get("resume_key") is None:
                    continue
                if keep_key is not None and lease.get("resume_key") == keep_key:
                    continue
                old = self.path(f"{STAGING}/{token}")
                if token in _ACTIVE or not self._writer_dead(old, lease):
                    continue
                if self._read_json(posixpath.join(old, JOURNAL)) is not None:
                    continue  # a commit in flight: the roll-forward's business
                self._retry("remove staging", old, self.fs.rm, old, recursive=True)
        except (OSError, *_transient_errors()) as exc:  # tidying only: never fails a write
            logger.warning("storage: could not remove superseded staging: %s", exc)

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


def _lease(relpaths: list[str] | None = None, resume_key: str | None = None) -> dict:
    lease: dict[str, Any] = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": _now().isoformat(),
    }
    if resume_key is not None:
        lease.update(relpaths=list(relpaths or []), resume_key=resume_key)
    return lease


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
