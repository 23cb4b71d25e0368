"""Forecast outputs: where a rollout's lead times are written, one class per format.

Every output has the same lifecycle (as anemoi-inference's outputs):

1. ``open(layout)``: the forecast's shape is known (analysis time, features, grid, every lead
   time, members); the output lays out whatever it writes into;
2. ``write_initial_state(state)``: for outputs that store lead time 0 (the zarr forecast
   store does not: the analysis is a store of its own);
3. ``write_step(step)``: one lead time, as soon as it is computed;
4. ``close()``: every lead time is written; the output marks itself complete.

An output whose run failed is never closed, so it is never marked complete; the caller's
staging (``resources.storage.Storage.staged_zarrs``) discards it, or keeps it for a rerun to
resume (below). Outputs are chosen by name from ``OUTPUTS`` (``forecast_output("zarr", ...)``).

``ZarrForecastOutput`` writes the platform's forecast stores in the platform's one zarr
format (``resources.zarr_files.ZARR_FORMAT``) with consolidated metadata, the store's
"complete" marker, through :mod:`resources.zarr_files`: at ``open`` it lays the whole
forecast out once from a lazy template (``forecast_template``; one layout serves every
member's store), then each lead time is one chunk per variable (and member), encoded with
the array's own codec and written straight to the store's files (one file write per chunk
on local disk, concurrent PUTs on object stores). A chunk needs no atomic rename: nobody
reads the store before ``close`` consolidates it, and a chunk cut short by a kill belongs to
a lead time that the journal does not count yet, so a resume rewrites it. The store is
identical, metadata and bytes, to zarr's own writes (tested file by file) and to
``to_zarr`` of the whole computed forecast. Stores given as zarr store objects are written
through zarr's API.

**Resuming.** After each lead time whose chunks are all written, the output records the
number of complete leading lead times in a small journal inside the store
(``PROGRESS.json``, ``resources.storage.PROGRESS``) with a signature of the run (the layout,
the attributes, the caller's ``run_key``). ``open`` on stores that already hold a journal of
the same signature keeps them as they are and sets ``completed_steps``: the caller reads the
state of the last complete lead with ``read_state`` and rolls on from there. ``close``
removes the journal before it consolidates, so a complete store never holds one.

Writing happens in the caller's thread by default (on the CPU the model's threads have the
cores to themselves between writes); with ``writer_threads`` a pool encodes and writes
while the caller computes the next lead (a GPU rollout leaves the host's cores idle), with
at most ``MAX_PENDING_LEADS`` lead times in flight, so memory stays bounded.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from resources.storage import PROGRESS
from resources.zarr_files import ZARR_FORMAT, ChunkCodec, ZarrFiles, layout_docs
from weather_assets.forecast.dataset import (
    ForecastLayout,
    forecast_encoding,
    forecast_template,
    variable_features,
)
from weather_assets.forecast.rollout import RolloutStep

if TYPE_CHECKING:
    pass

# Lead times handed to the writer threads and not yet written: with the one being computed,
# the host holds at most this many + 1 states of the forecast.
MAX_PENDING_LEADS = 1
# Size of a local progress journal record (JSON, padded with spaces): rewritten in place.
JOURNAL_BYTES = 512


class ForecastOutput(ABC):
    """Where a forecast goes: ``open``, ``write_initial_state``, ``write_step``, ``close``."""

    #: Lead times already complete when ``open`` found an interrupted run of the same
    #: forecast (0: a fresh output). ``read_state(completed_steps)`` gives their last state.
    completed_steps: int = 0

    @abstractmethod
    def open(self, layout: ForecastLayout) -> None:
        """Lay the output out for ``layout``, before the first step is computed."""

    def write_initial_state(self, state: np.ndarray) -> int:
        """Store lead time 0, ``state`` (member, state_feature, lat, lon); bytes written.

        Outputs that hold only forecast lead times (the default) store nothing.
        """
        return 0

    @abstractmethod
    def write_step(self, step: RolloutStep) -> int:
        """Store one lead time of every member; the bytes of data written."""

    def read_state(self, step: int) -> np.ndarray:
        """The stored state at ``step`` (1-based), (member, state_feature, lat, lon)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be read back to resume")

    @abstractmethod
    def close(self) -> None:
        """Finish the output once every lead time is written (marks it complete)."""


