"""Upstream sources: where a cycle's analysis comes from, one small class per format.

The ingest asset and the upstream sensor are written against two small protocols:

* :class:`Source`: ``cycle_url(t)``, ``read_cycle(t)`` (the canonical dataset), and
  ``cycle_version(key)`` with ``marks_complete`` for the sensor;
* :class:`ListedSource`: a :class:`Source` whose cycles can also be listed
  (``list_cycle_keys(start_after)``); the sensor probes the partitions of any other source.

The formats, chosen by name from :data:`SOURCES`:

* ``zarr`` (:class:`ZarrLayoutSource`): stores laid out by the path convention under a
  prefix (any fsspec URL, e.g. an NWP provider's bucket):
  ``<url>/<analysis_time>/member<k>/<data_kind>.zarr``, where ``url`` ends at the
  resolution component (``.../<model>/<config>/<bbox>/<resolution>``);
* ``grib`` / ``netcdf`` (:class:`GribFileSource`, :class:`NetcdfFileSource`): files named by
  a template formatted with the analysis time, e.g.
  ``/data/era5/era5_{analysis_time:%Y%m%d%H}.grib``; a name without placeholder is one file
  holding many analysis times. Only analyses are read from them (a forecast is refused), and
  ensemble members only when the source is configured as an ensemble (``ensemble``).

Adding a format: write one class here (or in a module of its own) that takes a
:class:`SourceConfig` and implements :class:`Source` (and ``list_cycle_keys`` if its cycles
can be listed), then add it to :data:`SOURCES` under its kind. The variables every cycle must
provide are checked for every kind by :func:`require_variables`, not by the classes. No
Dagster here: ``resources.upstream.UpstreamSource`` is the resource that builds a source.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

import fsspec
import numpy as np
import xarray as xr

from resources.layout import complete_members, join_members
from resources.storage import COMPLETE_MARKER, Storage, s3_options
from weather_assets import paths
from weather_assets.ingest.readers import read_grib, read_netcdf, read_zarr


@dataclass(frozen=True)
class SourceConfig:
    """What every source is built from (each kind reads the fields it needs)."""

    url: str
    data_kind: str = "analysis"
    endpoint_url: str | None = None
    ensemble: bool = False

    @property
    def storage_options(self) -> dict[str, Any]:
        return s3_options(self.endpoint_url) if "://" in self.url else {}

    def fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        return fsspec.core.url_to_fs(self.url, **self.storage_options)


class Source(Protocol):
    """One upstream source: what the ingest asset reads and the upstream sensor observes."""

    #: True: a version exists only once the cycle is complete (a marker, e.g. zarr's
    #: consolidated metadata). False: a version may be that of a file still being written;
    #: the sensor trusts it once it did not change between two ticks.
    marks_complete: ClassVar[bool]

    def cycle_url(self, analysis_time: datetime) -> str:
        """Location of the cycle, for messages and metadata."""
        ...

    def read_cycle(self, analysis_time: datetime) -> xr.Dataset:
        """The cycle's analysis as a canonical dataset (with a ``member`` dim if several).

        FileNotFoundError naming the location when the cycle has not arrived.
        """
        ...

    def cycle_version(self, key: str) -> str | None:
        """A version of cycle ``key`` (etag or size+mtime); None while it is absent."""
        ...


@runtime_checkable
class ListedSource(Source, Protocol):
    """A source whose cycles can be listed (instead of probed partition by partition)."""

    def list_cycle_keys(self, start_after: str | None = None) -> list[str]:
        """Cycle names after ``start_after``, sorted; not validated (the sensor reports)."""
        ...


def require_variables(ds: xr.Dataset, variables: Sequence[str] | None, where: str) -> xr.Dataset:
    """``ds`` if it provides every one of ``variables`` (None: any); else KeyError naming them."""
    missing = [v for v in variables or [] if v not in ds.data_vars]
    if missing:
        raise KeyError(
            f"{where} lacks required variable(s) {', '.join(missing)}; "
            f"it provides {', '.join(map(str, ds.data_vars))}"
        )
    return ds


def _version(fs: fsspec.AbstractFileSystem, target: str) -> str | None:
    """An object's etag, else its size and mtime; None if it does not exist."""
    try:
        info = fs.info(target)
    except FileNotFoundError:
        return None
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return str(etag).strip('"')
    return f"{info.get('size')}-{info.get('mtime') or info.get('LastModified')}"


def _time64(analysis_time: datetime) -> np.datetime64:
    return np.datetime64(analysis_time.replace(tzinfo=None), "ns")


