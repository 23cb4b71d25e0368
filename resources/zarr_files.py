"""Zarr format-2 stores written as plain files: metadata laid out once, chunks encoded and
written directly, without zarr's per-call machinery.

zarr's own ``Array.__setitem__`` costs about ten times the encoding of a chunk (an asyncio
round trip, a selection, a codec pipeline per call), and its local store writes every file
through a temporary file and a rename. Two writers of the platform write whole chunks of
data they already hold in memory: the forecast output (one lead time at a time) and
:func:`write_dataset` (an ingested cycle). Both lay the store out with xarray (a lazy
template written with ``to_zarr(compute=False)`` into memory: the metadata and coordinates
exactly as xarray writes them), then encode each chunk with the codec its ``.zarray`` names
and write it as one file (local disk) or one object among concurrent PUTs (object stores).
The store is byte-for-byte what ``xarray.Dataset.to_zarr`` writes (tested file by file).

The primitives:

- :class:`ChunkCodec`: one array's chunks (from its ``.zarray``): their key and their bytes;
- :class:`ZarrFiles`: one store's files (lay out, put, consolidate);
- :func:`layout_docs`: the files ``to_zarr(compute=False)`` lays out, as ``{key: bytes}``;
- :func:`write_dataset`: an in-memory dataset written this way, or False where xarray's own
  encoding would change the values (scale factors, integer fill values, strings, times).
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import fsspec
    import xarray as xr
    import zarr

# The one zarr format the platform writes, and the key that marks a store complete (the
# consolidated metadata, written last).
ZARR_FORMAT = 2
COMPLETE_MARKER = ".zmetadata"

# Encoding keys under which xarray changes the floating-point values it writes (CF
# encoding): a variable with any of them goes through xarray.
_VALUE_CODERS = ("scale_factor", "add_offset", "missing_value")


@dataclass
class ChunkCodec:
    """How one zarr array's chunks are named and encoded (format 2: ``name/0.1.0``)."""

    name: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    separator: str
    compressor: Any
    filters: tuple[Any, ...]
    dtype: np.dtype
    fill_nan: bool
    fill_value: Any

    @classmethod
    def of(cls, name: str, meta: dict) -> ChunkCodec:
        """The codec of array ``name`` from its ``.zarray`` (C order only)."""
        import numcodecs

        if meta.get("order", "C") != "C":
            raise ValueError(f"{name}: only C-order chunks are written directly")
        dtype = np.dtype(meta["dtype"])
        fill = meta.get("fill_value")
        if isinstance(fill, str):  # JSON's NaN and infinities
            fill = float(fill.replace("Infinity", "inf"))
        fill_nan = dtype.kind == "f" and fill is not None and bool(np.isnan(dtype.type(fill)))
        compressor = meta.get("compressor")
        return cls(
            name=name,
            shape=tuple(meta["shape"]),
            chunks=tuple(meta["chunks"]),
            separator=meta.get("dimension_separator") or ".",
            compressor=None if compressor is None else numcodecs.get_codec(compressor),
            filters=tuple(numcodecs.get_codec(f) for f in meta.get("filters") or ()),
            dtype=dtype,
            fill_nan=fill_nan,
            fill_value=None if fill_nan or fill is None else dtype.type(fill),
        )

    @property
    def nbytes(self) -> int:
        """Raw bytes of one chunk."""
        return int(np.prod(self.chunks)) * self.dtype.itemsize

    def key(self, coords: tuple[int, ...]) -> str:
        """The store key of the chunk at chunk coordinates ``coords``."""
        return f"{self.name}/{self.separator.join(map(str, coords)) if coords else '0'}"

    def grid(self) -> Iterator[tuple[tuple[int, ...], tuple[slice, ...]]]:
        """Every chunk's coordinates and the slice of the array it holds, in C order."""
        counts = [-(-n // c) if n else 0 for n, c in zip(self.shape, self.chunks, strict=True)]
        for coords in np.ndindex(*counts):
            yield (
                tuple(int(i) for i in coords),
                tuple(
                    slice(i * c, min((i + 1) * c, n))
                    for i, c, n in zip(coords, self.chunks, self.shape, strict=True)
                ),
            )

    def encode(self, values: np.ndarray) -> bytes | memoryview | None:
        """The chunk's bytes exactly as zarr's format-2 codec writes them; None when the
        chunk is all fill value (zarr then writes nothing: ``write_empty_chunks=False``).

        ``values`` may be an edge chunk, smaller than the chunk shape: it is padded with the
        fill value, as zarr pads it.
        """
        chunk = np.ascontiguousarray(values, dtype=self.dtype)
        if self.fill_nan:
            if np.isnan(chunk.flat[0]) and np.isnan(chunk).all():
                return None
        elif self.fill_value is not None and (chunk == self.fill_value).all():
            return None
        if chunk.shape != self.chunks:
            full = np.full(self.chunks, self._pad(), dtype=self.dtype)
            full[tuple(slice(0, n) for n in chunk.shape)] = chunk
            chunk = full
        for f in self.filters:
            chunk = f.encode(chunk)
        if self.compressor is None:
            return memoryview(np.ascontiguousarray(chunk).reshape(-1).view(np.uint8))
        from numcodecs.compat import ensure_bytes

        return ensure_bytes(self.compressor.encode(chunk))

    def _pad(self) -> Any:
        if self.fill_nan:
            return np.nan
        return self.fill_value if self.fill_value is not None else 0


class ZarrFiles:
    """One store's files: laid out, written key by key, consolidated (or, for a store given
    as a zarr store object rather than a URL, reached through zarr's API)."""

    def __init__(self, store: Any, storage_options: dict[str, Any] | None) -> None:
        self.store = store
        self.fs: fsspec.AbstractFileSystem | None = None
        self.root = ""
        self.local = False
        if isinstance(store, str | os.PathLike):
            import fsspec

            self.fs, self.root = fsspec.core.url_to_fs(str(store), **(storage_options or {}))
            protocols = (
                (self.fs.protocol,) if isinstance(self.fs.protocol, str) else self.fs.protocol
            )
            self.local = "file" in protocols
        self.storage_options = storage_options
        self.docs: dict[str, bytes] | None = None  # the metadata this writer laid out
        self._group: zarr.Group | None = None
        self._dirs: set[str] = set()

    @property
    def direct(self) -> bool:
        """Whether chunks are written as files (else through zarr's API)."""
        return self.fs is not None

    def path(self, key: str) -> str:
        return posixpath.join(self.root, key)

    def group(self) -> zarr.Group:
        """The store as a zarr group (opened once, when zarr's API is needed)."""
        if self._group is None:
            import zarr

            extra = {"storage_options": self.storage_options} if self.storage_options else {}
            self._group = zarr.open_group(self.store, mode="r+", zarr_format=ZARR_FORMAT, **extra)
        return self._group

    def lay_out(self, docs: dict[str, bytes]) -> None:
        """Replace whatever the store holds with ``docs`` (metadata and coordinates)."""
        assert self.fs is not None
        if self.fs.exists(self.root):
            self.fs.rm(self.root, recursive=True)
        if self.local:
            os.makedirs(self.root, exist_ok=True)
            self._dirs.add(self.root.rstrip("/"))
        self.put(list(docs.items()))
        self.docs = docs

    def array_metadata(self, name: str) -> dict:
        """An array's format-2 metadata (``.zarray``) as a dict."""
        if self.docs is not None:
            return json.loads(self.docs[f"{name}/.zarray"])
        if self.direct:
            meta = self.read_json(f"{name}/.zarray")
            if meta is None:
                raise FileNotFoundError(f"no array {name!r} in {self.store}")
            return meta
        return self.group()[name].metadata.to_dict()

    def consolidate(self) -> None:
        """Write the consolidated metadata (``.zmetadata``): the store is complete."""
        import zarr

        if self.docs is None:
            zarr.consolidate_metadata(self.group().store, zarr_format=ZARR_FORMAT)
            return
        # What zarr writes, computed from the metadata laid out (chunks change none of it).
        memory: dict = {}
        store = zarr.storage.MemoryStore(memory)
        prototype = zarr.core.buffer.default_buffer_prototype()
        for key, data in self.docs.items():
            memory[key] = prototype.buffer.from_bytes(data)
        zarr.consolidate_metadata(store, zarr_format=ZARR_FORMAT)
        added = {k: v.to_bytes() for k, v in memory.items() if self.docs.get(k) != v.to_bytes()}
        last = added.pop(COMPLETE_MARKER)
        self.put([*added.items(), (COMPLETE_MARKER, last)])  # the marker last

    def put(self, items: list[tuple[str, bytes | memoryview | None]]) -> None:
        """Write (or, for None, delete) these keys."""
        if self.local:
            for key, data in items:
                path = self.path(key)
                if data is None:
                    if os.path.exists(path):
                        os.remove(path)
                    continue
                parent = posixpath.dirname(path)
                if parent not in self._dirs:
                    os.makedirs(parent, exist_ok=True)
                    self._dirs.add(parent)
                # No rename: nobody reads the store before it is consolidated (the marker
                # comes last), so a file cut short by a kill is never read as data.
                with open(path, "wb") as f:
                    f.write(data)
            return
        assert self.fs is not None
        present = {self.path(k): bytes(d) for k, d in items if d is not None}
        if present:
            self.fs.pipe(present)  # one call: object stores upload them concurrently
        for key, data in items:
            if data is None and self.fs.exists(self.path(key)):
                self.fs.rm_file(self.path(key))

    def read_json(self, key: str) -> dict | None:
        if not self.direct:
            return None
        assert self.fs is not None
        try:
            return json.loads(self.fs.cat_file(self.path(key)))
        except (FileNotFoundError, ValueError):
            return None

    def remove(self, key: str) -> None:
        if self.direct:
            assert self.fs is not None
            if self.fs.exists(self.path(key)):
                self.fs.rm_file(self.path(key))


def layout_docs(template: xr.Dataset, encoding: dict | None) -> dict[str, bytes]:
    """The files ``template.to_zarr(compute=False)`` lays out, as {key: bytes}.

    Laid out in memory (``zarr.storage.MemoryStore``) and written as plain files after:
    zarr's local store writes each file through a temporary file and a rename, which cost
    more than everything else of a store's layout. Dask-backed variables get their metadata
    only; the others (coordinates) are written whole.
    """
    import zarr

    memory: dict = {}
    template.to_zarr(
        zarr.storage.MemoryStore(memory),
        mode="w",
        compute=False,
        consolidated=False,
        zarr_format=ZARR_FORMAT,
        encoding=encoding,
    )
    return {key: value.to_bytes() for key, value in memory.items()}


def write_dataset(
    ds: xr.Dataset,
    url: str,
    storage_options: dict[str, Any] | None = None,
    encoding: dict | None = None,
) -> bool:
    """Write the in-memory ``ds`` to the zarr store at ``url`` as ``to_zarr(mode="w",
    consolidated=True)`` would, its data variables' chunks written directly; False (nothing
    written) where it cannot: a variable not in memory, without chunks in ``encoding``, or
    one whose values xarray's CF encoding would change (see ``_VALUE_CODERS``).

    Each chunk is encoded in this thread (blosc uses its own threads in the main thread).
    On local disk it is written as soon as it is encoded, so at most one encoded chunk is
    held at a time; on object stores a variable's chunks are uploaded together.
    """
    import dask.array

    encoding = encoding or {}
    direct: dict[str, tuple[xr.DataArray, tuple[int, ...]]] = {}
    for name, var in ds.data_vars.items():
        # As xarray: a variable's entry in ``encoding`` replaces its own encoding.
        enc = encoding.get(str(name), var.encoding)
        if not _writes_values_as_they_are(var, enc):
            return False
        direct[str(name)] = (var, tuple(int(c) for c in enc["chunks"]))
    files = ZarrFiles(url, storage_options)
    if not files.direct:
        return False
    # The template: data variables as never-computed dask arrays of their zarr chunks (so
    # xarray lays out their metadata only), coordinates as they are.
    template = ds.copy(deep=False)
    for name, (var, chunks) in direct.items():
        template[name] = var.copy(data=dask.array.empty(var.shape, dtype=var.dtype, chunks=chunks))
    files.lay_out(layout_docs(template, encoding))
    for name, (var, chunks) in direct.items():
        codec = ChunkCodec.of(name, files.array_metadata(name))
        if codec.dtype != var.dtype or codec.chunks != chunks:
            raise AssertionError(f"{name}: laid out as {codec.dtype} {codec.chunks}")
        values = np.asarray(var.values)
        batch: list[tuple[str, bytes | memoryview | None]] = []
        for coords, where in codec.grid():
            data = codec.encode(values[where])
            if data is None:
                continue  # all fill value: zarr writes nothing (the store is freshly laid out)
            if files.local:  # written at once: one encoded chunk in memory at a time
                files.put([(codec.key(coords), data)])
            else:  # object stores: a variable's chunks uploaded together, concurrently
                batch.append((codec.key(coords), data))
        if batch:
            files.put(batch)
    files.consolidate()
    return True


def _writes_values_as_they_are(var: xr.Variable | xr.DataArray, enc: dict) -> bool:
    """Whether xarray writes ``var``'s values unchanged and as ``write_dataset`` does: in
    memory, floating point, explicit chunks (a tuple), no CF value coder, no dtype change,
    a NaN fill value (the default), and zarr's default of leaving empty chunks out."""
    if not getattr(var.variable, "_in_memory", False) or var.dtype.kind != "f":
        return False
    chunks = enc.get("chunks")
    if not isinstance(chunks, tuple | list) or len(chunks) != var.ndim or var.ndim == 0:
        return False
    if not all(isinstance(c, int | np.integer) and c > 0 for c in chunks):
        return False
    if any(k in enc or k in var.attrs for k in _VALUE_CODERS) or "write_empty_chunks" in enc:
        return False
    if "dtype" in enc and np.dtype(enc["dtype"]) != var.dtype:
        return False
    if "_FillValue" not in enc and "_FillValue" not in var.attrs:
        return True  # xarray's default for floats: NaN
    fill = enc.get("_FillValue", var.attrs.get("_FillValue"))
    return fill is not None and bool(np.isnan(fill))