@dataclass
class _Chunks:
    """One zarr array of the forecast: where its values are in the state, and its chunks
    (format 2: ``name/0.k.0.0``, one per lead time and member)."""

    codec: ChunkCodec
    index: np.ndarray  # into the state's features (see ``variable_features``)
    trailing: int  # zero chunk coordinates after (time, lead_time[, member])

    @property
    def name(self) -> str:
        return self.codec.name

    @property
    def nbytes(self) -> int:
        """Raw bytes of one member's values (one chunk)."""
        return self.codec.nbytes

    def key(self, k: int, member: int | None) -> str:
        return self.codec.key((0, k, *([] if member is None else [member]), *[0] * self.trailing))

    def encode(self, values: np.ndarray) -> bytes | memoryview | None:
        return self.codec.encode(values)


class _Store(ZarrFiles):
    """One output store: its files, its chunk layout and its progress journal."""

    def __init__(self, store: Any, storage_options: dict[str, Any] | None) -> None:
        super().__init__(store, storage_options)
        self.chunks: list[_Chunks] = []
        self._journal_fd: int | None = None

    def record(self, data: bytes) -> None:
        """Replace the progress journal with ``data``.

        Local disk: one ``pwrite`` of a fixed-size, space-padded record at offset 0 into a
        file kept open (a rename per lead time cost more than the lead's chunks); a killed
        process cannot leave one write half done. Object stores: one PUT.
        """
        if not self.local:
            self.put([(PROGRESS, data)])
            return
        if len(data) > JOURNAL_BYTES:
            raise ValueError(f"journal record of {len(data)} bytes > {JOURNAL_BYTES}")
        if self._journal_fd is None:
            self._journal_fd = os.open(self.path(PROGRESS), os.O_WRONLY | os.O_CREAT, 0o644)
        os.pwrite(self._journal_fd, data.ljust(JOURNAL_BYTES), 0)

    def close_journal(self, remove: bool) -> None:
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None
        if remove:
            self.remove(PROGRESS)