@dataclass(frozen=True)
class ZarrLayoutSource:
    """Zarr stores in the path layout under a prefix; a cycle is complete once consolidated."""

    config: SourceConfig
    marks_complete: ClassVar[bool] = True

    def cycle_url(self, analysis_time: datetime, member: int = 0) -> str:
        key = paths.format_analysis_time(analysis_time)
        return f"{self.config.url.rstrip('/')}/{key}/member{member}/{self.config.data_kind}.zarr"

    def cycle_members(self, analysis_time: datetime) -> list[int]:
        """Members of the cycle whose store is complete (consolidated metadata present)."""
        storage = Storage(self.config.url, self.config.storage_options)
        cycle_dir = paths.format_analysis_time(analysis_time)
        return complete_members(storage, cycle_dir, self.config.data_kind)

    def list_cycle_keys(self, start_after: str | None = None) -> list[str]:
        """Analysis-time names under the prefix, after ``start_after``, sorted.

        On S3 this is one ListObjectsV2 with a delimiter and ``StartAfter``, so its cost grows
        with the cycles after ``start_after``, not with the bucket's history.
        """
        if self.config.url.startswith("s3://"):
            return self._list_s3(start_after)
        fs, root = self.config.fs()
        if not fs.exists(root):
            return []
        names = sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(root, detail=False))
        # Hidden entries (a writer's .staging area) are never cycles.
        return [
            n for n in names if not n.startswith(".") and (start_after is None or n > start_after)
        ]

    def _list_s3(self, start_after: str | None) -> list[str]:
        import boto3

        bucket, _, prefix = self.config.url[len("s3://") :].partition("/")
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        client = boto3.client("s3", endpoint_url=self.config.endpoint_url)
        kwargs = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
        if start_after:
            # '0' sorts just after '/': skip every object of the start_after cycle itself.
            kwargs["StartAfter"] = f"{prefix}{start_after}0"
        names = []
        for page in client.get_paginator("list_objects_v2").paginate(**kwargs):
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(prefix) :].rstrip("/")
                if not name.startswith("."):
                    names.append(name)
        return sorted(names)

    def cycle_version(self, key: str) -> str | None:
        """The version of the control member's consolidated metadata (None: incomplete)."""
        fs, root = self.config.fs()
        store = f"{self.config.data_kind}.zarr"
        return _version(fs, posixpath.join(root, key, "member0", store, COMPLETE_MARKER))

    def read_cycle(self, analysis_time: datetime) -> xr.Dataset:
        members = self.cycle_members(analysis_time)
        if not members:
            raise FileNotFoundError(
                f"cycle {paths.format_analysis_time(analysis_time)} has not arrived: no complete "
                f"store at {self.cycle_url(analysis_time)}"
            )
        t64 = _time64(analysis_time)
        options = self.config.storage_options
        datasets = [read_zarr(self.cycle_url(analysis_time, m), options) for m in members]
        for ds in datasets:
            if t64 not in ds["time"].values.astype("datetime64[ns]"):
                raise ValueError(
                    f"zarr store {self.cycle_url(analysis_time)} holds times "
                    f"{ds['time'].values} but its path says {t64}"
                )
        return join_members(datasets, members).sel(time=[t64])


@dataclass(frozen=True)
class _FileTemplateSource:
    """Files named by a template of the analysis time; complete once their size settles."""

    config: SourceConfig
    marks_complete: ClassVar[bool] = False
    #: ``reader(path, analysis_time, ensemble=...)``: the canonical dataset of that analysis.
    reader: ClassVar[Callable[..., xr.Dataset]]

    def cycle_url(self, analysis_time: datetime) -> str:
        return self.config.url.format(analysis_time=analysis_time)

    def cycle_version(self, key: str) -> str | None:
        fs, _ = self.config.fs()
        target = fs._strip_protocol(self.cycle_url(paths.parse_analysis_time(key)))
        return _version(fs, target)

    def read_cycle(self, analysis_time: datetime) -> xr.Dataset:
        path = self.cycle_url(analysis_time)
        return self.reader(path, _time64(analysis_time), ensemble=self.config.ensemble)


class GribFileSource(_FileTemplateSource):
    """GRIB files (ecCodes): analyses only, members only for an ensemble source."""

    reader = staticmethod(read_grib)


class NetcdfFileSource(_FileTemplateSource):
    """NetCDF files: the same rules where the file says what it holds."""

    reader = staticmethod(read_netcdf)


#: Every source kind, by the name settings and the resource use.
SOURCES: dict[str, Callable[[SourceConfig], Source]] = {
    "zarr": ZarrLayoutSource,
    "grib": GribFileSource,
    "netcdf": NetcdfFileSource,
}


def source_class(kind: str) -> Callable[[SourceConfig], Source]:
    """The source of ``kind``; ValueError naming the valid kinds otherwise."""
    try:
        return SOURCES[kind]
    except KeyError:
        raise ValueError(
            f"unknown upstream source kind {kind!r}; valid kinds: {', '.join(sorted(SOURCES))}"
        ) from None


def make_source(kind: str, config: SourceConfig) -> Source:
    """A source of ``kind`` built from ``config``."""
    return source_class(kind)(config)