class ZarrForecastOutput(ForecastOutput):
    """Zarr stores: one for all members (``member`` dim when several), or one per member.

    ``stores`` are zarr URLs (any fsspec URL, with ``storage_options``) or zarr stores (those
    are written through zarr's API and keep no journal). ``run_key`` names what else the
    forecast depends on (model, seed, ...): a journal is resumed only under the same key,
    layout and attributes. ``writer_threads`` > 0 writes in a pool of that many threads.
    """

    def __init__(
        self,
        stores: Sequence[Any],
        *,
        storage_options: dict[str, Any] | None = None,
        run_key: str = "",
        writer_threads: int = 0,
    ) -> None:
        self.stores = list(stores)
        self.storage_options = storage_options or None
        self.run_key = run_key
        self.writer_threads = writer_threads
        self.completed_steps = 0
        self._layout: ForecastLayout | None = None
        self._ensemble = False
        self._index: dict[str, np.ndarray] = {}
        self._outs: list[_Store] = []
        self._written: set[int] = set()
        self._complete = 0  # complete leading lead times recorded in the journals
        self._signature = ""
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[tuple[int, list[Future]]] = deque()

    # -- lifecycle -------------------------------------------------------------------------

    def open(self, layout: ForecastLayout) -> None:

        if not self.stores or len(self.stores) not in (1, layout.members):
            raise ValueError(
                f"{len(self.stores)} stores for {layout.members} members; give 1 or one each"
            )
        # One store holds every member (a member dim when there are several); one store per
        # member holds that member without a member dim, like per-member raw inputs.
        self._ensemble = len(self.stores) == 1 and layout.members > 1
        self._index = variable_features(layout.features)
        self._signature = _signature(layout, self.run_key, len(self.stores))
        self._outs = [_Store(s, self.storage_options) for s in self.stores]
        done = self._resumable(len(layout.lead_times))
        if done is None:
            template = forecast_template(layout, ensemble=self._ensemble)
            encoding = forecast_encoding(template)
            docs = None
            for out in self._outs:
                # Metadata and coordinates only; consolidated at close (the complete marker).
                if not out.direct:
                    template.to_zarr(
                        out.store,
                        mode="w",
                        compute=False,
                        consolidated=False,
                        zarr_format=ZARR_FORMAT,
                        encoding=encoding,
                    )
                    continue
                if docs is None:  # the same for every member's store
                    docs = layout_docs(template, encoding)
                out.lay_out(docs)
        for out in self._outs:
            out.chunks = [
                _chunks_of(name, out.array_metadata(name), index, self._ensemble)
                for name, index in self._index.items()
            ]
        self._layout = layout
        self.completed_steps = done or 0
        self._complete = self.completed_steps
        self._written = set(range(self.completed_steps))
        if done is None:
            self._record(0)  # the journal exists from the start: the store is this run's
        if self.writer_threads > 0:
            self._pool = ThreadPoolExecutor(self.writer_threads, thread_name_prefix="wxplat-write")

    def write_step(self, step: RolloutStep) -> int:
        layout = self._opened()
        k = layout.lead_index(step.lead_time)
        expected = (layout.members, len(layout.features), len(layout.latitude))
        if step.state.ndim != 4 or step.state.shape[:3] != expected:
            raise ValueError(
                f"step {step.step} state {step.state.shape} does not match the layout "
                f"(members, features, latitude, longitude) = "
                f"{(*expected, len(layout.longitude))}"
            )
        nbytes = 0
        futures: list[Future] = []
        for i, out in enumerate(self._outs):
            if len(self._outs) > 1:
                state = step.state[i : i + 1]  # one store per member
            else:
                state = step.state if self._ensemble else step.state[:1]
            nbytes += sum(c.nbytes for c in out.chunks) * len(state)
            if self._pool is None:
                self._write_lead(out, state, k, out.chunks)
            else:  # the chunks shared out among the threads, largest first
                for part in _shares(out.chunks, self.writer_threads):
                    futures.append(self._pool.submit(self._write_lead, out, state, k, part))
        if self._pool is None:
            self._lead_done(k)
        else:
            self._pending.append((k, futures))
            while len(self._pending) > MAX_PENDING_LEADS:
                self._drain_one()
        return nbytes

    def read_state(self, step: int) -> np.ndarray:
        """The stored state at ``step`` (1-based), (member, state_feature, lat, lon), float32.

        Exactly the values that were written (the codecs are lossless): the state a resumed
        rollout continues from.
        """
        layout = self._opened()
        if not 1 <= step <= self.completed_steps:
            raise ValueError(f"step {step} is not complete (complete: {self.completed_steps})")
        k = step - 1
        shape = (layout.members, len(layout.features), len(layout.latitude), len(layout.longitude))
        state = np.empty(shape, dtype=np.float32)
        for i, out in enumerate(self._outs):
            rows = slice(i, i + 1) if len(self._outs) > 1 else slice(None)
            for c in out.chunks:
                values = np.asarray(out.group()[c.name][0, k], dtype=np.float32)
                if not self._ensemble:
                    values = values[None]  # (member=1, ...)
                if c.index.ndim == 0:
                    state[rows, int(c.index)] = values
                else:
                    have = c.index >= 0
                    state[rows, c.index[have]] = values[:, have]
        return state

    def close(self) -> None:
        layout = self._opened()
        try:
            self._drain()
        finally:
            self._stop_pool()
        missing = [lt for k, lt in enumerate(layout.lead_times) if k not in self._written]
        if missing:
            raise ValueError(
                f"lead times {missing} were never written; the forecast stays incomplete"
            )
        for out in self._outs:
            out.close_journal(remove=True)  # a complete store holds no journal
            # What xarray's to_zarr(consolidated=True) does last: the store is complete.
            out.consolidate()

    def abort(self) -> None:
        """Stop the writer threads (after a failure); what is written stays for a resume."""
        self._stop_pool()
        self._pending.clear()
        for out in self._outs:
            out.close_journal(remove=False)

    def _stop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    # -- internals -------------------------------------------------------------------------

    def _opened(self) -> ForecastLayout:
        if self._layout is None:
            raise RuntimeError("the forecast output is not open: call open(layout) first")
        return self._layout

    def _resumable(self, n_leads: int) -> int | None:
        """Complete lead times of an interrupted run of this forecast in every store, or
        None (no such run: lay the stores out afresh)."""
        found = []
        for out in self._outs:
            journal = out.read_json(PROGRESS)
            if journal is None or journal.get("signature") != self._signature:
                return None
            complete = int(journal.get("complete", -1))
            if not 0 <= complete <= n_leads:
                return None
            found.append(complete)
        return min(found)

    def _write_lead(self, out: _Store, state: np.ndarray, k: int, chunks: list[_Chunks]) -> None:
        members = range(len(state)) if self._ensemble else [None]
        if not out.direct:
            for c in chunks:
                values = _variable_values(state if self._ensemble else state[0], c.index)
                out.group()[c.name][0, k] = values  # (time, lead_time, ...): whole chunks
            return
        items = []
        for c in chunks:
            for m in members:
                values = _variable_values(state[0 if m is None else m], c.index)
                item = (c.key(k, m), c.encode(values))
                if out.local:  # written at once: one encoded chunk in memory per writer
                    out.put([item])
                else:  # object stores: uploaded together, concurrently
                    items.append(item)
        if items:
            out.put(items)

    def _drain_one(self) -> None:
        k, futures = self._pending.popleft()
        for f in futures:
            f.result()  # a failed write fails the run here
        self._lead_done(k)

    def _drain(self) -> None:
        while self._pending:
            self._drain_one()

    def _lead_done(self, k: int) -> None:
        self._written.add(k)
        complete = self._complete
        while complete in self._written:
            complete += 1
        if complete > self._complete:
            self._record(complete)

    def _record(self, complete: int) -> None:
        """Journal ``complete`` leading lead times in every store (after their chunks)."""
        self._complete = complete
        journal = {
            "signature": self._signature,
            "complete": complete,
            "lead_times": len(self._opened().lead_times),
            "updated": datetime.now(UTC).isoformat(),
        }
        data = json.dumps(journal).encode()
        for out in self._outs:
            if out.direct:
                out.record(data)


def _chunks_of(name: str, meta: dict, index: np.ndarray, ensemble: bool) -> _Chunks:
    """The chunk layout of array ``name`` from its format-2 metadata (``.zarray``)."""
    per_chunk = 3 if ensemble else 2  # (time, lead_time[, member]) have chunks of one
    codec = ChunkCodec.of(name, meta)
    if codec.chunks != (1,) * per_chunk + codec.shape[per_chunk:]:
        raise ValueError(
            f"{name}: expected chunks of one lead time, got {codec.chunks} for shape {codec.shape}"
        )
    return _Chunks(codec=codec, index=index, trailing=len(codec.shape) - per_chunk)


def _signature(layout: ForecastLayout, run_key: str, n_stores: int) -> str:
    """What identifies one forecast's stores: the journal of another run never matches."""
    h = hashlib.sha256()
    parts = {
        "analysis_time": str(np.datetime64(_naive(layout.analysis_time), "ns")),
        "features": [str(f) for f in layout.features],
        "lead_times": [lt.total_seconds() for lt in layout.lead_times],
        "members": layout.members,
        "stores": n_stores,
        "attrs": layout.attrs,
        "run_key": run_key,
    }
    h.update(json.dumps(parts, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(layout.latitude, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(layout.longitude, dtype=np.float64).tobytes())
    return h.hexdigest()


def _naive(value: Any) -> Any:
    import pandas as pd

    t = pd.Timestamp(value)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t


def _shares(chunks: list[_Chunks], n: int) -> list[list[_Chunks]]:
    """``chunks`` in at most ``n`` groups of about equal bytes (largest first, greedy)."""
    groups: list[list[_Chunks]] = [[] for _ in range(min(n, len(chunks)))]
    sizes = [0] * len(groups)
    for c in sorted(chunks, key=lambda c: -c.nbytes):
        i = sizes.index(min(sizes))
        groups[i].append(c)
        sizes[i] += c.nbytes
    return [g for g in groups if g]


def _variable_values(state: np.ndarray, index: np.ndarray) -> np.ndarray:
    """One variable of ``state`` (..., state_feature, lat, lon) in the dataset's layout."""
    if index.ndim == 0:
        return state[..., int(index), :, :]
    first = int(index[0])
    if first >= 0 and np.array_equal(index, np.arange(first, first + len(index))):
        return state[..., first : first + len(index), :, :]  # levels in a row: a view
    values = state[..., index, :, :]  # a copy, levels in the dataset's order
    if (index < 0).any():
        values[..., index < 0, :, :] = np.nan  # a level the variable lacks
    return values


OUTPUTS: dict[str, type[ForecastOutput]] = {"zarr": ZarrForecastOutput}


def forecast_output(name: str, *args: Any, **kwargs: Any) -> ForecastOutput:
    """The output class registered as ``name``, built with ``args``/``kwargs``."""
    try:
        cls = OUTPUTS[name]
    except KeyError:
        raise KeyError(
            f"unknown forecast output {name!r}; known outputs: {sorted(OUTPUTS)}"
        ) from None
    return cls(*args, **kwargs)
